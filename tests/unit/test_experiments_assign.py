"""Sticky A/B assignment: deterministic, uniform, split as configured, independent across
experiments. Tolerances are binomial, computed from n; every id is fixed (no clock)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from shoprank.experiments.assign import Assigner, arm_at, position
from shoprank.experiments.model import Experiment, ExperimentError

N = 20_000


def _running(exp_id: str = "exp-1", **options: object) -> Experiment:
    exp = Experiment.new(
        exp_id,
        control={"ranker": "v1"},
        challenger={"ranker": "v2"},
        now=0.0,
        salt=f"salt-{exp_id}",
        **options,
    )
    return replace(exp, status="running")


def _tolerance(p: float, n: int) -> float:
    return 4 * math.sqrt(p * (1 - p) / n)  # four binomial standard errors


def test_a_unit_keeps_its_arm_on_every_search_and_in_every_process() -> None:
    exp = _running()
    first = Assigner(exp)
    again = Assigner(Experiment.from_dict(exp.to_dict()))  # as another worker would load it
    for i in range(2000):
        unit = f"user-{i}"
        arm = first.arm(unit)
        assert arm == first.arm(unit) == again.arm(unit)
        assert first.position(unit) == position(exp.id, exp.salt, unit)


@pytest.mark.parametrize("split", [0.5, 0.1, 0.3, 0.9])
def test_split_proportions_follow_the_configured_split(split: float) -> None:
    assigner = Assigner(_running(split=split))
    on_b = sum(assigner.arm(f"u{i}") == "B" for i in range(N))
    assert abs(on_b / N - split) <= _tolerance(split, N)


def test_traffic_enrols_only_its_share_and_splits_within_it() -> None:
    assigner = Assigner(_running(traffic=0.2, split=0.5))
    results = [assigner.assign(f"u{i}") for i in range(N)]
    enrolled = [r for r in results if r is not None]
    assert abs(len(enrolled) / N - 0.2) <= _tolerance(0.2, N)
    on_b = sum(r.arm == "B" for r in enrolled)
    assert abs(on_b / len(enrolled) - 0.5) <= _tolerance(0.5, len(enrolled))
    assert {r.to_log()["experiment"] for r in enrolled} == {"exp-1"}


def test_positions_are_uniform() -> None:
    assigner = Assigner(_running())
    counts = [0] * 10
    for i in range(N):
        counts[int(assigner.position(f"u{i}") * 10)] += 1
    for c in counts:
        assert abs(c / N - 0.1) <= _tolerance(0.1, N)


def test_assignment_is_independent_across_experiments() -> None:
    one, two = Assigner(_running("exp-1")), Assigner(_running("exp-2"))
    both_b = sum(one.arm(f"u{i}") == "B" and two.arm(f"u{i}") == "B" for i in range(N))
    assert abs(both_b / N - 0.25) <= _tolerance(0.25, N)
    # Same experiment id, another salt: a fresh assignment as well.
    resalted = Assigner(replace(_running("exp-1"), salt="other"))
    same = sum(one.arm(f"u{i}") == resalted.arm(f"u{i}") for i in range(N))
    assert abs(same / N - 0.5) <= _tolerance(0.5, N)


def test_anonymous_searches_stay_out_of_an_a_b_test() -> None:
    assert Assigner(_running()).assign(None) is None
    assert Assigner(_running()).assign("") is None


def test_interleaving_experiments_assign_the_page_not_an_arm() -> None:
    got = Assigner(_running(method="interleave")).assign("u1")
    assert got is not None and got.arm is None
    assert got.to_log() == {"experiment": "exp-1", "variant": "interleave"}


def test_only_running_experiments_assign() -> None:
    draft = Experiment.new("d", control={"ranker": "v1"}, challenger={"ranker": "v2"}, now=0.0)
    with pytest.raises(ExperimentError, match="is draft; only running"):
        Assigner(draft)


def test_arm_at_edges() -> None:
    assert arm_at(0.0, split=0.5) == "B"
    assert arm_at(0.5, split=0.5) == "A"
    assert arm_at(0.25, split=0.5, traffic=0.2) is None
    assert arm_at(0.19, split=0.5, traffic=0.2) == "A"
