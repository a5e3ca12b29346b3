"""The scheduled look at running experiments: a ranker challenger that wins its
interleaving experiment goes live with the evidence, one that loses (or trips a guard) is
rolled back and the live model stays; `shoprank models list` says why. Logged searches and
clicks are written through the real behaviour log."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from shoprank.events.model import Event
from shoprank.events.service import EventService
from shoprank.experiments.cycle import look
from shoprank.experiments.logs import experiment_field
from shoprank.experiments.model import Arm, Experiment
from shoprank.experiments.store import ExperimentStore
from shoprank.experiments.tally import ArmRun
from shoprank.rerankers.ltr import ranker_dir
from shoprank.rerankers.ltr.registry import ModelRegistry
from shoprank.settings import Settings


def settings_for(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, user_id_secret="k" * 32)


def register(settings: Settings, version: str) -> ModelRegistry:
    registry = ModelRegistry(ranker_dir(settings))
    path = registry.path(version)
    path.mkdir(parents=True)
    (path / "meta.json").write_text(json.dumps({"version": version, "created": 1.0}))
    return registry


def start(settings: Settings, method: str = "interleave", **kw: Any) -> Experiment:
    store = ExperimentStore(settings.data_dir / "experiments")
    exp = Experiment.new(
        "exp-v2",
        control={"ranker": "default-v1"},
        challenger={"ranker": "v2"},
        method=method,  # type: ignore[arg-type]
        mde=0.1,
        now=0.0,
        **kw,
    )
    store.create(exp)
    return store.start(exp.id, now=0.0)


def traffic(
    settings: Settings,
    exp: Experiment,
    *,
    searches: int,
    p_click_b: float,
    zero_b: float = 0.0,
    seed: int = 7,
) -> tuple[int, int]:
    """Interleaved (or A/B) searches and clicks written to the behaviour log; returns the
    pages won by A and B as the test itself counts them."""
    rng = random.Random(seed)
    events: list[Event] = []
    wins = [0, 0]
    now = time.time()
    for n in range(searches):
        qid = f"q{n}"
        user = f"u{n % 50}"
        if exp.method == "interleave":
            teams: dict[str, Arm] = {f"p{n}-{i}": ("A" if i % 2 else "B") for i in range(4)}
            runs = {"A": ArmRun(False, 5.0), "B": ArmRun(False, 5.0)}
            field = experiment_field(exp, "interleave", runs, teams)
            arm: Arm = "B" if rng.random() < p_click_b else "A"
            clicked = next(p for p, a in teams.items() if a == arm)
            wins[arm == "B"] += 1
        else:
            arm = "B" if n % 2 else "A"
            zero = arm == "B" and rng.random() < zero_b
            field = experiment_field(exp, arm, {arm: ArmRun(zero, 5.0)})
            clicked = f"p{n}" if not zero and rng.random() < 0.3 else ""
        events.append(
            Event(
                type="search",
                timestamp=now,
                event_id=qid,
                user_id=user,
                query_id=qid,
                product_ids=tuple(field.get("teams", {"x": 1})),
                experiment=field,
            )
        )
        if clicked:
            events.append(
                Event(
                    type="click",
                    timestamp=now,
                    event_id=f"c{n}",
                    user_id=user,
                    query_id=qid,
                    product_id=clicked,
                )
            )
    EventService(settings).ingest(events)
    return wins[0], wins[1]


def test_a_winning_challenger_goes_live_with_its_evidence(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    registry = register(settings, "v2")
    exp = start(settings)
    registry.set_challenger("v2", {"gate": "pass"}, experiment=exp.id)
    assert look(settings, clock=lambda: 10.0)[0]["action"] == "continue"  # no traffic yet
    wins_a, wins_b = traffic(settings, exp, searches=400, p_click_b=0.7)
    assert wins_b > wins_a  # the precondition: shoppers prefer the challenger's picks

    decisions = look(settings, clock=lambda: 20.0)
    assert decisions[0]["action"] == "promote", decisions
    assert registry.live() == "v2"
    why = registry.why_live()
    assert why is not None and why["reason"] == "experiment"
    assert why["evidence"]["experiment"] == "exp-v2"
    assert why["evidence"]["decision"]["evidence"]["preference"]["wins_challenger"] == wins_b
    stored = ExperimentStore(tmp_path / "experiments").get("exp-v2")
    assert stored.status == "promoted" and stored.decisions[-1]["action"] == "promote"
    assert registry.challenger() is None
    assert look(settings, clock=lambda: 30.0) == []  # nothing left running

    from shoprank.cli import main

    listed = CliRunner().invoke(main, ["--data-dir", str(tmp_path), "models", "list"])
    assert listed.exit_code == 0, listed.output
    assert "live: v2 (experiment at" in listed.output and "exp-v2" in listed.output


def test_a_losing_challenger_is_rolled_back_and_the_live_model_stays(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    registry = register(settings, "v2")
    exp = start(settings)
    registry.set_challenger("v2", {"gate": "pass"}, experiment=exp.id)
    traffic(settings, exp, searches=400, p_click_b=0.3)
    decisions = look(settings, clock=lambda: 20.0)
    assert decisions[0]["action"] == "rollback" and decisions[0]["reason"] == "challenger_worse"
    assert registry.live() is None  # the cold-start scorer still serves
    assert registry.challenger() is None
    rejected = registry.rejected()
    assert [r["version"] for r in rejected] == ["v2"]
    assert rejected[0]["reason"] == "challenger_worse"
    assert ExperimentStore(tmp_path / "experiments").get("exp-v2").status == "rolled_back"

    from shoprank.cli import main

    listed = CliRunner().invoke(main, ["--data-dir", str(tmp_path), "models", "list"])
    assert "last rolled back: v2 (challenger_worse" in listed.output


def test_no_difference_keeps_collecting(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    register(settings, "v2")
    exp = start(settings)
    traffic(settings, exp, searches=60, p_click_b=0.5)
    assert look(settings, clock=lambda: 20.0)[0]["action"] == "continue"
    assert ExperimentStore(tmp_path / "experiments").get("exp-v2").status == "running"


def test_a_challenger_with_empty_pages_is_rolled_back_by_the_guard(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    registry = register(settings, "v2")
    exp = start(settings, method="ab", guards={"min_searches": 100})
    registry.set_challenger("v2", {"gate": "pass"}, experiment=exp.id)
    traffic(settings, exp, searches=600, p_click_b=0.0, zero_b=0.2)
    decisions = look(settings, clock=lambda: 20.0)
    assert decisions[0]["action"] == "rollback"
    assert decisions[0]["reason"] == "guard_zero_results"
    assert registry.live() is None and registry.rejected()[0]["reason"] == "guard_zero_results"


def test_a_scheduled_cycle_decides_and_schedule_status_says_so(tmp_path: Path) -> None:
    from shoprank.scheduled import TrainingCycle

    settings = Settings(data_dir=tmp_path, user_id_secret="k" * 32, retrain_intent=False)
    registry = register(settings, "v2")
    exp = start(settings)
    registry.set_challenger("v2", {"gate": "pass"}, experiment=exp.id)
    traffic(settings, exp, searches=400, p_click_b=0.7)
    report = TrainingCycle(settings, clock=lambda: 50.0).run(trigger="schedule")
    assert report.experiments is not None
    assert report.experiments[0]["action"] == "promote"
    assert report.experiments[0]["applied"] == "v2 is live"
    assert registry.live() == "v2"

    from shoprank.cli import main

    status = CliRunner().invoke(main, ["--data-dir", str(tmp_path), "schedule", "status"])
    assert status.exit_code == 0, status.output
    assert "experiment exp-v2: promote (challenger better" in status.output
    assert "→ v2 is live" in status.output
