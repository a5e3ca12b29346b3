"""`user_sim_*`: what the shopper engaged with among products like this one (by text vector),
for catalogs without categories: brand share and price fit among the similar items."""

from __future__ import annotations

import numpy as np
import pytest

from shoprank.rerankers.features import Inputs, compute_features
from shoprank.rerankers.protocol import Candidate


def unit(*xs: float) -> np.ndarray:
    v = np.asarray(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


VECTORS = {
    # toner cartridges point one way, cables another
    "toner-a": unit(1, 0.05, 0),
    "toner-b": unit(1, -0.05, 0),
    "toner-c": unit(1, 0, 0.05),
    "cable-a": unit(0, 1, 0),
    "bought-1": unit(1, 0.02, 0.01),
    "bought-2": unit(1, -0.02, 0.0),
    "bought-cable": unit(0, 1, 0.03),
}
FACTS = {
    "toner-a": {"brand": "Xerox", "price": 100.0},
    "toner-b": {"brand": "Lexmark", "price": 100.0},
    "toner-c": {"brand": "Xerox", "price": 400.0},
    "cable-a": {"brand": "C2G", "price": 10.0},
    "bought-1": {"brand": "Xerox", "price": 90.0},
    "bought-2": {"brand": "Xerox", "price": 110.0},
    "bought-cable": {"brand": "StarTech.com", "price": 12.0},
}
PROFILE = {
    "aff": {"brand": {"Xerox": 20.0, "StarTech.com": 2.0}},
    "recent": [["bought-1", 3.0], ["bought-2", 2.0], ["bought-cable", 1.0]],
    "vec": {"w": 1.0, "sum": [1.0, 0.0, 0.0]},
}


def features(user: object = PROFILE) -> dict[str, dict[str, float]]:
    ids = ["toner-a", "toner-b", "toner-c", "cable-a"]
    cands = [Candidate(pid, 1.0, retrieval_rank=i + 1) for i, pid in enumerate(ids)]
    rows = compute_features(cands, Inputs(facts=FACTS, vectors=VECTORS, user=user))  # type: ignore[arg-type]
    return dict(zip(ids, rows, strict=True))


def test_brand_and_price_among_similar_items() -> None:
    f = features()
    assert f["toner-a"]["user_sim_brand"] == pytest.approx(1.0)
    assert f["toner-b"]["user_sim_brand"] == pytest.approx(0.0)
    # same brand, four times the price the shopper paid for such products
    assert f["toner-a"]["user_sim_price_fit"] > 0.9
    assert f["toner-c"]["user_sim_price_fit"] < 0.01
    # the cable is judged against the cable the shopper bought, not the toners
    assert f["cable-a"]["user_sim_brand"] == pytest.approx(0.0)
    assert f["cable-a"]["user_sim_price_fit"] > 0.5
    assert f["toner-a"]["user_sim_max"] > 0.99
    assert f["toner-a"]["user_brand_weight"] == pytest.approx(np.log1p(20.0))


def test_no_history_no_similar_features() -> None:
    for row in features(user={"aff": {}, "recent": []}).values():
        assert not {k for k in row if k.startswith("user_sim")}
    for row in features(user=None).values():
        assert not {k for k in row if k.startswith("user_sim")}


def test_an_item_is_not_similar_to_itself() -> None:
    user = {**PROFILE, "recent": [["toner-a", 1.0]]}
    f = features(user)
    assert "user_sim_max" not in f["toner-a"]
    assert f["toner-b"]["user_sim_brand"] == pytest.approx(0.0)
    assert f["toner-c"]["user_sim_brand"] == pytest.approx(1.0)


class Backend:
    """The two backend calls the feature source makes, recording what was asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def mget(self, index: str, ids: list[str], source: object = None) -> dict[str, object]:
        self.asked += ids
        return {pid: FACTS[pid] for pid in ids if pid in FACTS}

    def count(self, index: str, body: object) -> int:
        return len(FACTS)  # products with facts exist: they are read

    def vectors_of(self, index: str, ids: list[str], field: str) -> dict[str, list[float]]:
        return {pid: VECTORS[pid].tolist() for pid in ids if pid in VECTORS}


class Profiles:
    def shopper_profiles(self, *, user_id: object, session_id: object) -> tuple[object, object]:
        return (PROFILE, None)

    def product_stats(self, ids: object, query: object = None) -> dict[str, object]:
        return {}


def test_the_feature_source_fetches_the_engaged_items_too() -> None:
    from shoprank.rerankers.features.source import FeatureSource

    backend = Backend()
    source = FeatureSource(backend=backend, profiles=Profiles(), prior_ctr=0.05)  # type: ignore[arg-type]
    ids = ["toner-a", "toner-b", "toner-c", "cable-a"]
    inputs = source.fetch(
        index="icecat",
        ids=ids,
        query="toner",
        user_id="u",
        session_id=None,
        intent=None,
        degraded=[],
    )
    assert {"bought-1", "bought-2", "bought-cable"} <= set(backend.asked)
    cands = [Candidate(pid, 1.0, retrieval_rank=i + 1) for i, pid in enumerate(ids)]
    rows = dict(zip(ids, compute_features(cands, inputs), strict=True))
    assert rows["toner-a"]["user_sim_brand"] == pytest.approx(1.0)
    assert rows["toner-b"]["user_sim_brand"] == pytest.approx(0.0)
