"""Ranking features on hand-built cases; missing inputs give the registry defaults."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from shoprank.events.model import Event
from shoprank.rerankers.features import FEATURE_NAMES, Inputs, compute_features, vectorise
from shoprank.rerankers.features.registry import DEFAULTS
from shoprank.rerankers.intent.types import Intent
from shoprank.rerankers.ltr.scorers import DefaultScorer
from shoprank.rerankers.protocol import Candidate
from shoprank.searchlog.logger import logged_window
from shoprank.searchlog.record import SearchRecord, WindowItem

NOW = time.time()
SHOE = {
    "brand": "Stride",
    "category_levels": ["Fashion", "Fashion > Shoes", "Fashion > Shoes > Running Shoes"],
    "price": 100.0,
    "colour": "Black",
    "rating": 4.5,
    "review_count": 99,
    "released": "2024-01-01",
    "in_stock": False,
}


def cand(pid: str = "p1", **kw: object) -> Candidate:
    base: dict[str, object] = {
        "score": 0.03,
        "legs": {"lexical": (2, 7.5), "vector": (4, 0.8)},
        "retrieval_rank": 3,
    }
    base.update(kw)
    return Candidate(pid, **base)  # type: ignore[arg-type]


def profile(**kw: object) -> dict[str, object]:
    p: dict[str, object] = {
        "aff": {
            "category": {"Fashion": 3.0, "Fashion > Shoes": 3.0, "Electronics": 6.0},
            "brand": {"Stride": 3.0, "Kovo": 1.0},
        },
        "price": {"w": 2.0, "mean": 100.0, "var": 400.0},
        "recent": [["p1", NOW - 2 * 86_400], ["p9", NOW]],
        "vec": {"w": 2.0, "sum": [2.0, 0.0]},
    }
    p.update(kw)
    return p


def test_retrieval_features() -> None:
    (f,) = compute_features([cand()], Inputs(now=NOW))
    assert f["fused_score"] == pytest.approx(0.03)
    assert f["retrieval_rr"] == pytest.approx(1 / 3)
    assert f["lex_present"] == 1 and f["lex_score"] == 7.5 and f["lex_rr"] == 0.5
    assert f["vec_present"] == 1 and f["vec_rr"] == 0.25
    assert "img_rr" not in f  # no image leg → default


def test_intent_agreement() -> None:
    intent = Intent(
        query="black stride running shoes under 80",
        categories=[
            ("Fashion", 0.9),
            ("Fashion > Shoes", 0.8),
            ("Fashion > Shoes > Running Shoes", 0.7),
        ],
        attributes={"brand": ["stride"], "colour": ["black"]},
        price={"lte": 80.0},
    )
    (f,) = compute_features([cand()], Inputs(facts={"p1": SHOE}, intent=intent, now=NOW))
    assert f["intent_present"] == 1
    assert f["intent_cat_prob"] == pytest.approx((0.9 + 0.8 + 0.7) / 3)
    assert f["intent_brand_match"] == 1 and "intent_brand_conflict" not in f
    assert f["intent_colour_match"] == 1
    assert f["intent_price_out"] == 1 and "intent_price_in" not in f
    other = dict(SHOE, brand="Fleetfoot", price=60.0, colour="Red")
    (g,) = compute_features([cand()], Inputs(facts={"p1": other}, intent=intent, now=NOW))
    assert g["intent_brand_conflict"] == 1 and "intent_colour_match" not in g
    assert g["intent_price_in"] == 1


def test_user_and_session_features() -> None:
    vec = np.asarray([1.0, 0.0], dtype=np.float32)
    inputs = Inputs(
        facts={"p1": SHOE}, vectors={"p1": vec}, user=profile(), session=profile(), now=NOW
    )
    (f,) = compute_features([cand()], inputs)
    assert f["user_present"] == 1
    # category levels Fashion + Fashion > Shoes hold 6 of 12
    assert f["user_cat_aff"] == pytest.approx(0.5)
    assert f["user_brand_aff"] == pytest.approx(0.75)
    assert f["user_price_fit"] == pytest.approx(1.0)  # exactly the user's mean price
    assert f["user_vec_sim"] == pytest.approx(1.0)
    assert f["user_seen"] == 1
    assert f["user_seen_recency"] == pytest.approx(1 / 3, rel=1e-3)
    assert f["session_brand_aff"] == pytest.approx(0.75)
    cheap = dict(SHOE, price=20.0)
    (g,) = compute_features([cand()], Inputs(facts={"p1": cheap}, user=profile(), now=NOW))
    # std is max(20, 0.15 * 100, 1) = 20 → z = 4
    assert g["user_price_fit"] == pytest.approx(math.exp(-8))


def test_product_features() -> None:
    stats = {"p1": {"clicks": 3.0, "carts": 1.0, "purchases": 0.0, "ctr": 0.2}}
    qstats = {"p1": {"clicks": 2.0, "ctr": 0.3}}
    (f,) = compute_features(
        [cand()], Inputs(facts={"p1": SHOE}, stats=stats, query_stats=qstats, now=NOW)
    )
    assert f["prod_popularity"] == pytest.approx(math.log1p(4))
    assert f["prod_ctr"] == 0.2 and f["query_ctr"] == 0.3
    assert f["query_clicks"] == pytest.approx(math.log1p(2))
    assert f["rating"] == 4.5 and f["log_reviews"] == pytest.approx(math.log1p(99))
    assert f["log_price"] == pytest.approx(math.log1p(100))
    assert 0 < f["freshness"] < 1
    assert f["in_stock"] == 0


def test_missing_everything_gives_defaults() -> None:
    """No facts, no profile, no stats, no intent: no crash, registry defaults."""
    features = compute_features([cand("ghost", legs={}, retrieval_rank=1)], Inputs(prior_ctr=0.05))
    x = vectorise(features)
    assert x.shape == (1, len(FEATURE_NAMES))
    row = dict(zip(FEATURE_NAMES, x[0].tolist(), strict=True))
    for name in ("user_present", "user_brand_aff", "intent_present", "rating", "lex_rr"):
        assert row[name] == DEFAULTS[name]
    assert row["in_stock"] == 1.0  # unknown stock counts as in stock
    assert row["prod_ctr"] == pytest.approx(0.05)
    # an empty profile is treated as no profile
    (f,) = compute_features([cand()], Inputs(user={}, facts={"p1": {}}))
    assert "user_present" not in f


def test_default_scorer_contributions_sum_to_score() -> None:
    features = compute_features(
        [cand(), cand("p2", retrieval_rank=1)], Inputs(facts={"p1": SHOE}, user=profile())
    )
    x = vectorise(features)
    scorer = DefaultScorer()
    scores = scorer.score(x)
    for s, contrib in zip(scores, scorer.contributions(x), strict=True):
        assert sum(contrib.values()) == pytest.approx(float(s), rel=1e-5)
    # the user's favourite brand lifts p1 over the better-retrieved p2 only by its affinity
    assert "user_brand_aff" in scorer.contributions(x)[0]


def test_feature_logging_is_sampled_and_round_trips() -> None:
    record = SearchRecord(index="demo", query="shoes", mode="full", user_id="u")
    record.window = [WindowItem("p1", 3, 1, 0.9, {"lex_rr": 0.5}), WindowItem("p2", 1, 2, 0.8)]
    full = logged_window(record, 1.0)
    assert full[0] == {"id": "p1", "before": 3, "after": 1, "features": {"lex_rr": 0.5}}
    assert "features" not in full[1]
    none = logged_window(record, 0.0)
    assert all("features" not in item for item in none)
    assert [item["after"] for item in none] == [1, 2]
    event = Event(type="search", timestamp=NOW, event_id="q", query_id="q", window=tuple(full))
    assert Event.from_record(event.to_record()) == event
