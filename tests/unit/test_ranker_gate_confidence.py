"""The promotion gate wants a gain beyond the noise of the held-out searches, not a better
mean alone."""

from __future__ import annotations

import random

import numpy as np

from shoprank.rerankers.features.registry import FEATURE_NAMES
from shoprank.rerankers.ltr.dataset import Dataset, LoggedSearch
from shoprank.rerankers.ltr.train import gate, paired_gain, per_search_metrics


class ByFeature:
    def __init__(self, name: str) -> None:
        self.version = name
        self.column = FEATURE_NAMES.index(name)

    def score(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x[:, self.column])

    def contributions(self, x: np.ndarray) -> list[dict[str, float]]:
        return []


def logs(wins: int, losses: int, ties: int, seed: int = 0) -> Dataset:
    """Three-product windows, the middle one engaged. The live model (`retrieval_rr`) keeps
    the logged order; the candidate (`vec_rr`) lifts the engaged product to the top in
    `wins` searches, sinks it to the bottom in `losses`, agrees in `ties`."""
    kinds = ["win"] * wins + ["loss"] * losses + ["tie"] * ties
    random.Random(seed).shuffle(kinds)
    searches = []
    for n, kind in enumerate(kinds):
        cand = {"win": (2, 3, 1), "loss": (3, 1, 2), "tie": (3, 2, 1)}[kind]
        feats = [
            {"retrieval_rr": 1 / r, "vec_rr": float(c)}
            for r, c in zip((1, 2, 3), cand, strict=True)
        ]
        searches.append(
            LoggedSearch(
                query_id=f"q{n}",
                timestamp=float(n),
                user=f"u{n % 7}",
                query="q",
                ids=["a", "b", "c"],
                positions=[1, 2, 3],
                features=feats,
                grades=[0.0, 1.0, 0.0],
            )
        )
    return Dataset(searches)


def test_a_gain_within_the_noise_is_refused() -> None:
    data = logs(wins=25, losses=67, ties=140)
    candidate, live = ByFeature("vec_rr"), ByFeature("retrieval_rr")
    per_new = per_search_metrics(candidate, data)["dcg@10"]
    per_old = per_search_metrics(live, data)["dcg@10"]
    gain, se = paired_gain(per_new, per_old)
    assert 0 < gain < 0.5 * se  # better on the mean, by less than half a standard error
    result = gate(candidate, live, data, data)
    assert not result.wins, result.verdict
    assert "fail" in result.verdict and "lower bound" in result.verdict
    # the same comparison on the mean alone would have promoted it
    assert gate(candidate, live, data, data, z=0.0).wins


def test_a_clear_gain_passes() -> None:
    data = logs(wins=60, losses=10, ties=130)
    result = gate(ByFeature("vec_rr"), ByFeature("retrieval_rr"), data, data)
    assert result.wins, result.verdict
    assert result.gain > 0.5 * result.gain_se


def test_too_few_held_out_searches_decide_nothing() -> None:
    """The same clear advantage, on 40 held-out searches instead of 200: refused, and the
    verdict says why (a few dozen IPS-weighted searches are too noisy to trust)."""
    candidate, live = ByFeature("vec_rr"), ByFeature("retrieval_rr")
    few = logs(wins=12, losses=2, ties=26)
    result = gate(candidate, live, few, few)
    assert result.gain > 0.5 * result.gain_se  # it would pass on confidence alone
    assert not result.wins and "fewer than 100" in result.verdict, result.verdict
    assert gate(candidate, live, few, few, min_searches=40).wins
