"""The inspector's experiment pages: every online experiment and, per experiment, its arms,
rates with intervals, the sequential test, the decision and a plot of the primary metric.

    GET  /_shoprank/inspect/experiments                   the list
    GET  /_shoprank/inspect/experiments/{id}              one experiment, with its plot
    GET  /_shoprank/inspect/experiments/assets/{name}     the pages' JavaScript (no CDN)
    GET  /_shoprank/inspect/api/experiments               the list as JSON
    GET  /_shoprank/inspect/api/experiments/{id}          one experiment as JSON, plot included

Results come from the behaviour log (`shoprank.experiments.results`), read once per request:
the list reads it once for all experiments; one experiment's page reads it once for both
its tallies and its plot. The plot follows the experiment's searches in log order: after
each step of searches, each arm's running rate of the primary metric with its 95 % Wilson
interval (A/B), or the share of decided queries the challenger won (interleaving).
Mount with `app.include_router(make_experiments_inspector_router(service))`.
"""

from __future__ import annotations

import html
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from shoprank.errors import DocumentNotFoundError, es_error_body, http_status
from shoprank.events.model import Event
from shoprank.experiments.logs import search_of
from shoprank.experiments.model import Arm, Experiment, ExperimentError
from shoprank.experiments.results import experiment_store, log_events, results, summarise
from shoprank.experiments.stats import wilson
from shoprank.experiments.tally import KINDS, EventRecord, SearchRecord, Tallies
from shoprank.plugin.inspector import JSONResponse
from shoprank.plugin.search import SearchService

STATIC = Path(__file__).parent / "static"
ASSETS = {"experiments.js": "text/javascript"}
MAX_POINTS = 200
ARM_LABELS = {"A": "A · control", "B": "B · challenger"}


def _error(exc: BaseException) -> JSONResponse:
    return JSONResponse(es_error_body(exc), http_status(exc))


def _scan(
    events: Iterable[Event], experiment: Experiment
) -> tuple[list[SearchRecord], dict[str, list[EventRecord]]]:
    """One pass over the log: the experiment's searches in log order (a query id logged
    twice counts once, as `read_tallies` counts it) and the engagement events by query id."""
    searches: dict[str, SearchRecord] = {}
    engaged: dict[str, list[EventRecord]] = defaultdict(list)
    for event in events:
        if event.type == "search":
            found = search_of(event)
            if found is not None and found[0] == experiment.id:
                searches[found[1].query_id] = found[1]
        elif event.type in KINDS and event.query_id:
            engaged[event.query_id].append(
                EventRecord(event.query_id, event.type, event.product_id)
            )
    return list(searches.values()), engaged


def _point(x: int, successes: int, n: int) -> list[float] | None:
    if n == 0:
        return None
    rate = wilson(successes, n)
    return [x, round(rate.rate, 6), round(rate.low, 6), round(rate.high, 6)]


def replay(
    experiment: Experiment, events: Iterable[Event], *, max_points: int = MAX_POINTS
) -> tuple[Tallies, dict[str, Any]]:
    """The experiment's tallies over `events` and the plot of its primary metric: at most
    `max_points` points `[searches so far, value, low, high]` per series, the last one
    after the last search (so the plot ends at the numbers the page shows)."""
    searches, engaged = _scan(events, experiment)
    tallies = Tallies.for_experiment(experiment)
    step = max(1, math.ceil(len(searches) / max(1, max_points)))
    metric = experiment.metric
    interleaved = experiment.method == "interleave"
    names: tuple[Arm, ...] = ("B",) if interleaved else ("A", "B")
    points: dict[str, list[list[float]]] = {name: [] for name in names}
    for i, search in enumerate(searches, start=1):
        try:
            tallies.add(search, engaged.get(search.query_id, ()))
        except ExperimentError:
            continue  # logged under another method (an id reused): not counted
        if i % step and i != len(searches):
            continue
        if interleaved:
            found = _point(i, tallies.wins_b, tallies.wins_a + tallies.wins_b)
            if found is not None:
                points["B"].append(found)
            continue
        for arm in names:
            t = tallies.arms[arm]
            found = _point(i, t.converted[metric], t.searches)
            if found is not None:
                points[arm].append(found)
    if interleaved:
        series = [
            {"name": "B", "label": "share of decided queries won by B", "points": points["B"]}
        ]
    else:
        series = [{"name": a, "label": ARM_LABELS[a], "points": points[a]} for a in names]
    plot = {
        "method": experiment.method,
        "metric": metric,
        "x": "searches",
        "y": "challenger share of decided queries" if interleaved else f"{metric} rate",
        "reference": 0.5 if interleaved else None,
        "searches": len(searches),
        "series": series,
    }
    return tallies, plot


