"""Recommendations on Redis-backed profiles and statistics: the real server writes events
to a real Redis, a real Celery worker (`shoprank worker`) folds them into the Redis
profile store (co-occurrence, session totals, trending), and every strategy answers over
HTTP from there — the same shop and the same expectations as the embedded test
(`test_recommend_http.py`)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import RedisServer, Server, Worker, cli
from .test_recommend_http import (
    AUDIO,
    BAGS,
    CATALOG,
    CATEGORY,
    DAY,
    LAPTOPS,
    SHOES,
    ids,
    post_events,
    purchase_history,
    recommend,
)

WAIT_S = 240.0


def folded(server: Server, user: str, kind: str, at_least: int = 1) -> bool:
    got = httpx.get(f"{server.url}/_shoprank/users/{user}/profile", timeout=30)
    if got.status_code != 200:
        return False
    return int(got.json().get("counts", {}).get(kind, 0)) >= at_least


def wait_folded(server: Server, user: str, kind: str, at_least: int = 1) -> None:
    """The worker folds in log order: once the last event posted is in its user's profile,
    every earlier one is folded too."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if folded(server, user, kind, at_least):
            return
        time.sleep(0.5)
    raise AssertionError(f"the worker did not fold {kind} of {user} within {WAIT_S} s")


@pytest.fixture(scope="module")
def shop(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    import redis

    redis.Redis.from_url(redis_server.url).flushdb()
    data_dir: Path = tmp_path_factory.mktemp("recommend-redis")
    catalog = data_dir / "catalog.jsonl"
    catalog.write_text(
        "".join(
            json.dumps({"id": pid, "title": title, "brand": brand, "category": cat, "price": price})
            + "\n"
            for pid, title, brand, cat, price in CATALOG
        )
    )
    cli("index", "load", "--no-train-intent", str(catalog), "--index", "shop", data_dir=data_dir)
    env = {"SHOPRANK_PRODUCT_INDEX": "shop", "SHOPRANK_REDIS_URL": redis_server.url}
    server = Server(data_dir, env=env).start()
    worker = Worker(data_dir, redis_server.url, concurrency=1, env=env).start()
    try:
        post_events(server, purchase_history(time.time() - 10 * DAY))
        wait_folded(server, "compare-11", "purchase")
        yield server
    finally:
        worker.stop()
        server.stop()


def test_bought_together_from_redis_statistics(shop: Server, redis_server: RedisServer) -> None:
    import redis

    # The statistics live in Redis (folded by the worker), not in a local store.
    stats = redis.Redis.from_url(redis_server.url)
    assert stats.zscore("shoprank:co:buy:L1", "B1") == 8.0
    got = recommend(shop, {"strategy": "bought_together", "product_id": "L1", "explain": True})
    order = ids(got)
    assert order[0] == "B1"  # the complement, not the best-seller H1
    assert "L3" not in order  # bought instead of L1
    hit = got.json()["hits"]["hits"][0]
    assert hit["_shoprank"]["sources"]["bought_with"]["L1"]["sessions"] == 8
    assert "cold_start" not in got.json()["_shoprank"]


def test_similar_and_cold_start_from_redis(shop: Server) -> None:
    order = ids(recommend(shop, {"strategy": "similar", "product_id": "L2", "size": 3}))
    assert [CATEGORY[p] for p in order] == [LAPTOPS] * 3
    new = recommend(shop, {"strategy": "bought_together", "product_id": "S2", "size": 5})
    assert new.json()["_shoprank"]["cold_start"] is True
    assert all(CATEGORY[p] != SHOES for p in ids(new))


def test_for_you_and_trending_follow_events_folded_by_the_worker(shop: Server) -> None:
    now = time.time()
    views = ["L2", "L4", "L5"]
    post_events(
        shop,
        [
            {"type": "view", "user_id": "alice", "product_id": pid, "timestamp": now - 300 + i}
            for i, pid in enumerate(views)
        ]
        + [
            {"type": "click", "user_id": f"t-{i}", "product_id": "H3", "timestamp": now - 60}
            for i in range(8)
        ],
    )
    wait_folded(shop, "t-7", "click")
    wait_folded(shop, "alice", "view", at_least=3)
    got = recommend(shop, {"strategy": "for_you", "size": 5}, headers={"X-Shoprank-User": "alice"})
    order = ids(got)
    assert "cold_start" not in got.json()["_shoprank"]
    assert len([p for p in order if CATEGORY[p] in (LAPTOPS, BAGS)]) >= 4, order
    trend = ids(recommend(shop, {"strategy": "trending", "size": 3}))
    assert trend[0] == "H3"  # eight clicks a minute ago beat purchases ten days ago
    audio = ids(recommend(shop, {"strategy": "trending", "category": "Electronics > Audio"}))
    assert audio and all(CATEGORY[p] == AUDIO for p in audio)
