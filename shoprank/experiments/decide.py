"""The decision rule: promote the challenger, roll it back, or keep collecting.

In order, on every look (after every batch of searches, as often as one likes):

1. **Guards** (once each arm has `guards.min_searches`): the challenger is rolled back when
   its zero-result rate is above the control's by more than `max_zero_result_increase` and
   significantly so (the sequential test on zero-result rates), or when its p95 latency is
   over `max_latency_ratio` times the control's.
2. **Primary metric**, sequential test (valid under peeking): significant in favour of the
   challenger → promote; of the control → rollback.
3. **Stop rule**: at the horizon (`max_searches`, else twice the fixed-horizon sample size
   from mde/alpha/power) without a significant difference → rollback (inconclusive: the
   control stays, a challenger must prove itself).
4. Otherwise continue.

    decision = decide(experiment, tallies, now=clock())
    decision.action   # "promote" | "rollback" | "continue"
    decision.to_dict()  # recorded with its evidence on the experiment
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from shoprank.experiments.model import Experiment, ExperimentError
from shoprank.experiments.sequential import SequentialResult, msprt_proportions, msprt_sign
from shoprank.experiments.stats import (
    difference,
    preference,
    sample_size_preference,
    sample_size_proportions,
    wilson,
)
from shoprank.experiments.tally import KINDS, Tallies

Action = Literal["promote", "rollback", "continue"]
Reason = Literal[
    "challenger_better",
    "challenger_worse",
    "guard_zero_results",
    "guard_latency",
    "inconclusive_at_horizon",
    "collecting",
]
DEFAULT_BASE_RATE = 0.3  # the control rate assumed for the horizon before there is data
MIN_BASE_SEARCHES = 100


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: Reason
    message: str
    at: float
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "reason": self.reason,
            "message": self.message,
            "at": self.at,
            "evidence": self.evidence,
        }


def horizon(experiment: Experiment, tallies: Tallies) -> int:
    """The most searches (A/B) or decided interleaved queries the experiment may take."""
    if experiment.max_searches:
        return experiment.max_searches
    if experiment.method == "interleave":
        mde = min(experiment.mde, 0.49)
        return 2 * sample_size_preference(mde, alpha=experiment.alpha, power=experiment.power)
    control = tallies.arms["A"]
    base = DEFAULT_BASE_RATE
    if control.searches >= MIN_BASE_SEARCHES:
        base = control.converted[experiment.metric] / control.searches
    base = min(max(base, 0.001), 0.999 - experiment.mde)
    per_arm = sample_size_proportions(
        base, experiment.mde, alpha=experiment.alpha, power=experiment.power
    )
    smaller = min(experiment.split, 1.0 - experiment.split)
    return 2 * math.ceil(per_arm / smaller)


def _counts(tallies: Tallies, what: str) -> tuple[int, int, int, int]:
    a, b = tallies.arms["A"], tallies.arms["B"]
    if what == "zero_results":
        return a.zero_results, a.searches, b.zero_results, b.searches
    return a.converted[what], a.searches, b.converted[what], b.searches


def ab_variance(tallies: Tallies, what: str) -> float:
    """The variance of the A/B difference in `what` (a kind or "zero_results"), clustered
    by the assigned shopper, each arm at its own rate (the unpooled Wald variance: under
    the null the two rates agree, and unlike a pooled one it does not swell with a real
    difference)."""
    sa, na, sb, nb = _counts(tallies, what)
    if na == 0 or nb == 0:
        return 0.0
    a, b = tallies.arms["A"], tallies.arms["B"]
    return a.clustered_variance(what, sa / na) + b.clustered_variance(what, sb / nb)


def primary_test(experiment: Experiment, tallies: Tallies) -> SequentialResult:
    """The sequential test on the experiment's metric (A/B: with the shopper, the unit
    of assignment, as the independent draw)."""
    if experiment.method == "interleave":
        return msprt_sign(
            tallies.wins_a, tallies.wins_b, alpha=experiment.alpha, mde=min(experiment.mde, 0.49)
        )
    sa, na, sb, nb = _counts(tallies, experiment.metric)
    return msprt_proportions(
        sa,
        na,
        sb,
        nb,
        alpha=experiment.alpha,
        tau=experiment.mde,
        variance=ab_variance(tallies, experiment.metric),
    )


def evidence(experiment: Experiment, tallies: Tallies) -> dict[str, Any]:
    """The numbers behind a decision, JSON-able: what the inspector and `models list` show."""
    arms: dict[str, Any] = {}
    for arm in ("A", "B"):
        t = tallies.arms[arm]
        p95 = t.latency_p95()
        arms[arm] = {
            "searches": t.searches,
            "rates": {k: wilson(t.converted[k], t.searches).to_dict() for k in KINDS},
            "zero_result_rate": wilson(t.zero_results, t.searches).to_dict(),
            "latency_p95_ms": None if math.isnan(p95) else p95,
        }
    out: dict[str, Any] = {
        "method": experiment.method,
        "metric": experiment.metric,
        "arms": arms,
        "searches": tallies.searches,
        "horizon": horizon(experiment, tallies),
        "sequential": primary_test(experiment, tallies).to_dict(),
    }
    if experiment.method == "interleave":
        out["preference"] = preference(tallies.wins_a, tallies.wins_b, tallies.ties).to_dict()
    else:
        m = experiment.metric
        out["difference"] = difference(
            *_counts(tallies, m), variance=ab_variance(tallies, m)
        ).to_dict()
    return out


def _guard(experiment: Experiment, tallies: Tallies) -> tuple[Reason, str] | None:
    g = experiment.guards
    a, b = tallies.arms["A"], tallies.arms["B"]
    if min(a.searches, b.searches) < g.min_searches:
        return None
    zr_a, zr_b = a.zero_results / a.searches, b.zero_results / b.searches
    if zr_b - zr_a > g.max_zero_result_increase:
        test = msprt_proportions(
            a.zero_results,
            a.searches,
            b.zero_results,
            b.searches,
            alpha=experiment.alpha,
            tau=max(g.max_zero_result_increase, 0.005),
            min_per_arm=g.min_searches,
            min_successes=1,
            variance=ab_variance(tallies, "zero_results"),
        )
        if test.significant and test.direction == "B":
            return "guard_zero_results", (
                f"challenger returns no results on {zr_b:.1%} of searches vs {zr_a:.1%} for "
                f"the control (guard: at most {g.max_zero_result_increase:.1%} more)"
            )
    p95_a, p95_b = a.latency_p95(), b.latency_p95()
    if p95_a > 0 and not math.isnan(p95_b) and p95_b > g.max_latency_ratio * p95_a:
        return "guard_latency", (
            f"challenger p95 latency {p95_b:.1f} ms is over {g.max_latency_ratio:g} x the "
            f"control's {p95_a:.1f} ms"
        )
    return None


def decide(experiment: Experiment, tallies: Tallies, *, now: float) -> Decision:
    """The decision for a running experiment on its tallies so far (see the module doc)."""
    if experiment.status != "running":
        raise ExperimentError(
            f"experiment [{experiment.id}] is {experiment.status}; decisions are taken on "
            "running experiments only"
        )
    if tallies.experiment_id != experiment.id or tallies.method != experiment.method:
        raise ExperimentError(
            f"tallies of [{tallies.experiment_id}] ({tallies.method}) do not belong to "
            f"experiment [{experiment.id}] ({experiment.method})"
        )
    proof = evidence(experiment, tallies)
    guard = _guard(experiment, tallies)
    if guard is not None:
        return Decision("rollback", guard[0], guard[1], now, proof)
    test = primary_test(experiment, tallies)
    what = "interleaving preference" if experiment.method == "interleave" else experiment.metric
    if test.significant:
        if test.direction == "B":
            msg = f"challenger better on {what} (always-valid p = {test.p_value:.2g})"
            return Decision("promote", "challenger_better", msg, now, proof)
        if test.direction == "A":
            msg = f"challenger worse on {what} (always-valid p = {test.p_value:.2g})"
            return Decision("rollback", "challenger_worse", msg, now, proof)
    progress = tallies.searches
    if experiment.method == "interleave":
        progress = tallies.wins_a + tallies.wins_b
    limit = proof["horizon"]
    if progress >= limit:
        msg = (
            f"no significant difference on {what} after {progress} "
            f"{'decided queries' if experiment.method == 'interleave' else 'searches'} "
            f"(horizon {limit}); the control stays"
        )
        return Decision("rollback", "inconclusive_at_horizon", msg, now, proof)
    msg = f"collecting: {progress} of at most {limit}, p = {test.p_value:.2g}"
    return Decision("continue", "collecting", msg, now, proof)
