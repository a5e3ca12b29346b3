"""Every limit answers with its documented status and ES error body (README, "Security,
limits and operations")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from shoprank.plugin.backends.embedded.backend import EmbeddedBackend
from shoprank.plugin.limits import TokenBucketLimiter
from tests.unit._apps import KEYS, key, make_client


@pytest.fixture()
def client(tmp_path: Path, corpus_backend: EmbeddedBackend) -> TestClient:
    return make_client(
        tmp_path,
        corpus_backend,
        max_body_bytes=2048,
        max_event_body_bytes=4096,
        max_page_size=50,
        max_result_window=100,
        max_query_chars=40,
        max_query_depth=8,
        max_buckets=20,
    )


def error_of(response: Any, status: int, es_type: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == status
    assert body["error"]["type"] == es_type
    assert body["error"]["root_cause"][0]["type"] == es_type
    return str(body["error"]["reason"])


def test_body_over_the_limit_is_413(client: TestClient) -> None:
    big = {"query": {"terms": {"brand": ["x" * 30] * 100}}}
    reason = error_of(client.post("/products/_search", json=big), 413, "content_too_long_exception")
    assert "2048 bytes" in reason


def test_body_limit_holds_without_content_length(client: TestClient) -> None:
    def chunks() -> Any:
        for _ in range(10):
            yield b" " * 500

    response = client.post("/products/_search", content=chunks())
    error_of(response, 413, "content_too_long_exception")


def test_bulk_routes_use_the_event_body_limit(client: TestClient) -> None:
    events = [{"type": "view", "user_id": "u", "product_id": "1"}] * 40  # ~2.2 kB
    assert client.post("/_shoprank/events", json=events).status_code == 200
    error_of(client.post("/_shoprank/events", json=events * 3), 413, "content_too_long_exception")


def test_size_over_the_cap_is_400(client: TestClient) -> None:
    reason = error_of(
        client.post("/products/_search", json={"size": 51}), 400, "illegal_argument_exception"
    )
    assert "[size] must be at most 50" in reason
    assert client.post("/products/_search", json={"size": 50}).status_code == 200


def test_deep_pagination_is_400(client: TestClient) -> None:
    reason = error_of(
        client.post("/products/_search", json={"from": 90, "size": 20}),
        400,
        "illegal_argument_exception",
    )
    assert "Result window is too large" in reason and "[110]" in reason
    # URL parameters count the same.
    error_of(client.get("/products/_search?from=99&size=2"), 400, "illegal_argument_exception")
    assert client.get("/products/_search?from=90&size=10").status_code == 200


def test_long_query_text_is_400(client: TestClient) -> None:
    body = {"query": {"match": {"title": "laptop " * 10}}}
    reason = error_of(
        client.post("/products/_search", json=body), 400, "illegal_argument_exception"
    )
    assert "70 characters" in reason and "maximum is 40" in reason
    error_of(
        client.get("/products/_search", params={"q": "x" * 41}), 400, "illegal_argument_exception"
    )
    error_of(client.post("/products/_count", json=body), 400, "illegal_argument_exception")


def test_deep_nesting_is_400(client: TestClient) -> None:
    query: dict[str, Any] = {"match_all": {}}
    for _ in range(10):
        query = {"bool": {"must": [query]}}
    reason = error_of(
        client.post("/products/_search", json={"query": query}), 400, "illegal_argument_exception"
    )
    assert "nested deeper than 8" in reason


def test_too_many_buckets_requested_is_400(client: TestClient) -> None:
    body = {
        "size": 0,
        "aggs": {
            "b": {
                "terms": {"field": "brand", "size": 5},
                "aggs": {"c": {"terms": {"field": "colour", "size": 5}}},
            }
        },
    }
    reason = error_of(
        client.post("/products/_search", json=body), 400, "too_many_buckets_exception"
    )
    assert "less than or equal to: [20]" in reason
    ok = {"size": 0, "aggs": {"b": {"terms": {"field": "brand", "size": 5}}}}
    assert client.post("/products/_search", json=ok).status_code == 200


def test_too_many_buckets_produced_is_400(client: TestClient) -> None:
    """A histogram's bucket count is only known after it ran: the response is refused."""
    body = {"size": 0, "aggs": {"h": {"histogram": {"field": "price", "interval": 1}}}}
    error_of(client.post("/products/_search", json=body), 400, "too_many_buckets_exception")


def test_msearch_items_are_limited_one_by_one(client: TestClient) -> None:
    lines = b'{"index": "products"}\n{"size": 500}\n{"index": "products"}\n{"size": 1}\n'
    response = client.post(
        "/_msearch", content=lines, headers={"content-type": "application/x-ndjson"}
    )
    assert response.status_code == 200
    first, second = response.json()["responses"]
    assert first["status"] == 400 and first["error"]["type"] == "illegal_argument_exception"
    assert second["status"] == 200


def test_rate_limit_is_429_with_retry_after(
    tmp_path: Path, corpus_backend: EmbeddedBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The limiter's clock stands still: no token comes back however slowly the requests run.
    from shoprank.plugin import ops

    def stopped_limiter(settings: Any) -> TokenBucketLimiter:
        return TokenBucketLimiter(
            settings.rate_limit_per_s, settings.rate_limit_burst, clock=lambda: 0.0
        )

    monkeypatch.setattr(ops, "make_limiter", stopped_limiter)
    client = make_client(
        tmp_path, corpus_backend, rate_limit_per_s=0.5, rate_limit_burst=3, api_keys=KEYS
    )
    statuses = [client.post("/products/_search", json={"size": 1}).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = client.post("/products/_search", json={"size": 1})
    reason = error_of(response, 429, "es_rejected_execution_exception")
    assert "rate limit" in reason
    assert 1 <= int(response.headers["retry-after"]) <= 2
    # Another client (an API key is its own bucket) is not affected; health never limited.
    assert (
        client.post("/products/_search", json={"size": 1}, headers=key("k-read")).status_code == 200
    )
    assert client.get("/_shoprank/health").status_code == 200


def test_token_bucket_refills_at_the_rate() -> None:
    limiter = TokenBucketLimiter(rate=2.0, burst=2)
    assert [limiter.acquire("a", now=0.0) for _ in range(2)] == [0.0, 0.0]
    assert limiter.acquire("a", now=0.0) == pytest.approx(0.5)
    assert limiter.acquire("a", now=0.5) == 0.0  # one token back after 1/rate s
    assert limiter.acquire("b", now=0.5) == 0.0


def test_token_bucket_memory_is_bounded() -> None:
    limiter = TokenBucketLimiter(rate=1.0, burst=1, max_clients=100)
    for i in range(1000):
        limiter.acquire(f"client-{i}", now=0.0)
    assert len(limiter._buckets) == 100
