"""Scheduled training: retrain on fresh logs, gate the candidate, propose it as a challenger;
retention on the same schedule.

One *cycle* (`TrainingCycle.run`) does, in order:

1. retention: events and profiles past `SHOPRANK_RETENTION_DAYS` are deleted (it no longer
   waits for the next fold);
2. experiments: every running online experiment is tallied from the logs and decided; a
   ranker challenger that won is promoted to live, one that lost (or tripped a guard, or
   stayed inconclusive to its horizon) is rolled back (`shoprank.experiments.cycle`);
3. the ranker: when at least `SHOPRANK_RETRAIN_MIN_NEW_SEARCHES` labelled searches arrived
   since the last training (and no ranker experiment is still deciding), a candidate is
   trained on the fresh logs and gated offline against the live model. A candidate that
   passes is never promoted straight to live: it is handed to `propose`, which starts an
   online experiment against the live model (`SHOPRANK_EXPERIMENT_METHOD`; `off` only
   records it as the registry's challenger);
4. the intent model, retrained from the index and the new query → click pairs when one is
   already trained for the index (a catalog without categories has none).

Who runs cycles: `shoprank serve` itself when no Redis is configured (a thread per serving
process wakes every `SHOPRANK_RETRAIN_INTERVAL_S`; a file lock lets one process run the
cycle, in a niced child process so training never competes with searches for the event
loop, and the serving process imports no training library); with Redis, Celery beat sends
`shoprank.training_cycle` to a worker (`shoprank worker --beat`). `shoprank schedule run`
runs one cycle now. Every cycle's outcome is appended to `data_dir/models/schedule.json`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from shoprank.settings import Settings

log = logging.getLogger("shoprank.schedule")
KEEP_RUNS = 50
SCHEDULE_LOCK = "shoprank:schedule:lock"

Clock = Callable[[], float]
Propose = Callable[[str, dict[str, Any]], dict[str, Any]]


@dataclass
class CycleReport:
    """What one cycle did; `skipped` says why a step did nothing."""

    at: float
    trigger: str
    retention: dict[str, int] | None = None
    experiments: list[dict[str, Any]] | None = None
    ranker: dict[str, Any] | None = None
    intent: dict[str, Any] | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def state_path(settings: Settings) -> Path:
    return settings.data_dir / "models" / "schedule.json"


def read_state(settings: Settings) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(state_path(settings).read_text())
    except (FileNotFoundError, ValueError):
        data = {}
    data.setdefault("runs", [])
    data.setdefault("ranker_searches", 0)
    return data


def _write_state(settings: Settings, state: dict[str, Any]) -> None:
    path = state_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, path)


def due(settings: Settings, now: float, *, since: float) -> bool:
    """Whether a scheduled cycle is due: the interval passed since the last cycle (or,
    before the first, since `since`: a new server waits one interval before training)."""
    if settings.retrain_interval_s <= 0:
        return False
    runs = read_state(settings)["runs"]
    last = float(runs[-1]["at"]) if runs else since
    return now - last >= settings.retrain_interval_s


class CycleBusyError(RuntimeError):
    """Another process is running a cycle on this data directory."""


@contextlib.contextmanager
def cycle_lock(settings: Settings) -> Iterator[None]:
    """Held while a cycle runs: a file lock in the data directory, and with Redis also a
    Redis lock, so two workers (or hosts) never train at once. Raises `CycleBusyError`."""
    path = settings.data_dir / "run" / "schedule.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CycleBusyError("a training cycle is already running here") from None
        try:
            if not settings.redis_url:
                yield
                return
            from shoprank.events.stores import redis_client

            lock = redis_client(settings.redis_url).lock(SCHEDULE_LOCK, timeout=6 * 3600)
            if not lock.acquire(blocking=False):
                raise CycleBusyError("a training cycle is already running on another host")
            try:
                yield
            finally:
                with contextlib.suppress(Exception):
                    lock.release()
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def record_challenger(settings: Settings) -> Propose:
    """Without an experiment to run: the candidate is recorded as the registry's
    challenger (`shoprank models list` shows it), and stays off the live path."""

    def propose(version: str, evidence: dict[str, Any]) -> dict[str, Any]:
        from shoprank.rerankers.ltr import ranker_dir
        from shoprank.rerankers.ltr.registry import ModelRegistry

        ModelRegistry(ranker_dir(settings)).set_challenger(version, evidence)
        return {"challenger": version, "experiment": None}

    return propose


class TrainingCycle:
    """One data directory's scheduled training. Everything outside comes in: the clock,
    the labelled-search loader, the intent trainer and `propose` (what happens to a
    candidate that passes the gate)."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = time.time,
        load_dataset: Callable[[], Any] | None = None,
        train_intent: Callable[[], dict[str, Any]] | None = None,
        propose: Propose | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._load = load_dataset
        self._train_intent = train_intent
        if propose is None:
            from shoprank.experiments.cycle import propose_experiment

            propose = propose_experiment(settings, clock=clock)
        self.propose = propose

    def run(self, *, trigger: str = "manual", force: bool = False) -> CycleReport:
        """Run one cycle now under the cycle lock (raises `CycleBusyError` when another
        is running). `force`: train even with fewer new searches than the threshold."""
        with cycle_lock(self.settings):
            report = CycleReport(at=self.clock(), trigger=trigger)
            state = read_state(self.settings)
            self._retention(report)
            self._experiments(report)
            fresh = self._ranker(report, state, force=force)
            self._intent(report, state, fresh=fresh)
            state["runs"] = [*state["runs"], report.as_dict()][-KEEP_RUNS:]
            _write_state(self.settings, state)
            return report

    def _retention(self, report: CycleReport) -> None:
        from shoprank.events.service import EventService

        try:
            report.retention = EventService(self.settings).enforce_retention(now=report.at)
        except Exception as exc:  # noqa: BLE001 - one failed step never stops the others
            log.warning("scheduled retention failed", exc_info=True)
            report.errors["retention"] = f"{type(exc).__name__}: {exc}"

    def _experiments(self, report: CycleReport) -> None:
        from shoprank.experiments.cycle import look

        try:
            report.experiments = look(self.settings, clock=self.clock)
        except Exception as exc:  # noqa: BLE001
            log.warning("scheduled experiment decisions failed", exc_info=True)
            report.errors["experiments"] = f"{type(exc).__name__}: {exc}"

    def _dataset(self) -> Any:
        if self._load is not None:
            return self._load()
        from shoprank.cli_ranker import load_dataset

        return load_dataset(self.settings)

    def _ranker(self, report: CycleReport, state: dict[str, Any], *, force: bool) -> bool:
        """Train and gate a candidate when enough new labelled searches arrived; returns
        whether they had (the intent model then learns from them too)."""
        from shoprank.errors import ShoprankError
        from shoprank.experiments.cycle import running_ranker_experiment
        from shoprank.rerankers.ltr import ranker_dir
        from shoprank.rerankers.ltr.registry import ModelRegistry
        from shoprank.rerankers.ltr.reranker import load_scorer
        from shoprank.rerankers.ltr.train import NotEnoughDataError, train_ranker

        settings = self.settings
        deciding = running_ranker_experiment(settings)
        if deciding is not None:
            report.skipped["ranker"] = (
                f"experiment [{deciding.id}] is still deciding on "
                f"{deciding.challenger.get('ranker', deciding.challenger)}"
            )
            return False
        try:
            data = self._dataset()
            new = len(data) - int(state.get("ranker_searches", 0))
            if new < settings.retrain_min_new_searches and not force:
                report.skipped["ranker"] = (
                    f"{max(new, 0)} new labelled searches since the last training; "
                    f"{settings.retrain_min_new_searches} needed "
                    "(SHOPRANK_RETRAIN_MIN_NEW_SEARCHES)"
                )
                return False
            registry = ModelRegistry(ranker_dir(settings))
            trained = train_ranker(
                data,
                registry=registry,
                live=load_scorer(registry),
                min_searches=settings.ranker_min_searches,
                gate_metric=settings.ranker_gate_metric,
                gate_margin=settings.ranker_gate_margin,
                min_gate_searches=settings.ranker_min_gate_searches,
                promote=False,
            )
        except NotEnoughDataError as exc:
            report.skipped["ranker"] = exc.reason
            return True
        except (ShoprankError, OSError, ValueError) as exc:
            log.warning("scheduled ranker training failed", exc_info=True)
            report.errors["ranker"] = f"{type(exc).__name__}: {exc}"
            return True
        state["ranker_searches"] = len(data)
        passed = trained.gate.endswith("pass")
        report.ranker = {
            "version": trained.version,
            "searches": trained.searches,
            "holdout_searches": trained.holdout_searches,
            "gate": trained.gate,
            "passed": passed,
        }
        if passed:
            evidence = {"gate": trained.gate, "metrics": trained.metrics, "at": report.at}
            report.ranker["proposed"] = self.propose(trained.version, evidence)
        return True

    def _intent(self, report: CycleReport, state: dict[str, Any], *, fresh: bool) -> None:
        settings = self.settings
        if not settings.retrain_intent:
            report.skipped["intent"] = "SHOPRANK_RETRAIN_INTENT is off"
            return
        if not fresh:
            report.skipped["intent"] = "no new labelled searches to learn queries from"
            return
        from shoprank.rerankers.intent.service import intent_dir

        meta = intent_dir(settings) / "metadata.json"
        if self._train_intent is None and not meta.exists():
            report.skipped["intent"] = "no intent model for this index (train one first)"
            return
        try:
            if self._train_intent is not None:
                trained = self._train_intent()
            else:
                from shoprank.cli_train import train_intent_with_progress

                trained = train_intent_with_progress(
                    settings, index=settings.product_index, enabled=False
                )
        except Exception as exc:  # noqa: BLE001
            log.warning("scheduled intent training failed", exc_info=True)
            report.errors["intent"] = f"{type(exc).__name__}: {exc}"
            return
        report.intent = {
            "version": trained.get("model_version"),
            "click_pairs": trained.get("click_pairs"),
        }
        state["intent_version"] = trained.get("model_version")


