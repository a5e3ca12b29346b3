"""Faults of real dependencies against the real server: Redis stopped and restarted, a
reranking stage stuck past the search's deadline. Asserted through responses and metrics."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.integration.conftest import RedisServer, Server

QUERY = {
    "query": {"multi_match": {"query": "wireless headphones", "fields": ["title", "description"]}},
    "size": 10,
}


def metric(server: Server, name: str, **labels: str) -> float:
    text = httpx.get(server.url + "/_shoprank/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def search(server: Server, mode: str = "full", user: str | None = "shopper-1") -> httpx.Response:
    ext: dict[str, Any] = {"mode": mode}
    if user:
        ext["user_id"] = user
    return httpx.post(
        f"{server.url}/demo/_search", json={**QUERY, "ext": {"shoprank": ext}}, timeout=30
    )


def events(n: int, tag: str) -> list[dict[str, Any]]:
    return [
        {"type": "click", "user_id": f"u{i % 3}", "product_id": f"p{i}", "event_id": f"{tag}-{i}"}
        for i in range(n)
    ]


def stream_event_ids(redis_url: str) -> set[str]:
    import redis

    from shoprank.events.redis_log import STREAM

    client = redis.Redis.from_url(redis_url)
    found = set()
    for _, fields in client.xrange(STREAM):
        found.add(orjson.loads(fields[b"e"])["event_id"])
    return found


@pytest.fixture()
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", persistent=True)
    server.workdir.mkdir()
    server.start()
    yield server
    server.stop()


def start_server(demo_data_dir: Path, **env: str) -> Server:
    return Server(demo_data_dir, env={k.upper(): v for k, v in env.items()}).start()


def test_redis_down_searches_work_and_events_answer_503(
    demo_data_dir: Path, redis: RedisServer
) -> None:
    server = start_server(demo_data_dir, shoprank_redis_url=redis.url)
    try:
        healthy = search(server)
        assert healthy.status_code == 200
        assert httpx.post(server.url + "/_shoprank/events", json=events(2, "a")).status_code == 200

        redis.stop()
        for _ in range(5):
            down = search(server)
            assert down.status_code == 200
            # Unpersonalised now (no profiles, no click statistics), but the same products.
            assert {h["_id"] for h in down.json()["hits"]["hits"]} & {
                h["_id"] for h in healthy.json()["hits"]["hits"]
            }
        # The searches' own log entries could not be written: counted, never an error.
        deadline = time.monotonic() + 30
        while metric(server, "shoprank_search_log_lost", reason="failed") < 1:
            assert time.monotonic() < deadline, "failed search logging not counted"
            time.sleep(0.2)
        refused = httpx.post(server.url + "/_shoprank/events", json=events(2, "b"))
        assert refused.status_code == 503
        error = refused.json()
        assert error["status"] == 503 and "retry" in error["error"]["reason"]
        assert error["error"]["type"] == "unavailable_shards_exception"
        ready = httpx.get(server.url + "/_shoprank/ready").json()
        assert ready["status"] == "degraded" and not ready["checks"]["redis"]["ok"]
        assert metric(server, "shoprank_events_total", outcome="unavailable") == 2
        assert metric(server, "shoprank_queue_depth", queue="event_stream") == -1

        redis.start()
        again = httpx.post(server.url + "/_shoprank/events", json=events(2, "b"))
        assert again.status_code == 200 and again.json()["accepted"] == 2
        assert httpx.get(server.url + "/_shoprank/ready").json()["status"] == "ready"
        # The append-only Redis kept what was accepted before the outage.
        assert {"a-0", "a-1", "b-0", "b-1"} <= stream_event_ids(redis.url)
    finally:
        server.stop()


def test_redis_down_with_spool_keeps_and_replays_events(
    demo_data_dir: Path, redis: RedisServer, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    server = start_server(
        demo_data_dir, shoprank_redis_url=redis.url, shoprank_event_spool_dir=str(spool)
    )
    try:
        assert (
            httpx.post(server.url + "/_shoprank/events", json=events(3, "pre")).status_code == 200
        )
        redis.stop()
        accepted = 0
        for batch in range(4):
            response = httpx.post(server.url + "/_shoprank/events", json=events(5, f"out{batch}"))
            assert response.status_code == 200, response.text
            assert response.json()["spooled"] == 5
            accepted += response.json()["accepted"]
        assert accepted == 20
        assert len(list(spool.glob("*.jsonl"))) == 4
        assert metric(server, "shoprank_queue_depth", queue="event_spool") == 20
        assert search(server).status_code == 200

        redis.start()
        deadline = time.monotonic() + 30
        while list(spool.glob("*.jsonl")) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not list(spool.glob("*.jsonl")), "spool not replayed"
        ids = stream_event_ids(redis.url)
        expected = {f"out{b}-{i}" for b in range(4) for i in range(5)} | {
            f"pre-{i}" for i in range(3)
        }
        assert expected <= ids
        assert metric(server, "shoprank_events_total", outcome="spooled") == 20
    finally:
        server.stop()


def test_stuck_ranker_degrades_to_retrieval_order(demo_data_dir: Path, tmp_path: Path) -> None:
    # The learned ranker, and every stage before the stuck one, get time enough not to
    # degrade on a busy machine, so the order the stages before the stuck one give is
    # deterministic. The stuck stage never returns before the test releases it.
    plain = start_server(
        demo_data_dir, shoprank_search_budget_ms="10000", shoprank_rerank_timeout_ms="5000"
    )
    try:  # the order every other stage gives, without the stuck one
        expected = [h["_id"] for h in search(plain, mode="full", user=None).json()["hits"]["hits"]]
    finally:
        plain.stop()
    release = tmp_path / "release-the-stuck-stage"
    server = start_server(
        demo_data_dir,
        shoprank_extra_rerankers='["tests.integration.slow_reranker:SlowReranker"]',
        shoprank_test_rerank_release=str(release),
        shoprank_search_budget_ms="10000",
        shoprank_rerank_timeout_ms="5000",
    )
    try:
        # The stage is released only after the answer: an answer shows it was not waited for.
        response = search(server, mode="full", user=None)
        release.touch()
        assert response.status_code == 200
        body = response.json()
        assert body["_shoprank"]["degraded"] == ["rerank:slow: timeout"]
        assert [h["_id"] for h in body["hits"]["hits"]] == expected
        assert isinstance(body["took"], int) and body["took"] >= 0
        assert metric(server, "shoprank_degradations_total", stage="rerank:slow") == 1
        assert re.search(
            r"shoprank_search_stage_seconds_count\{mode=\"full\",stage=\"total\"\}",
            httpx.get(server.url + "/_shoprank/metrics").text,
        )
    finally:
        release.touch()
        server.stop()


def test_official_client_with_api_keys(demo_data_dir: Path) -> None:
    """The ES client's own `api_key=(id, key)` works; without it the usual exception."""
    import elasticsearch

    server = start_server(
        demo_data_dir,
        shoprank_api_keys='{"frontend:s3cret": "read"}',
        shoprank_public_search="false",
    )
    try:
        anonymous = elasticsearch.Elasticsearch(server.url)
        with pytest.raises(elasticsearch.AuthenticationException) as caught:
            anonymous.search(index="demo", query={"match_all": {}}, size=1)
        assert caught.value.meta.status == 401
        client = elasticsearch.Elasticsearch(server.url, api_key=("frontend", "s3cret"))
        found = client.search(index="demo", query={"match": {"title": "headphones"}}, size=3)
        assert found["hits"]["hits"]
        with pytest.raises(elasticsearch.AuthorizationException):
            client.perform_request(
                "POST",
                "/_shoprank/events",
                body={"type": "view", "user_id": "u", "product_id": "p"},
                headers={"content-type": "application/json"},
            )
    finally:
        server.stop()
