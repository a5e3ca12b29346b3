"""What every search backend offers shoprank: ES-shaped search in, ES-shaped results out.

Backends receive bodies in the Elasticsearch query DSL (already rewritten by shoprank, with
any `query_vector_builder` resolved to a `query_vector`) and answer with ES response bodies.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt


@runtime_checkable
class SearchBackend(Protocol):
    name: str

    def info(self) -> dict[str, Any]:
        """Cluster information, the body of `GET /`."""
        ...

    def search(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        """An ES `_search` response for `body` (query, knn, aggs, sort, from/size, _source)."""
        ...

    def count(self, index: str, body: dict[str, Any] | None) -> int: ...

    def get(self, index: str, doc_id: str) -> dict[str, Any]:
        """An ES `_doc` GET response (`found` false when absent)."""
        ...

    def mget(self, index: str, ids: list[str], *, source: Any = True) -> dict[str, dict[str, Any]]:
        """`_source` (filtered as `source` asks) of each id that exists, keyed by id."""
        ...

    def resolve(self, index: str) -> str:
        """The concrete generation behind an alias (raises IndexNotFoundError)."""
        ...

    def create_generation(self, alias: str, mapping: dict[str, Any]) -> str: ...

    def bulk_upsert(
        self,
        index: str,
        docs: list[dict[str, Any]],
        vectors: dict[str, npt.NDArray[np.float32]] | None = None,
    ) -> int: ...

    def delete(self, index: str, ids: list[str]) -> int: ...

    def commit(self, index: str, *, ready: bool = False) -> int:
        """Make writes visible; with `ready`, mark a new generation complete. Returns count."""
        ...

    def swap_alias(self, alias: str, generation: str) -> str | None: ...

    def prune(self, alias: str, *, keep: int) -> list[str]: ...

    def rollback(self, alias: str) -> str: ...

    def generations(self, alias: str | None = None) -> list[dict[str, Any]]: ...
