"""The page of a fused search: `_source` fetched for the page's ids only, per-hit
explanations (`ext.shoprank.explain`), the ES response and its total.

When the client asks for per-hit extras (`highlight`, `fields`, `docvalue_fields`, `explain`,
…; `legs.PAGE_KEYS`), the page is fetched with one backend search instead of `mget`: the
client's original query (before any intent rewrite) as a `should` under an `ids` filter of
the page's ids, with the client's extras and `_source`. Each hit's extras are attached by id
and the fused order and scores are kept, so highlights are on the shopper's own words — in
ES DSL, on every backend.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from shoprank.plugin.backends.protocol import SearchBackend
from shoprank.plugin.fusion import FusedHit, LegHit
from shoprank.plugin.pipeline.legs import PAGE_KEYS, Retrieval
from shoprank.plugin.pipeline.request import SearchRequest, Trace
from shoprank.plugin.shapes import search_response, total_hits
from shoprank.rerankers.protocol import Candidate
from shoprank.searchlog.record import WindowItem
from shoprank.types import Mode

Relation = Literal["eq", "gte"]


def fetch_page(
    backend: SearchBackend,
    request: SearchRequest,
    trace: Trace,
    page: list[FusedHit],
    *,
    start: int,
    retrieval_rank: dict[str, int],
    candidates: dict[str, Candidate],
    diversity_rank: dict[str, int] | None = None,
) -> list[dict[str, Any]]:
    """The page's ES hits; each also goes to `trace.logged` with its ranks and features.
    `diversity_rank` (when diversity reordered the window): each hit's rank before it."""
    t0 = time.perf_counter()
    source_spec = request.client_body.get("_source", True)
    ids = [h.id for h in page]
    if wants_extras(request):
        found = page_extras(backend, request, ids, source=source_spec)
        sources = {i: f["_source"] for i, f in found.items() if "_source" in f}
    elif source_spec is False:  # nothing to read: the ids and scores are the fused ones
        found, sources = {}, {}
    else:
        found, sources = {}, backend.mget(request.index, ids, source=source_spec)
    concrete = backend.resolve(request.index)
    hits = []
    for position, hit in enumerate(page, start=start + 1):
        out: dict[str, Any] = {"_index": concrete, "_id": hit.id, "_score": hit.score}
        if source_spec is not False and hit.id in sources:
            out["_source"] = sources[hit.id]
        out.update(extras_of(found.get(hit.id)))
        cand = candidates.get(hit.id)
        if request.explain:
            out["_shoprank"] = explain_hit(hit, position, retrieval_rank[hit.id], cand)
            if diversity_rank is not None and hit.id in diversity_rank:
                out["_shoprank"]["rank_before_diversity"] = diversity_rank[hit.id]
        hits.append(out)
        trace.logged.append(
            WindowItem(
                hit.id,
                retrieval_rank[hit.id],
                position,
                hit.score,
                dict(cand.features) if cand is not None and cand.features else None,
            )
        )
    trace.timings["fetch_ms"] = (time.perf_counter() - t0) * 1000
    return hits


def wants_extras(request: SearchRequest) -> bool:
    return any(key in request.client_body for key in PAGE_KEYS)


def page_extras(
    backend: SearchBackend, request: SearchRequest, ids: list[str], *, source: Any
) -> dict[str, dict[str, Any]]:
    """The page's hits as the client's own query finds them (highlight, fields, …), by id:
    one search of the original query under an `ids` filter of the page."""
    client = request.client_body
    only_page = {"ids": {"values": ids}}
    query = client.get("query")
    body: dict[str, Any] = {
        "query": {"bool": {"should": [query], "filter": [only_page]}}
        if query is not None
        else only_page,
        "size": len(ids),
        "_source": source,
        "track_total_hits": False,
    }
    body.update({key: client[key] for key in PAGE_KEYS if key in client})
    response = backend.search(request.index, body)
    return {h["_id"]: h for h in response["hits"]["hits"]}


def extras_of(hit: dict[str, Any] | None) -> dict[str, Any]:
    """A page-search hit's per-hit extras (highlight, fields, _explanation, …)."""
    if hit is None:
        return {}
    return {k: v for k, v in hit.items() if k not in ("_index", "_id", "_score", "_source")}


def decorate(
    backend: SearchBackend, request: SearchRequest, response: dict[str, Any]
) -> dict[str, Any]:
    """A lexical response of a rewritten body, with each hit's extras from the client's own
    query (highlights on the shopper's words, not on the rewrite)."""
    if not wants_extras(request):
        return response
    hits = response["hits"]["hits"]
    found = page_extras(backend, request, [h["_id"] for h in hits], source=False)
    for hit in hits:
        hit.update(extras_of(found.get(hit["_id"])))
    return response


