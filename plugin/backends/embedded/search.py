"""One ES `_search` on an embedded generation: validation, the lexical query, kNN sections
and their combination, sort, the page of hits and aggregations.

`checked_body` refuses what the engine does not support before the index is opened;
`execute` then answers the request on one generation, within the request's deadline
(`shoprank.plugin.bounds`, narrowed by the body's `timeout`): past it, the hits and buckets
reached so far with `timed_out: true`.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import numpy.typing as npt
import tantivy

from shoprank.errors import BadRequestError, UnsupportedQueryError
from shoprank.plugin.bounds import Deadline, effective_deadline
from shoprank.plugin.shapes import (
    filter_source,
    int_param,
    search_response,
    source_wanted,
    total_hits,
)

from .aggs import AggregationCompiler
from .dsl import QueryCompiler
from .generation import Generation
from .sort import Scored, by_score_only, parse_sort, sort_scored
from .values import as_list, count_of, doc_key, float_param, source_of

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


def checked_body(body: Any) -> dict[str, Any]:
    """`body` (None meaning `{}`) once its options are known to be supported."""
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
    return body


def execute(
    gen: Generation,
    queries: QueryCompiler,
    aggs: AggregationCompiler,
    body: dict[str, Any],
) -> dict[str, Any]:
    """The ES `_search` response on `gen` for a `checked_body`."""
    started = time.perf_counter()
    deadline = effective_deadline(body.get("timeout"))
    searcher = gen.searcher()
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
    sort = parse_sort(body.get("sort"))
    knn_specs = as_list(body.get("knn"))
    min_score = body.get("min_score")
    if min_score is not None:
        min_score = float_param(min_score, "min_score")

    # kNN hits feed aggregations unfiltered; the post_filter only narrows the hits.
    knn_scores: dict[int, float] = {}
    for spec in knn_specs:
        for key, score in _knn(gen, searcher, queries, spec).items():
            knn_scores[key] = knn_scores.get(key, 0.0) + score
    hit_knn = knn_scores
    if post is not None and knn_scores:
        passing = set(_matching_keys(searcher, post).tolist())
        hit_knn = {k: v for k, v in knn_scores.items() if k in passing}

    base = query if query is not None else (None if knn_specs else Q.all_query())
    hits_query = _with_filter(base, post) if base is not None else None
    score_desc_only = by_score_only(sort)

    scored: Scored
    if knn_specs:
        scored, count = _combine(gen, searcher, hits_query, hit_knn, start + size)
    elif not score_desc_only:
        scored, count = _all(searcher, hits_query)
    else:
        assert hits_query is not None
        if min_score is not None:
            scored, count = _all(searcher, hits_query)
        else:
            result = searcher.search(hits_query, limit=max(start + size, 1), count=True)
            scored, count = list(result.hits), count_of(result)
    if min_score is not None:
        scored = [(s, a) for s, a in scored if s >= min_score]
        count = len(scored)

    sort_values: list[list[Any]] | None = None
    if not score_desc_only:
        scored, sort_values = sort_scored(gen, searcher, scored, sort, deadline=deadline)
    page = scored[start : start + size]
    page_sorts = sort_values[start : start + size] if sort_values is not None else None
    hits = _hits(gen, searcher, page, body.get("_source"), deadline)
    if page_sorts is not None:
        keep_scores = bool(body.get("track_scores"))
        for hit, values in zip(hits, page_sorts, strict=False):
            hit["sort"] = values
            if not keep_scores:
                hit["_score"] = None

    aggregations = None
    agg_spec = body.get("aggs", body.get("aggregations"))
    if agg_spec:
        aggregations = aggs.run(
            searcher, _agg_query(gen, base, knn_scores), agg_spec, deadline=deadline
        )
    response: dict[str, Any] = search_response(
        took_ms=(time.perf_counter() - started) * 1000,
        hits=hits,
        total=total_hits(count, body.get("track_total_hits")),
        aggregations=aggregations,
    )
    if deadline is not None and deadline.expired:
        response["timed_out"] = True
    return response


def _with_filter(query: tantivy.Query, extra: tantivy.Query | None) -> tantivy.Query:
    if extra is None:
        return query
    return Q.boolean_query([(Occur.Must, query), (Occur.Must, Q.const_score_query(extra, 0.0))])


def _keys_query(gen: Generation, keys: list[int]) -> tantivy.Query:
    return Q.term_set_query(gen.schema.tantivy_schema, "_key", keys)


def _agg_query(
    gen: Generation, base: tantivy.Query | None, knn_scores: dict[int, float]
) -> tantivy.Query:
    """What aggregations count: the query's matches and the kNN hits, unfiltered."""
    if not knn_scores:
        return base if base is not None else Q.empty_query()
    keys_q = _keys_query(gen, list(knn_scores))
    if base is None:
        return keys_q
    return Q.boolean_query([(Occur.Should, base), (Occur.Should, keys_q)])


