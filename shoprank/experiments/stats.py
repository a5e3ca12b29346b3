"""Fixed-sample statistics for experiments, in the standard library only.

- `wilson`: a rate with its Wilson score interval (good at small counts and near 0 or 1).
- `difference`: challenger minus control rate, Newcombe's hybrid score interval (method 10
  of Newcombe 1998) and the pooled two-proportion z-test.
- `binomial_test`: exact two-sided binomial test; `preference`: interleaving wins as a sign
  test (ties excluded) with the Δ of Chapelle et al. 2012.
- `sample_size_*`: the fixed horizon that detects `mde` at `alpha` with `power`.

These p-values are valid **once**, at a horizon fixed in advance; for looking at a running
experiment after every batch use `shoprank.experiments.sequential`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

_N = NormalDist()


def z_of(confidence: float) -> float:
    """The two-sided normal quantile: 1.959964 for 0.95."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence!r}")
    return _N.inv_cdf(0.5 + confidence / 2.0)


@dataclass(frozen=True, slots=True)
class Rate:
    """`successes` of `n`, the point estimate and its interval."""

    successes: int
    n: int
    rate: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float | int]:
        return {
            "successes": self.successes,
            "n": self.n,
            "rate": self.rate,
            "low": self.low,
            "high": self.high,
        }


def _check_counts(successes: int, n: int) -> None:
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"counts must satisfy 0 <= successes <= n, got {successes} of {n}")


def wilson(successes: int, n: int, *, confidence: float = 0.95) -> Rate:
    """The rate `successes / n` with its Wilson score interval ((0, 1) when n is 0)."""
    _check_counts(successes, n)
    if n == 0:
        return Rate(0, 0, 0.0, 0.0, 1.0)
    z = z_of(confidence)
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return Rate(successes, n, p, low, high)


@dataclass(frozen=True, slots=True)
class Difference:
    """Challenger (B) minus control (A): the estimate, its interval and a z-test p-value."""

    a: Rate
    b: Rate
    diff: float
    low: float
    high: float
    z: float
    p_value: float

    def to_dict(self) -> dict[str, object]:
        return {
            "control": self.a.to_dict(),
            "challenger": self.b.to_dict(),
            "diff": self.diff,
            "low": self.low,
            "high": self.high,
            "z": self.z,
            "p_value": self.p_value,
        }


def difference(
    successes_a: int,
    n_a: int,
    successes_b: int,
    n_b: int,
    *,
    confidence: float = 0.95,
    variance: float | None = None,
) -> Difference:
    """`rate_b - rate_a` with Newcombe's hybrid Wilson interval and the pooled z-test.

    When the searches are not independent draws (A/B assigns shoppers), pass the
    difference's `variance` (e.g. clustered by shopper): the interval and the z-test are
    then the Wald ones on it."""
    ra = wilson(successes_a, n_a, confidence=confidence)
    rb = wilson(successes_b, n_b, confidence=confidence)
    d = rb.rate - ra.rate
    if n_a == 0 or n_b == 0:
        return Difference(ra, rb, d, -1.0, 1.0, 0.0, 1.0)
    if variance is None:
        low = d - math.sqrt((rb.rate - rb.low) ** 2 + (ra.high - ra.rate) ** 2)
        high = d + math.sqrt((rb.high - rb.rate) ** 2 + (ra.rate - ra.low) ** 2)
        pooled = (successes_a + successes_b) / (n_a + n_b)
        var = pooled * (1 - pooled) * (1 / n_a + 1 / n_b)
    else:
        var = max(variance, 0.0)
        half = z_of(confidence) * math.sqrt(var)
        low, high = d - half, d + half
    z = d / math.sqrt(var) if var > 0 else 0.0
    p = 2.0 * (1.0 - _N.cdf(abs(z)))
    return Difference(ra, rb, d, max(-1.0, low), min(1.0, high), z, min(1.0, p))


