"""The experiments' part of a scheduled training cycle (`shoprank.scheduled`).

- `look`: every running experiment is tallied from the behaviour log (one pass) and
  decided (`decide`); a promote or rollback is recorded on the experiment with its
  evidence, and a ranker challenger is then promoted to live in the model registry, or
  rolled back (its candidacy ends, kept under `rejected` with the evidence). The registry
  entry names the experiment and says why, so `shoprank models list` shows why a version
  is live.
- `propose_experiment`: a ranker candidate that passed the offline gate starts an
  experiment against the live model (`SHOPRANK_EXPERIMENT_METHOD`, interleaving by
  default) and becomes the registry's challenger, never live by itself.

    decisions = look(settings, clock=time.time)   # [{"experiment", "action", …}, …]
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from shoprank.events.model import Event
from shoprank.experiments.decide import Decision, decide
from shoprank.experiments.logs import read_tallies
from shoprank.experiments.model import Experiment, ExperimentConflictError
from shoprank.experiments.results import experiment_store, log_events
from shoprank.settings import Settings

log = logging.getLogger("shoprank.experiments")
Clock = Callable[[], float]


def ranker_arm(experiment: Experiment) -> str | None:
    """The challenger's ranker version when the experiment tries one ranker against the
    live model (nothing else differs); None otherwise."""
    version = experiment.challenger.get("ranker")
    if set(experiment.challenger) != {"ranker"} or not isinstance(version, str):
        return None
    return None if version == "live" else version


def running_ranker_experiment(settings: Settings) -> Experiment | None:
    for exp in experiment_store(settings).running():
        if "ranker" in exp.challenger or "ranker" in exp.control:
            return exp
    return None


def _registry(settings: Settings) -> Any:
    from shoprank.rerankers.ltr import ranker_dir
    from shoprank.rerankers.ltr.registry import ModelRegistry

    return ModelRegistry(ranker_dir(settings))


def apply(settings: Settings, experiment: Experiment, decision: Decision) -> str | None:
    """Carry a recorded decision over to the model registry; returns what changed."""
    version = ranker_arm(experiment)
    if version is None:
        return None  # a mode / fusion experiment: its result is for a person to apply
    registry = _registry(settings)
    evidence = {
        "summary": f"experiment {experiment.id}: {decision.message}",
        "experiment": experiment.id,
        "decision": decision.to_dict(),
    }
    if decision.action == "promote":
        registry.promote(version, reason="experiment", evidence=evidence)
        return f"{version} is live"
    registry.reject(version, reason=decision.reason, evidence=evidence)
    return f"{version} rolled back; {registry.live() or 'default-v1'} stays live"


def look(
    settings: Settings, *, clock: Clock = time.time, events: Iterable[Event] | None = None
) -> list[dict[str, Any]]:
    """Decide every running experiment on its tallies so far; record and apply the
    decisions that end one. Returns one entry per running experiment."""
    store = experiment_store(settings)
    running = store.running()
    if not running:
        return []
    tallies = read_tallies(log_events(settings) if events is None else events, running)
    out: list[dict[str, Any]] = []
    for exp in running:
        decision = decide(exp, tallies[exp.id], now=clock())
        entry: dict[str, Any] = {
            "experiment": exp.id,
            "action": decision.action,
            "reason": decision.reason,
            "message": decision.message,
        }
        if decision.action != "continue":
            try:
                store.record(exp.id, decision)
            except ExperimentConflictError as exc:  # stopped meanwhile by a person
                entry["skipped"] = exc.reason
                out.append(entry)
                continue
            entry["applied"] = apply(settings, exp, decision)
            log.info("experiment %s: %s (%s)", exp.id, decision.action, decision.message)
        out.append(entry)
    return out


def propose_experiment(settings: Settings, *, clock: Clock = time.time) -> Any:
    """The `propose` of a scheduled cycle: start an experiment of the candidate against the
    live model and make it the registry's challenger (`experiment_method` "off": only the
    challenger is recorded)."""

    def propose(version: str, evidence: dict[str, Any]) -> dict[str, Any]:
        registry = _registry(settings)
        if settings.experiment_method == "off":
            registry.set_challenger(version, evidence)
            return {"challenger": version, "experiment": None}
        live = registry.live() or "default-v1"
        store = experiment_store(settings)
        exp_id = re.sub(r"[^a-z0-9_.-]", "-", f"exp-{version}".lower())[:64]
        exp = Experiment.new(
            exp_id,
            control={"ranker": live},
            challenger={"ranker": version},
            method=settings.experiment_method,
            mde=settings.experiment_mde,
            max_searches=settings.experiment_max_searches,
            now=clock(),
        )
        store.create(exp)
        store.start(exp_id, now=clock())
        registry.set_challenger(version, evidence, experiment=exp_id)
        return {"challenger": version, "experiment": exp_id, "control": live}

    return propose
