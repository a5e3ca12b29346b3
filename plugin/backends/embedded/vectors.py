"""Dense vectors of one field of one generation: usearch HNSW plus exact filtered search.

Keys are the generation's u64 document keys (tantivy's `_key` fast field). Unfiltered kNN
walks the HNSW graph; a filtered kNN scores exactly the documents that pass the filter when
they are few, and otherwise over-fetches from HNSW and post-filters, widening the search
while too few survive and scoring exactly only after that, so a filter never returns
documents that do not match it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

# Importing onnxruntime *after* usearch's native library segfaults the process (usearch
# 2.26 with onnxruntime 1.32, reproduced here); importing it first is safe. The serving path
# runs ONNX encoders next to usearch, so make the order right wherever usearch is loaded.
with contextlib.suppress(ImportError):  # onnxruntime is a base dependency
    import onnxruntime  # noqa: F401
from usearch.index import Index  # noqa: E402

FloatArray = npt.NDArray[np.float32]
KeyArray = npt.NDArray[np.uint64]
EXACT_LIMIT = 4_096
OVERFETCH = 4
# A filter that keeps many documents but few near the query (everything outside the
# query's own category, say) widens the HNSW search this many times (x OVERFETCH each)
# before scoring the allowed documents exactly: on the 19k Icecat catalog an HNSW search of
# 12,800 costs ~14 ms, exact scoring of 18,000 allowed vectors ~120-280 ms.
WIDENINGS = 3
EXPANSION_ADD = 128


@dataclass(frozen=True)
class KeyFilter:
    """A kNN filter that lets many documents through: how many (`size`), which of some
    candidate keys pass (`accept`, a mask), and all that pass (`allowed`, for exact
    scoring) — asked for only when needed, since listing every match costs a pass over
    all of them."""

    size: int
    accept: Callable[[KeyArray], npt.NDArray[np.bool_]]
    allowed: Callable[[], KeyArray]


class VectorField:
    """One usearch index file holding the vectors of one `dense_vector` field."""

    def __init__(self, path: Path, *, dims: int) -> None:
        self.path = path
        self.dims = dims
        # expansion_add is how widely each insert looks for neighbours: at 64 the graph of a
        # 54k-product catalog found 95 % of the exact top 100 (ef 200), at 128 (usearch's
        # own default) 97 %. Searches go as wide as the request's `num_candidates`.
        self.index = Index(
            ndim=dims,
            metric="cos",
            dtype="f32",
            connectivity=16,
            expansion_add=EXPANSION_ADD,
            expansion_search=128,
        )
        if path.exists():
            self.index.load(str(path))

    def __len__(self) -> int:
        return len(self.index)

    def add(self, keys: KeyArray, vectors: FloatArray) -> None:
        if len(keys):
            self.index.add(keys, np.ascontiguousarray(vectors, dtype=np.float32))

    def remove(self, keys: list[int]) -> None:
        present = [k for k in keys if k in self.index]
        if present:
            self.index.remove(np.asarray(present, dtype=np.uint64))

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        self.index.save(str(tmp))
        tmp.replace(self.path)

    def search(
        self,
        query: FloatArray,
        *,
        k: int,
        num_candidates: int,
        allowed: KeyArray | None = None,
        denied: KeyArray | None = None,
        key_filter: KeyFilter | None = None,
    ) -> tuple[KeyArray, FloatArray]:
        """Top-k (keys, cosine similarities), best first, restricted to `allowed` if given,
        without `denied` if given (a filter that leaves out a few documents), or to what
        `key_filter` accepts."""
        query = np.asarray(query, dtype=np.float32).reshape(-1)
        if query.shape[0] != self.dims:
            from shoprank.errors import BadRequestError

            raise BadRequestError(
                f"the query vector has {query.shape[0]} dimensions, but the field has {self.dims}"
            )
        if len(self.index) == 0 or k <= 0:
            return np.empty(0, np.uint64), np.empty(0, np.float32)
        if denied is not None and len(denied):
            left_out = denied
            key_filter = KeyFilter(
                size=len(self.index) - len(denied),
                accept=lambda keys: np.isin(keys, left_out, invert=True),
                allowed=lambda: np.setdiff1d(self._keys(), left_out),
            )
        elif allowed is not None:
            kept = allowed
            key_filter = KeyFilter(
                size=len(kept), accept=lambda keys: np.isin(keys, kept), allowed=lambda: kept
            )
        if key_filter is not None:
            if key_filter.size <= EXACT_LIMIT:
                return self._exact(query, key_filter.allowed(), k)
            return self._widened(query, k, num_candidates, key_filter)
        keys, sims = self._hnsw(query, max(k, num_candidates))
        return keys[:k], sims[:k]

    def _keys(self) -> KeyArray:
        return np.asarray(self.index.keys, dtype=np.uint64)

    def _widened(
        self, query: FloatArray, k: int, num_candidates: int, key_filter: KeyFilter
    ) -> tuple[KeyArray, FloatArray]:
        """HNSW over-fetched and post-filtered by `key_filter`, widened while too few
        survive, then exact over what the filter lets through. Asking HNSW for the whole
        index does not mean getting it: a graph whose regions are weakly linked (its build
        runs on several threads, so this varies from build to build) can return far fewer,
        and then the exact search answers rather than a short page."""
        want = max(k, num_candidates) * OVERFETCH
        for _ in range(WIDENINGS):
            keys, sims = self._hnsw(query, want)
            keep = key_filter.accept(keys)
            if keep.sum() >= k:
                return keys[keep][:k], sims[keep][:k]
            if want >= len(self.index):
                break
            want *= OVERFETCH
        return self._exact(query, key_filter.allowed(), k)

    def _hnsw(self, query: FloatArray, count: int) -> tuple[KeyArray, FloatArray]:
        matches = self.index.search(query, min(count, len(self.index)))
        keys = np.asarray(matches.keys, dtype=np.uint64)
        sims = (1.0 - np.asarray(matches.distances, dtype=np.float32)).astype(np.float32)
        return keys, sims

    def _exact(self, query: FloatArray, allowed: KeyArray, k: int) -> tuple[KeyArray, FloatArray]:
        if len(allowed):
            allowed = allowed[np.asarray(self.index.contains(allowed), dtype=bool)]
        if len(allowed) == 0:
            return np.empty(0, np.uint64), np.empty(0, np.float32)
        got: Any = self.index.get(allowed, dtype="f32")
        matrix = np.vstack(got) if isinstance(got, tuple) else np.asarray(got)
        matrix = matrix.reshape(len(allowed), self.dims)
        norms = np.linalg.norm(matrix, axis=1) * (np.linalg.norm(query) or 1.0)
        sims = (matrix @ query) / np.where(norms == 0, 1.0, norms)
        top = np.argsort(-sims, kind="stable")[:k]
        return allowed[top], sims[top].astype(np.float32)
