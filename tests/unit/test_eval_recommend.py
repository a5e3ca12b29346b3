"""Recommendation evaluation: the metrics against hand-computed cases, the held-out split
(never a held-out event in the folded statistics), and the baselines."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shoprank.evaluation.recommend import (
    Case,
    CooccurCounts,
    catalog_coverage,
    hit_rate_at_k,
    intra_list_diversity,
    ndcg_one_at_k,
    popularity,
    recent_items,
    score,
    split,
)
from shoprank.events.model import Event

T0 = 1_767_225_600.0
DAY = 86_400.0


def ev(n: int, kind: str, user: str, pid: str, t: float, session: str = "") -> Event:
    return Event(
        type=kind,
        timestamp=t,
        event_id=f"e{n}",
        user_id=user,
        session_id=session or f"{user}-{int(t // DAY)}",
        product_id=pid,
        quantity=1 if kind in ("add_to_cart", "purchase") else None,
        price=10.0 if kind == "purchase" else None,
    )


# -- metrics ----------------------------------------------------------------------------


def test_hit_rate_counts_only_the_first_k() -> None:
    ranked = ["a", "b", "c", "d"]
    assert hit_rate_at_k(ranked, "c", k=3) == 1.0
    assert hit_rate_at_k(ranked, "d", k=3) == 0.0
    assert hit_rate_at_k([], "a", k=10) == 0.0


def test_ndcg_with_one_relevant_item_is_one_over_log2_of_rank_plus_one() -> None:
    assert ndcg_one_at_k(["x", "a"], "x") == pytest.approx(1.0)
    assert ndcg_one_at_k(["a", "x"], "x") == pytest.approx(1 / math.log2(3))
    assert ndcg_one_at_k(["a", "b", "c", "x"], "x") == pytest.approx(1 / math.log2(5))
    assert ndcg_one_at_k(["a", "b", "c", "x"], "x", k=3) == 0.0


def test_coverage_is_the_share_of_the_catalog_recommended_to_anyone() -> None:
    assert catalog_coverage([["a", "b"], ["b", "c"]], 10) == pytest.approx(0.3)
    assert catalog_coverage([], 10) == 0.0
    assert catalog_coverage([["a"]], 0) == 0.0


def test_intra_list_diversity_is_the_mean_pairwise_cosine_distance() -> None:
    vectors = {
        "x": np.array([1.0, 0.0]),
        "x2": np.array([3.0, 0.0]),  # same direction as x: distance 0
        "y": np.array([0.0, 2.0]),  # orthogonal: distance 1
        "z": np.array([-1.0, 0.0]),  # opposite: distance 2
    }
    assert intra_list_diversity(["x", "x2"], vectors) == pytest.approx(0.0)
    assert intra_list_diversity(["x", "y"], vectors) == pytest.approx(1.0)
    # pairs x-y 1, x-z 2, y-z 1 → mean 4/3
    assert intra_list_diversity(["x", "y", "z"], vectors) == pytest.approx(4 / 3)
    # products without a vector are left out; fewer than two → 0
    assert intra_list_diversity(["x", "missing"], vectors) == 0.0


def test_score_averages_over_cases() -> None:
    cases = [
        Case("user", "purchase", "u1", "a", T0),
        Case("user", "purchase", "u2", "z", T0),
    ]
    row = score(lambda c: ["a", "b"], cases, name="fixed", k=10, catalog_size=4)
    assert row.n == 2
    assert row.hit_rate == pytest.approx(0.5)
    assert row.ndcg == pytest.approx(0.5)
    assert row.coverage == pytest.approx(0.5)


# -- the held-out split -----------------------------------------------------------------


def _log() -> list[Event]:
    cut = T0 + 10 * DAY
    return [
        ev(1, "view", "u1", "p1", T0 + 1 * DAY),
        ev(2, "purchase", "u1", "p1", T0 + 1 * DAY + 60),
        ev(3, "purchase", "u2", "p2", T0 + 2 * DAY),
        # test period: u1 browses p3, p4, carts p5, then buys p4 (held out), then more
        ev(4, "view", "u1", "p3", cut + 100, "u1-late"),
        ev(5, "view", "u1", "p4", cut + 200, "u1-late"),
        ev(6, "add_to_cart", "u1", "p5", cut + 250, "u1-late"),
        ev(7, "add_to_cart", "u1", "p4", cut + 280, "u1-late"),
        ev(8, "purchase", "u1", "p4", cut + 300, "u1-late"),
        ev(9, "view", "u1", "p6", cut + 400, "u1-late"),
        # u2's test-period events and a later purchase that is held out
        ev(10, "view", "u2", "p70", cut + 50),
        ev(11, "purchase", "u2", "p7", cut + 500),
        # a shopper with nothing held out: their test-period event is not folded either
        ev(12, "view", "u3", "p8", cut + 10),
    ]


def test_split_never_folds_a_held_out_event_or_anything_after_it() -> None:
    events = _log()
    data = split(events, cutoff=T0 + 10 * DAY, protocol="purchase")
    held = {e.event_id for e in data.held_out}
    assert held == {"e8", "e11"}
    train = {e.event_id for e in data.train}
    assert not held & train
    # after u1's held-out purchase; another shopper's test period; the held-out product's
    # own lead-up in its session (view, cart of p4)
    for left_out in ("e9", "e12", "e5", "e7"):
        assert left_out not in train
    # history and the session so far are folded
    assert {"e1", "e2", "e3", "e4", "e6", "e10"} <= train
    for e in data.train:
        assert e.product_id != "p4" or e.session_id != "u1-late"


def test_split_turns_a_held_out_purchase_into_user_item_and_cart_cases() -> None:
    data = split(_log(), cutoff=T0 + 10 * DAY, protocol="purchase")
    u1 = {c.kind: c for c in data.cases if c.user == "u1"}
    assert u1["user"].target == "p4"
    assert u1["item"].anchors == ("p3",)  # the latest other product viewed before it
    assert u1["cart"].anchors == ("p5",)  # the cart, without the held-out product
    u2 = {c.kind for c in data.cases if c.user == "u2"}
    assert u2 == {"user", "item"}


def test_click_protocol_holds_out_the_last_click_and_has_no_cart_cases() -> None:
    events = [
        *_log(),
        ev(20, "click", "u3", "p9", T0 + 11 * DAY),
        ev(21, "click", "u3", "p10", T0 + 11 * DAY + 30),
    ]
    data = split(events, cutoff=T0 + 10 * DAY, protocol="click")
    assert [(e.user_id, e.product_id) for e in data.held_out] == [("u3", "p10")]
    assert {c.kind for c in data.cases} == {"user", "item"}
    assert "e21" not in {e.event_id for e in data.train}


def test_nothing_in_the_test_period_holds_out_nothing() -> None:
    data = split(_log(), cutoff=T0 + 100 * DAY, protocol="purchase")
    assert data.cases == [] and len(data.train) == len(_log())


# -- baselines --------------------------------------------------------------------------


def test_popularity_ranks_by_all_time_count_of_the_protocol_event() -> None:
    events = [
        ev(1, "purchase", "u1", "b", T0),
        ev(2, "purchase", "u2", "b", T0),
        ev(3, "purchase", "u3", "a", T0),
        ev(4, "click", "u3", "c", T0),
    ]
    assert popularity(events, protocol="purchase") == ["b", "a"]
    assert popularity(events, protocol="click") == ["c"]


def test_cooccurrence_counts_sessions_that_bought_both_then_falls_back() -> None:
    def basket(n: int, user: str, items: list[str]) -> list[Event]:
        return [
            ev(n * 10 + i, "purchase", user, p, T0 + n * DAY + i * 60) for i, p in enumerate(items)
        ]

    events = [
        *basket(1, "u1", ["laptop", "bag"]),
        *basket(2, "u2", ["laptop", "bag"]),
        *basket(3, "u3", ["laptop", "mouse"]),
        *basket(4, "u4", ["phone", "case"]),
    ]
    counts = CooccurCounts(events)
    assert counts.pairs["laptop"]["bag"] == 2
    ranked = counts.ranked(["laptop"], fallback=["case", "laptop", "zzz"], k=4)
    assert ranked == ["bag", "mouse", "case", "zzz"]


def test_recent_items_are_distinct_and_newest_first() -> None:
    events = [
        ev(1, "view", "u1", "a", T0),
        ev(2, "view", "u1", "b", T0 + 1),
        ev(3, "click", "u1", "a", T0 + 2),
    ]
    assert recent_items(events) == {"u1": ["a", "b"]}
