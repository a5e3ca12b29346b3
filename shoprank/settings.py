"""Typed settings from `SHOPRANK_*` environment variables, built on first use, never at import."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything configurable; each field is `SHOPRANK_<NAME>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="SHOPRANK_", extra="ignore")

    data_dir: Path = Field(
        default=Path("./data"),
        description="Where the embedded backend and every local store live.",
    )
    backend: Literal["embedded"] = Field(
        default="embedded", description="Search backend (elasticsearch/opensearch come later)."
    )
    text_model: str = Field(
        default="sentence-transformers/all-MiniLM-L6-v2",
        description="Text encoder: the packaged MiniLM name or a local model directory.",
    )
    encoder_backend: Literal["numpy", "torch"] = Field(
        default="numpy", description="numpy (torch-free, the serving default) or torch."
    )
    max_text_tokens: int = Field(default=128, ge=8, le=512)
    default_mode: Literal["lexical", "vector", "hybrid", "full"] = "full"
    fusion: Literal["rrf", "linear"] = "rrf"
    rrf_k: int = Field(default=60, ge=1)
    linear_vector_weight: float = Field(default=0.5, ge=0.0, le=1.0)
    window_size: int = Field(default=100, ge=1, le=10_000, description="Hybrid top-N window.")
    max_window_size: int = Field(default=1_000, ge=1, le=10_000)
    keep_generations: int = Field(default=2, ge=1, description="Old generations kept for rollback.")
    default_text_fields: str = Field(
        default="title^3,brand.text^2,category.text^1.5,description",
        description="Fields (with ^boost) searched when shoprank builds a lexical query itself.",
    )

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def embedded_dir(self) -> Path:
        return self.data_dir / "embedded"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first call."""
    return Settings()
