"""The profile fold: decay, weights, price band, vector, recent items, statistics."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from shoprank.events.model import Event
from shoprank.profiles.folding import (
    DAY,
    FoldConfig,
    fold_batch,
    fold_event,
    new_profile,
    repair,
    smoothed_ctr,
    snapshot,
)

T = 1_800_000_000.0
CFG = FoldConfig(
    half_life_s={"default": 10 * DAY, "price": 10 * DAY, "vector": 10 * DAY, "session": DAY},
    weights={"view": 1.0, "click": 2.0, "add_to_cart": 5.0, "purchase": 10.0},
    facets=("category", "brand"),
    recent_max=3,
)
FACTS = {
    "p1": {"category": "Laptops", "brand": "HP", "price": 100.0, "vector": [1.0, 0.0]},
    "p2": {"category": "Mice", "brand": "HP", "price": 20.0, "vector": [0.0, 1.0]},
    "p3": {"category": ["Audio", "Headphones"], "brand": "Sony", "price": 60.0},
}


def lookup(ids: Sequence[str]) -> Mapping[str, Mapping[str, Any]]:
    return {i: FACTS[i] for i in ids if i in FACTS}


def ev(kind: str, pid: str, t: float = T, **kw: Any) -> Event:
    return Event(
        type=kind, timestamp=t, event_id=f"{kind}{pid}{t}", user_id="u", product_id=pid, **kw
    )


def fold(*events: Event) -> dict[str, Any]:
    profile = new_profile("u", events[0].timestamp)
    for event in events:
        fold_event(profile, event, FACTS.get(event.product_id or ""), CFG)
    return profile


def test_affinity_halves_after_one_half_life() -> None:
    profile = fold(ev("click", "p1"))
    now = snapshot(profile, T, CFG)["affinities"]["category"]["Laptops"]
    later = snapshot(profile, T + 10 * DAY, CFG)["affinities"]["category"]["Laptops"]
    assert now == 2.0 and later == pytest.approx(1.0)


def test_event_weights_rank_purchase_over_cart_over_click_over_view() -> None:
    profile = fold(
        ev("view", "p1"),
        ev("click", "p2"),
        ev("add_to_cart", "p3", quantity=1),
    )
    cats = profile["aff"]["category"]
    assert cats["Laptops"] < cats["Mice"] < cats["Audio"] * 2  # p3 splits over two levels
    bought = fold(ev("purchase", "p1", price=100.0, quantity=1))
    assert bought["aff"]["brand"]["HP"] == 10.0


def test_order_of_arrival_does_not_matter_beyond_rounding() -> None:
    events = [ev("click", "p1", T), ev("view", "p2", T + DAY), ev("click", "p3", T + 3 * DAY)]
    a = fold(*events)
    b = fold(events[2], events[0], events[1])
    for facet in ("category", "brand"):
        for value, score in a["aff"][facet].items():
            assert b["aff"][facet][value] == pytest.approx(score)


def test_price_band_is_a_weighted_mean_and_variance() -> None:
    profile = fold(ev("click", "p1"), ev("click", "p2"))  # equal weights, same time
    band = snapshot(profile, T, CFG)["price"]
    assert band["mean"] == pytest.approx(60.0) and band["std"] == pytest.approx(40.0)


def test_user_vector_is_the_weighted_mean_of_product_vectors() -> None:
    profile = fold(ev("view", "p1"), ev("click", "p2"))
    vector = snapshot(profile, T, CFG)["vector"]
    assert vector == pytest.approx([1 / 3, 2 / 3])


def test_recent_products_newest_first_capped() -> None:
    profile = fold(*[ev("view", p, T + i) for i, p in enumerate(["p1", "p2", "p3", "p1", "p4"])])
    assert snapshot(profile, T, CFG)["recent_products"] == ["p4", "p1", "p3"]


def test_session_profiles_decay_faster() -> None:
    profile = new_profile("s:abc", T)
    fold_event(profile, ev("click", "p1"), FACTS["p1"], CFG)
    aff = snapshot(profile, T + DAY, CFG)["affinities"]["category"]["Laptops"]
    assert profile["kind"] == "session" and aff == pytest.approx(1.0)


def test_batch_counts_impressions_clicks_and_query_product_stats() -> None:
    search = Event(
        type="search",
        timestamp=T,
        event_id="q1",
        user_id="u",
        query_id="q1",
        query="  HP   Laptop ",
        product_ids=("p1", "p2", "p1"),
    )
    click = ev("click", "p1", query_id="q1", position=0)
    buy = ev("purchase", "p1", price=100.0, quantity=3, query_id="q1")
    result = fold_batch([search, click, buy], profiles={}, queries={}, lookup=lookup, cfg=CFG)
    assert result.stats[("p1", "impressions")] == 1 and result.stats[("p2", "impressions")] == 1
    assert result.stats[("p1", "clicks")] == 1 and result.stats[("p1", "purchases")] == 3
    assert result.query_stats[("hp laptop", "p1", "clicks")] == 1
    assert result.queries == {"q1": "hp laptop"}
    assert result.profiles["u"]["counts"] == {"search": 1, "click": 1, "purchase": 1}


def test_smoothed_ctr() -> None:
    assert smoothed_ctr(0, 0, prior_clicks=1, prior_n=20) == 0.05
    assert math.isclose(smoothed_ctr(30, 100, prior_clicks=1, prior_n=20), 31 / 120)


def test_a_poison_event_is_quarantined_and_the_rest_fold_as_without_it() -> None:
    good = [ev("click", "p1"), ev("purchase", "p2", t=T + 1, price=20.0, quantity=1)]
    poison = ev("purchase", "p1", t=T + 2, price=1e308, quantity=1)  # written by an old version
    late = ev("view", "p3", t=T + 3)
    result = fold_batch([*good, poison, late], profiles={}, queries={}, lookup=lookup, cfg=CFG)
    clean = fold_batch([*good, late], profiles={}, queries={}, lookup=lookup, cfg=CFG)
    assert [i for i, _ in result.quarantined] == [2] and "price" in result.quarantined[0][1]
    assert result.applied == 3
    assert result.profiles == clean.profiles and result.stats == clean.stats
    band = snapshot(result.profiles["u"], T + 3, CFG)["price"]
    assert band["mean"] is not None and math.isfinite(band["mean"])


class _FactsThatFail(dict[str, Any]):
    """Product facts whose vector lookup raises: the failure comes part way into a fold."""

    def get(self, key: str, default: Any = None) -> Any:
        if key == "vector":
            raise RuntimeError("broken facts")
        return super().get(key, default)


def test_an_event_failing_part_way_leaves_no_trace_in_the_profile() -> None:
    stored = fold(ev("click", "p1", t=T - DAY))
    events = [ev("click", "p2"), ev("click", "bad", t=T + 1), ev("view", "p3", t=T + 2)]

    def facts(ids: Sequence[str]) -> Mapping[str, Mapping[str, Any]]:
        return {**lookup(ids), "bad": _FactsThatFail(brand="Acme")}

    result = fold_batch(events, profiles={"u": stored}, queries={}, lookup=facts, cfg=CFG)
    clean = fold_batch(
        [events[0], events[2]], profiles={"u": stored}, queries={}, lookup=lookup, cfg=CFG
    )
    assert [i for i, _ in result.quarantined] == [1]
    assert "RuntimeError" in result.quarantined[0][1]
    assert result.profiles == clean.profiles  # affinity to "Acme" and its count undone
    assert ("bad", "clicks") not in result.stats


def test_a_subject_with_only_a_poison_event_gets_no_profile() -> None:
    poison = Event(type="click", timestamp=math.nan, event_id="x", user_id="v", product_id="p1")
    result = fold_batch([poison], profiles={}, queries={}, lookup=lookup, cfg=CFG)
    assert result.profiles == {} and result.applied == 0 and len(result.quarantined) == 1


def test_a_profile_corrupted_by_an_old_version_folds_on() -> None:
    broken = fold(ev("purchase", "p1", price=100.0, quantity=1))
    broken["price"] = {"w": 10.0, "mean": None, "var": None}  # inf stored as null
    assert snapshot(broken, T, CFG)["price"]["mean"] is None  # readable, not an error
    result = fold_batch(
        [ev("purchase", "p2", t=T + 1, price=20.0, quantity=1)],
        profiles={"u": broken},
        queries={},
        lookup=lookup,
        cfg=CFG,
    )
    assert result.quarantined == [] and result.profiles["u"]["price"]["mean"] == 20.0
    assert repair(fold(ev("click", "p1"))) == fold(ev("click", "p1"))  # a sound one is kept


def test_out_of_range_product_facts_are_ignored_not_fatal() -> None:
    facts = {"p9": {"brand": "X", "price": 1e308, "vector": [math.inf, 1.0]}}
    result = fold_batch(
        [ev("click", "p9")], profiles={}, queries={}, lookup=lambda ids: facts, cfg=CFG
    )
    profile = result.profiles["u"]
    assert result.quarantined == [] and profile["aff"]["brand"] == {"X": 2.0}
    assert profile["price"]["w"] == 0.0 and profile["vec"] is None
