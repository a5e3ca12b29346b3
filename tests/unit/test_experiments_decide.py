"""decide(): promote, rollback or continue, on constructed tallies and on simulated traffic."""

from __future__ import annotations

from collections import deque
from dataclasses import replace

import pytest

from shoprank.experiments.decide import decide, horizon
from shoprank.experiments.model import Experiment, ExperimentError, Guards
from shoprank.experiments.simulate import Ranker, run_experiment
from shoprank.experiments.tally import ArmTally, Tallies


def _exp(method: str = "ab", **options: object) -> Experiment:
    exp = Experiment.new(
        "exp",
        control={"ranker": "v1"},
        challenger={"ranker": "v2"},
        method=method,
        now=0.0,
        salt="s",
        **options,
    )
    return replace(exp, status="running")


def _arm(searches: int, clicks: int, *, zero: int = 0, latency: float = 5.0) -> ArmTally:
    t = ArmTally(searches=searches, zero_results=zero)
    t.converted["click"] = clicks
    t.latencies_ms = deque([latency] * min(searches, 1000), maxlen=4096)
    return t


def _ab(a: ArmTally, b: ArmTally) -> Tallies:
    return Tallies("exp", "ab", "click", arms={"A": a, "B": b})


def test_a_significantly_better_challenger_is_promoted() -> None:
    d = decide(_exp(), _ab(_arm(10_000, 3000), _arm(10_000, 3400)), now=7.0)
    assert (d.action, d.reason, d.at) == ("promote", "challenger_better", 7.0)
    assert d.evidence["difference"]["diff"] == pytest.approx(0.04)
    assert d.evidence["sequential"]["significant"] is True
    assert d.evidence["arms"]["B"]["rates"]["click"]["rate"] == pytest.approx(0.34)


def test_a_significantly_worse_challenger_is_rolled_back() -> None:
    d = decide(_exp(), _ab(_arm(10_000, 3400), _arm(10_000, 3000)), now=0.0)
    assert (d.action, d.reason) == ("rollback", "challenger_worse")
    assert "worse on click" in d.message


def test_no_difference_yet_means_continue() -> None:
    d = decide(_exp(), _ab(_arm(2000, 600), _arm(2000, 610)), now=0.0)
    assert (d.action, d.reason) == ("continue", "collecting")


def test_no_difference_at_the_horizon_keeps_the_control() -> None:
    exp = _exp(max_searches=4000)
    d = decide(exp, _ab(_arm(2000, 600), _arm(2000, 610)), now=0.0)
    assert (d.action, d.reason) == ("rollback", "inconclusive_at_horizon")
    # Without max_searches the horizon is twice the fixed-horizon size from the design.
    assert horizon(_exp(), _ab(_arm(2000, 600), _arm(2000, 610))) > 4000


def test_zero_result_guard_rolls_back_a_challenger_with_better_clicks() -> None:
    tallies = _ab(_arm(5000, 1500, zero=50), _arm(5000, 1800, zero=400))
    d = decide(_exp(), tallies, now=0.0)
    assert (d.action, d.reason) == ("rollback", "guard_zero_results")
    assert "8.0%" in d.message and "1.0%" in d.message
    # A rise inside the guard's allowance is not a rollback.
    ok = _ab(_arm(5000, 1500, zero=50), _arm(5000, 1800, zero=80))
    assert decide(_exp(), ok, now=0.0).action == "promote"


def test_latency_guard_rolls_back_a_slow_challenger() -> None:
    tallies = _ab(_arm(5000, 1500, latency=10.0), _arm(5000, 1800, latency=14.0))
    d = decide(_exp(guards=Guards(max_latency_ratio=1.3)), tallies, now=0.0)
    assert (d.action, d.reason) == ("rollback", "guard_latency")
    # Guards wait for min_searches per arm.
    few = _ab(_arm(100, 30, latency=10.0), _arm(100, 30, latency=30.0))
    assert decide(_exp(), few, now=0.0).action == "continue"


def test_interleaving_decisions_use_the_sign_test_on_wins() -> None:
    exp = _exp("interleave", mde=0.05)
    arms = {"A": _arm(2000, 0), "B": _arm(2000, 0)}
    win = Tallies("exp", "interleave", "click", arms=arms, wins_a=420, wins_b=580, ties=1000)
    d = decide(exp, win, now=0.0)
    assert (d.action, d.reason) == ("promote", "challenger_better")
    assert d.evidence["preference"]["delta"] == pytest.approx(0.08)
    lose = replace(win, wins_a=580, wins_b=420)
    assert decide(exp, lose, now=0.0).reason == "challenger_worse"
    even = replace(win, wins_a=800, wins_b=800)
    assert decide(exp, even, now=0.0).reason == "inconclusive_at_horizon"  # 1600 decided >= 2 x 783
    assert decide(exp, replace(win, wins_a=50, wins_b=52), now=0.0).action == "continue"


def test_decide_refuses_a_finished_experiment_or_foreign_tallies() -> None:
    with pytest.raises(ExperimentError, match="is promoted"):
        decide(replace(_exp(), status="promoted"), _ab(_arm(1, 0), _arm(1, 0)), now=0.0)
    with pytest.raises(ExperimentError, match="do not belong"):
        decide(_exp("interleave"), _ab(_arm(1, 0), _arm(1, 0)), now=0.0)


@pytest.mark.parametrize("method", ["interleave", "ab"])
def test_a_worse_challenger_on_simulated_traffic_is_rolled_back(method: str) -> None:
    exp = _exp(method, mde=0.05 if method == "interleave" else 0.03, max_searches=60_000)
    run = run_experiment(exp, control=Ranker(0.6), challenger=Ranker(1.4), seed=11, batch=200)
    assert (run.decision.action, run.decision.reason) == ("rollback", "challenger_worse")


def test_a_better_challenger_on_simulated_traffic_is_promoted() -> None:
    exp = _exp("interleave", mde=0.05)
    run = run_experiment(exp, control=Ranker(1.4), challenger=Ranker(0.6), seed=5, batch=100)
    assert run.decision.action == "promote"


def test_a_challenger_that_loses_results_is_rolled_back_by_the_guard() -> None:
    exp = _exp("interleave", mde=0.05)
    broken = Ranker(0.6, zero_rate=0.1)
    run = run_experiment(exp, control=Ranker(0.6), challenger=broken, seed=3, batch=100)
    assert run.decision.reason == "guard_zero_results"
