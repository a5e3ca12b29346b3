"""`/_shoprank/experiments`: online experiments between two search configurations (admin
scope, reads included: the results are business data).

    GET    /_shoprank/experiments                every experiment with its results
    POST   /_shoprank/experiments                create a draft (`"start": true` starts it)
    GET    /_shoprank/experiments/{id}           one experiment with its results
    POST   /_shoprank/experiments/{id}/_start    draft -> running
    POST   /_shoprank/experiments/{id}/_stop     end it without a verdict ({"reason": …})
    DELETE /_shoprank/experiments/{id}           forget a draft or finished experiment

The operations are plain functions over the data directory (`create`, `listing`, `show`,
…), which `shoprank experiments ...` calls too; the routes run them on a worker thread,
since they read experiment files and the behaviour log.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request

from shoprank.errors import ShoprankError
from shoprank.experiments.model import (
    Experiment,
    ExperimentConflictError,
    ExperimentError,
    ExperimentNotFoundError,
    check_id,
)
from shoprank.experiments.results import experiment_store, results
from shoprank.experiments.store import ExperimentStore
from shoprank.plugin.routes.common import (
    AcceptDep,
    ESResponse,
    SettingsDep,
    check_params,
    error_response,
    json_body,
    respond,
)
from shoprank.rerankers.ltr import ranker_dir
from shoprank.rerankers.ltr.registry import ModelRegistry
from shoprank.rerankers.ltr.scorers import DEFAULT_VERSION
from shoprank.settings import Settings

__all__ = ["create", "delete", "listing", "router", "show", "start", "stop"]

Clock = Callable[[], float]
BASE = "/_shoprank/experiments"
# Rankers every data directory has: whatever is live, and the cold-start scorer.
BUILTIN_RANKERS = frozenset({"live", DEFAULT_VERSION})
MAX_REASON_CHARS = 500
_NUMBER = "a finite number"
# What a create body may hold, and what each field takes (for the messages).
FIELDS: dict[str, str] = {
    "id": "a string",
    "control": "an object",
    "challenger": "an object",
    "method": "a string",
    "metric": "a string",
    "split": _NUMBER,
    "traffic": _NUMBER,
    "mde": _NUMBER,
    "alpha": _NUMBER,
    "power": _NUMBER,
    "max_searches": "an integer",
    "guards": "an object",
    "start": "true or false",
}
GUARD_FIELDS: dict[str, str] = {
    "max_zero_result_increase": _NUMBER,
    "max_latency_ratio": _NUMBER,
    "min_searches": "an integer",
}
REQUIRED = ("id", "control", "challenger")

router = APIRouter(tags=["experiments"])


# -- operations (the API and the CLI) -----------------------------------------------------


def _store(settings: Settings) -> ExperimentStore:
    return experiment_store(settings)


def _takes(value: object, kind: str) -> bool:
    if kind == _NUMBER:
        return (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        )
    if kind == "an integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "a string":
        return isinstance(value, str)
    if kind == "an object":
        return isinstance(value, dict)
    return isinstance(value, bool)


def _check_types(body: dict[str, Any], fields: dict[str, str], where: str) -> None:
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise ExperimentError(
            f"unknown {where} field(s) {unknown}; {where} fields are: {sorted(fields)}"
        )
    for name, value in body.items():
        if not _takes(value, fields[name]):
            raise ExperimentError(
                f"[{name}] must be {fields[name]}, got {value!r}"
                if where == "experiment"
                else f"[{where}.{name}] must be {fields[name]}, got {value!r}"
            )


def parse_body(body: dict[str, Any] | None, *, now: float) -> tuple[Experiment, bool]:
    """A new draft from a create body, and whether the body asked to start it."""
    if not body:
        raise ExperimentError(
            'a request body is required, e.g. {"id": "ranker-v7", "control": {"ranker": '
            '"live"}, "challenger": {"ranker": "v7"}}'
        )
    _check_types(body, FIELDS, "experiment")
    missing = [name for name in REQUIRED if name not in body]
    if missing:
        raise ExperimentError(
            f"missing field(s) {missing}; an experiment needs an id, a control and a "
            'challenger, e.g. {"id": "ranker-v7", "control": {"ranker": "live"}, '
            '"challenger": {"ranker": "v7"}}'
        )
    if "guards" in body:
        _check_types(body["guards"], GUARD_FIELDS, "guards")
    options = {k: v for k, v in body.items() if k not in (*REQUIRED, "start")}
    experiment = Experiment.new(
        body["id"], control=body["control"], challenger=body["challenger"], now=now, **options
    )
    return experiment, bool(body.get("start", False))


def check_rankers(settings: Settings, experiment: Experiment) -> None:
    """Refuse an arm whose `ranker` is not in the model registry (`live` and the
    cold-start `default-v1` always are)."""
    registry = ModelRegistry(ranker_dir(settings))
    for name, config in (("control", experiment.control), ("challenger", experiment.challenger)):
        version = config.get("ranker")
        if not isinstance(version, str) or version in BUILTIN_RANKERS:
            continue
        if "/" in version or "\\" in version or version.startswith("."):
            raise ExperimentError(f"{name}['ranker'] = {version!r} is not a version name")
        try:
            registry.meta(version)
        except ShoprankError as exc:
            raise ExperimentError(
                f"{name}['ranker'] = {version!r}: {exc.reason}; use one of those, \"live\" "
                'or "default-v1" (`shoprank models list` shows them, `shoprank train '
                "ranker` makes one)"
            ) from None


def with_results(
    settings: Settings, experiments: list[Experiment], *, clock: Clock
) -> list[dict[str, Any]]:
    """Each experiment's definition with its `results` (one pass over the behaviour log)."""
    found = results(settings, experiments, clock=clock)
    return [{**e.to_dict(), "results": found[e.id]} for e in experiments]


