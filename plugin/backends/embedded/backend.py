"""The embedded backend: ES `_search` semantics on tantivy + usearch, no server needed.

Reads run one request at a time through `search.execute`; writes go to the generation
store (`store.EmbeddedStore`), where each generation is a folder with its own lock.
"""

from __future__ import annotations

import threading
import time
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import tantivy

from shoprank.errors import BadRequestError, ShoprankError
from shoprank.plugin.backends.protocol import PartialVectors, Vectors
from shoprank.plugin.bounds import current_deadline, timeout_error
from shoprank.plugin.shapes import filter_source

from . import paging
from .aggs import AggregationCompiler
from .contexts import Clock, Contexts
from .dsl import QueryCompiler
from .generation import Generation, read_json, write_json_atomic
from .search import checked_body, execute
from .store import EmbeddedStore
from .values import count_of, source_of

Q = tantivy.Query


class EmbeddedBackend:
    """Search over local index generations in `data_dir/embedded`."""

    name = "embedded"

    def __init__(
        self, root: Path, *, max_result_window: int = 10_000, clock: Clock = time.time
    ) -> None:
        self.store = EmbeddedStore(root)
        self.max_result_window = max_result_window
        # Point-in-time and scroll ids, valid in every worker on this data directory.
        self.contexts = Contexts(root, clock=clock)
        # Per open generation, and gone with it (the store lets go of swapped-out ones).
        self._compilers: weakref.WeakKeyDictionary[
            Generation, tuple[QueryCompiler, AggregationCompiler]
        ] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    # -- info ------------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        return {"backend": self.name, "indices": sorted(self.store.aliases())}

    def resolve(self, index: str) -> str:
        return self.store.resolve(index)

    def _compilers_for(self, gen: Generation) -> tuple[QueryCompiler, AggregationCompiler]:
        with self._lock:
            pair = self._compilers.get(gen)
            if pair is None:
                queries = QueryCompiler(gen.schema, gen.tantivy_index)
                pair = (queries, AggregationCompiler(gen.schema, queries=queries, gen=gen))
                self._compilers[gen] = pair
        return pair

    # -- reading ---------------------------------------------------------------------------

    def search(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            body = checked_body(body)
            if body.get("pit") is not None:
                return paging.pit_search(self.store, self.contexts, body, self._pit_run)
            return self._run(self.store.generation(index), body)
        except (ShoprankError, KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - tantivy panics are BaseException
            raise ShoprankError(
                f"the embedded engine failed on this request ({type(exc).__name__}: {exc})",
                es_type="search_engine_exception",
            ) from None

    def _run(
        self, gen: Generation, body: dict[str, Any], *, tiebreak: bool = False
    ) -> dict[str, Any]:
        queries, aggs = self._compilers_for(gen)
        return execute(
            gen, queries, aggs, body, max_result_window=self.max_result_window, tiebreak=tiebreak
        )

    def _pit_run(self, gen: Generation, body: dict[str, Any]) -> dict[str, Any]:
        return self._run(gen, checked_body(body), tiebreak=True)

    # -- point in time, scroll, mget, mapping (`PointInTime`) ---------------------------

    def open_pit(self, index: str, keep_alive: str) -> dict[str, Any]:
        gen = self.store.generation(index)
        pit = self.contexts.new_context("pit", gen.name, keep_alive, i=index)
        return {"id": pit, "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0}}

    def close_pit(self, pit_id: str) -> dict[str, Any]:
        closed = self.contexts.close(pit_id, "pit")
        return {"succeeded": True, "num_freed": int(closed)}

    def pit_index(self, pit_id: str) -> str:
        """The index a point in time was opened on (its pinned generation's alias)."""
        payload = self.contexts.decode(pit_id, "pit")
        return str(payload.get("i") or payload["g"])

    def scroll_body(self, index: str, body: dict[str, Any] | None, scroll: str) -> dict[str, Any]:
        """The body the first page of a scroll runs as (a point-in-time search)."""
        return paging.scroll_start_body(self.store, self.contexts, index, dict(body or {}), scroll)

    def scroll_response(
        self, response: dict[str, Any], body: dict[str, Any] | None, scroll: str
    ) -> dict[str, Any]:
        """The first page's response with its `_scroll_id`."""
        return paging.scroll_response(self.contexts, response, dict(body or {}), scroll)

    def scroll(self, scroll_id: str, scroll: str | None) -> dict[str, Any]:
        def run(gen: Generation, body: dict[str, Any]) -> dict[str, Any]:
            return self._run(gen, checked_body(body), tiebreak=True)

        return paging.scroll_next(self.store, self.contexts, scroll_id, scroll, run)

    def clear_scroll(self, scroll_ids: Any) -> dict[str, Any]:
        return paging.clear_scroll(self.contexts, scroll_ids)

    def mget_docs(self, index: str | None, body: dict[str, Any], source: Any) -> dict[str, Any]:
        return paging.mget_docs(self.get, index, body, source)

    def mapping(self, index: str) -> dict[str, Any]:
        return paging.mapping_response(self.store.generation(index))

    def field_caps(self, index: str, fields: str | None) -> dict[str, Any]:
        return paging.field_caps_response(self.store.generation(index), fields)

    def msearch(
        self, index: str, bodies: list[dict[str, Any]]
    ) -> list[dict[str, Any] | ShoprankError]:
        """Each search in turn; a failed one comes back as its error, in its place, and
        those not started before the request's deadline as a timeout."""
        out: list[dict[str, Any] | ShoprankError] = []
        deadline = current_deadline()
        for body in bodies:
            if deadline is not None and deadline.passed():
                out.append(timeout_error())
                continue
            try:
                out.append(self.search(index, body))
            except ShoprankError as exc:
                out.append(exc)
        return out

    def count(self, index: str, body: dict[str, Any] | None) -> int:
        body = body or {}
        unknown = set(body) - {"query"}
        if unknown:
            raise BadRequestError(f"request does not support {sorted(unknown)}")
        gen = self.store.generation(index)
        searcher = gen.searcher()
        queries, _ = self._compilers_for(gen)
        query = queries.compile(body.get("query")) if body.get("query") else Q.all_query()
        return count_of(searcher.search(query, limit=1, count=True))

    def mget(self, index: str, ids: list[str], *, source: Any = True) -> dict[str, dict[str, Any]]:
        if not ids:
            return {}
        gen = self.store.generation(index)
        searcher = gen.searcher()
        query = Q.term_set_query(gen.schema.tantivy_schema, "_id", [str(i) for i in ids])
        result = searcher.search(query, limit=len(ids) * 2)
        out: dict[str, dict[str, Any]] = {}
        for _, addr in result.hits:
            doc = searcher.doc(addr)
            filtered = filter_source(source_of(doc), source)
            out[str(doc.get_first("_id"))] = filtered if filtered is not None else {}
        return out

    def get(self, index: str, doc_id: str) -> dict[str, Any]:
        gen_name = self.resolve(index)
        found = self.mget(index, [doc_id])
        body: dict[str, Any] = {"_index": gen_name, "_id": doc_id}
        if doc_id not in found:
            return {**body, "found": False}
        return {
            **body,
            "_version": 1,
            "_seq_no": 0,
            "_primary_term": 1,
            "found": True,
            "_source": found[doc_id],
        }

    def vectors_of(
        self, index: str, ids: list[str], field: str
    ) -> dict[str, npt.NDArray[np.float32]]:
        """The stored vectors of `field` for those ids that have one."""
        gen = self.store.generation(index)
        store = gen.vectors.get(field)
        if store is None or not ids:
            return {}
        searcher = gen.searcher()
        query = Q.term_set_query(gen.schema.tantivy_schema, "_id", [str(i) for i in ids])
        hits = searcher.search(query, limit=len(ids) * 2).hits
        addresses = [a for _, a in hits]
        keys = searcher.fast_field_values("_key", addresses)
        out: dict[str, npt.NDArray[np.float32]] = {}
        for addr, key in zip(addresses, keys, strict=True):
            if key is None or int(key) not in store.index:
                continue
            vector = store.index.get(int(key), dtype="f32")
            if vector is not None:
                out[str(searcher.doc(addr).get_first("_id"))] = np.asarray(vector, np.float32)
        return out

    def vector_fields(self, index: str) -> dict[str, int]:
        gen = self.store.generation(index)
        return {path: store.dims for path, store in gen.vectors.items()}

    # -- generations and writes ------------------------------------------------------------

    def create_generation(self, alias: str, mapping: dict[str, Any]) -> str:
        return self.store.create_generation(alias, mapping).name

    def clone_generation(self, alias: str, source: str) -> str:
        """A new building generation of `alias` starting from the documents of `source`
        (an incremental re-index then writes only what changed)."""
        return self.store.clone_generation(alias, source).name

    def read_manifest(self, index: str) -> dict[str, Any] | None:
        """What a finished re-index recorded about the generation behind `index` (content
        hash per product and the models/mapping it was built with), or None."""
        path = self.store.indices_dir / self.store.resolve(index) / "manifest.json"
        return dict(read_json(path)) if path.exists() else None

    def write_manifest(self, index: str, manifest: dict[str, Any]) -> None:
        path = self.store.indices_dir / self.store.resolve(index) / "manifest.json"
        write_json_atomic(path, manifest)

    def bulk_upsert(
        self,
        index: str,
        docs: list[dict[str, Any]],
        vectors: Vectors | None = None,
    ) -> int:
        _check_ids(docs)
        return self.store.generation(index).upsert(docs, vectors)

    def delete(self, index: str, ids: list[str]) -> int:
        return self.store.generation(index).delete(ids)

    def write_batch(
        self,
        index: str,
        docs: list[dict[str, Any]],
        vectors: Vectors | None = None,
        *,
        partial_vectors: PartialVectors | None = None,
        delete_ids: list[str] | None = None,
    ) -> int:
        """Upsert + delete + commit as one unit under the generation's write lock, so
        several worker processes can write to one generation in turn."""
        _check_ids(docs)
        gen = self.store.generation(index)
        with gen.exclusive():
            try:
                written = gen.upsert(docs, vectors, partial_vectors=partial_vectors)
                if delete_ids:
                    gen.delete(delete_ids)
                gen.commit()
            except BaseException:
                gen.abandon()
                raise
        return written

    def commit(self, index: str, *, ready: bool = False) -> int:
        return self.store.generation(index).commit(status="ready" if ready else None)

    def swap_alias(self, alias: str, generation: str) -> str | None:
        return self.store.swap_alias(alias, generation)

    def prune(self, alias: str, *, keep: int) -> list[str]:
        return self.store.prune(alias, keep=keep)

    def rollback(self, alias: str) -> str:
        return self.store.rollback(alias)

    def generations(self, alias: str | None = None) -> list[dict[str, Any]]:
        return self.store.generations(alias)


def _check_ids(docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        if "_id" not in doc:
            raise BadRequestError("every document needs an [_id]")
