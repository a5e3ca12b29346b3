"""API keys and scopes on every protected route, and the refusal of scripts in client bodies."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from shoprank.plugin.backends.embedded.backend import EmbeddedBackend
from shoprank.plugin.security import authenticate, classify
from shoprank.settings import Settings
from tests.unit._apps import KEYS, key, make_client

CLICK = {"type": "click", "user_id": "alice", "product_id": "1"}
# route → (method, path, json body, scope it needs, status the route itself answers)
ROUTES: dict[str, tuple[str, str, Any, str, int]] = {
    "events": ("POST", "/_shoprank/events", CLICK, "write", 200),
    "products": ("POST", "/_shoprank/products", {"index": "nope", "delete": ["x"]}, "write", 404),
    "profile": ("GET", "/_shoprank/users/alice/profile", None, "admin", 404),
    "forget": ("DELETE", "/_shoprank/users/alice", None, "admin", 200),
    "metrics": ("GET", "/_shoprank/metrics", None, "read", 200),
    "private search": ("POST", "/products/_search", {"query": {"match_all": {}}}, "read", 200),
}
BELOW = {"read": None, "write": "k-read", "admin": "k-write"}
AT = {"read": "k-read", "write": "k-write", "admin": "k-admin"}


@pytest.fixture()
def client(tmp_path: Path, corpus_backend: EmbeddedBackend) -> TestClient:
    return make_client(tmp_path, corpus_backend, api_keys=KEYS, public_search=False)


def call(client: TestClient, route: str, headers: dict[str, str] | None = None) -> Any:
    method, path, body, _, _ = ROUTES[route]
    return client.request(method, path, json=body, headers=headers or {})


def assert_security_error(response: Any, status: int, text: str) -> None:
    assert response.status_code == status
    body = response.json()
    assert body["status"] == status
    assert body["error"]["type"] == "security_exception"
    assert text in body["error"]["reason"]


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_without_key_is_401(client: TestClient, route: str) -> None:
    response = call(client, route)
    assert_security_error(response, 401, "missing authentication credentials")
    assert response.headers["www-authenticate"].startswith("ApiKey")


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_unknown_key_is_401(client: TestClient, route: str) -> None:
    assert_security_error(call(client, route, key("k-admin-but-wrong")), 401, "unable to")


@pytest.mark.parametrize("route", [r for r in sorted(ROUTES) if ROUTES[r][3] != "read"])
def test_lower_scope_is_403(client: TestClient, route: str) -> None:
    needed = ROUTES[route][3]
    below = BELOW[needed]
    assert below is not None
    response = call(client, route, key(below))
    assert_security_error(response, 403, f"needs scope [{needed}]")


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_right_scope_reaches_the_route(client: TestClient, route: str) -> None:
    response = call(client, route, key(AT[ROUTES[route][3]]))
    assert response.status_code == ROUTES[route][4], response.text


def test_admin_key_covers_lower_scopes(client: TestClient) -> None:
    assert call(client, "events", key("k-admin")).status_code == 200
    assert call(client, "private search", key("k-write")).status_code == 200


def test_es_client_style_key_is_accepted(client: TestClient) -> None:
    """The ES clients send base64(`id:key`); a configured `id:key` matches it."""
    cfg = Settings(api_keys={"frontend:s3cret": "write"})
    token = base64.b64encode(b"frontend:s3cret").decode()
    assert authenticate(f"ApiKey {token}", cfg).scope == "write"
    assert authenticate("ApiKey frontend:s3cret", cfg).scope == "write"
    assert authenticate("ApiKey frontend:wrong", cfg).scope is None
    assert authenticate("Basic abc", cfg).scope is None


def test_search_is_public_by_default(tmp_path: Path, corpus_backend: EmbeddedBackend) -> None:
    client = make_client(tmp_path, corpus_backend, api_keys=KEYS)
    assert client.post("/products/_search", json={"size": 1}).status_code == 200
    assert client.get("/_shoprank/health").status_code == 200
    assert client.post("/_shoprank/events", json=CLICK).status_code == 401


def test_no_keys_configured_opens_protected_routes_to_loopback_only(
    tmp_path: Path, corpus_backend: EmbeddedBackend
) -> None:
    local = make_client(tmp_path, corpus_backend)
    assert local.post("/_shoprank/events", json=CLICK).status_code == 200
    remote = make_client(tmp_path, corpus_backend, client=("203.0.113.9", 40000))
    for route in ("events", "forget", "metrics"):
        assert_security_error(call(remote, route), 403, "only allowed from loopback")
    # Searches stay public.
    assert remote.post("/products/_search", json={"query": {"match_all": {}}}).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"query": {"script_score": {"query": {"match_all": {}}, "script": {"source": "1"}}}},
        {"query": {"match_all": {}}, "runtime_mappings": {"x": {"type": "long"}}},
        {"script_fields": {"x": {"script": {"source": "doc['price'].value"}}}},
        {"sort": [{"_script": {"type": "number", "script": {"id": "stored"}}}]},
        {"aggs": {"a": {"scripted_metric": {"map_script": "x"}}}},
        {"query": {"bool": {"filter": [{"script": {"script": {"id": "stored-one"}}}]}}},
    ],
)
def test_scripts_in_client_bodies_are_refused(client: TestClient, body: dict[str, Any]) -> None:
    response = client.post("/products/_search", json=body, headers=key("k-admin"))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "illegal_argument_exception"
    assert "does not run or forward scripts" in error["reason"]


def test_a_field_named_script_is_not_a_script(client: TestClient) -> None:
    body = {"query": {"term": {"script": "x"}}, "sort": [{"script": "asc"}]}
    response = client.post("/products/_search", json=body, headers=key("k-read"))
    assert "scripts" not in response.text


def test_scripts_allowed_when_configured(tmp_path: Path, corpus_backend: EmbeddedBackend) -> None:
    client = make_client(tmp_path, corpus_backend, allow_scripts=True)
    body = {"query": {"match_all": {}}, "runtime_mappings": {"x": {"type": "long"}}}
    # Passed on to the backend, which names what it does not implement.
    response = client.post("/products/_search", json=body)
    assert "does not run or forward scripts" not in response.text


@pytest.mark.parametrize(
    "path",
    ["/products/_update_by_query", "/_scripts/my-script", "/products/_delete_by_query"],
)
def test_script_and_rewrite_paths_are_never_served(client: TestClient, path: str) -> None:
    # Below admin: the scope check refuses; an admin reaches the proxy, which refuses too.
    assert_security_error(client.post(path, json={}, headers=key("k-write")), 403, "needs scope")
    response = client.post(path, json={}, headers=key("k-admin"))
    assert response.status_code in (403, 405)
    assert response.json()["status"] == response.status_code


def test_route_classes() -> None:
    assert classify("GET", "/products/_search").scope == "search"
    assert classify("POST", "/_msearch").scope == "search"
    assert classify("GET", "/products/_doc/1").scope == "search"
    assert classify("PUT", "/products").scope == "admin"
    assert classify("POST", "/_shoprank/models/promote").scope == "admin"
    assert classify("GET", "/_shoprank/ready").scope == "public"
