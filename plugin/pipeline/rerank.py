"""`full` mode's reranking stages over the fused window, each bound by the search's deadline
(`shoprank.plugin.stages.StageRunner`): a late, failing or invalid stage keeps the order it
was given and is reported degraded."""

from __future__ import annotations

import time
from collections.abc import Sequence

from shoprank.plugin.fusion import FusedHit
from shoprank.plugin.pipeline.request import SearchRequest, Trace
from shoprank.plugin.stages import StageRunner
from shoprank.rerankers.protocol import Candidate, RerankContext, Reranker


def rerank_window(
    request: SearchRequest,
    trace: Trace,
    fused: list[FusedHit],
    *,
    rerankers: Sequence[Reranker],
    runner: StageRunner,
) -> tuple[list[FusedHit], list[str], dict[str, Candidate]]:
    """The window in its reranked order, the stages that applied, and each candidate (with
    the features and contributions the stages filled in) by id.

    The window is the fused top `window` (`ext.shoprank.window`): the fusion of two legs
    of `window` hits each holds up to twice as many, and those past the window follow the
    reranked ones in their fused order, unscored (a third of the ranker's work on Home
    Depot, where the union averages 166)."""
    context = RerankContext(
        index=request.index,
        query_text=request.query_text,
        user_id=request.user_id,
        body=request.body,
        session_id=request.session_id,
        explain=request.explain,
        deadline=request.deadline,
        intent=trace.intent,
        ranker_version=request.ranker_version,
    )
    head, rest = fused[: request.window], fused[request.window :]
    by_id = {h.id: h for h in head}
    candidates = [
        Candidate(
            h.id,
            h.score,
            legs={leg: (lh.rank, lh.score) for leg, lh in h.legs.items()},
            retrieval_rank=rank,
        )
        for rank, h in enumerate(head, start=1)
    ]
    applied = []
    for reranker in rerankers:
        t0 = time.perf_counter()
        reranked = runner.rerank(reranker, context, candidates, notes=trace.degraded)
        trace.timings[f"{reranker.name}_ms"] = (time.perf_counter() - t0) * 1000
        if reranked is not None:
            candidates = reranked
            applied.append(f"rerank:{reranker.name}")
    trace.degraded.extend(context.info.pop("degraded", []))
    trace.rerank_info.update(context.info)
    out = []
    for cand in candidates:
        hit = by_id[cand.id]
        hit.score = cand.score
        out.append(hit)
    return out + rest, applied, {c.id: c for c in candidates}
