"""What the recommendation strategies ask of the search backend, each one ES-shaped body
through the backend protocol (so every backend answers it alike): the anchor products,
stored vectors, kNN legs under the client's filters, filter searches, and the final search
that keeps the candidates the client's filters and `exclude` let through."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from shoprank.errors import DocumentNotFoundError
from shoprank.indexing.mapping import IMAGE_VECTOR_FIELD, TEXT_VECTOR_FIELD
from shoprank.plugin.backends.protocol import SearchBackend
from shoprank.plugin.pipeline.legs import num_candidates

Filters = Sequence[dict[str, Any]]


def not_ids(ids: Sequence[str]) -> list[dict[str, Any]]:
    """A `must_not` list leaving these ids out (empty when there are none)."""
    return [{"ids": {"values": list(ids)}}] if ids else []


def category_clause(category: str) -> dict[str, Any]:
    """Products in `category`: the full path or any ancestor of it (`category_levels`)."""
    return {
        "bool": {
            "should": [{"term": {"category_levels": category}}, {"term": {"category": category}}],
            "minimum_should_match": 1,
        }
    }


def category_of(source: dict[str, Any]) -> str | None:
    value = source.get("category")
    if isinstance(value, list):
        value = value[-1] if value else None
    return str(value) if value else None


def levels_of(source: dict[str, Any]) -> list[str]:
    levels = source.get("category_levels")
    if isinstance(levels, list):
        return [str(v) for v in levels]
    cat = category_of(source)
    return [cat] if cat else []


@dataclass
class Hit:
    """A surviving candidate as the response shows it."""

    id: str
    index: str
    source: dict[str, Any]


class Catalog:
    """The backend reads of one recommendation request (one index)."""

    def __init__(self, backend: SearchBackend, index: str, *, candidates_factor: float = 4.0):
        self.backend = backend
        self.index = index
        self.candidates_factor = candidates_factor
        self._fields: dict[str, int] | None = None

    def vector_fields(self) -> dict[str, int]:
        if self._fields is None:
            self._fields = dict(self.backend.vector_fields(self.index))
        return self._fields

    def has_images(self) -> bool:
        return IMAGE_VECTOR_FIELD in self.vector_fields()

    def sources(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not ids:
            return {}
        return self.backend.mget(self.index, list(ids))

    def anchors(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The `_source` of each anchor product; a 404 naming the first one that is missing."""
        found = self.sources(ids)
        for pid in ids:
            if pid not in found:
                raise DocumentNotFoundError(
                    f"[{pid}]: document missing from index [{self.index}]; recommend for a "
                    "product id the index holds",
                    index=self.index,
                )
        return found

    def vectors(
        self, ids: Sequence[str], field: str = TEXT_VECTOR_FIELD
    ) -> dict[str, npt.NDArray[np.float32]]:
        if not ids or field not in self.vector_fields():
            return {}
        return self.backend.vectors_of(self.index, list(ids), field)

    def knn(
        self,
        vector: Sequence[float] | npt.NDArray[np.float32],
        *,
        k: int,
        filters: Filters = (),
        exclude: Sequence[str] = (),
        field: str = TEXT_VECTOR_FIELD,
    ) -> list[tuple[str, float]]:
        """The `k` nearest products to `vector` that pass `filters`, without `exclude`:
        (id, ES kNN score in [0, 1]) best first."""
        if field not in self.vector_fields():
            return []
        # Leaving out a few ids needs no filter: the nearest k + len(exclude) without them
        # are the same k, and an unfiltered kNN walks only the graph (a filter that keeps
        # nearly every document costs a pass over all of them in the embedded backend).
        skip = set(exclude) if not filters and len(exclude) <= k else set()
        wide = k + len(skip)
        spec: dict[str, Any] = {
            "field": field,
            "query_vector": [float(x) for x in vector],
            "k": wide,
            "num_candidates": num_candidates(wide, self.candidates_factor),
        }
        clauses = [*filters]
        if exclude and not skip:
            clauses.append({"bool": {"must_not": not_ids(exclude)}})
        if clauses:
            spec["filter"] = clauses
        response = self.backend.search(self.index, {"knn": spec, "size": wide, "_source": False})
        return [hit for hit in _scored(response) if hit[0] not in skip][:k]

    def search_ids(
        self,
        clauses: Filters,
        *,
        size: int,
        exclude: Sequence[str] = (),
    ) -> list[tuple[str, float]]:
        """Products matching every clause (a filter search), in the backend's order."""
        body: dict[str, Any] = {
            "query": {"bool": {"filter": list(clauses), "must_not": not_ids(exclude)}},
            "size": size,
            "_source": False,
        }
        return _scored(self.backend.search(self.index, body))

    def surviving(
        self, ids: Sequence[str], *, filters: Filters = (), exclude: Sequence[str] = ()
    ) -> dict[str, Hit]:
        """Those of `ids` that the client's filters let through, minus `exclude`, with their
        `_source`, from one search (an `ids` query under the filters)."""
        wanted = [i for i in dict.fromkeys(ids) if i not in set(exclude)]
        if not wanted:
            return {}
        body: dict[str, Any] = {
            "query": {
                "bool": {
                    "filter": [{"ids": {"values": wanted}}, *filters],
                    "must_not": not_ids(exclude),
                }
            },
            "size": len(wanted),
            "track_total_hits": False,
        }
        response = self.backend.search(self.index, body)
        out: dict[str, Hit] = {}
        for hit in response.get("hits", {}).get("hits", []):
            out[str(hit["_id"])] = Hit(
                str(hit["_id"]), str(hit.get("_index", self.index)), dict(hit.get("_source") or {})
            )
        return out


def _scored(response: dict[str, Any]) -> list[tuple[str, float]]:
    return [
        (str(h["_id"]), float(h.get("_score") or 0.0))
        for h in response.get("hits", {}).get("hits", [])
    ]


def normalise(scores: dict[str, float]) -> dict[str, float]:
    """Scores divided by the largest (so sources of different scales blend); empty stays."""
    top = max(scores.values(), default=0.0)
    if top <= 0:
        return {k: 0.0 for k in scores}
    return {k: v / top for k, v in scores.items()}
