"""`POST /_shoprank/recommend` on the real server over loopback: a small shop indexed with
the real text encoder, behaviour posted as events through `/_shoprank/events`, folded by the
server itself, and every strategy asked over HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .conftest import Server, cli

LAPTOPS = "Electronics > Computers > Laptops"
BAGS = "Electronics > Computers > Laptop Bags"
PHONES = "Electronics > Phones > Smartphones"
AUDIO = "Electronics > Audio > Headphones"
SHOES = "Fashion > Shoes > Running Shoes"

# id, title, brand, category, price
CATALOG = [
    ("L1", "Aster Book 14 laptop 16GB RAM 512GB SSD", "Aster", LAPTOPS, 899.0),
    ("L2", "Aster Book 16 laptop 32GB RAM 1TB SSD", "Aster", LAPTOPS, 1299.0),
    ("L3", "Brio Air 13 ultrabook laptop 8GB RAM", "Brio", LAPTOPS, 649.0),
    ("L4", "Kestrel Pro 15 gaming laptop RTX graphics", "Kestrel", LAPTOPS, 1499.0),
    ("L5", "Brio Flex 14 2-in-1 laptop touchscreen", "Brio", LAPTOPS, 749.0),
    ("B1", "Aster 14-inch laptop sleeve, grey felt", "Aster", BAGS, 39.0),
    ("B2", "Brio laptop backpack 15.6-inch, black", "Brio", BAGS, 59.0),
    ("B3", "Kestrel padded laptop messenger bag", "Kestrel", BAGS, 49.0),
    ("P1", "Nimbus X smartphone 128GB, black", "Nimbus", PHONES, 799.0),
    ("P2", "Nimbus Lite smartphone 64GB, blue", "Nimbus", PHONES, 299.0),
    ("P3", "Orbit 5G smartphone 256GB, silver", "Orbit", PHONES, 549.0),
    ("H1", "Sonara Pulse wireless noise cancelling headphones", "Sonara", AUDIO, 99.0),
    ("H2", "Sonara Bud true wireless earbuds", "Sonara", AUDIO, 59.0),
    ("H3", "Vibe Studio over-ear headphones", "Vibe", AUDIO, 149.0),
    ("S1", "Fleetfoot Nova running shoes, white", "Fleetfoot", SHOES, 89.0),
    ("S2", "Fleetfoot Trail running shoes, green", "Fleetfoot", SHOES, 109.0),
]
CATEGORY = {pid: cat for pid, _, _, cat, _ in CATALOG}
DAY = 86_400.0


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("recommend-shop")
    catalog = data_dir / "catalog.jsonl"
    catalog.write_text(
        "".join(
            json.dumps(
                {
                    "id": pid,
                    "title": title,
                    "brand": brand,
                    "category": cat,
                    "price": price,
                    "description": f"{title} by {brand}.",
                }
            )
            + "\n"
            for pid, title, brand, cat, price in CATALOG
        )
    )
    cli("index", "load", "--no-train-intent", str(catalog), "--index", "shop", data_dir=data_dir)
    server = Server(data_dir, env={"SHOPRANK_PRODUCT_INDEX": "shop"}).start()
    try:
        post_events(server, purchase_history(time.time() - 10 * DAY))
        yield server
    finally:
        server.stop()


def purchase_history(t0: float) -> list[dict[str, Any]]:
    """Ten days ago: the headphones H1 are the best-seller (50 purchases, 10 of them with
    the laptop L1); the sleeve B1 is bought with L1 in 8 sessions; shoppers compare L1 and
    L3 in 12 sessions and buy one of them."""
    events: list[dict[str, Any]] = []
    n = 0

    def session(user: str, buys: list[str], views: list[str] = ()) -> None:  # type: ignore[assignment]
        nonlocal n
        t = t0 + n * 7200.0  # sessions two hours apart: never one session
        for i, pid in enumerate([*views, *buys]):
            events.append({"type": "view", "user_id": user, "product_id": pid, "timestamp": t + i})
        for i, pid in enumerate(buys):
            events.append(
                {
                    "type": "purchase",
                    "user_id": user,
                    "product_id": pid,
                    "price": 10.0,
                    "timestamp": t + 60 + i,
                }
            )
        n += 1

    for i in range(8):
        session(f"pair-{i}", ["L1", "B1"])
    for i in range(10):
        session(f"gift-{i}", ["L1", "H1"])
    for i in range(40):
        session(f"music-{i}", ["H1"])
    for i in range(12):
        session(f"compare-{i}", ["L1" if i % 2 else "L3"], views=["L1", "L3"])
    return events


def post_events(server: Server, events: list[dict[str, Any]]) -> None:
    got = httpx.post(server.url + "/_shoprank/events", json=events, timeout=120)
    assert got.status_code == 200, got.text
    assert got.json()["accepted"] == len(events), got.json()


def recommend(server: Server, body: dict[str, Any], **kw: Any) -> httpx.Response:
    return httpx.post(server.url + "/_shoprank/recommend", json=body, timeout=120, **kw)


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [h["_id"] for h in response.json()["hits"]["hits"]]


def test_bought_together_returns_the_complement_not_the_best_seller(shop: Server) -> None:
    got = recommend(shop, {"strategy": "bought_together", "product_id": "L1", "explain": True})
    order = ids(got)
    assert order[0] == "B1"  # the complement comes before the best-seller H1
    assert "L3" not in order  # bought instead of L1, not with it
    body = got.json()
    assert body["hits"]["hits"][0]["_source"]["title"].startswith("Aster 14-inch laptop sleeve")
    assert body["hits"]["hits"][0]["_shoprank"]["strategy"] == "bought_together"
    assert "cold_start" not in body["_shoprank"]  # from the folded co-purchases
    assert body["hits"]["hits"][0]["_shoprank"]["sources"]["bought_with"]["L1"]["sessions"] == 8
    assert body["_shoprank"]["rec_id"]


def test_bought_together_for_a_new_product_is_complementary_content(shop: Server) -> None:
    got = recommend(shop, {"strategy": "bought_together", "product_id": "S2", "size": 5})
    assert got.json()["_shoprank"]["cold_start"] is True
    assert got.json()["_shoprank"]["fallback"] == "complementary_content"
    assert all(CATEGORY[p] != SHOES for p in ids(got))


def test_similar_returns_the_same_category(shop: Server) -> None:
    order = ids(recommend(shop, {"strategy": "similar", "product_id": "L2", "size": 3}))
    assert [CATEGORY[p] for p in order] == [LAPTOPS] * 3
    assert "L2" not in order


def test_for_you_follows_what_the_shopper_viewed(shop: Server) -> None:
    now = time.time()
    post_events(
        shop,
        [
            {"type": "view", "user_id": "alice", "product_id": pid, "timestamp": now - 300 + i}
            for i, pid in enumerate(["L2", "L4", "L5"])
        ],
    )
    got = recommend(shop, {"strategy": "for_you", "size": 5}, headers={"X-Shoprank-User": "alice"})
    order = ids(got)
    laptopish = [p for p in order if CATEGORY[p] in (LAPTOPS, BAGS)]
    assert len(laptopish) >= 4, [(p, CATEGORY[p]) for p in order]
    assert "cold_start" not in got.json()["_shoprank"]
    stranger = recommend(shop, {"strategy": "for_you", "user_id": "nobody-yet", "size": 5})
    assert stranger.json()["_shoprank"]["cold_start"] is True
    assert len(ids(stranger)) == 5


def test_trending_follows_recent_events(shop: Server) -> None:
    now = time.time()
    post_events(
        shop,
        [
            {"type": "view", "user_id": f"t-{i}", "product_id": "P2", "timestamp": now - 3600}
            for i in range(6)
        ],
    )
    first = ids(recommend(shop, {"strategy": "trending", "size": 3}))
    assert first[0] == "P2"  # six views an hour ago beat 50 purchases ten days ago
    post_events(
        shop,
        [
            {"type": "click", "user_id": f"t2-{i}", "product_id": "P3", "timestamp": now - 60}
            for i in range(8)
        ],
    )
    second = ids(recommend(shop, {"strategy": "trending", "size": 3}))
    assert second[:2] == ["P3", "P2"]
    audio = ids(recommend(shop, {"strategy": "trending", "category": "Electronics > Audio"}))
    assert audio and all(CATEGORY[p] == AUDIO for p in audio)


@pytest.mark.parametrize(
    "body",
    [
        {"strategy": "similar", "product_id": "L1"},
        {"strategy": "bought_together", "product_id": "L1"},
        {"strategy": "bought_together", "product_ids": ["L1", "H1"]},
        {"strategy": "for_you", "user_id": "alice"},
        {"strategy": "trending"},
    ],
)
def test_a_price_filter_holds_in_every_strategy(shop: Server, body: dict[str, Any]) -> None:
    cheap = {"range": {"price": {"gte": 30, "lte": 120}}}
    got = recommend(shop, {**body, "filter": [cheap], "size": 20})
    hits = got.json()["hits"]["hits"]
    assert hits, got.text
    assert all(30 <= h["_source"]["price"] <= 120 for h in hits)


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"strategy": "popular"}, 400, "[strategy]"),
        ({"strategy": "similar"}, 400, "[product_id]"),
        ({"strategy": "trending", "size": 100_000}, 400, "[size]"),
        ({"strategy": "trending", "filter": [{"range": 1, "term": 2}]}, 400, "[filter]"),
        ({"strategy": "trending", "diversity": "shuffle"}, 400, "[diversity]"),
        ({"strategy": "similar", "product_id": "NOPE"}, 404, "[NOPE]"),
    ],
)
def test_bad_requests_answer_in_the_es_error_shape(
    shop: Server, body: dict[str, Any], status: int, needle: str
) -> None:
    got = recommend(shop, body)
    assert got.status_code == status, got.text
    error = got.json()
    assert error["status"] == status
    assert needle in error["error"]["reason"]
    assert error["error"]["root_cause"][0]["type"] == error["error"]["type"]
    assert httpx.get(shop.url + "/", timeout=10).status_code == 200  # still up


def test_a_click_on_a_recommendation_is_accepted_with_its_rec_id(shop: Server) -> None:
    got = recommend(
        shop,
        {"strategy": "bought_together", "product_id": "L1"},
        headers={"X-Shoprank-User": "bob"},
    )
    rec_id = got.json()["_shoprank"]["rec_id"]
    clicked = got.json()["hits"]["hits"][0]["_id"]
    accepted = httpx.post(
        shop.url + "/_shoprank/events",
        json={
            "type": "click",
            "user_id": "bob",
            "product_id": clicked,
            "rec_id": rec_id,
            "strategy": "bought_together",
            "position": 1,
        },
        timeout=60,
    )
    assert accepted.json()["accepted"] == 1, accepted.text
    refused = httpx.post(
        shop.url + "/_shoprank/events",
        json={"type": "click", "user_id": "bob", "product_id": clicked, "strategy": "nope"},
        timeout=60,
    )
    assert "[strategy]" in json.dumps(refused.json())
