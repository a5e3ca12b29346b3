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

import tantivy

from shoprank.errors import BadRequestError, UnsupportedQueryError
from shoprank.plugin.bounds import Deadline, effective_deadline
from shoprank.plugin.shapes import (
    int_param,
    search_response,
    source_filter,
    source_wanted,
    total_hits,
)

from .aggs import AggregationCompiler
from .collapse import first_per_group, group_filter, group_values, parse_collapse
from .dsl import QueryCompiler
from .dsl_score import apply_function_score, top_function_score
from .generation import Generation
from .highlight import highlight_hits
from .hit_options import add_fields, add_meta, profile_section, wants_source
from .knn import all_hits, combine, keys_query, knn_section, matching_keys
from .sort import Scored, SortKey, by_score_only, parse_sort, sort_scored, with_tiebreaker
from .suggest import suggest_response
from .values import as_list, count_of, float_param, source_of

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
    "highlight",
    "suggest",
    "collapse",
    "search_after",
    "pit",
    "fields",
    "docvalue_fields",
    "stats",
}
# The rest of ES's `_search` body keys, each refused by name.
REFUSED_KEYS = {
    "indices_boost": "shoprank searches one index at a time",
    "rescore": "use ext.shoprank rerankers or function_score",
    "retriever": "use ext.shoprank.mode for hybrid retrieval",
    "runtime_mappings": "scripts are not run by the embedded backend",
    "script_fields": "scripts are not run by the embedded backend",
    "slice": "sliced scrolls are not supported; one scroll or point in time pages it all",
    "terminate_after": "every match is counted and ranked",
}
MAX_RESULT_WINDOW = 10_000


def checked_body(body: Any) -> dict[str, Any]:
    """`body` (None meaning `{}`) once its options are known to be supported."""
    body = body or {}
    if not isinstance(body, dict):
        raise BadRequestError("the search body must be a JSON object")
    for key, why in REFUSED_KEYS.items():
        if key in body:
            raise UnsupportedQueryError(
                f"search option [{key}] is not supported by shoprank's embedded backend ({why})",
                construct=key,
            )
    unknown = set(body) - SEARCH_KEYS
    if unknown:
        raise UnsupportedQueryError(
            f"search option(s) {sorted(unknown)} are not supported by shoprank's embedded "
            f"backend; supported: {', '.join(sorted(SEARCH_KEYS))}",
            construct=sorted(unknown)[0],
        )
    if body.get("collapse") is not None and body.get("knn"):
        raise UnsupportedQueryError("[collapse] with [knn] is not supported", construct="collapse")
    return body


