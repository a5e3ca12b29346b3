"""The drop-in endpoint in front of a cluster: searches rewritten and forwarded, read-only
requests on the allowlist forwarded unchanged, everything else refused before the cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from shoprank.indexing.encoders.protocol import TextEncoder
from shoprank.indexing.mapping import product_mapping
from shoprank.plugin.app import create_app
from shoprank.settings import Settings
from shoprank.wiring import make_service

from .conftest import Engine


def _app(backend: Any, tmp_path: Path, encoder: TextEncoder | None = None, **options: Any) -> Any:
    settings = Settings(data_dir=tmp_path, **options)
    service = make_service(settings, backend)
    if encoder is not None:
        service._encoder_factory = lambda: encoder
    return TestClient(create_app(service), client=("127.0.0.1", 50000))


@pytest.fixture
def client(engine: Engine, tmp_path: Path, minilm: TextEncoder) -> TestClient:
    backend = engine.backend
    generation = backend.create_generation("products", product_mapping(text_dims=minilm.dims))
    docs = [{"_id": "p1", "title": "Trail running shoes", "price": 80.0}]
    backend.write_batch(generation, docs, {"text_vector": minilm.encode(["x"]).astype(np.float32)})
    backend.commit(generation, ready=True)
    backend.swap_alias("products", generation)
    engine.cluster.reset()
    return _app(backend, tmp_path, minilm)


def test_a_search_is_rewritten_and_forwarded_in_the_engines_shape(
    engine: Engine, client: TestClient
) -> None:
    body = {
        "query": {"match": {"title": "running shoes"}},
        "size": 3,
        "ext": {"shoprank": {"mode": "hybrid", "explain": True}},
    }
    response = client.post("/products/_search", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert [h["_id"] for h in result["hits"]["hits"]] == ["p1"]
    assert result["hits"]["hits"][0]["_source"] == {"title": "Trail running shoes", "price": 80.0}
    assert result["_shoprank"]["mode_applied"] == "hybrid"
    requests = engine.conforming()
    assert [r.path for r in requests] == ["/_msearch", "/products/_mget"]
    bodies = requests[0].body[1::2]
    assert all("ext" not in b for b in bodies), "shoprank's options never reach the cluster"


def test_hits_and_documents_leave_vectors_out_like_the_embedded_backend(
    engine: Engine, client: TestClient
) -> None:
    lexical = {"query": {"match_all": {}}, "ext": {"shoprank": {"mode": "lexical"}}}
    (hit,) = client.post("/products/_search", json=lexical).json()["hits"]["hits"]
    assert "text_vector" not in hit["_source"]
    doc = client.get("/products/_doc/p1").json()
    assert doc["found"] and "text_vector" not in doc["_source"]
    engine.conforming()


def test_allowlisted_reads_are_forwarded_unchanged(engine: Engine, client: TestClient) -> None:
    mapping = client.get("/products/_mapping", params={"pretty": "true"})
    assert mapping.status_code == 200
    ((concrete, body),) = mapping.json().items()
    assert concrete.startswith("products-") and "text_vector" in body["mappings"]["properties"]
    missing = client.get("/nothing/_mapping")
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "index_not_found_exception"
    requests = engine.conforming()
    assert [(r.method, r.path, r.params) for r in requests] == [
        ("GET", "/products/_mapping", {"pretty": "true"}),
        ("GET", "/nothing/_mapping", {}),
    ]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/products"),
        ("DELETE", "/products-000001"),
        ("PUT", "/products/_doc/p1"),
        ("DELETE", "/products/_doc/p1"),
        ("POST", "/products/_delete_by_query"),
        ("POST", "/_aliases"),
        ("PUT", "/_cluster/settings"),
        ("GET", "/_nodes/stats"),
    ],
)
def test_everything_else_is_refused_before_the_cluster(
    engine: Engine, client: TestClient, method: str, path: str
) -> None:
    response = client.request(method, path, json={"query": {"match_all": {}}})
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["type"] == "security_exception"
    assert "SHOPRANK_PROXY_ALLOWLIST" in error["reason"] and path in error["reason"]
    assert engine.cluster.requests == []
    assert "products" in engine.cluster.aliases  # nothing was deleted


def test_the_allowlist_is_configurable(engine: Engine, tmp_path: Path) -> None:
    client = _app(engine.backend, tmp_path, proxy_allowlist=["GET /_cat/indices"])
    assert client.get("/_cluster/health").status_code == 403
    assert engine.cluster.requests == []


@pytest.mark.parametrize("entry", ["DELETE /*", "PUT /*/_doc/*", "POST /_aliases", "GET"])
def test_the_allowlist_takes_read_only_entries_only(tmp_path: Path, entry: str) -> None:
    with pytest.raises(ValidationError, match="proxy allowlist entry"):
        Settings(data_dir=tmp_path, proxy_allowlist=[entry])


def test_the_embedded_backend_forwards_nothing(tmp_path: Path) -> None:
    from shoprank.plugin.backends.embedded.backend import EmbeddedBackend

    client = _app(EmbeddedBackend(tmp_path / "embedded"), tmp_path)
    for method, path in [("GET", "/_cluster/health"), ("DELETE", "/products")]:
        response = client.request(method, path)
        assert response.status_code == 405
        assert "no cluster to forward" in response.json()["error"]["reason"]


@pytest.mark.parametrize("backend_name", ["elasticsearch", "opensearch"])
def test_an_unreachable_cluster_is_a_503_naming_the_setting(
    tmp_path: Path, backend_name: str
) -> None:
    from shoprank.wiring import make_backend

    # Port 9 on loopback: nothing listens, the connection is refused at once.
    settings = Settings(data_dir=tmp_path, backend=backend_name, backend_url="http://127.0.0.1:9")  # type: ignore[arg-type]
    backend = make_backend(settings)
    client = TestClient(create_app(make_service(settings, backend)), client=("127.0.0.1", 50000))
    response = client.post(
        "/products/_search",
        json={"query": {"match_all": {}}, "ext": {"shoprank": {"mode": "lexical"}}},
    )
    assert response.status_code == 503
    assert "SHOPRANK_BACKEND_URL" in response.json()["error"]["reason"]
    assert client.get("/_cluster/health").status_code == 503