def listing(settings: Settings, *, clock: Clock = time.time) -> dict[str, Any]:
    """Every readable experiment with its results; damaged files are named under
    `unreadable` (delete them) instead of failing the whole list."""
    store = _store(settings)
    out: dict[str, Any] = {"experiments": with_results(settings, store.all(), clock=clock)}
    damaged = store.damaged()
    if damaged:
        out["unreadable"] = damaged
    return out


def show(settings: Settings, experiment_id: str, *, clock: Clock = time.time) -> dict[str, Any]:
    return with_results(settings, [_store(settings).get(experiment_id)], clock=clock)[0]


def create(
    settings: Settings, body: dict[str, Any] | None, *, clock: Clock = time.time
) -> dict[str, Any]:
    """Create the draft a body describes; started too when it says `"start": true` (and
    not created at all when it cannot start)."""
    experiment, start_it = parse_body(body, now=clock())
    check_rankers(settings, experiment)
    store = _store(settings)
    store.create(experiment)
    if not start_it:
        return experiment.to_dict()
    try:
        started = store.start(experiment.id, now=clock())
    except ShoprankError:
        store.delete(experiment.id)
        raise
    return started.to_dict()


def start(settings: Settings, experiment_id: str, *, clock: Clock = time.time) -> dict[str, Any]:
    store = _store(settings)
    check_rankers(settings, store.get(experiment_id))
    started = store.start(experiment_id, now=clock())
    return started.to_dict()


def stop(
    settings: Settings,
    experiment_id: str,
    *,
    reason: str | None = None,
    clock: Clock = time.time,
) -> dict[str, Any]:
    why = (reason or "").strip() or "stopped by an operator"
    if len(why) > MAX_REASON_CHARS:
        raise ExperimentError(
            f"[reason] is {len(why)} characters; keep it under {MAX_REASON_CHARS}"
        )
    stopped = _store(settings).stop(experiment_id, now=clock(), why=why)
    return stopped.to_dict()


def delete(settings: Settings, experiment_id: str) -> dict[str, Any]:
    """Forget an experiment; a running one must be stopped first (its searches would keep
    being assigned meanwhile)."""
    store = _store(settings)
    try:
        running = store.get(experiment_id).status == "running"
    except ExperimentNotFoundError:
        raise
    except ExperimentError:
        check_id(experiment_id)
        running = False  # stored unreadably: deleting it is the fix the error names
    if running:
        raise ExperimentConflictError(
            f"experiment [{experiment_id}] is running; stop it first "
            f"(POST {BASE}/{experiment_id}/_stop or `shoprank experiments stop "
            f"{experiment_id}`)"
        )
    store.delete(experiment_id, refuse_running=True)  # and again under the store's lock
    return {"acknowledged": True, "id": experiment_id}


# -- routes -----------------------------------------------------------------------------------


def _stop_reason(body: dict[str, Any] | None) -> str | None:
    if not body:
        return None
    unknown = sorted(set(body) - {"reason"})
    if unknown:
        raise ExperimentError(f"unknown _stop field(s) {unknown}; _stop takes only [reason]")
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise ExperimentError(f"[reason] must be a string, got {reason!r}")
    return reason


@router.get(BASE)
async def list_experiments(
    request: Request, settings: SettingsDep, accept: AcceptDep
) -> ESResponse:
    """Every experiment, oldest first, each with its `results`."""
    try:
        check_params(request, set())
    except ShoprankError as exc:
        return error_response(exc, accept)
    return await respond(lambda: listing(settings), accept)


@router.post(BASE)
async def create_experiment(
    request: Request, settings: SettingsDep, accept: AcceptDep
) -> ESResponse:
    """Create a draft experiment (201); `"start": true` starts it at once."""
    try:
        check_params(request, set())
        body = await json_body(request)
    except ShoprankError as exc:
        return error_response(exc, accept)
    return await respond(lambda: create(settings, body), accept, 201)


@router.get(BASE + "/{experiment_id}")
async def get_experiment(
    experiment_id: str, request: Request, settings: SettingsDep, accept: AcceptDep
) -> ESResponse:
    """One experiment with its `results`: per-arm rates with intervals, the interleaving
    preference or the difference of rates, the horizon and the decision a look now takes."""
    try:
        check_params(request, set())
        check_id(experiment_id)
    except ShoprankError as exc:
        return error_response(exc, accept)
    return await respond(lambda: show(settings, experiment_id), accept)


@router.post(BASE + "/{experiment_id}/_start")
async def start_experiment(
    experiment_id: str, request: Request, settings: SettingsDep, accept: AcceptDep
) -> ESResponse:
    try:
        check_params(request, set())
        if await json_body(request):
            raise ExperimentError("_start takes no request body")
    except ShoprankError as exc:
        return error_response(exc, accept)
    return await respond(lambda: start(settings, experiment_id), accept)


@router.post(BASE + "/{experiment_id}/_stop")
async def stop_experiment(
    experiment_id: str, request: Request, settings: SettingsDep, accept: AcceptDep
) -> ESResponse:
    try:
        check_params(request, set())
        reason = _stop_reason(await json_body(request))
    except ShoprankError as exc:
        return error_response(exc, accept)
    return await respond(lambda: stop(settings, experiment_id, reason=reason), accept)


@router.delete(BASE + "/{experiment_id}")
async def delete_experiment(
    experiment_id: str, request: Request, settings: SettingsDep, accept: AcceptDep
) -> ESResponse:
    try:
        check_params(request, set())
    except ShoprankError as exc:
        return error_response(exc, accept)
    return await respond(lambda: delete(settings, experiment_id), accept)