def execute(
    gen: Generation,
    queries: QueryCompiler,
    aggs: AggregationCompiler,
    body: dict[str, Any],
    *,
    max_result_window: int = MAX_RESULT_WINDOW,
    tiebreak: bool = False,
) -> dict[str, Any]:
    """The ES `_search` response on `gen` for a `checked_body`; `tiebreak` (a point in
    time) ends the sort with the implicit `_shard_doc`, as ES does."""
    started = time.perf_counter()
    timings: dict[str, float] = {}
    deadline = effective_deadline(body.get("timeout"))
    searcher = gen.searcher()
    start = int_param(body, "from", 0)
    size = int_param(body, "size", 10)
    if start + size > max_result_window:
        raise BadRequestError(
            f"Result window is too large, from + size must be less than or equal to: "
            f"[{max_result_window}] but was [{start + size}]. See the scroll api for a more "
            "efficient way to request large data sets. This limit can be set with "
            "SHOPRANK_MAX_RESULT_WINDOW.",
            es_type="illegal_argument_exception",
        )
    search_after = body.get("search_after")
    if search_after is not None and start > 0:
        raise BadRequestError(
            "[from] parameter must be set to 0 when [search_after] is used",
            es_type="illegal_argument_exception",
        )
    query = queries.compile(body["query"]) if body.get("query") is not None else None
    post = queries.compile(body["post_filter"]) if body.get("post_filter") is not None else None
    client_sort = parse_sort(body.get("sort"))
    sort = with_tiebreaker(client_sort) if tiebreak else client_sort
    if search_after is not None and not sort:
        raise BadRequestError(
            "Sort must contain at least one field when [search_after] is used",
            es_type="illegal_argument_exception",
        )
    collapse = parse_collapse(body["collapse"], gen) if body.get("collapse") is not None else None
    knn_specs = as_list(body.get("knn"))
    min_score = body.get("min_score")
    if min_score is not None:
        min_score = float_param(min_score, "min_score")

    # kNN hits feed aggregations unfiltered; the post_filter only narrows the hits.
    knn_scores: dict[int, float] = {}
    for spec in knn_specs:
        for key, score in knn_section(gen, searcher, queries, spec).items():
            knn_scores[key] = knn_scores.get(key, 0.0) + score
    hit_knn = knn_scores
    if post is not None and knn_scores:
        passing = set(matching_keys(searcher, post).tolist())
        hit_knn = {k: v for k, v in knn_scores.items() if k in passing}

    base = query if query is not None else (None if knn_specs else Q.all_query())
    hits_query = _with_filter(base, post) if base is not None else None
    score_desc_only = by_score_only(sort) and search_after is None and collapse is None

    scored: Scored
    if knn_specs:
        scored, count = combine(gen, searcher, hits_query, hit_knn, start + size)
    elif not score_desc_only:
        scored, count = all_hits(searcher, hits_query)
    else:
        assert hits_query is not None
        if min_score is not None:
            scored, count = all_hits(searcher, hits_query)
        else:
            result = searcher.search(hits_query, limit=max(start + size, 1), count=True)
            scored, count = list(result.hits), count_of(result)
    fscore = top_function_score(body.get("query"), queries, knn=bool(knn_specs))
    if fscore is not None and hits_query is not None:
        scored = apply_function_score(searcher, scored, fscore, hits_query)
        count = len(scored)
    if min_score is not None:
        scored = [(s, a) for s, a in scored if s >= min_score]
        count = len(scored)

    sort_values: list[list[Any]] | None = None
    if not score_desc_only:
        order = sort or [SortKey("_score", "desc")]
        scored, sort_values = sort_scored(
            gen, searcher, scored, order, search_after=search_after, deadline=deadline
        )
        if not sort:
            sort_values = None
    groups: list[Any] | None = None
    if collapse is not None:
        values = group_values(gen, searcher, scored, collapse[0])
        rows = first_per_group(list(range(len(scored))), values)
        scored = [scored[i] for i in rows]
        groups = [values[i] for i in rows]
        if sort_values is not None:
            sort_values = [sort_values[i] for i in rows]
    page = scored[start : start + size]
    page_sorts = sort_values[start : start + size] if sort_values is not None else None
    timings["query"] = (time.perf_counter() - started) * 1000
    t_fetch = time.perf_counter()
    highlighting = body.get("highlight") is not None
    sources: list[dict[str, Any]] | None = [] if highlighting else None
    hits = _hits(gen, searcher, page, body, deadline, full_sources=sources)
    if highlighting:
        highlight_hits(gen, searcher, page, hits, body, sources=sources)
    if page_sorts is not None:
        keep_scores = bool(body.get("track_scores")) or any(k.field == "_score" for k in sort)
        for hit, values in zip(hits, page_sorts, strict=False):
            hit["sort"] = values
            if not keep_scores:
                hit["_score"] = None
    if collapse is not None and groups is not None:
        _collapse_hits(gen, queries, aggs, body, collapse, hits, groups[start : start + size])
    timings["fetch"] = (time.perf_counter() - t_fetch) * 1000

    aggregations = None
    agg_spec = body.get("aggs", body.get("aggregations"))
    if agg_spec:
        t_aggs = time.perf_counter()
        # When the aggregations count the hits' own query, its match count is known.
        exact = post is None and not knn_specs and min_score is None and fscore is None
        aggregations = aggs.run(
            searcher,
            _agg_query(gen, base, knn_scores),
            agg_spec,
            deadline=deadline,
            known_count=count if exact else None,
        )
        timings["aggs"] = (time.perf_counter() - t_aggs) * 1000
    response: dict[str, Any] = search_response(
        took_ms=(time.perf_counter() - started) * 1000,
        hits=hits,
        total=total_hits(count, body.get("track_total_hits")),
        aggregations=aggregations,
    )
    scoreless = sort_values is not None and not any(k.field == "_score" for k in sort)
    if scoreless and not body.get("track_scores"):
        response["hits"]["max_score"] = None
    if body.get("suggest") is not None:
        response["suggest"] = suggest_response(gen, searcher, body)
    if body.get("profile"):
        response["profile"] = profile_section(gen, body, timings)
    if deadline is not None and deadline.expired:
        response["timed_out"] = True
    return response


