"""Text encoders: the `TextEncoder` protocol, the torch-free numpy MiniLM and a torch wrapper.

Importing this package loads numpy only; tokenizers, safetensors and (for the torch backend)
sentence-transformers are imported when an encoder is warmed up.
"""

from __future__ import annotations

from .minilm import (
    DEFAULT_MODEL,
    NumpyBertEncoder,
    TorchSentenceEncoder,
    get_text_encoder,
    resolve_model_dir,
)
from .protocol import TextEncoder

__all__ = [
    "DEFAULT_MODEL",
    "NumpyBertEncoder",
    "TextEncoder",
    "TorchSentenceEncoder",
    "get_text_encoder",
    "resolve_model_dir",
]
