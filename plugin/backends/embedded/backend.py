"""The embedded backend: ES `_search` semantics on tantivy + usearch, no server needed."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import orjson
import tantivy

from shoprank.errors import BadRequestError, ShoprankError, UnsupportedQueryError
from shoprank.plugin.shapes import (
    filter_source,
    int_param,
    search_response,
    source_wanted,
    total_hits,
)

from .aggs import AggregationCompiler
from .dsl import QueryCompiler
from .generation import Generation, read_json, write_json_atomic
from .store import EmbeddedStore

Q = tantivy.Query
Occur = tantivy.Occur

SEARCH_KEYS = {
    "query",
    "knn",
    "from",
    "size",
    "sort",
    "_source",
    "aggs",
    "aggregations",
    "post_filter",
    "track_total_hits",
    "timeout",
    "min_score",
    "track_scores",
    "explain",
    "profile",
    "version",
    "seq_no_primary_term",
    "stored_fields",
}
KNN_KEYS = {
    "field",
    "query_vector",
    "k",
    "num_candidates",
    "filter",
    "similarity",
    "boost",
    "_name",
}
MAX_RESULT_WINDOW = 10_000


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


class _SortKey:
    def __init__(self, field: str, order: str, missing: str) -> None:
        self.field, self.order, self.missing = field, order, missing


def _parse_sort(spec: Any) -> list[_SortKey]:
    keys: list[_SortKey] = []
    for item in _as_list(spec):
        if isinstance(item, str):
            field, opts = item, cast(dict[str, Any], {})
        elif isinstance(item, dict) and len(item) == 1:
            ((field, opts),) = item.items()
            if isinstance(opts, str):
                opts = {"order": opts}
            if not isinstance(opts, dict):
                raise BadRequestError(f"malformed sort on [{field}]")
        else:
            raise BadRequestError(f"malformed [sort] entry {item!r}")
        default = "desc" if field == "_score" else "asc"
        order = str(opts.get("order", default)).lower()
        if order not in ("asc", "desc"):
            raise BadRequestError(f"sort order must be asc or desc, got [{order}]")
        unknown = set(opts) - {"order", "missing", "unmapped_type"}
        if unknown:
            raise UnsupportedQueryError(f"sort option(s) {sorted(unknown)} are not supported")
        keys.append(_SortKey(field, order, str(opts.get("missing", "_last"))))
    return keys


class EmbeddedBackend:
    """Search over local index generations in `data_dir/embedded`."""

    name = "embedded"

    def __init__(self, root: Path) -> None:
        self.store = EmbeddedStore(root)
        self._compilers: dict[str, tuple[QueryCompiler, AggregationCompiler]] = {}
        self._lock = threading.Lock()

    # -- info ------------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        return {"backend": self.name, "indices": sorted(self.store.aliases())}

    def resolve(self, index: str) -> str:
        return self.store.resolve(index)

    def _compilers_for(self, gen: Generation) -> tuple[QueryCompiler, AggregationCompiler]:
        with self._lock:
            pair = self._compilers.get(gen.name)
            if pair is None:
                pair = (
                    QueryCompiler(gen.schema, gen.tantivy_index),
                    AggregationCompiler(gen.schema),
                )
                self._compilers[gen.name] = pair
        return pair

    # -- reading ---------------------------------------------------------------------------

    def search(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return self._search(index, body)
        except (ShoprankError, KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - tantivy panics are BaseException
            raise ShoprankError(
                f"the embedded engine failed on this request ({type(exc).__name__}: {exc})",
                es_type="search_engine_exception",
            ) from None

    def _search(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        body = body or {}
        if not isinstance(body, dict):
            raise BadRequestError("the search body must be a JSON object")
        unknown = set(body) - SEARCH_KEYS
        if unknown:
            raise UnsupportedQueryError(
                f"search option(s) {sorted(unknown)} are not supported by shoprank's embedded "
                f"backend; supported: {', '.join(sorted(SEARCH_KEYS))}",
                construct=sorted(unknown)[0],
            )
        if body.get("explain") or body.get("profile"):
            raise UnsupportedQueryError(
                "[explain] and [profile] are not supported; use "
                "ext.shoprank.explain for shoprank's explanations"
            )
        gen = self.store.generation(index)
        searcher = gen.searcher()
        queries, aggs = self._compilers_for(gen)
        start = int_param(body, "from", 0)
        size = int_param(body, "size", 10)
        if start + size > MAX_RESULT_WINDOW:
            raise BadRequestError(
                f"Result window is too large, from + size must be less than or equal to: "
                f"[{MAX_RESULT_WINDOW}] but was [{start + size}]",
                es_type="illegal_argument_exception",
            )
        query = queries.compile(body["query"]) if body.get("query") is not None else None
        post = queries.compile(body["post_filter"]) if body.get("post_filter") is not None else None
        sort = _parse_sort(body.get("sort"))
        knn_specs = _as_list(body.get("knn"))
        min_score = body.get("min_score")
        if min_score is not None:
            min_score = _float_param(min_score, "min_score")

        # kNN hits feed aggregations unfiltered; the post_filter only narrows the hits.
        knn_scores: dict[int, float] = {}
        for spec in knn_specs:
            for key, score in self._knn(gen, searcher, queries, spec).items():
                knn_scores[key] = knn_scores.get(key, 0.0) + score
        hit_knn = knn_scores
        if post is not None and knn_scores:
            passing = set(self._matching_keys(searcher, post).tolist())
            hit_knn = {k: v for k, v in knn_scores.items() if k in passing}

        base = query if query is not None else (None if knn_specs else Q.all_query())
        hits_query = self._with_filter(base, post) if base is not None else None
        score_desc_only = not sort or (
            len(sort) == 1 and sort[0].field == "_score" and sort[0].order == "desc"
        )

        scored: list[tuple[float, tantivy.DocAddress]]
        if knn_specs:
            scored, count = self._combine(gen, searcher, hits_query, hit_knn, start + size)
        elif not score_desc_only:
            scored, count = self._all(searcher, hits_query)
        else:
            assert hits_query is not None
            if min_score is not None:
                scored, count = self._all(searcher, hits_query)
            else:
                result = searcher.search(hits_query, limit=max(start + size, 1), count=True)
                scored, count = list(result.hits), _count(result)
        if min_score is not None:
            scored = [(s, a) for s, a in scored if s >= min_score]
            count = len(scored)

        sort_values: list[list[Any]] | None = None
        if not score_desc_only:
            scored, sort_values = self._sorted(gen, searcher, scored, sort)
        page = scored[start : start + size]
        page_sorts = sort_values[start : start + size] if sort_values is not None else None
        hits = self._hits(gen, searcher, page, body.get("_source"))
        if page_sorts is not None:
            keep_scores = bool(body.get("track_scores"))
            for hit, values in zip(hits, page_sorts, strict=True):
                hit["sort"] = values
                if not keep_scores:
                    hit["_score"] = None

        aggregations = None
        agg_spec = body.get("aggs", body.get("aggregations"))
        if agg_spec:
            agg_query = self._agg_query(gen, base, knn_scores)
            aggregations = aggs.run(searcher, agg_query, agg_spec)
        response: dict[str, Any] = search_response(
            took_ms=(time.perf_counter() - started) * 1000,
            hits=hits,
            total=total_hits(count, body.get("track_total_hits")),
            aggregations=aggregations,
        )
        return response

    @staticmethod
    def _with_filter(query: tantivy.Query, extra: tantivy.Query | None) -> tantivy.Query:
        if extra is None:
            return query
        return Q.boolean_query([(Occur.Must, query), (Occur.Must, Q.const_score_query(extra, 0.0))])

    def _keys_query(self, gen: Generation, keys: list[int]) -> tantivy.Query:
        return Q.term_set_query(gen.schema.tantivy_schema, "_key", keys)

    def _agg_query(
        self, gen: Generation, base: tantivy.Query | None, knn_scores: dict[int, float]
    ) -> tantivy.Query:
        if not knn_scores:
            return base if base is not None else Q.empty_query()
        keys_q = self._keys_query(gen, list(knn_scores))
        if base is None:
            return keys_q
        return Q.boolean_query([(Occur.Should, base), (Occur.Should, keys_q)])

    @staticmethod
    def _all(
        searcher: tantivy.Searcher, query: tantivy.Query | None
    ) -> tuple[list[tuple[float, tantivy.DocAddress]], int]:
        if query is None:
            return [], 0
        result = searcher.search(query, limit=max(searcher.num_docs, 1), count=True)
        return list(result.hits), _count(result)

    def _matching_keys(
        self, searcher: tantivy.Searcher, query: tantivy.Query
    ) -> npt.NDArray[np.uint64]:
        hits, _ = self._all(searcher, query)
        keys = searcher.fast_field_values("_key", [a for _, a in hits])
        return np.asarray([k for k in keys if k is not None], dtype=np.uint64)

    def _knn(
        self,
        gen: Generation,
        searcher: tantivy.Searcher,
        queries: QueryCompiler,
        spec: Any,
    ) -> dict[int, float]:
        if not isinstance(spec, dict):
            raise BadRequestError("[knn] must be an object or a list of objects")
        unknown = set(spec) - KNN_KEYS
        if "query_vector_builder" in unknown:
            raise BadRequestError(
                "[query_vector_builder] must be resolved before the backend; "
                "send it through shoprank's endpoint"
            )
        if unknown:
            raise UnsupportedQueryError(f"[knn] option(s) {sorted(unknown)} are not supported")
        field = spec.get("field")
        store = gen.vectors.get(field) if isinstance(field, str) else None
        if store is None:
            raise BadRequestError(
                f"[knn] field [{field}] is not a dense_vector field of this index; "
                f"vector fields: {sorted(gen.vectors)}"
            )
        vector = spec.get("query_vector")
        if not isinstance(vector, list) or not all(
            isinstance(x, int | float) and not isinstance(x, bool) for x in vector
        ):
            raise BadRequestError("[knn] requires [query_vector] as a list of numbers")
        k = int_param(spec, "k", 10, minimum=1)
        num_candidates = int_param(spec, "num_candidates", max(k, 100), minimum=1)
        if num_candidates < k:
            raise BadRequestError(
                f"[num_candidates] cannot be less than [k] ({num_candidates} < {k})"
            )
        filters = [queries.compile(f) for f in _as_list(spec.get("filter"))]
        allowed = None
        if filters:
            combined = Q.boolean_query([(Occur.Must, f) for f in filters])
            allowed = self._matching_keys(searcher, combined)
        keys, sims = store.search(
            np.asarray(vector, dtype=np.float32),
            k=k,
            num_candidates=num_candidates,
            allowed=allowed,
        )
        boost = _float_param(spec.get("boost", 1.0), "knn.boost")
        threshold = spec.get("similarity")
        if threshold is not None:
            threshold = _float_param(threshold, "knn.similarity")
        out: dict[int, float] = {}
        for key, sim in zip(keys.tolist(), sims.tolist(), strict=True):
            if threshold is not None and sim < threshold:
                continue
            out[int(key)] = (1.0 + sim) / 2.0 * boost
        return out

    def _combine(
        self,
        gen: Generation,
        searcher: tantivy.Searcher,
        query: tantivy.Query | None,
        knn_scores: dict[int, float],
        window: int,
    ) -> tuple[list[tuple[float, tantivy.DocAddress]], int]:
        """ES semantics for query + knn: the union, each hit scored by the sum."""
        scores: dict[int, float] = dict(knn_scores)
        addresses: dict[int, tantivy.DocAddress] = {}
        also_lexical: set[int] = set()
        count = 0
        if knn_scores:
            keyed = self._keys_query(gen, list(knn_scores))
            hits, _ = self._all(searcher, keyed)
            for (_, addr), key in zip(
                hits, searcher.fast_field_values("_key", [a for _, a in hits]), strict=True
            ):
                addresses[_key(key)] = addr
            if query is not None:
                both = Q.boolean_query(
                    [(Occur.Must, query), (Occur.Must, Q.const_score_query(keyed, 0.0))]
                )
                lex, _ = self._all(searcher, both)
                lex_keys = searcher.fast_field_values("_key", [a for _, a in lex])
                for (score, _), key in zip(lex, lex_keys, strict=True):
                    scores[_key(key)] += score
                    also_lexical.add(_key(key))
        # Documents the query does not match, found by kNN only: counted on top of the query.
        knn_only = {k for k in knn_scores if k in addresses and k not in also_lexical}
        if query is not None:
            result = searcher.search(query, limit=max(window, 1), count=True)
            count = _count(result)
            top_keys = searcher.fast_field_values("_key", [a for _, a in result.hits])
            for (score, addr), raw_key in zip(result.hits, top_keys, strict=True):
                key = _key(raw_key)
                addresses[key] = addr
                if key not in knn_scores:
                    scores[key] = score
            count += len(knn_only)
        else:
            count = len(knn_only)
        ranked = sorted((k for k in scores if k in addresses), key=lambda k: -scores[k])
        return [(scores[k], addresses[k]) for k in ranked], count

    def _sorted(
        self,
        gen: Generation,
        searcher: tantivy.Searcher,
        scored: list[tuple[float, tantivy.DocAddress]],
        sort: list[_SortKey],
    ) -> tuple[list[tuple[float, tantivy.DocAddress]], list[list[Any]]]:
        columns: list[list[Any]] = []
        addresses = [a for _, a in scored]
        for key in sort:
            if key.field == "_score":
                columns.append([s for s, _ in scored])
                continue
            if key.field == "_doc":
                columns.append([(a.segment_ord, a.doc) for a in addresses])
                continue
            info = gen.schema.field(key.field)
            if info.kind not in ("number", "boolean"):
                raise UnsupportedQueryError(
                    f"sorting on [{key.field}] ({info.kind}) is not supported by the embedded "
                    "backend; sort on a numeric field or _score",
                    construct="sort",
                )
            columns.append(searcher.fast_field_values(info.tantivy, addresses))
        rows = list(range(len(scored)))

        def row_key(i: int) -> tuple[Any, ...]:
            parts: list[Any] = []
            for key, column in zip(sort, columns, strict=True):
                value = column[i]
                missing = value is None
                if isinstance(value, tuple):
                    value = value[0] * 10**9 + value[1]
                if missing and key.missing not in ("_last", "_first"):
                    value, missing = _float_param(key.missing, "sort.missing"), False
                number = 0.0 if missing else float(value)
                if key.order == "desc":
                    number = -number
                parts.append((missing if key.missing != "_first" else not missing, number))
            return tuple(parts)

        rows.sort(key=row_key)
        values = [[_plain(column[i]) for column in columns] for i in rows]
        return [scored[i] for i in rows], values

    def _hits(
        self,
        gen: Generation,
        searcher: tantivy.Searcher,
        page: list[tuple[float, tantivy.DocAddress]],
        source_spec: Any,
    ) -> list[dict[str, Any]]:
        hits = []
        want = source_wanted(source_spec)
        for score, addr in page:
            doc = searcher.doc(addr)
            hit: dict[str, Any] = {
                "_index": gen.name,
                "_id": doc.get_first("_id"),
                "_score": float(score),
            }
            if want:
                hit["_source"] = filter_source(_source_of(doc), source_spec)
            hits.append(hit)
        return hits

    def count(self, index: str, body: dict[str, Any] | None) -> int:
        body = body or {}
        unknown = set(body) - {"query"}
        if unknown:
            raise BadRequestError(f"request does not support {sorted(unknown)}")
        gen = self.store.generation(index)
        searcher = gen.searcher()
        queries, _ = self._compilers_for(gen)
        query = queries.compile(body.get("query")) if body.get("query") else Q.all_query()
        return _count(searcher.search(query, limit=1, count=True))

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
            filtered = filter_source(_source_of(doc), source)
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

    # -- writing ---------------------------------------------------------------------------

    def vectors_of(self, index: str, ids: list[str], field: str) -> dict[str, Any]:
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
        out: dict[str, Any] = {}
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
        vectors: dict[str, npt.NDArray[np.float32]] | None = None,
    ) -> int:
        for doc in docs:
            if "_id" not in doc:
                raise BadRequestError("every document needs an [_id]")
        return self.store.generation(index).upsert(docs, vectors)

    def delete(self, index: str, ids: list[str]) -> int:
        return self.store.generation(index).delete(ids)

    def write_batch(
        self,
        index: str,
        docs: list[dict[str, Any]],
        vectors: dict[str, npt.NDArray[np.float32]] | None = None,
        *,
        partial_vectors: dict[str, tuple[Any, npt.NDArray[np.float32]]] | None = None,
        delete_ids: list[str] | None = None,
    ) -> int:
        """Upsert + delete + commit as one unit under the generation's write lock, so
        several worker processes can write to one generation in turn."""
        for doc in docs:
            if "_id" not in doc:
                raise BadRequestError("every document needs an [_id]")
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


def _float_param(value: Any, what: str) -> float:
    if isinstance(value, bool):
        raise BadRequestError(f"[{what}] must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise BadRequestError(f"[{what}] must be a number, got {value!r}") from None


def _count(result: tantivy.SearchResult) -> int:
    """Matching documents of a search (the stub file lacks `count`)."""
    return int(result.count)  # type: ignore[attr-defined]


def _key(value: int | float | None) -> int:
    if value is None:
        raise ShoprankError("a document has no _key; rebuild the index generation")
    return int(value)


def _source_of(doc: tantivy.Document) -> dict[str, Any]:
    raw = doc.get_first("_source")
    return cast(dict[str, Any], orjson.loads(raw)) if raw else {}


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return value[1]
    return value