def _all(searcher: tantivy.Searcher, query: tantivy.Query | None) -> tuple[Scored, int]:
    if query is None:
        return [], 0
    result = searcher.search(query, limit=max(searcher.num_docs, 1), count=True)
    return list(result.hits), count_of(result)


def _matching_keys(searcher: tantivy.Searcher, query: tantivy.Query) -> npt.NDArray[np.uint64]:
    hits, _ = _all(searcher, query)
    keys = searcher.fast_field_values("_key", [a for _, a in hits])
    return np.asarray([k for k in keys if k is not None], dtype=np.uint64)


def _knn(
    gen: Generation, searcher: tantivy.Searcher, queries: QueryCompiler, spec: Any
) -> dict[int, float]:
    """One kNN section: document key → ES kNN score ((1 + cosine) / 2, times `boost`)."""
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
        raise BadRequestError(f"[num_candidates] cannot be less than [k] ({num_candidates} < {k})")
    filters = [queries.compile(f) for f in as_list(spec.get("filter"))]
    allowed = None
    if filters:
        combined = Q.boolean_query([(Occur.Must, f) for f in filters])
        allowed = _matching_keys(searcher, combined)
    keys, sims = store.search(
        np.asarray(vector, dtype=np.float32),
        k=k,
        num_candidates=num_candidates,
        allowed=allowed,
    )
    boost = float_param(spec.get("boost", 1.0), "knn.boost")
    threshold = spec.get("similarity")
    if threshold is not None:
        threshold = float_param(threshold, "knn.similarity")
    out: dict[int, float] = {}
    for key, sim in zip(keys.tolist(), sims.tolist(), strict=True):
        if threshold is not None and sim < threshold:
            continue
        out[int(key)] = (1.0 + sim) / 2.0 * boost
    return out


def _combine(
    gen: Generation,
    searcher: tantivy.Searcher,
    query: tantivy.Query | None,
    knn_scores: dict[int, float],
    window: int,
) -> tuple[Scored, int]:
    """ES semantics for query + knn: the union, each hit scored by the sum."""
    scores: dict[int, float] = dict(knn_scores)
    addresses: dict[int, tantivy.DocAddress] = {}
    also_lexical: set[int] = set()
    count = 0
    if knn_scores:
        keyed = _keys_query(gen, list(knn_scores))
        hits, _ = _all(searcher, keyed)
        for (_, addr), key in zip(
            hits, searcher.fast_field_values("_key", [a for _, a in hits]), strict=True
        ):
            addresses[doc_key(key)] = addr
        if query is not None:
            both = Q.boolean_query(
                [(Occur.Must, query), (Occur.Must, Q.const_score_query(keyed, 0.0))]
            )
            lex, _ = _all(searcher, both)
            lex_keys = searcher.fast_field_values("_key", [a for _, a in lex])
            for (score, _), key in zip(lex, lex_keys, strict=True):
                scores[doc_key(key)] += score
                also_lexical.add(doc_key(key))
    # Documents the query does not match, found by kNN only: counted on top of the query.
    knn_only = {k for k in knn_scores if k in addresses and k not in also_lexical}
    if query is not None:
        result = searcher.search(query, limit=max(window, 1), count=True)
        count = count_of(result)
        top_keys = searcher.fast_field_values("_key", [a for _, a in result.hits])
        for (score, addr), raw_key in zip(result.hits, top_keys, strict=True):
            key = doc_key(raw_key)
            addresses[key] = addr
            if key not in knn_scores:
                scores[key] = score
        count += len(knn_only)
    else:
        count = len(knn_only)
    ranked = sorted((k for k in scores if k in addresses), key=lambda k: -scores[k])
    return [(scores[k], addresses[k]) for k in ranked], count


def _hits(
    gen: Generation,
    searcher: tantivy.Searcher,
    page: Scored,
    source_spec: Any,
    deadline: Deadline | None = None,
) -> list[dict[str, Any]]:
    hits = []
    want = source_wanted(source_spec)
    for score, addr in page:
        if deadline is not None and deadline.passed():
            break
        doc = searcher.doc(addr)
        hit: dict[str, Any] = {
            "_index": gen.name,
            "_id": doc.get_first("_id"),
            "_score": float(score),
        }
        if want:
            hit["_source"] = filter_source(source_of(doc), source_spec)
        hits.append(hit)
    return hits
