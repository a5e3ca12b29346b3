"""What every encoder shares: a cheap constructor, a thread-safe load-once, a weight fingerprint.

`LazyEncoder` gives an implementation `warm_up()` and `model_id` from two hooks, `_load()` (the
model, built once under a lock) and `_fingerprint()` (the id, computed once). The helpers
below check arguments the same way in every encoder and batch token ids by length.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt

from shoprank.errors import ConfigError

__all__ = [
    "F32",
    "I64",
    "Lazy",
    "LazyEncoder",
    "check_encode_args",
    "check_max_length",
    "file_sha256",
    "length_batches",
    "weights_fingerprint",
]

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]

T = TypeVar("T")


class Lazy(Generic[T]):
    """A value built by `factory` on first `get()`, once, under a lock; then read lock-free."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._value: T | None = None

    def get(self) -> T:
        value = self._value
        if value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._factory()
                value = self._value
        return value


class LazyEncoder(Generic[T]):
    """Base of the encoders: construction is cheap, `warm_up` (or first use) loads the model.

    Subclasses implement `_load` (tokenizer, weights or session; called once) and
    `_fingerprint` (the `model_id`, e.g. `<name>@<weights sha256[:12]>`; computed once).
    Both run under their own lock, so `_load` may read `self.model_id`. Safe to share
    between threads.
    """

    def __init__(self) -> None:
        self._model: Lazy[T] = Lazy(self._load)
        self._identity: Lazy[str] = Lazy(self._fingerprint)

    def _load(self) -> T:
        raise NotImplementedError

    def _fingerprint(self) -> str:
        raise NotImplementedError

    @property
    def model_id(self) -> str:
        """Model name and weight fingerprint; computed on first read."""
        return self._identity.get()

    def warm_up(self) -> None:
        """Load the model and fingerprint its weights now rather than on the first encode
        call (hashing the weights takes a few hundred ms); later calls are free."""
        self._model.get()
        self._identity.get()

    def _loaded(self) -> T:
        return self._model.get()


def check_max_length(max_length: int) -> int:
    """`max_length` if it is an integer >= 2 (room for the special tokens), else ConfigError."""
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2:
        raise ConfigError(f"max_length must be an integer >= 2, got {max_length!r}")
    return max_length


def check_encode_args(texts: Sequence[str], batch_size: int) -> None:
    """Reject a bare string (a sequence of characters) and a batch size below one."""
    if isinstance(texts, str):
        raise TypeError("encode() takes a sequence of strings, not a single string")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")


def length_batches(
    token_ids: Sequence[Sequence[int]], batch_size: int, pad_id: int
) -> Iterator[tuple[I64, I64, I64]]:
    """(rows, ids, mask) per batch of similar token lengths, right-padded with `pad_id`.

    `rows` are the input positions of the batch, so results can be written back in input
    order; `mask` is 1 on real tokens and 0 on padding.
    """
    count = len(token_ids)
    lengths = np.fromiter(map(len, token_ids), dtype=np.int64, count=count)
    order = np.argsort(lengths, kind="stable")
    for start in range(0, count, batch_size):
        rows = order[start : start + batch_size]
        width = int(lengths[rows].max())
        ids = np.full((len(rows), width), pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for row, index in enumerate(rows):
            seq = token_ids[index]
            ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        yield rows, ids, mask


@lru_cache(maxsize=32)
def _sha256_prefix(path: str, size: int, mtime_ns: int) -> str:
    """First 12 hex digits of a file's SHA-256, streamed; size and mtime key the cache."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()[:12]


def file_sha256(path: Path) -> str:
    """The full SHA-256 hex digest of a file, streamed."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def weights_fingerprint(directory: Path, filenames: Sequence[str]) -> str | None:
    """sha256[:12] of the first of `filenames` present in `directory`, or None if none is."""
    for filename in filenames:
        weights = directory / filename
        if weights.is_file():
            stat = weights.stat()
            return _sha256_prefix(str(weights), stat.st_size, stat.st_mtime_ns)
    return None
