"""MiniLM through sentence-transformers on torch (the `[ml]` extra): the reference encoder.

Same interface and `model_id` as `NumpyBertEncoder` for the same weights; sentence-transformers
is imported when the encoder is warmed up, never at import.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from shoprank.errors import ConfigError

from .base import F32, LazyEncoder, check_encode_args, check_max_length
from .minilm import DEFAULT_MODEL, minilm_model_id, resolve_model_dir

__all__ = ["TorchSentenceEncoder"]

_ML_HINT = "install torch==2.13.0 (CPU build) first, then `pip install 'shoprank[ml]'`"


class TorchSentenceEncoder(LazyEncoder[Any]):
    """sentence-transformers on CPU; needs the `[ml]` extra. Same interface and model_id."""

    def __init__(self, model: str = DEFAULT_MODEL, *, max_length: int = 128) -> None:
        super().__init__()
        self.model = model
        self.max_length = check_max_length(max_length)
        self.directory = resolve_model_dir(model)

    def __repr__(self) -> str:
        return f"TorchSentenceEncoder({self.model!r}, max_length={self.max_length})"

    def _fingerprint(self) -> str:
        """`<name>@<sha256[:12] of the weights>`: the numpy encoder's id for the same files."""
        return minilm_model_id(self.model, self.directory)

    @property
    def dims(self) -> int:
        """Sentence-embedding width reported by the loaded model (loads it)."""
        st = self._loaded()
        getter = getattr(st, "get_embedding_dimension", None)
        if getter is None:  # sentence-transformers < 5
            getter = st.get_sentence_embedding_dimension
        return int(getter())

    def _load(self) -> Any:
        """Import sentence-transformers and load the model on CPU."""
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ConfigError(
                "the torch text encoder needs sentence-transformers, which is not "
                f"installed ({exc}); {_ML_HINT}, or use the numpy backend "
                "(SHOPRANK_ENCODER_BACKEND=numpy)"
            ) from exc
        loaded = SentenceTransformer(str(self.directory), device="cpu")
        loaded.max_seq_length = self.max_length
        return loaded

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> F32:
        """Embed texts with sentence-transformers (normalised, float32, input order)."""
        check_encode_args(texts, batch_size)
        st = self._loaded()
        if len(texts) == 0:
            return np.empty((0, self.dims), dtype=np.float32)
        vectors = st.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)
