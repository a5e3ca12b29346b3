"""Experiment definitions and their store: validation, lifecycle, atomic files, the
cached running set a search worker reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shoprank.errors import es_error_body, http_status
from shoprank.experiments.decide import Decision
from shoprank.experiments.model import (
    Experiment,
    ExperimentConflictError,
    ExperimentError,
    ExperimentNotFoundError,
)
from shoprank.experiments.store import ExperimentStore, RunningAssigners


def _new(exp_id: str = "ranker-v2", **options: object) -> Experiment:
    base: dict[str, object] = {"control": {"ranker": "v1"}, "challenger": {"ranker": "v2"}}
    base.update(options)
    return Experiment.new(exp_id, now=1.0, **base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"split": 1.5}, "split must be strictly between 0 and 1, got 1.5"),
        ({"method": "bandit"}, "method must be one of ['ab', 'interleave'], got 'bandit'"),
        ({"metric": "dwell"}, "metric must be one of"),
        ({"challenger": {"ranker": "v1"}}, "the same configuration"),
        ({"control": {}}, "control must be a non-empty configuration dict"),
        ({"challenger": {"ranker": ["v2"]}}, "challenger['ranker'] = ['v2']"),
        ({"alpha": 0.6}, "useless test"),
        ({"guards": {"max_latency_ratio": 0.5}}, "guards.max_latency_ratio must be >= 1"),
        ({"guards": {"p99": 3}}, "unknown guard(s) ['p99']"),
    ],
)
def test_invalid_definitions_are_refused_with_the_value_and_the_fix(
    options: dict[str, object], message: str
) -> None:
    with pytest.raises(ExperimentError) as info:
        _new(**options)
    assert message in info.value.reason
    assert http_status(info.value) == 400


def test_bad_ids_are_refused() -> None:
    for bad in ("", "../x", "Upper", ".hidden", "a" * 65):
        with pytest.raises(ExperimentError, match="experiment id"):
            _new(bad)


def test_a_definition_round_trips_and_unknown_fields_are_errors() -> None:
    exp = _new(method="interleave", mde=0.05, guards={"min_searches": 50})
    assert Experiment.from_dict(json.loads(json.dumps(exp.to_dict()))) == exp
    assert len(exp.salt) == 32 and _new().salt != exp.salt  # each gets its own salt
    with pytest.raises(ExperimentError, match=r"unknown experiment field\(s\) \['arms'\]"):
        Experiment.from_dict({**exp.to_dict(), "arms": 2})


def test_lifecycle_create_start_decide(tmp_path: Path) -> None:
    store = ExperimentStore(tmp_path / "experiments")
    store.create(_new())
    assert [e.id for e in store.all()] == ["ranker-v2"] and store.running() == []
    started = store.start("ranker-v2", now=5.0)
    assert (started.status, started.started_at, started.revision) == ("running", 5.0, 1)
    assert store.record("ranker-v2", Decision("continue", "collecting", "", 6.0)).revision == 1
    evidence = {"sequential": {"p_value": 0.01}}
    done = store.record("ranker-v2", Decision("promote", "challenger_better", "won", 9.0, evidence))
    again = ExperimentStore(tmp_path / "experiments").get("ranker-v2")  # as another process
    assert again == done
    assert (again.status, again.ended_at, again.revision) == ("promoted", 9.0, 2)
    assert again.decisions[-1]["evidence"] == evidence
    with pytest.raises(ExperimentConflictError, match="is promoted already"):
        store.record("ranker-v2", Decision("rollback", "challenger_worse", "", 10.0))
    # Only the experiment files are left: no temporary file survives a write.
    assert sorted(p.name for p in (tmp_path / "experiments").iterdir()) == [
        ".lock",
        "ranker-v2.json",
    ]


def test_two_running_experiments_cannot_set_the_same_key(tmp_path: Path) -> None:
    store = ExperimentStore(tmp_path)
    store.create(_new("one"))
    store.create(_new("two", control={"ranker": "v1"}, challenger={"ranker": "v3"}))
    store.create(_new("modes", control={"mode": "hybrid"}, challenger={"mode": "full"}))
    store.start("one", now=1.0)
    with pytest.raises(ExperimentConflictError, match=r"\[one\] is running on \['ranker'\]"):
        store.start("two", now=2.0)
    store.start("modes", now=2.0)  # another setting: fine
    store.stop("one", now=3.0)
    assert store.start("two", now=4.0).status == "running"
    assert store.get("one").decisions[-1]["action"] == "stop"


def test_missing_duplicate_and_corrupt_experiments(tmp_path: Path) -> None:
    store = ExperimentStore(tmp_path)
    with pytest.raises(ExperimentNotFoundError) as info:
        store.get("nope")
    assert http_status(info.value) == 404
    assert es_error_body(info.value)["error"]["type"] == "resource_not_found_exception"
    store.create(_new())
    with pytest.raises(ExperimentConflictError, match="already exists"):
        store.create(_new())
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ExperimentError, match=r"\[broken\] is stored unreadably"):
        store.get("broken")
    store.delete("broken")
    with pytest.raises(ExperimentNotFoundError):
        store.delete("broken")


def test_running_assigners_follow_the_store_on_the_injected_clock(tmp_path: Path) -> None:
    store = ExperimentStore(tmp_path / "experiments")
    now = [0.0]
    running = RunningAssigners(store, clock=lambda: now[0], check_every_s=1.0)
    assert running.current() == ()
    store.create(_new())
    store.start("ranker-v2", now=0.0)
    assert running.current() == ()  # not looked again yet
    now[0] = 1.0
    (assigner,) = running.current()
    assert assigner.experiment_id == "ranker-v2"
    store.stop("ranker-v2", now=1.0)
    now[0] = 2.0
    assert running.current() == ()
