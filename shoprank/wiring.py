"""Building the parts from settings: one place that knows which backend and encoder to use."""

from __future__ import annotations

from functools import partial

from shoprank.errors import ConfigError
from shoprank.indexing.encoders.protocol import TextEncoder
from shoprank.plugin.backends.protocol import SearchBackend
from shoprank.plugin.search import SearchService
from shoprank.settings import Settings


def make_backend(settings: Settings) -> SearchBackend:
    if settings.backend == "embedded":
        from shoprank.plugin.backends.embedded.backend import EmbeddedBackend

        return EmbeddedBackend(settings.embedded_dir)
    raise ConfigError(f"unknown SHOPRANK_BACKEND {settings.backend!r}; available: embedded")


def text_encoder(settings: Settings) -> TextEncoder:
    from shoprank.indexing.encoders import get_text_encoder

    return get_text_encoder(
        backend=settings.encoder_backend,
        model=settings.text_model,
        max_length=settings.max_text_tokens,
    )


def make_service(settings: Settings, backend: SearchBackend | None = None) -> SearchService:
    return SearchService(
        backend=backend or make_backend(settings),
        settings=settings,
        encoder=partial(text_encoder, settings),
    )
