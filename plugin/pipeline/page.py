"""The page of a fused search: `_source` fetched for the page's ids only, per-hit
explanations (`ext.shoprank.explain`), the ES response and its estimated total."""

from __future__ import annotations

import time
from typing import Any, Literal

from shoprank.plugin.backends.protocol import SearchBackend
from shoprank.plugin.fusion import FusedHit, LegHit
from shoprank.plugin.pipeline.legs import Retrieval
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
) -> list[dict[str, Any]]:
    """The page's ES hits; each also goes to `trace.logged` with its ranks and features."""
    t0 = time.perf_counter()
    source_spec = request.body.get("_source", True)
    sources = backend.mget(request.index, [h.id for h in page], source=source_spec)
    concrete = backend.resolve(request.index)
    hits = []
    for position, hit in enumerate(page, start=start + 1):
        out: dict[str, Any] = {"_index": concrete, "_id": hit.id, "_score": hit.score}
        if source_spec is not False and hit.id in sources:
            out["_source"] = sources[hit.id]
        cand = candidates.get(hit.id)
        if request.explain:
            out["_shoprank"] = explain_hit(hit, position, retrieval_rank[hit.id], cand)
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
    """Matches of the lexical query plus vector-only hits of the window."""
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


def fused_response(
    request: SearchRequest,
    retrieval: Retrieval,
    fused: list[FusedHit],
    hits: list[dict[str, Any]],
    *,
    mode: Mode,
) -> dict[str, Any]:
    """The ES `_search` response of a fused page; aggregations come from the lexical leg."""
    body = request.body
    aggs = body.get("aggs", body.get("aggregations"))
    count, relation = estimate_total(
        retrieval.lexical,
        retrieval.legs,
        fused,
        has_query=body.get("query") is not None,
        mode=mode,
    )
    response = search_response(
        took_ms=0,
        hits=hits,
        total=total_hits(count, body.get("track_total_hits")),
        aggregations=retrieval.lexical.get("aggregations") if aggs else None,
    )
    if relation == "gte" and response["hits"].get("total"):
        response["hits"]["total"]["relation"] = "gte"
    return response