def run_cycle_command(settings: Settings, *, trigger: str) -> list[str]:
    """The command line of a cycle in a child process (`shoprank schedule run`)."""
    import sys

    return [
        sys.executable,
        "-c",
        "from shoprank.cli import main; main()",
        "--data-dir",
        str(settings.data_dir.resolve()),
        "schedule",
        "run",
        "--trigger",
        trigger,
    ]


class InProcessScheduler:
    """`shoprank serve`'s own schedule (no Redis): a daemon thread that checks every
    `poll_s` whether a cycle is due and, if so, runs it in a niced child process (training
    libraries stay out of the serving process, and searches keep the cores first). Several
    serving processes may each run one: the cycle lock lets one cycle run at a time and
    `due` is read from the shared state file."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = time.time,
        poll_s: float = 60.0,
        launch: Callable[[list[str]], Any] | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.poll_s = poll_s
        self.launch = launch or _launch_niced
        self._child: Any = None
        self._stop = False
        self.started = clock()

    def tick(self) -> bool:
        """Start a cycle if one is due and none is running from here; returns whether it
        started one."""
        child = self._child
        if child is not None and child.poll() is None:
            return False
        if not due(self.settings, self.clock(), since=self.started):
            return False
        with contextlib.suppress(CycleBusyError):
            with cycle_lock(self.settings):
                pass  # free now: the child takes it (a race only costs a skipped cycle)
            self._child = self.launch(run_cycle_command(self.settings, trigger="schedule"))
            return True
        return False

    def start(self) -> None:
        import threading

        if self.settings.retrain_interval_s <= 0:
            return
        threading.Thread(target=self._loop, name="shoprank-schedule", daemon=True).start()

    def stop(self) -> None:
        self._stop = True

    def _loop(self) -> None:
        while not self._stop:
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - the schedule never takes the server down
                log.warning("training schedule check failed", exc_info=True)
            time.sleep(self.poll_s)


def _launch_niced(argv: list[str]) -> Any:
    import subprocess

    return subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: os.nice(10),  # noqa: PLW1509 - no threads touched in the child
        start_new_session=True,
    )