def explain_hit(
    hit: FusedHit, position: int, rank_before: int, candidate: Candidate | None
) -> dict[str, Any]:
    """Where a hit came from: its rank before reranking, each leg's rank and score, and the
    features and contributions of the reranking stages."""
    out: dict[str, Any] = {
        "rank": position,
        "rank_before": rank_before,
        "legs": {leg: {"rank": lh.rank, "score": lh.score} for leg, lh in hit.legs.items()},
    }
    if candidate is not None and candidate.features:
        out["features"] = candidate.features
        out["contributions"] = candidate.contributions
    return out


def estimate_total(
    lexical: dict[str, Any],
    legs: dict[str, list[LegHit]],
    fused: list[FusedHit],
    *,
    has_query: bool,
    mode: Mode,
) -> tuple[int, Relation]:
    """The documents the searched body ranks: matches of the lexical query plus vector-only
    hits of the window (the count query understanding relaxes on, and the total of a
    client's own `knn`, which ES counts with the query's matches)."""
    if mode == "vector" or not has_query:
        return len(fused), "eq"
    lexical_total = int(lexical["hits"]["total"]["value"])
    lexical_ids = {h.id for h in legs.get("lexical", [])}
    vector_only = sum(1 for h in legs.get("vector", []) if h.id not in lexical_ids)
    if len(lexical_ids) >= lexical_total:
        # Every lexical match is in the window, so vector-only hits are new documents.
        return lexical_total + vector_only, "eq"
    # Vector-only hits may be lexical matches beyond the window: a lower bound only.
    return max(lexical_total, len(fused)), "gte"


def client_total(
    request: SearchRequest, retrieval: Retrieval, fused: list[FusedHit], *, mode: Mode
) -> tuple[int, Relation]:
    """`hits.total` as ES would count the client's own body: the matches of its query and
    filters (after `post_filter`), before any intent rewrite. A client `knn` adds its hits
    the way ES counts them; `vector` mode counts its kNN hits."""
    client = request.client_body
    if mode == "vector" or (client.get("knn") and retrieval.counts is None):
        return estimate_total(
            retrieval.lexical,
            retrieval.legs,
            fused,
            has_query=client.get("query") is not None,
            mode=mode,
        )
    total = retrieval.answer["hits"]["total"]
    return int(total["value"]), "eq" if total.get("relation", "eq") == "eq" else "gte"


def fused_response(
    request: SearchRequest,
    retrieval: Retrieval,
    fused: list[FusedHit],
    hits: list[dict[str, Any]],
    *,
    mode: Mode,
) -> dict[str, Any]:
    """The ES `_search` response of a fused page; totals, aggregations and suggestions
    answer the client's own body (`client_total`, `Retrieval.answer`)."""
    client = request.client_body
    answer = retrieval.answer
    count, relation = client_total(request, retrieval, fused, mode=mode)
    response = search_response(
        took_ms=0,
        hits=hits,
        total=total_hits(count, client.get("track_total_hits")),
        aggregations=answer.get("aggregations") if has_aggs(client) else None,
    )
    if relation == "gte" and response["hits"].get("total"):
        response["hits"]["total"]["relation"] = "gte"
    return with_sections(response, request, retrieval.lexical, answer)


def has_aggs(body: dict[str, Any]) -> bool:
    return bool(body.get("aggs", body.get("aggregations")))


def with_sections(
    response: dict[str, Any],
    request: SearchRequest,
    lexical: dict[str, Any],
    answer: dict[str, Any],
) -> dict[str, Any]:
    """`suggest` and `profile` of the backend's answer, and `timed_out` of either search."""
    client = request.client_body
    if client.get("suggest") is not None and "suggest" in answer:
        response["suggest"] = answer["suggest"]
    if client.get("profile") and "profile" in lexical:
        response["profile"] = lexical["profile"]
    if lexical.get("timed_out") or answer.get("timed_out"):
        response["timed_out"] = True
    return response


def answer_client(
    response: dict[str, Any], request: SearchRequest, counts: dict[str, Any]
) -> dict[str, Any]:
    """A rewritten search's response with the client's own totals, aggregations and
    suggestions."""
    client = request.client_body
    total = counts["hits"]["total"]
    shaped = total_hits(int(total["value"]), client.get("track_total_hits"))
    hits = {k: v for k, v in response["hits"].items() if k != "total"}
    response["hits"] = {"total": shaped, **hits} if shaped is not None else hits
    response.pop("aggregations", None)
    if has_aggs(client) and "aggregations" in counts:
        response["aggregations"] = counts["aggregations"]
    return with_sections(response, request, response, counts)
