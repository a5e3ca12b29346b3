"""The text-encoder interface every embedding backend implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt


@runtime_checkable
class TextEncoder(Protocol):
    """Turns texts into L2-normalised float32 vectors.

    `model_id` names the model and a fingerprint of its weights, so stores and caches can key
    on it; `dims` is the vector width. Implementations must be safe to call from many threads.
    """

    @property
    def model_id(self) -> str:
        """Model name and weight fingerprint, e.g. `all-MiniLM-L6-v2@53aa51172d14`."""
        ...

    @property
    def dims(self) -> int:
        """Width of every vector `encode` returns."""
        ...

    @property
    def max_length(self) -> int:
        """Tokens kept per text (longer ones are truncated); part of every cache key."""
        ...

    def warm_up(self) -> None:
        """Load tokenizer and weights now rather than on the first `encode` call."""
        ...

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> npt.NDArray[np.float32]:
        """Embed `texts` in order: float32, shape (len(texts), dims), rows of unit length."""
        ...
