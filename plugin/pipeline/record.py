"""What a search leaves behind: the `_shoprank` explanation block of the response and the
search-log record (`shoprank.searchlog.record.SearchRecord`)."""

from __future__ import annotations

from typing import Any

from shoprank.plugin.pipeline.request import SearchRequest, Trace
from shoprank.searchlog.record import SearchRecord, WindowItem
from shoprank.types import Mode


def explanation(
    request: SearchRequest, trace: Trace, *, applied: Mode, stages: list[str]
) -> dict[str, Any]:
    """`_shoprank` of an explained response: the modes, the stages that ran, the notes, the
    query understanding and the timings."""
    out: dict[str, Any] = {
        "mode": request.mode,
        "mode_applied": applied,
        "query_text": request.query_text,
        "fusion": request.fusion if applied != "lexical" else None,
        "window": request.window,
        "user_id": request.user_id,
        "stages": stages,
        "notes": trace.notes,
        "intent": trace.intent.to_dict() if trace.intent is not None else None,
        "rewrite": trace.rewrite,
        "relaxation": trace.relaxation,
        "timings_ms": trace.rounded_timings(),
    }
    if trace.model_version:
        out["model_version"] = trace.model_version
    if request.diversity.enabled:
        out["diversity"] = request.diversity.to_dict()
    return out


def search_record(
    request: SearchRequest, trace: Trace, *, applied: Mode, response: dict[str, Any]
) -> SearchRecord:
    """The search-log record of one search: the query, the mode, the returned window."""
    window = trace.logged
    if not window:  # lexical: the backend's order is the final order
        window = [
            WindowItem(h["_id"], rank, rank, float(h.get("_score") or 0.0))
            for rank, h in enumerate(response.get("hits", {}).get("hits", []), start=1)
        ]
    total = response.get("hits", {}).get("total")
    return SearchRecord(
        index=request.index,
        query=request.query_text,
        mode=applied,
        user_id=request.user_id,
        session_id=request.session_id,
        model_version=trace.model_version,
        timings_ms=trace.rounded_timings(),
        total_hits=int(total["value"]) if isinstance(total, dict) else 0,
        window=window,
        degraded=list(trace.degraded),
        intent=trace.intent.to_dict() if trace.intent is not None else None,
        rewrite=list(trace.rewrite),
        relaxation=trace.relaxation,
    )


def announced_spelling(action: dict[str, Any]) -> dict[str, Any] | None:
    """What `_shoprank.spelling` tells a shopper of a spelling action: the typos corrected,
    for a "Showing results for …" line; None when there are none ("8x6" searched as
    "8 x 6" is the catalog's way of writing it, not a correction to announce)."""
    typos = [
        {"word": c["word"], "correction": c["correction"]}
        for c in action.get("corrections", [])
        if c.get("kind") != "dimensions"
    ]
    if not typos:
        return None
    return {"original": action["before"], "corrected": action["after"], "corrections": typos}
