"""Experiment statistics against textbook values and exact computations."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from shoprank.experiments.sequential import msprt_proportions, msprt_sign
from shoprank.experiments.stats import (
    binomial_test,
    difference,
    preference,
    sample_size_preference,
    sample_size_proportions,
    wilson,
)


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [  # Newcombe (1998), Statistics in Medicine 17:857, table I, method 3 (Wilson score)
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_interval_matches_the_textbook(k: int, n: int, low: float, high: float) -> None:
    rate = wilson(k, n)
    assert rate.rate == pytest.approx(k / n)
    assert (round(rate.low, 4), round(rate.high, 4)) == (low, high)


def test_wilson_with_no_data_is_the_whole_unit_interval() -> None:
    assert (wilson(0, 0).low, wilson(0, 0).high) == (0.0, 1.0)
    with pytest.raises(ValueError, match="0 <= successes <= n"):
        wilson(5, 3)


def test_difference_interval_matches_newcombe_method_10() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873, example (a): 56/70 vs 48/80.
    d = difference(48, 80, 56, 70)
    assert d.diff == pytest.approx(0.2)
    assert (round(d.low, 4), round(d.high, 4)) == (0.0524, 0.3339)
    # The pooled z: p = 104/150; z = 0.2 / sqrt(p(1-p)(1/70 + 1/80)).
    pooled = 104 / 150
    z = 0.2 / math.sqrt(pooled * (1 - pooled) * (1 / 70 + 1 / 80))
    assert d.z == pytest.approx(z)
    assert d.p_value == pytest.approx(math.erfc(z / math.sqrt(2)))


def test_exact_binomial_test_by_hand() -> None:
    # 9 of 10: P(X >= 9) = (C(10,9) + C(10,10)) / 2^10 = 11/1024, doubled.
    assert binomial_test(9, 10) == 22 / 1024
    assert binomial_test(1, 10) == 22 / 1024
    assert binomial_test(0, 5) == 2 / 32
    assert binomial_test(5, 10) == 1.0
    assert binomial_test(0, 0) == 1.0
    # p = 0.3, 2 of 10: every outcome but k = 3 is at most as likely as k = 2.
    p3 = math.comb(10, 3) * 0.3**3 * 0.7**7
    assert binomial_test(2, 10, p=0.3) == pytest.approx(1 - p3)
    # p = 0.3, 7 of 10: P(7) = 0.0090; only k >= 7 are as unlikely (P(0) = 0.0282 is not).
    tail = sum(math.comb(10, i) * 0.3**i * 0.7 ** (10 - i) for i in range(7, 11))
    assert binomial_test(7, 10, p=0.3) == pytest.approx(tail)


def test_interleaving_preference_excludes_ties_from_the_sign_test() -> None:
    pref = preference(wins_a=1, wins_b=9, ties=90)
    assert pref.p_value == 22 / 1024  # the ties change nothing
    assert pref.delta == pytest.approx(0.08)  # (9 - 1) / 100
    assert pref.share_b.rate == pytest.approx(0.9)
    assert preference(0, 0, 7).p_value == 1.0


def test_fixed_horizon_sample_sizes_by_hand() -> None:
    # 0.20 -> 0.25 at alpha 0.05, power 0.8: (1.95996 sqrt(2 .225 .775) + 0.84162
    # sqrt(.2 .8 + .25 .75))^2 / 0.05^2 = 1093.6 -> 1094 per arm.
    assert sample_size_proportions(0.2, 0.05) == 1094
    # Sign test, share 0.55: ((1.95996 * .5 + 0.84162 sqrt(.55 .45)) / .05)^2 = 782.3.
    assert sample_size_preference(0.05) == 783
    assert sample_size_proportions(0.2, 0.05, power=0.9) > 1094
    with pytest.raises(ValueError, match="base_rate"):
        sample_size_proportions(0.99, 0.05)


def _crossing_probability(n_max: int, rejects: Callable[[int, int], bool]) -> float:
    """P(under a fair coin, `rejects(wins_a, wins_b)` is ever true for n <= n_max), exactly:
    dynamic programming over the paths that have not rejected yet."""
    alive = {0: 1.0}  # wins_b -> probability of reaching it without a rejection
    crossed = 0.0
    for n in range(1, n_max + 1):
        nxt: dict[int, float] = {}
        for k, p in alive.items():
            for kk in (k, k + 1):
                nxt[kk] = nxt.get(kk, 0.0) + p / 2
        alive = {}
        for k, p in nxt.items():
            if rejects(n - k, k):
                crossed += p
            else:
                alive[k] = p
    return crossed


def test_sequential_sign_test_keeps_alpha_under_peeking_after_every_query() -> None:
    def seq(a: int, b: int) -> bool:
        return msprt_sign(a, b, alpha=0.05, mde=0.05, min_decided=1).significant

    def naive(a: int, b: int) -> bool:
        return binomial_test(b, a + b) < 0.05

    # Exactly, not by sampling: looking after every single decided query up to 200.
    assert 0.0 < _crossing_probability(200, seq) <= 0.05
    assert _crossing_probability(200, naive) > 0.2  # re-testing inflates alpha five-fold


def test_sequential_sign_test_detects_a_real_preference() -> None:
    assert msprt_sign(400, 600, mde=0.05).significant
    assert msprt_sign(400, 600, mde=0.05).direction == "B"
    assert not msprt_sign(49, 51, mde=0.05).significant
    assert not msprt_sign(0, 10, mde=0.05, min_decided=20).significant  # too few to say


def test_sequential_proportions_test_keeps_alpha_on_simulated_a_a_tests() -> None:
    rng = np.random.default_rng(7)
    tests, n, looks, rate = 400, 4000, 40, 0.3
    arm_b = rng.random((tests, n)) < 0.5
    success = rng.random((tests, n)) < rate
    ends = np.linspace(n // looks, n, looks, dtype=int) - 1
    nb = np.cumsum(arm_b, axis=1)[:, ends]
    sb = np.cumsum(success & arm_b, axis=1)[:, ends]
    sa = np.cumsum(success & ~arm_b, axis=1)[:, ends]
    seq = naive = 0
    for t in range(tests):
        looks_t = [
            (int(sa[t, j]), int(ends[j] + 1 - nb[t, j]), int(sb[t, j]), int(nb[t, j]))
            for j in range(looks)
        ]
        seq += any(msprt_proportions(*x, tau=0.02).significant for x in looks_t)
        naive += any(difference(*x).p_value < 0.05 for x in looks_t)
    tolerance = 3 * math.sqrt(0.05 * 0.95 / tests)  # three binomial standard errors
    assert seq / tests <= 0.05 + tolerance
    assert naive / tests > 0.05 + tolerance  # the contrast: peeking with a fixed test


def test_sequential_proportions_test_detects_a_real_difference() -> None:
    res = msprt_proportions(3000, 10000, 3300, 10000, tau=0.02)
    assert res.significant and res.direction == "B"
    assert res.p_value < 0.05
    worse = msprt_proportions(3300, 10000, 3000, 10000, tau=0.02)
    assert worse.significant and worse.direction == "A"
    assert not msprt_proportions(30, 100, 45, 100, tau=0.02, min_per_arm=200).significant
