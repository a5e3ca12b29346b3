"""Encoders: the `TextEncoder` protocol, one module per implementation, and the text factory.

- `bert_numpy.NumpyBertEncoder`: MiniLM in pure numpy, the torch-free serving default.
- `torch_text.TorchSentenceEncoder`: MiniLM through sentence-transformers (`[ml]` extra).
- `onnx_text.OnnxTextEncoder`: an exported MiniLM served with onnxruntime.
- `clip_image.ClipImageEncoder`: CLIP image vectors with torch, for indexing.
- `clip_text.ClipTextOnnxEncoder`: CLIP query vectors from the exported text tower.

Exports (`export_text`, `export_clip`) need torch and are never imported by the serving
path; `auto_export` decides what `SHOPRANK_ENCODER_BACKEND=auto` uses (exporting the ONNX
model once on first indexing use) and keeps queries on the encoder the index was built with.
Importing this package loads numpy only; tokenizers, safetensors, onnxruntime and torch
are imported when an encoder is warmed up.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from shoprank.errors import ConfigError

from .bert_numpy import NumpyBertEncoder
from .clip_image import ClipImageEncoder
from .clip_text import ClipTextOnnxEncoder
from .minilm import DEFAULT_MODEL, resolve_model_dir
from .onnx_text import OnnxTextEncoder
from .protocol import TextEncoder
from .torch_text import TorchSentenceEncoder

__all__ = [
    "DEFAULT_MODEL",
    "ClipImageEncoder",
    "ClipTextOnnxEncoder",
    "NumpyBertEncoder",
    "OnnxTextEncoder",
    "TextBackend",
    "TextEncoder",
    "TorchSentenceEncoder",
    "get_text_encoder",
    "resolve_model_dir",
]

TextBackend = Literal["numpy", "torch"]
_BACKENDS: tuple[TextBackend, ...] = ("numpy", "torch")


def get_text_encoder(
    *,
    backend: TextBackend = "numpy",
    model: str = DEFAULT_MODEL,
    max_length: int = 128,
) -> TextEncoder:
    """The process-wide encoder for (backend, model, max_length); each is built once."""
    if backend not in _BACKENDS:
        raise ConfigError(
            f"unknown text encoder backend {backend!r}; allowed: {', '.join(_BACKENDS)} "
            "(SHOPRANK_ENCODER_BACKEND)"
        )
    return _cached_encoder(backend, model, max_length)


@lru_cache(maxsize=8)
def _cached_encoder(backend: TextBackend, model: str, max_length: int) -> TextEncoder:
    if backend == "torch":
        return TorchSentenceEncoder(model, max_length=max_length)
    return NumpyBertEncoder(model, max_length=max_length)