def _collapse_hits(
    gen: Generation,
    queries: QueryCompiler,
    aggs: AggregationCompiler,
    body: dict[str, Any],
    collapse: tuple[str, list[dict[str, Any]]],
    hits: list[dict[str, Any]],
    groups: list[Any],
) -> None:
    """Each collapsed hit's `fields` value of the collapse field and its `inner_hits`."""
    field, inners = collapse
    for hit, value in zip(hits, groups, strict=False):
        hit.setdefault("fields", {})[field] = [value]
        if not inners:
            continue
        inner_out: dict[str, Any] = {}
        for spec in inners:
            must = [body["query"]] if body.get("query") is not None else []
            inner_body: dict[str, Any] = {
                "query": {"bool": {"must": must, "filter": [group_filter(field, value)]}},
                "size": spec.get("size", 3),
                "from": spec.get("from", 0),
            }
            if body.get("post_filter") is not None:
                inner_body["post_filter"] = body["post_filter"]
            for key in ("sort", "_source", "fields", "docvalue_fields", "version"):
                if key in spec:
                    inner_body[key] = spec[key]
            result = execute(gen, queries, aggs, inner_body)
            inner_out[spec["name"]] = {"hits": result["hits"]}
        hit["inner_hits"] = inner_out


def _with_filter(query: tantivy.Query, extra: tantivy.Query | None) -> tantivy.Query:
    if extra is None:
        return query
    return Q.boolean_query([(Occur.Must, query), (Occur.Must, Q.const_score_query(extra, 0.0))])


def _agg_query(
    gen: Generation, base: tantivy.Query | None, knn_scores: dict[int, float]
) -> tantivy.Query:
    """What aggregations count: the query's matches and the kNN hits, unfiltered."""
    if not knn_scores:
        return base if base is not None else Q.empty_query()
    keys_q = keys_query(gen, list(knn_scores))
    if base is None:
        return keys_q
    return Q.boolean_query([(Occur.Should, base), (Occur.Should, keys_q)])


def _hits(
    gen: Generation,
    searcher: tantivy.Searcher,
    page: Scored,
    body: dict[str, Any],
    deadline: Deadline | None = None,
    full_sources: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The page's hits; each hit's whole `_source` also goes to `full_sources` when given
    (the highlighter reads fields the client's `_source` filter may leave out)."""
    hits = []
    source_spec = wants_source(body)
    want = source_wanted(source_spec)
    shape_source = source_filter(source_spec)
    per_hit = any(body.get(k) for k in ("fields", "docvalue_fields"))
    read_source = want or per_hit or full_sources is not None
    if not read_source:  # ids only (`_source: false`, as shoprank's own legs ask)
        for (score, _), pid in zip(page, gen.ids_at(searcher, [a for _, a in page]), strict=True):
            named: dict[str, Any] = {"_index": gen.name, "_id": pid, "_score": float(score)}
            add_meta(gen, named, body)
            hits.append(named)
        return hits
    for score, addr in page:
        if deadline is not None and deadline.passed():
            break
        doc = searcher.doc(addr)
        hit: dict[str, Any] = {
            "_index": gen.name,
            "_id": doc.get_first("_id"),
            "_score": float(score),
        }
        if read_source:
            source = source_of(doc)
            if want:
                hit["_source"] = shape_source(source)
            if per_hit:
                add_fields(gen, hit, source, body)
            if full_sources is not None:
                full_sources.append(source)
        add_meta(gen, hit, body)
        hits.append(hit)
    return hits