def _decision(summary: dict[str, Any], experiment: Experiment) -> dict[str, Any] | None:
    """The decision without its copy of the evidence; `recorded` False for a preview."""
    found = summary.get("decision")
    if not isinstance(found, dict):
        return None
    out = {k: v for k, v in found.items() if k != "evidence"}
    out["recorded"] = experiment.status != "running"
    return out


def _progress(experiment: Experiment, proof: dict[str, Any]) -> dict[str, Any]:
    """How far the experiment is towards its horizon, in the unit the stop rule counts."""
    if experiment.method == "interleave":
        pref = proof.get("preference") or {}
        done = int(pref.get("wins_control", 0)) + int(pref.get("wins_challenger", 0))
        unit = "decided queries"
    else:
        done, unit = int(proof["searches"]), "searches"
    limit = int(proof["horizon"])
    return {"done": done, "horizon": limit, "unit": unit, "share": min(1.0, done / limit)}


def _definition(experiment: Experiment) -> dict[str, Any]:
    """What the pages show of the definition: everything but the assignment salt (with it,
    anyone could work out which shoppers see the challenger)."""
    body = experiment.to_dict()
    body.pop("salt", None)
    return body


def _history(experiment: Experiment) -> list[dict[str, Any]]:
    out = []
    for d in experiment.decisions:
        proof = d.get("evidence") or {}
        sequential = proof.get("sequential") or {}
        out.append(
            {
                "action": d.get("action"),
                "reason": d.get("reason"),
                "message": d.get("message"),
                "at": d.get("at"),
                "searches": proof.get("searches"),
                "p_value": sequential.get("p_value"),
            }
        )
    return out


def overview(experiment: Experiment, summary: dict[str, Any]) -> dict[str, Any]:
    """One row of the list: the experiment, its arms, searches so far and its decision."""
    proof = summary["evidence"]
    return {
        "id": experiment.id,
        "method": experiment.method,
        "metric": experiment.metric,
        "status": experiment.status,
        "control": experiment.control,
        "challenger": experiment.challenger,
        "created_at": experiment.created_at,
        "started_at": experiment.started_at,
        "ended_at": experiment.ended_at,
        "searches": proof["searches"],
        "progress": _progress(experiment, proof),
        "p_value": (proof.get("sequential") or {}).get("p_value"),
        "decision": _decision(summary, experiment),
    }


def detail(
    experiment: Experiment,
    events: Iterable[Event],
    *,
    now: float,
    max_points: int = MAX_POINTS,
) -> dict[str, Any]:
    """One experiment as its page shows it, from one pass over `events`."""
    tallies, plot = replay(experiment, events, max_points=max_points)
    summary = summarise(experiment, tallies, now=now)
    proof = summary["evidence"]
    return {
        **overview(experiment, summary),
        "experiment": _definition(experiment),
        "evidence": proof,
        "horizon_rule": "max_searches" if experiment.max_searches else "mde",
        "decisions": _history(experiment),
        "plot": plot,
    }


def make_experiments_inspector_router(
    service: SearchService, *, clock: Callable[[], float] = time.time
) -> APIRouter:
    """The experiment pages and their JSON API for `service` (`clock`: the time a decision
    preview is taken at)."""
    router = APIRouter(prefix="/_shoprank/inspect")
    settings = service.settings

    def page(view: str, experiment_id: str = "") -> Response:
        text = (STATIC / "experiments.html").read_text(encoding="utf-8")
        text = text.replace("{{view}}", view).replace("{{id}}", html.escape(experiment_id))
        return Response(text, media_type="text/html; charset=utf-8")

    @router.get("/experiments")
    def experiments_page() -> Response:
        return page("list")

    @router.get("/experiments/assets/{name}")
    def asset(name: str) -> Response:
        if name not in ASSETS:
            return _error(DocumentNotFoundError(f"no experiments asset [{name}]"))
        return Response((STATIC / name).read_bytes(), media_type=ASSETS[name])

    @router.get("/experiments/{experiment_id}")
    def experiment_page(experiment_id: str) -> Response:
        return page("detail", experiment_id)

    @router.get("/api/experiments")
    def experiments() -> JSONResponse:
        try:
            found = experiment_store(settings).all()
            summaries = results(settings, found, clock=clock)
            rows = [overview(e, summaries[e.id]) for e in found]
        except Exception as exc:  # noqa: BLE001 - every failure answers in the ES error shape
            return _error(exc)
        return JSONResponse({"experiments": rows, "total": len(rows)})

    @router.get("/api/experiments/{experiment_id}")
    def experiment(experiment_id: str) -> JSONResponse:
        try:
            found = experiment_store(settings).get(experiment_id)
            body = detail(found, log_events(settings), now=clock())
        except Exception as exc:  # noqa: BLE001 - unknown ids answer 404, bad ones 400
            return _error(exc)
        return JSONResponse(body)

    return router


__all__ = ["detail", "make_experiments_inspector_router", "overview", "replay"]
