"""Sequential tests that stay valid however often a running experiment is looked at.

Both are mixture sequential probability ratio tests (mSPRT; Robbins 1970, Johari et al.
2017 "Peeking at A/B tests"): the likelihood ratio of the data under a mixture of
alternatives against the null is a non-negative martingale under the null, so by Ville's
inequality it ever reaches 1/alpha with probability at most alpha. Stopping the first
time it does is a level-alpha test under continuous peeking; `1 / max LR so far` is an
always-valid p-value.

- `msprt_proportions`: difference of two rates (A/B). The difference's estimate is treated
  as Gaussian with the pooled null variance, mixed over N(0, tau²) alternatives with tau =
  the experiment's minimum detectable effect. Approximate at small counts, so nothing is
  declared before `min_per_arm` searches and `min_successes` successes.
- `msprt_sign`: interleaving wins vs losses (ties excluded), exact: the binomial
  likelihood mixed over a symmetric Beta(c, c) around one half.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Direction = Literal["A", "B", "none"]


@dataclass(frozen=True, slots=True)
class SequentialResult:
    """One look at a running experiment."""

    log_lr: float  # log of the mixture likelihood ratio (0 before enough data)
    p_value: float  # always-valid p-value of this look, min(1, 1/LR)
    significant: bool  # LR >= 1/alpha: stop, the arms differ
    direction: Direction  # the arm ahead ("none" when equal)
    enough_data: bool  # False while under the minimum counts (nothing is declared)

    def to_dict(self) -> dict[str, object]:
        return {
            "log_lr": self.log_lr,
            "p_value": self.p_value,
            "significant": self.significant,
            "leader": self.direction,
            "enough_data": self.enough_data,
        }


def _result(log_lr: float, alpha: float, direction: Direction, enough: bool) -> SequentialResult:
    p = 1.0 if log_lr <= 0 else math.exp(-log_lr)
    return SequentialResult(log_lr, p, enough and log_lr >= math.log(1 / alpha), direction, enough)


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be strictly between 0 and 1, got {alpha!r}")


def msprt_proportions(
    successes_a: int,
    n_a: int,
    successes_b: int,
    n_b: int,
    *,
    alpha: float = 0.05,
    tau: float = 0.02,
    min_per_arm: int = 100,
    min_successes: int = 10,
    variance: float | None = None,
) -> SequentialResult:
    """mSPRT for rate_b - rate_a = 0, with a N(0, tau²) mixture over the difference.

    `tau` is the scale of differences that matter (use the minimum detectable effect):
    the test is most powerful for differences near it. `variance` is the difference's
    variance under the null; by default the binomial one at the pooled rate, right when
    every search is an independent draw. A/B assigns shoppers, so pass the variance
    clustered by shopper (`ArmTally.clustered_variance`), or the test is overconfident.
    """
    _check_alpha(alpha)
    if tau <= 0:
        raise ValueError(f"tau (the effect scale) must be > 0, got {tau!r}")
    if min(successes_a, successes_b) < 0 or successes_a > n_a or successes_b > n_b:
        raise ValueError(
            f"counts must satisfy 0 <= successes <= n, got {successes_a}/{n_a}, {successes_b}/{n_b}"
        )
    enough = min(n_a, n_b) >= max(1, min_per_arm) and (
        min(successes_a + successes_b, n_a + n_b - successes_a - successes_b) >= min_successes
    )
    if n_a == 0 or n_b == 0:
        return _result(0.0, alpha, "none", False)
    ra, rb = successes_a / n_a, successes_b / n_b
    theta = rb - ra
    direction: Direction = "B" if theta > 0 else "A" if theta < 0 else "none"
    pooled = (successes_a + successes_b) / (n_a + n_b)
    var = pooled * (1 - pooled) * (1 / n_a + 1 / n_b) if variance is None else variance
    if var <= 0:
        return _result(0.0, alpha, direction, False)
    t2 = tau * tau
    log_lr = 0.5 * math.log(var / (var + t2)) + theta * theta * t2 / (2 * var * (var + t2))
    return _result(log_lr, alpha, direction, enough)


def sign_concentration(mde: float) -> float:
    """The Beta(c, c) whose spread around one half is `mde` (its standard deviation)."""
    if not 0.0 < mde < 0.5:
        raise ValueError(f"mde (a share above one half) must be in (0, 0.5), got {mde!r}")
    return max(0.5, (0.25 / (mde * mde) - 1.0) / 2.0)


def _log_beta(x: float, y: float) -> float:
    return math.lgamma(x) + math.lgamma(y) - math.lgamma(x + y)


def msprt_sign(
    wins_a: int, wins_b: int, *, alpha: float = 0.05, mde: float = 0.05, min_decided: int = 20
) -> SequentialResult:
    """mSPRT for "each decided query is won by either arm with probability one half".

    Exact under the null for any number of looks: the Beta(c, c)-binomial mixture over
    the binomial at one half is a martingale (c from `sign_concentration(mde)`).
    """
    _check_alpha(alpha)
    if min(wins_a, wins_b) < 0:
        raise ValueError(f"win counts must be >= 0, got {wins_a}, {wins_b}")
    n = wins_a + wins_b
    direction: Direction = "B" if wins_b > wins_a else "A" if wins_a > wins_b else "none"
    if n == 0:
        return _result(0.0, alpha, direction, False)
    c = sign_concentration(mde)
    log_lr = _log_beta(wins_b + c, wins_a + c) - _log_beta(c, c) + n * math.log(2.0)
    return _result(log_lr, alpha, direction, n >= min_decided)


def naive_fixed_test(p_value: float, *, alpha: float = 0.05) -> bool:
    """The fixed-horizon decision (p < alpha): what re-testing at every look would do.
    Kept to show in the benchmark how peeking with it inflates false positives."""
    return p_value < alpha
