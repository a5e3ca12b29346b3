"""The behaviour-statistics suite (tests/unit/test_cooccur.py) on the Redis profile store,
against a real redis-server; and the two stores answering alike for one event sequence."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from shoprank.profiles.embedded import EmbeddedProfileStore
from shoprank.profiles.redis_store import RedisProfileStore
from tests.integration.conftest import RedisServer
from tests.unit.test_cooccur import CFG, HOUR, BehaviourStatsSuite, Log, StoreFactory, T


@pytest.fixture()
def redis_client(redis_server: RedisServer) -> Iterator[Any]:
    import redis

    client = redis.Redis.from_url(redis_server.url.replace("/0", "/4"))
    client.flushdb()
    yield client
    client.flushdb()


class TestRedisBehaviourStats(BehaviourStatsSuite):
    @pytest.fixture()
    def make_store(self, redis_client: Any) -> StoreFactory:
        def make(cfg: Any) -> RedisProfileStore:
            redis_client.flushdb()  # one store at a time in this database
            return RedisProfileStore(redis_client, cfg)

        return make


def test_redis_answers_as_the_embedded_store(redis_client: Any, tmp_path: Path) -> None:
    # Enough shoppers and products that neighbour lists hit their cap (pruning included).
    cfg = replace(CFG, max_neighbours=8, session_max_items=6)
    rng = random.Random(11)
    log = Log()
    t = T
    for _ in range(3000):
        t += rng.choice([5.0, 30.0, 300.0, 3 * HOUR])
        kind = rng.choice(["view", "view", "view", "click", "add_to_cart", "purchase"])
        log.add(kind, f"u{rng.randrange(40)}", f"p{int(rng.paretovariate(0.8)) % 60}", t)
    embedded = EmbeddedProfileStore(tmp_path / "p.sqlite", cfg)
    redis_store = RedisProfileStore(redis_client, cfg)
    for start in range(0, len(log.items), 250):  # the same batches, as one log delivers
        chunk = log.items[start : start + 250]
        assert redis_store.apply(chunk) == embedded.apply(chunk)
    ids = [f"p{i}" for i in range(60)]
    for kind in ("view", "buy"):
        got = redis_store.neighbours(ids, kind=kind, limit=5)
        assert got == embedded.neighbours(ids, kind=kind, limit=5)
        assert any(len(v) == 5 for v in got.values())
        full = redis_store.neighbours(ids, kind=kind, limit=100)
        assert max(len(v) for v in full.values()) <= 8  # capped
        if kind == "view":
            assert max(len(v) for v in full.values()) == 8
        assert full == embedded.neighbours(ids, kind=kind, limit=100)
        assert redis_store.item_sessions(ids, kind=kind) == embedded.item_sessions(ids, kind=kind)
        assert redis_store.cooccur_totals(kind=kind) == embedded.cooccur_totals(kind=kind)
    for limit in (3, 20, 100):
        assert redis_store.trending(now=t, limit=limit) == embedded.trending(now=t, limit=limit)
