"""An experiment's tallies from the behaviour log: the `search` events the pipeline logged
under the experiment, joined by `query_id` with the clicks, carts and purchases that cite
them.

A search event of an experiment carries (`Event.experiment`):

    {"id": "ranker-v7", "method": "interleave", "variant": "interleave",
     "runs": {"A": {"zero_results": false, "latency_ms": 8.1}, "B": {...}},
     "teams": {"p3": "A", "p9": "B", ...}}

(`variant` "A" / "B" and one run for an A/B search). Reading the log is one pass; nothing is
kept but the experiments' own searches and the engagement events that have a query id.

    tallies = read_tallies(events, [exp])     # {exp.id: Tallies}
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from shoprank.events.model import Event
from shoprank.experiments.model import Arm, Experiment, ExperimentError, arm_of
from shoprank.experiments.tally import KINDS, ArmRun, EventRecord, SearchRecord, Tallies

__all__ = ["experiment_field", "read_tallies", "search_of"]


def experiment_field(
    experiment: Experiment,
    variant: str,
    runs: Mapping[Arm, ArmRun],
    teams: Mapping[str, Arm] | None = None,
) -> dict[str, Any]:
    """The `experiment` field a search of `experiment` is logged with."""
    out: dict[str, Any] = {
        "id": experiment.id,
        "method": experiment.method,
        "variant": variant,
        "runs": {
            arm: {"zero_results": run.zero_results, "latency_ms": round(run.latency_ms, 3)}
            for arm, run in runs.items()
        },
    }
    if teams is not None:
        out["teams"] = dict(teams)
    return out


def search_of(event: Event) -> tuple[str, SearchRecord] | None:
    """(experiment id, the search as the tally reads it) of a logged search event; None
    for a search outside any experiment or one logged unreadably."""
    field = event.experiment
    if event.type != "search" or not isinstance(field, dict) or not event.query_id:
        return None
    try:
        runs = {
            arm_of(str(arm)): ArmRun(run["zero_results"] is True, float(run["latency_ms"]))
            for arm, run in dict(field.get("runs") or {}).items()
        }
        raw_teams = field.get("teams")
        teams = (
            {str(pid): arm_of(str(arm)) for pid, arm in dict(raw_teams).items()}
            if isinstance(raw_teams, dict)
            else None
        )
        variant = str(field["variant"])
        if variant not in ("A", "B", "interleave"):
            return None
        return str(field["id"]), SearchRecord(
            event.query_id,
            variant,  # type: ignore[arg-type]  # checked just above
            runs,
            teams,
            unit=event.user_id or event.session_id or None,
        )
    except (KeyError, TypeError, ValueError, ExperimentError):
        return None


def read_tallies(events: Iterable[Event], experiments: Sequence[Experiment]) -> dict[str, Tallies]:
    """Each experiment's tallies over `events` (a behaviour log, in any order)."""
    wanted = {e.id: e for e in experiments}
    searches: dict[str, tuple[str, SearchRecord]] = {}
    engaged: dict[str, list[EventRecord]] = defaultdict(list)
    for event in events:
        if event.type == "search":
            found = search_of(event)
            if found is not None and found[0] in wanted:
                searches[found[1].query_id] = found
        elif event.type in KINDS and event.query_id:
            engaged[event.query_id].append(
                EventRecord(event.query_id, event.type, event.product_id)
            )
    out = {e.id: Tallies.for_experiment(e) for e in experiments}
    for query_id, (experiment_id, search) in searches.items():
        tallies = out[experiment_id]
        try:
            tallies.add(search, engaged.get(query_id, ()))
        except ExperimentError:
            continue  # a search logged under another method (an id reused): not counted
    return out
