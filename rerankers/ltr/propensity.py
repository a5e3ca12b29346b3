"""Examination propensities of logged positions: how much more a shopper looks at position
1 than at position k, whatever it holds. The training gate weighs held-out engagement by
their inverse (`shoprank.rerankers.ltr.train`)."""

from __future__ import annotations

import numpy as np

from shoprank.rerankers.ltr.dataset import Dataset

__all__ = ["PROPENSITY_FLOOR", "PROPENSITY_SAMPLE", "naive_propensities", "propensities"]

PROPENSITY_FLOOR = 0.05
PROPENSITY_SAMPLE = 200_000  # impressions the click model is fitted on, at most


def naive_propensities(data: Dataset, *, max_position: int = 100) -> np.ndarray:
    """Engagement rate per 0-based position relative to position 1 (monotone, floored at
    0.05). Confounded by relevance (the logging ranker put its best guesses on top), so it
    over-states the position bias; only the starting point of `propensities`."""
    hits = np.zeros(max_position)
    shown = np.zeros(max_position)
    for search in data.searches:
        for pos, grade in zip(search.positions, search.grades, strict=True):
            if 1 <= pos <= max_position:
                shown[pos - 1] += 1
                hits[pos - 1] += grade > 0
    rate = np.divide(hits, shown, out=np.zeros(max_position), where=shown > 0)
    if rate[0] <= 0:
        return np.ones(max_position)
    prop = np.minimum.accumulate(np.clip(rate / rate[0], PROPENSITY_FLOOR, 1.0))
    prop[shown == 0] = prop[shown > 0][-1] if (shown > 0).any() else 1.0
    return np.asarray(prop)


def propensities(data: Dataset, *, max_position: int = 100, iterations: int = 100) -> np.ndarray:
    """Examination propensity per 0-based position (position 1 = 1.0), estimated from the
    logs with a position-based click model, as training does: P(engaged at position k) =
    theta_k x relevance(features), examination and relevance fitted jointly by
    regression-EM (Wang et al., "Position Bias Estimation for Unbiased Learning to Rank in
    Personal Search", WSDM 2018) with a logistic relevance model over the registry's
    (standardised) features. Because relevance is explained by the features - the user's
    affinities included - a relevant product shown on top does not pass for examination,
    which the raw engagement rate per position (`naive_propensities`) cannot tell apart.
    Monotone, floored at 0.05 (a deep engagement weighs at most 20x)."""
    x, y, _, pos = data.matrices()
    keep = (pos >= 0) & (pos < max_position)
    if not keep.any() or not (y[keep] > 0).any():
        return np.ones(max_position)
    rows = np.nonzero(keep)[0]
    if len(rows) > PROPENSITY_SAMPLE:  # bounded cost on large logs (deterministic sample)
        rows = np.sort(np.random.default_rng(0).choice(rows, PROPENSITY_SAMPLE, replace=False))
    feats = x[rows].astype(np.float64)
    pos, click = pos[rows], y[rows] > 0
    sd = feats.std(axis=0)
    sd[sd == 0] = 1.0
    design = np.hstack([(feats - feats.mean(axis=0)) / sd, np.ones((len(feats), 1))])
    shown = np.bincount(pos, minlength=max_position).astype(np.float64)
    theta = np.clip(naive_propensities(data, max_position=max_position), 0.05, 0.95)
    w = np.zeros(design.shape[1])
    for _ in range(iterations):
        t, g = theta[pos], _sigmoid(design @ w)
        denom = np.maximum(1.0 - t * g, 1e-9)
        examined = np.where(click, 1.0, t * (1.0 - g) / denom)
        relevant = np.where(click, 1.0, (1.0 - t) * g / denom)
        theta = np.clip(
            np.divide(
                np.bincount(pos, examined, max_position),
                shown,
                out=np.ones(max_position),
                where=shown > 0,
            ),
            1e-3,
            1.0,
        )
        for _ in range(10):  # a few gradient steps of the (soft-label) logistic regression
            g = _sigmoid(design @ w)
            w -= design.T @ (g - relevant) / len(design) + 1e-3 * w
    prop = np.minimum.accumulate(np.clip(theta / theta[0], PROPENSITY_FLOOR, 1.0))
    last = int(np.nonzero(shown > 0)[0][-1])
    prop[last + 1 :] = prop[last]
    return np.asarray(prop)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -30.0, 30.0))))
