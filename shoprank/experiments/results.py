"""The experiments of one data directory with their results so far: what the API, the CLI,
the inspector and the scheduler read.

    store = experiment_store(settings)
    report = results(settings, store.all())     # {id: {"evidence": …, "decision": …}}

`results` reads the behaviour log once for all the experiments given (a full pass over the
log: cheap for days of traffic, but not free for months of it — the scheduler reads it once
per look, the API once per request).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from shoprank.events.model import Event
from shoprank.experiments.decide import decide, evidence
from shoprank.experiments.logs import read_tallies
from shoprank.experiments.model import Experiment
from shoprank.experiments.store import ExperimentStore
from shoprank.experiments.tally import Tallies
from shoprank.settings import Settings


def experiment_store(settings: Settings) -> ExperimentStore:
    """The experiments of `settings.data_dir` (`data_dir/experiments/*.json`)."""
    return ExperimentStore(settings.data_dir / "experiments")


def log_events(settings: Settings) -> Iterable[Event]:
    """Every event of the behaviour log, oldest first."""
    from shoprank.events.service import EventService

    return (event for _, event in EventService(settings).log.read())


def summarise(experiment: Experiment, tallies: Tallies, *, now: float) -> dict[str, Any]:
    """The evidence so far and, for a running experiment, the decision a look now would take
    (a preview: only the scheduler records decisions)."""
    out: dict[str, Any] = {"evidence": evidence(experiment, tallies)}
    if experiment.status == "running":
        out["decision"] = decide(experiment, tallies, now=now).to_dict()
    else:
        out["decision"] = experiment.decisions[-1] if experiment.decisions else None
    return out


def results(
    settings: Settings,
    experiments: Sequence[Experiment],
    *,
    events: Iterable[Event] | None = None,
    clock: Callable[[], float] = time.time,
) -> dict[str, dict[str, Any]]:
    """Each experiment's `summarise`, from one pass over the log (or `events`)."""
    if not experiments:
        return {}
    tallies = read_tallies(log_events(settings) if events is None else events, experiments)
    now = clock()
    return {e.id: summarise(e, tallies[e.id], now=now) for e in experiments}
