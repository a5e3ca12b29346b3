"""Where a CLIP checkpoint lives and what it is called, for the image encoder and the export.

CLIP puts images and texts in one vector space, so a query's text vector can be searched
against the products' image vectors (the text-to-image kNN leg). Models are never downloaded:
a model is a local directory, or a Hugging Face name that is already in the local cache.
Torch and transformers are imported only by `import_ml`, when a caller needs them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from shoprank.errors import ConfigError

from .base import weights_fingerprint

__all__ = [
    "MODEL_FIX",
    "clip_model_id",
    "image_processor_class",
    "import_ml",
    "load_clip_model",
    "projection_dim",
    "read_clip_config",
    "resolve_clip_dir",
]

_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")
_ML_HINT = "install torch==2.13.0 (CPU build) first, then `pip install 'shoprank[ml]'`"
MODEL_FIX = (
    "fix: point the CLIP model setting at a local directory holding a transformers CLIP "
    "checkpoint (config.json, model.safetensors, tokenizer and preprocessor files), or at a "
    "Hugging Face model name that is already in the local cache; models are never downloaded"
)
_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def _cached_hub_dir(name: str) -> Path | None:
    """The snapshot folder of an already-cached Hugging Face model, without network access."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        found = try_to_load_from_cache(name, "config.json")
    except Exception:  # invalid repo ids raise the hub's own validation errors
        return None
    return Path(found).parent if isinstance(found, str) else None


def resolve_clip_dir(model: str) -> Path:
    """The local directory of a CLIP model (a path, or a cached hub name); ConfigError if none."""
    if not isinstance(model, str) or not model.strip():
        raise ConfigError(f"the CLIP model setting is empty; {MODEL_FIX}")
    path = Path(model).expanduser()
    if path.is_dir():
        return path.resolve()
    if not path.exists() and _HUB_NAME.match(model):
        cached = _cached_hub_dir(model)
        if cached is not None:
            return cached
    raise ConfigError(
        f"CLIP model {model!r} is neither an existing directory nor a Hugging Face model in "
        f"the local cache; {MODEL_FIX}"
    )


def clip_model_id(model: str, directory: Path) -> str:
    """`<name>@<weights sha256[:12]>`; the name is the folder's, or a hub name's last part."""
    name = directory.name if Path(model).expanduser().is_dir() else model.rstrip("/")
    name = name.rsplit("/", 1)[-1]
    digest = weights_fingerprint(directory, _WEIGHT_FILES)
    if digest is None:
        raise ConfigError(
            f"no weights ({' or '.join(_WEIGHT_FILES[:2])}) in {directory}; {MODEL_FIX}"
        )
    return f"{name}@{digest}"


def read_clip_config(directory: Path) -> dict[str, Any]:
    """config.json of a CLIP checkpoint (model_type 'clip'); ConfigError otherwise."""
    path = directory / "config.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}; {MODEL_FIX}") from exc
    if not isinstance(raw, dict) or raw.get("model_type") != "clip":
        kind = raw.get("model_type") if isinstance(raw, dict) else None
        raise ConfigError(f"{path} is not a CLIP config (model_type={kind!r}); {MODEL_FIX}")
    return raw


def projection_dim(config: dict[str, Any]) -> int:
    """Width of CLIP's shared image/text space."""
    return int(config.get("projection_dim", 512))  # CLIPConfig's default


def import_ml(purpose: str) -> tuple[Any, Any]:
    """(torch, transformers), or ConfigError naming the extra to install."""
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise ConfigError(
            f"{purpose} needs torch and transformers, which are not installed ({exc}); {_ML_HINT}"
        ) from exc
    return torch, transformers


def load_clip_model(transformers: Any, directory: Path, **kwargs: Any) -> Any:
    """CLIPModel from a local folder, float32, eval mode; never downloads."""
    try:
        model = transformers.CLIPModel.from_pretrained(
            str(directory), local_files_only=True, **kwargs
        )
    except Exception as exc:  # OSError, ValueError, safetensors' own errors, ...
        raise ConfigError(f"cannot load CLIP weights from {directory}: {exc}; {MODEL_FIX}") from exc
    return model.float().eval()


def image_processor_class(transformers: Any) -> Any:
    """The PIL CLIP image processor: the same pixels whether or not torchvision is installed.

    transformers 5 names it `CLIPImageProcessorPil` and prefers a torchvision backend that
    resizes differently under the old name; older releases only have `CLIPImageProcessor`.
    """
    return getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor
