"""Run a rewrite plan safely: check its hard filters, then relax it one constraint at a time.

The search pipeline retrieves with the planned body and hands the plan here with a way to
search another body (`search`, which returns how many hits that body ranks) and the
backend's `msearch`. `recover`:

1. checks the plan's constraints against the query's own top hits unless that was done
   before retrieval (`checked_plan`; `shoprank.rerankers.intent.evidence`), and searches
   again when the check changed the body;
2. relaxes one constraint at a time — the one whose removal brings back the most matches
   (`RewritePlan.relaxations`) — while the search ranks fewer than `min_results` hits, or
   once when the planned query matches no product at all (the vector leg alone would fill
   the page with near neighbours); the explicit price goes only for an empty result.

It records the checked plan's actions (`_shoprank.rewrite`) and the steps taken
(`_shoprank.relaxation`, comma-separated) on the search's trace, and says why in its notes.
Nothing here fails a search: a failed check keeps the plan.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from shoprank.errors import ShoprankError
from shoprank.metrics import degrade

from .evidence import Msearch, check, total_of
from .rewriter import ORIGINAL_QUERY, RewritePlan

#: Searches a body as the search would and returns how many hits it ranks.
Search = Callable[[dict[str, Any]], int]


def checked_plan(
    plan: RewritePlan,
    msearch: Msearch,
    *,
    notes: list[str],
    degraded: list[str],
    timings: dict[str, float],
) -> RewritePlan:
    """`plan` with its hard filters checked (`evidence.check`), timed as `filter_check_ms`;
    a failing check keeps the plan and says so in `degraded`. Before retrieval, it saves
    `recover` a search."""
    t0 = time.perf_counter()
    try:
        checked = check(plan, msearch)
    except Exception as exc:  # noqa: BLE001 - the check must not fail the search
        degrade(degraded, "intent", "filter check failed")
        reason = exc.reason if isinstance(exc, ShoprankError) else type(exc).__name__
        notes.append(f"intent: filter check: {reason}")
        checked = replace(plan, checked=True)
    timings["filter_check_ms"] = timings.get("filter_check_ms", 0.0) + (
        (time.perf_counter() - t0) * 1000
    )
    return checked


def match_counts(msearch: Msearch, bodies: list[dict[str, Any]]) -> list[int | None]:
    """How many products each body's query matches, in one `msearch` of counts."""
    counts = [
        {"query": b.get("query"), "size": 0, "track_total_hits": True, "_source": False}
        for b in bodies
    ]
    try:
        return [total_of(r) for r in msearch(counts)]
    except ShoprankError:
        return [None] * len(bodies)


class Trace(Protocol):
    """What `recover` records on the search's trace (`shoprank.plugin.pipeline.request`)."""

    notes: list[str]
    degraded: list[str]
    timings: dict[str, float]
    rewrite: list[dict[str, Any]]
    relaxation: str | None


def recover(
    plan: RewritePlan,
    ranked: int,
    search: Search,
    msearch: Msearch,
    *,
    trace: Trace,
    min_results: int,
) -> RewritePlan:
    """The checked plan; its actions become `trace.rewrite` and the relaxation steps taken
    `trace.relaxation`. `ranked` is what the planned body's search ranked, `search` runs
    another body."""
    body = plan.body
    if not plan.checked:
        checked = checked_plan(
            plan, msearch, notes=trace.notes, degraded=trace.degraded, timings=trace.timings
        )
        if checked.body != plan.body:
            body = checked.body
            ranked = search(body)
        plan = checked
    trace.rewrite = list(plan.actions)
    steps = list(plan.relaxed)
    why = "the filters dropped most of the query's top hits" if steps else ""
    relaxations = plan.relaxations(lambda bodies: match_counts(msearch, bodies))
    starved = plan.starved
    while starved or ranked < min_results:
        step = next(relaxations, None)
        if step is None or (starved and step[0] == ORIGINAL_QUERY and ranked):
            break
        name, relaxed = step
        steps.append(name)
        why = "its words matched nothing" if starved else "to avoid an empty result"
        starved = False
        if relaxed != body:
            body = relaxed
            ranked = search(body)
    if steps:
        trace.relaxation = ", ".join(steps)
        trace.notes.append(f"intent: relaxed ({trace.relaxation}): {why}")
    return plan
