"""Scheduled training cycles: retention on the schedule, a candidate trained only on enough
fresh labelled searches, gated, and proposed as a challenger (never straight to live)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from shoprank.events.model import Event
from shoprank.events.service import EventService
from shoprank.experiments.store import ExperimentStore
from shoprank.rerankers.ltr import ranker_dir
from shoprank.rerankers.ltr.dataset import Dataset
from shoprank.rerankers.ltr.registry import ModelRegistry
from shoprank.scheduled import (
    CycleBusyError,
    InProcessScheduler,
    TrainingCycle,
    cycle_lock,
    read_state,
)
from shoprank.settings import Settings
from tests.unit.test_ranker_training import simulated_logs

DAY = 86_400.0


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def settings_for(tmp_path: Path, **kw: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path,
        "retrain_min_new_searches": 100,
        "ranker_min_searches": 50,
        "retrain_intent": False,
    }
    values.update(kw)
    return Settings(**values)


class Logs:
    """A growing log of labelled searches (what `load_dataset` reads from the event log)."""

    def __init__(self) -> None:
        self.data, _ = simulated_logs(600, seed=1)
        self.visible = 0

    def __call__(self) -> Dataset:
        return Dataset(self.data.searches[: self.visible])


def test_a_cycle_trains_only_on_enough_new_searches_and_proposes_a_challenger(
    tmp_path: Path,
) -> None:
    settings = settings_for(tmp_path)
    logs, clock = Logs(), Clock(1_000.0)
    cycle = TrainingCycle(settings, clock=clock, load_dataset=logs)
    registry = ModelRegistry(ranker_dir(settings))

    logs.visible = 60
    first = cycle.run(trigger="schedule")
    assert first.ranker is None
    assert "60 new labelled searches" in first.skipped["ranker"]

    logs.visible = 600
    clock.t += DAY
    second = cycle.run(trigger="schedule")
    assert second.ranker is not None and second.ranker["passed"], second.ranker
    version = second.ranker["version"]
    # Offline gate passed, yet nothing goes live: it waits as the challenger.
    assert registry.live() is None
    challenger = registry.challenger()
    assert challenger is not None and challenger["version"] == version
    assert "pass" in challenger["evidence"]["gate"]
    # ... and an online experiment against the live (cold-start) scorer tries it.
    proposed = second.ranker["proposed"]
    experiment = ExperimentStore(tmp_path / "experiments").get(proposed["experiment"])
    assert experiment.status == "running" and experiment.method == "interleave"
    assert experiment.control == {"ranker": "default-v1"}
    assert experiment.challenger == {"ranker": version}
    assert challenger["experiment"] == experiment.id

    clock.t += DAY
    third = cycle.run(trigger="schedule")
    # No traffic yet: the experiment keeps collecting, and no second candidate competes.
    assert third.experiments is not None and third.experiments[0]["action"] == "continue"
    assert third.ranker is None and "still deciding" in third.skipped["ranker"]
    runs = read_state(settings)["runs"]
    assert [r["trigger"] for r in runs] == ["schedule"] * 3
    assert [r["at"] for r in runs] == [1_000.0, 1_000.0 + DAY, 1_000.0 + 2 * DAY]


def test_without_experiments_the_candidate_only_waits_as_challenger(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, experiment_method="off")
    logs, clock = Logs(), Clock(1_000.0)
    logs.visible = 600
    cycle = TrainingCycle(settings, clock=clock, load_dataset=logs)
    report = cycle.run()
    assert report.ranker is not None and report.ranker["proposed"]["experiment"] is None
    assert ExperimentStore(tmp_path / "experiments").all() == []
    clock.t += DAY
    again = cycle.run()
    assert again.ranker is None and "0 new labelled searches" in again.skipped["ranker"]


def test_a_candidate_that_fails_the_gate_is_not_proposed(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, ranker_gate_margin=10.0)  # nothing can win by 10
    logs = Logs()
    logs.visible = 600
    proposals: list[str] = []

    def propose(version: str, evidence: dict[str, Any]) -> dict[str, Any]:
        proposals.append(version)
        return {}

    report = TrainingCycle(settings, load_dataset=logs, propose=propose).run()
    assert report.ranker is not None and not report.ranker["passed"]
    assert proposals == []
    assert ModelRegistry(ranker_dir(settings)).challenger() is None


def test_retention_runs_on_the_schedule(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, retention_days=30.0)
    now = 100 * DAY
    service = EventService(settings)
    u1, u2 = (service.pseudonyms.subject(user_id=u) for u in ("u1", "u2"))
    old = Event(type="view", timestamp=now - 40 * DAY, event_id="e1", user_id=u1, product_id="a")
    fresh = Event(type="view", timestamp=now - DAY, event_id="e2", user_id=u2, product_id="b")
    service.log.append([old, fresh])  # as ingest stores them: pseudonymised
    service.fold(now=now, retention=False)
    assert service.reads.profile("u1", now=now) is not None

    report = TrainingCycle(settings, clock=Clock(now), load_dataset=lambda: Dataset([])).run()
    assert report.retention == {"events_deleted": 1, "profiles_deleted": 1}
    assert service.reads.profile("u1", now=now) is None
    assert service.reads.profile("u2", now=now) is not None


def test_one_cycle_at_a_time(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    with cycle_lock(settings), pytest.raises(CycleBusyError):
        TrainingCycle(settings, load_dataset=Logs()).run()


def test_the_in_process_schedule_waits_one_interval_and_never_overlaps(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, retrain_interval_s=3600)
    clock = Clock(10_000.0)
    launched: list[list[str]] = []

    class Child:
        def __init__(self) -> None:
            self.done = False

        def poll(self) -> int | None:
            return 0 if self.done else None

    children: list[Child] = []

    def launch(argv: list[str]) -> Child:
        launched.append(argv)
        children.append(Child())
        return children[-1]

    scheduler = InProcessScheduler(settings, clock=clock, launch=launch)
    assert not scheduler.tick()  # a new server waits one interval first
    clock.t += 3600
    assert scheduler.tick()
    assert launched[0][-4:] == ["schedule", "run", "--trigger", "schedule"]
    clock.t += 7200
    assert not scheduler.tick()  # its child is still running
    children[0].done = True
    assert scheduler.tick()  # no cycle was recorded, so one is still due
    assert len(launched) == 2


def test_the_launched_command_runs_a_cycle(tmp_path: Path) -> None:
    """The child the serving process starts is the real CLI: it records its cycle."""
    settings = settings_for(tmp_path, retrain_interval_s=1)
    clock = Clock(0.0)
    scheduler = InProcessScheduler(
        settings, clock=clock, launch=lambda argv: subprocess.run(argv, check=True)
    )
    clock.t = 5.0
    env_before = read_state(settings)["runs"]
    assert env_before == []
    assert scheduler.tick()
    runs = read_state(settings)["runs"]
    assert len(runs) == 1 and runs[0]["trigger"] == "schedule"
    assert "ranker" in runs[0]["skipped"]


def test_schedule_cli_and_models_list_show_the_challenger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shoprank.cli import main
    from shoprank.settings import get_settings

    settings = settings_for(tmp_path)
    logs = Logs()
    logs.visible = 600
    report = TrainingCycle(settings, load_dataset=logs).run()
    assert report.ranker is not None
    monkeypatch.setenv("SHOPRANK_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        listed = runner.invoke(main, ["models", "list"])
        assert listed.exit_code == 0, listed.output
        assert f"c {report.ranker['version']}" in listed.output
        assert "challenger (c)" in listed.output and "in experiment exp-ranker-" in listed.output
        assert "live: default-v1 (never promoted" in listed.output
        status = runner.invoke(main, ["schedule", "status", "--json"])
        assert status.exit_code == 0, status.output
        assert json.loads(status.output)["runs"][0]["ranker"]["version"] == report.ranker["version"]
    finally:
        get_settings.cache_clear()


def test_beat_schedule_follows_the_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    from shoprank.settings import get_settings
    from shoprank.workers.scheduled import TASK, beat_schedule

    monkeypatch.setenv("SHOPRANK_RETRAIN_INTERVAL_S", "900")
    get_settings.cache_clear()
    try:
        entry = beat_schedule()["shoprank-training-cycle"]
        assert entry == {"task": TASK, "schedule": 900.0}
        monkeypatch.setenv("SHOPRANK_RETRAIN_INTERVAL_S", "0")
        get_settings.cache_clear()
        assert beat_schedule() == {}
    finally:
        get_settings.cache_clear()