def _log_pmf(k: int, n: int, p: float) -> float:
    if p in (0.0, 1.0):
        return 0.0 if k == (n if p == 1.0 else 0) else -math.inf
    return (
        math.lgamma(n + 1)
        - math.lgamma(k + 1)
        - math.lgamma(n - k + 1)
        + k * math.log(p)
        + (n - k) * math.log1p(-p)
    )


def binomial_test(k: int, n: int, *, p: float = 0.5) -> float:
    """Exact two-sided p-value of `k` successes in `n` trials with success probability `p`:
    the total probability of every outcome no more likely than the one observed."""
    _check_counts(k, n)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p!r}")
    if n == 0:
        return 1.0
    if p == 0.5:  # symmetric: twice the smaller tail, exactly
        tail_k = min(k, n - k)
        tail = sum(math.comb(n, i) for i in range(tail_k + 1))
        return float(min(1.0, 2 * tail / 2**n))
    observed = _log_pmf(k, n, p)
    slack = 1e-7  # outcomes equally likely up to rounding count as "as extreme"
    total = sum(math.exp(lp) for i in range(n + 1) if (lp := _log_pmf(i, n, p)) <= observed + slack)
    return min(1.0, total)


@dataclass(frozen=True, slots=True)
class Preference:
    """Interleaving outcome: per-query wins of each arm and ties (no clicks included)."""

    wins_a: int
    wins_b: int
    ties: int
    delta: float  # (wins_b - wins_a) / all queries: > 0 favours the challenger
    share_b: Rate  # challenger's share of the decided (non-tie) queries, Wilson interval
    p_value: float  # two-sided sign test on the decided queries

    def to_dict(self) -> dict[str, object]:
        return {
            "wins_control": self.wins_a,
            "wins_challenger": self.wins_b,
            "ties": self.ties,
            "delta": self.delta,
            "challenger_share": self.share_b.to_dict(),
            "p_value": self.p_value,
        }


def preference(wins_a: int, wins_b: int, ties: int, *, confidence: float = 0.95) -> Preference:
    """The interleaving preference with a sign (binomial p=0.5) test excluding ties."""
    if min(wins_a, wins_b, ties) < 0:
        raise ValueError(f"counts must be >= 0, got {wins_a}, {wins_b}, {ties}")
    decided = wins_a + wins_b
    total = decided + ties
    delta = (wins_b - wins_a) / total if total else 0.0
    share = wilson(wins_b, decided, confidence=confidence)
    return Preference(wins_a, wins_b, ties, delta, share, binomial_test(wins_b, decided))


def sample_size_proportions(
    base_rate: float, mde: float, *, alpha: float = 0.05, power: float = 0.8
) -> int:
    """Searches per arm for a two-sided two-proportion z-test to detect `base_rate` →
    `base_rate + mde` (the textbook formula with the pooled variance under the null)."""
    if not 0.0 < base_rate < 1.0 or not 0.0 < base_rate + mde < 1.0 or mde == 0:
        raise ValueError(
            f"need 0 < base_rate < 1 and 0 < base_rate + mde < 1 with mde != 0, got "
            f"base_rate={base_rate!r}, mde={mde!r}"
        )
    p1, p2 = base_rate, base_rate + mde
    pbar = (p1 + p2) / 2
    za = _N.inv_cdf(1 - alpha / 2)
    zb = _N.inv_cdf(power)
    num = za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return math.ceil((num / mde) ** 2)


def sample_size_preference(mde: float, *, alpha: float = 0.05, power: float = 0.8) -> int:
    """Decided (non-tie) interleaved queries for a two-sided sign test to detect a
    challenger share of 0.5 + `mde` (normal approximation to the binomial)."""
    if not 0.0 < abs(mde) < 0.5:
        raise ValueError(f"mde (a share above one half) must be in (0, 0.5), got {mde!r}")
    p = 0.5 + abs(mde)
    za = _N.inv_cdf(1 - alpha / 2)
    zb = _N.inv_cdf(power)
    return math.ceil(((za * 0.5 + zb * math.sqrt(p * (1 - p))) / abs(mde)) ** 2)


def percentile(values: list[float], q: float) -> float:
    """The `q`-th percentile (0-100) by linear interpolation; nan for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)
