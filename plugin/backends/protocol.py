"""What every search backend offers shoprank: ES-shaped search in, ES-shaped results out.

Backends receive bodies in the Elasticsearch query DSL (already rewritten by shoprank, with
any `query_vector_builder` resolved to a `query_vector`) and answer with ES response bodies.

Two roles, each a protocol every backend implements in full:

- `SearchBackend`: the read side the serving path uses (search, msearch, count, get, mget,
  alias resolution and stored vectors);
- `GenerationStore`: the write side re-index jobs use (index generations behind an alias,
  batched writes, manifests, alias swap, retention and rollback).

`Backend` is both, and what `make_backend` returns. What only some backends can do is a
small runtime-checkable capability protocol (`NativeHybrid`, `Forwarding`, `ClusterClient`):
callers test it with `isinstance`, never by probing attribute names.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from shoprank.errors import ShoprankError

Vectors = dict[str, npt.NDArray[np.float32]]
# Per vector field: the ids (or row positions) the rows belong to, and the rows.
PartialVectors = dict[str, tuple[Any, npt.NDArray[np.float32]]]


@runtime_checkable
class SearchBackend(Protocol):
    """The read side: what a search, a count or a document fetch needs."""

    name: str

    def info(self) -> dict[str, Any]:
        """Cluster information, the body of `GET /`."""
        ...

    def search(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        """An ES `_search` response for `body` (query, knn, aggs, sort, from/size, _source)."""
        ...

    def msearch(
        self, index: str, bodies: list[dict[str, Any]]
    ) -> list[dict[str, Any] | ShoprankError]:
        """Several searches of one index (one round trip on a cluster); a failed item comes
        back as its error, the others as responses, in the order of `bodies`."""
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

    def vector_fields(self, index: str) -> dict[str, int]:
        """Dense-vector fields of the index and their dimensions."""
        ...

    def vectors_of(
        self, index: str, ids: list[str], field: str
    ) -> dict[str, npt.NDArray[np.float32]]:
        """The stored vectors of `field` for those ids that have one, keyed by id."""
        ...


@runtime_checkable
class GenerationStore(Protocol):
    """The write side: generations of an alias, built off-line and swapped in at once."""

    def create_generation(self, alias: str, mapping: dict[str, Any]) -> str:
        """A new, empty building generation of `alias`; returns its concrete name."""
        ...

    def clone_generation(self, alias: str, source: str) -> str:
        """A new building generation of `alias` starting from the documents of `source`
        (an incremental re-index then writes only what changed)."""
        ...

    def bulk_upsert(
        self,
        index: str,
        docs: list[dict[str, Any]],
        vectors: Vectors | None = None,
    ) -> int: ...

    def write_batch(
        self,
        index: str,
        docs: list[dict[str, Any]],
        vectors: Vectors | None = None,
        *,
        partial_vectors: PartialVectors | None = None,
        delete_ids: list[str] | None = None,
    ) -> int:
        """Upserts and deletes as one unit, visible once it returns."""
        ...

    def delete(self, index: str, ids: list[str]) -> int: ...

    def commit(self, index: str, *, ready: bool = False) -> int:
        """Make writes visible; with `ready`, mark a new generation complete. Returns count."""
        ...

    def read_manifest(self, index: str) -> dict[str, Any] | None:
        """What the re-index that built the generation behind `index` recorded (content
        hash per product, models and mapping), or None."""
        ...

    def write_manifest(self, index: str, manifest: dict[str, Any]) -> None: ...

    def swap_alias(self, alias: str, generation: str) -> str | None: ...

    def prune(self, alias: str, *, keep: int) -> list[str]: ...

    def rollback(self, alias: str) -> str: ...

    def generations(self, alias: str | None = None) -> list[dict[str, Any]]: ...


@runtime_checkable
class Backend(SearchBackend, GenerationStore, Protocol):
    """A complete backend: the read side and the write side."""


@runtime_checkable
class NativeHybrid(Protocol):
    """A backend whose engine fuses lexical and kNN hits itself (ES `rrf` retriever,
    OpenSearch `hybrid` query + normalization pipeline)."""

    def native_hybrid(
        self,
        index: str,
        body: dict[str, Any],
        *,
        vector: list[float],
        field: str,
        filters: list[dict[str, Any]],
        window: int,
        rrf_k: int = 60,
        vector_weight: float = 0.5,
        num_candidates: int | None = None,
    ) -> dict[str, Any]: ...


@runtime_checkable
class Forwarding(Protocol):
    """A backend in front of a cluster that can pass a request through unchanged."""

    def forward(
        self, method: str, path: str, *, params: dict[str, str], body: bytes | None
    ) -> tuple[int, Any]:
        """The cluster's status and decoded body for the request."""
        ...


@runtime_checkable
class ClusterClient(Protocol):
    """A backend that holds an official cluster client (the search log can reuse it)."""

    @property
    def client(self) -> Any: ...


@runtime_checkable
class PointInTime(Protocol):
    """A backend that answers point-in-time, scroll, `_mget`, `_mapping` and
    `_field_caps` itself (the embedded one; cluster backends forward them unchanged)."""

    def open_pit(self, index: str, keep_alive: str) -> dict[str, Any]: ...

    def close_pit(self, pit_id: str) -> dict[str, Any]: ...

    def pit_index(self, pit_id: str) -> str:
        """The index a point in time was opened on."""
        ...

    def scroll_body(self, index: str, body: dict[str, Any] | None, scroll: str) -> dict[str, Any]:
        """The body the first page of a scroll runs as, through the search pipeline."""
        ...

    def scroll_response(
        self, response: dict[str, Any], body: dict[str, Any] | None, scroll: str
    ) -> dict[str, Any]:
        """That page's response as a scroll's first page (with `_scroll_id`)."""
        ...

    def scroll(self, scroll_id: str, scroll: str | None) -> dict[str, Any]: ...

    def clear_scroll(self, scroll_ids: Any) -> dict[str, Any]: ...

    def mget_docs(self, index: str | None, body: dict[str, Any], source: Any) -> dict[str, Any]: ...

    def mapping(self, index: str) -> dict[str, Any]: ...

    def field_caps(self, index: str, fields: str | None) -> dict[str, Any]: ...
