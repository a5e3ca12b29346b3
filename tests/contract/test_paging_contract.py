"""Scroll, point in time, `_mget`, `_mapping` and `_field_caps` in front of a cluster: each is
passed through unchanged (method, path, parameters and body bytes) and every forwarded
request validates against the engine's published specification."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from shoprank.indexing.mapping import product_mapping
from shoprank.plugin.app import create_app
from shoprank.settings import Settings
from shoprank.wiring import make_service

from .conftest import Engine


@pytest.fixture
def client(engine: Engine, tmp_path: Path) -> TestClient:
    backend = engine.backend
    generation = backend.create_generation("products", product_mapping(text_dims=0))
    backend.write_batch(generation, [{"_id": "p1", "title": "Trail shoes", "brand": "Acme"}])
    backend.commit(generation, ready=True)
    backend.swap_alias("products", generation)
    engine.cluster.reset()
    service = make_service(Settings(data_dir=tmp_path), backend)
    return TestClient(create_app(service), client=("127.0.0.1", 50000))


def _send(client: TestClient, method: str, path: str, body: Any = None) -> None:
    raw = orjson.dumps(body) if body is not None else None
    headers = {"content-type": "application/json"} if raw else {}
    client.request(method, path, content=raw, headers=headers)


def _calls(engine: Engine) -> list[tuple[str, str, dict[str, str], Any]]:
    return [(r.method, r.path, r.params, r.body) for r in engine.conforming()]


def test_scroll_requests_pass_through_unchanged(engine: Engine, client: TestClient) -> None:
    query = {"query": {"term": {"brand": "Acme"}}, "size": 2, "sort": ["_doc"]}
    _send(client, "POST", "/products/_search?scroll=1m", query)
    _send(client, "POST", "/_search/scroll", {"scroll": "1m", "scroll_id": "abc"})
    _send(client, "DELETE", "/_search/scroll", {"scroll_id": ["abc"]})
    assert _calls(engine) == [
        ("POST", "/products/_search", {"scroll": "1m"}, query),
        ("POST", "/_search/scroll", {}, {"scroll": "1m", "scroll_id": "abc"}),
        ("DELETE", "/_search/scroll", {}, {"scroll_id": ["abc"]}),
    ]


def test_point_in_time_requests_pass_through_unchanged(engine: Engine, client: TestClient) -> None:
    search = {"pit": {"id": "xyz", "keep_alive": "1m"}, "size": 5, "sort": ["_shard_doc"]}
    search_after = {**search, "search_after": [3]}
    if engine.name == "elasticsearch":
        opened = ("/products/_pit", "POST", None)
        closed = ("/_pit", "DELETE", {"id": "xyz"})
    else:
        opened = ("/products/_search/point_in_time", "POST", None)
        closed = ("/_search/point_in_time", "DELETE", {"pit_id": ["xyz"]})
    _send(client, opened[1], opened[0] + "?keep_alive=1m")
    _send(client, "POST", "/_search", search)
    _send(client, "POST", "/_search", search_after)
    _send(client, closed[1], closed[0], closed[2])
    assert _calls(engine) == [
        ("POST", opened[0], {"keep_alive": "1m"}, None),
        ("POST", "/_search", {}, search),
        ("POST", "/_search", {}, search_after),
        ("DELETE", closed[0], {}, closed[2]),
    ]


def test_mget_mapping_and_field_caps_pass_through_unchanged(
    engine: Engine, client: TestClient
) -> None:
    _send(client, "POST", "/products/_mget", {"ids": ["p1", "p2"]})
    _send(client, "GET", "/products/_mapping")
    _send(client, "GET", "/products/_field_caps?fields=brand,title")
    assert _calls(engine) == [
        ("POST", "/products/_mget", {}, {"ids": ["p1", "p2"]}),
        ("GET", "/products/_mapping", {}, None),
        ("GET", "/products/_field_caps", {"fields": "brand,title"}, None),
    ]


def test_mapping_off_the_allowlist_is_refused_before_the_cluster(
    engine: Engine, tmp_path: Path
) -> None:
    service = make_service(
        Settings(data_dir=tmp_path, proxy_allowlist=["GET /_cat/indices"]), engine.backend
    )
    client = TestClient(create_app(service), client=("127.0.0.1", 50000))
    response = client.get("/products/_mapping")
    assert response.status_code == 403
    assert "SHOPRANK_PROXY_ALLOWLIST" in response.json()["error"]["reason"]
    assert engine.cluster.requests == []
