"""The behaviour-statistics suite (tests/unit/test_cooccur.py) on the Redis profile store,
against a real redis-server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shoprank.profiles.redis_store import RedisProfileStore
from tests.integration.conftest import RedisServer
from tests.unit.test_cooccur import CFG, BehaviourStatsSuite


class TestRedisBehaviourStats(BehaviourStatsSuite):
    @pytest.fixture()
    def store(self, redis_server: RedisServer) -> Iterator[RedisProfileStore]:
        import redis

        client = redis.Redis.from_url(redis_server.url.replace("/0", "/4"))
        store = RedisProfileStore(client, CFG)
        store.clear()
        yield store
        store.clear()
