"""Cluster backends without a cluster: OpenSearch's kNN translation, the error mapping, and
the settings that select and configure a cluster backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shoprank.errors import (
    BackendUnavailableError,
    BadRequestError,
    ConfigError,
    IndexNotFoundError,
    UnsupportedQueryError,
)
from shoprank.plugin.backends.elasticsearch import ElasticsearchBackend
from shoprank.plugin.backends.embedded.backend import EmbeddedBackend
from shoprank.plugin.backends.opensearch import OpenSearchBackend
from shoprank.plugin.backends.protocol import Backend, ClusterClient, Forwarding, NativeHybrid
from shoprank.plugin.backends.remote import (
    RESOLVE_TTL_S,
    RemoteBackend,
    cluster_error,
    without_vectors,
)
from shoprank.settings import Settings
from shoprank.testing.recording import (
    ScriptedCluster,
    recording_elasticsearch,
    recording_opensearch,
)

MATCH = {"match": {"title": {"query": "shoes"}}}


class ManualClock:
    """A clock for the cluster backends that stands still until the test advances it, so
    nothing a test asserts depends on how fast the machine runs it."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _knn(**extra: Any) -> dict[str, Any]:
    return {"field": "v", "query_vector": [1.0, 0.0], "k": 5, **extra}


@pytest.fixture
def opensearch() -> OpenSearchBackend:
    return OpenSearchBackend(recording_opensearch())


def test_cluster_backends_offer_every_capability(opensearch: OpenSearchBackend) -> None:
    for backend in (ElasticsearchBackend(recording_elasticsearch()), opensearch):
        assert isinstance(backend, Backend)
        assert isinstance(backend, NativeHybrid)
        assert isinstance(backend, Forwarding)
        assert isinstance(backend, ClusterClient)


def test_the_embedded_backend_is_complete_without_a_cluster(tmp_path: Path) -> None:
    backend = EmbeddedBackend(tmp_path / "embedded")
    assert isinstance(backend, Backend)
    assert not isinstance(backend, NativeHybrid | Forwarding | ClusterClient)


def test_knn_beside_a_query_is_their_union_with_summed_scores(
    opensearch: OpenSearchBackend,
) -> None:
    body = opensearch.search_body({"query": MATCH, "knn": _knn(), "size": 3})
    assert body["query"] == {
        "bool": {"should": [MATCH, {"knn": {"v": {"vector": [1.0, 0.0], "k": 5}}}]}
    }
    assert "knn" not in body and body["size"] == 3


def test_several_knn_sections_and_their_filters(opensearch: OpenSearchBackend) -> None:
    term, price = {"term": {"brand": "HP"}}, {"range": {"price": {"lte": 9}}}
    body = opensearch.search_body(
        {"knn": [_knn(filter=[term, price], num_candidates=50, boost=2), _knn(filter=term)]}
    )
    first, second = body["query"]["bool"]["should"]
    assert first["knn"]["v"] == {
        "vector": [1.0, 0.0],
        "k": 5,
        "filter": {"bool": {"filter": [term, price]}},
        "method_parameters": {"ef_search": 50},
        "boost": 2.0,
    }
    assert second["knn"]["v"]["filter"] == term


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        (_knn(similarity=0.8), UnsupportedQueryError),
        (_knn(inner_hits={}), UnsupportedQueryError),
        ({"field": "v", "k": 3}, BadRequestError),
        (
            {"field": "v", "query_vector_builder": {"text_embedding": {"model_text": "x"}}},
            BadRequestError,
        ),
    ],
)
def test_untranslatable_knn_is_a_clear_400(
    opensearch: OpenSearchBackend, spec: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        opensearch.search_body({"knn": spec})


def test_vector_fields_are_left_out_of_source_unless_named() -> None:
    assert without_vectors(True) == {"excludes": ["image_vector", "text_vector"]}
    assert without_vectors({"excludes": "brand"}) == {
        "excludes": ["brand", "image_vector", "text_vector"]
    }
    assert without_vectors(["title", "text_vector"]) == ["title", "text_vector"]
    assert without_vectors(False) is False


def test_cluster_errors_keep_their_meaning() -> None:
    refused = cluster_error(400, {"error": {"type": "parsing_exception", "reason": "bad [x]"}})
    assert isinstance(refused, BadRequestError) and refused.es_type == "parsing_exception"
    assert "bad [x]" in refused.reason
    missing = cluster_error(
        404, {"error": {"type": "index_not_found_exception", "reason": "no", "index": "shop"}}
    )
    assert isinstance(missing, IndexNotFoundError) and "shop" in missing.reason
    assert isinstance(cluster_error(401, {"error": "unauthorized"}), BackendUnavailableError)
    assert "API_KEY" in cluster_error(403, {}).reason
    assert cluster_error(429, {"error": "too many"}).status == 503
    conflict = cluster_error(409, {"error": {"type": "version_conflict", "reason": "x"}})
    assert conflict.status == 409


def test_cluster_settings_are_validated(tmp_path: Path) -> None:
    from shoprank.wiring import make_backend

    with pytest.raises(ConfigError, match="SHOPRANK_BACKEND_URL"):
        make_backend(Settings(data_dir=tmp_path, backend="elasticsearch", backend_url="es:9200"))
    with pytest.raises(ConfigError, match="USERNAME"):
        make_backend(Settings(data_dir=tmp_path, backend="opensearch", backend_api_key="k"))
    es = make_backend(Settings(data_dir=tmp_path, backend="elasticsearch"))
    assert es.name == "elasticsearch"
    opensearch = make_backend(
        Settings(data_dir=tmp_path, backend="opensearch", vector_engine="lucene")
    )
    mapping = {"properties": {"v": {"type": "dense_vector", "dims": 3, "similarity": "cosine"}}}
    vector = opensearch.index_body(mapping)["mappings"]["properties"]["v"]  # type: ignore[attr-defined]
    assert vector["method"]["engine"] == "lucene" and vector["dimension"] == 3


def _on_cluster(engine: str, cluster: ScriptedCluster, clock: ManualClock) -> RemoteBackend:
    if engine == "elasticsearch":
        return ElasticsearchBackend(recording_elasticsearch(cluster), clock=clock)
    return OpenSearchBackend(recording_opensearch(cluster), clock=clock)


@pytest.mark.parametrize("engine", ["elasticsearch", "opensearch"])
def test_an_alias_swapped_elsewhere_is_seen_once_the_resolve_ttl_has_passed(engine: str) -> None:
    cluster = ScriptedCluster(distribution=engine)
    clock = ManualClock()
    here, elsewhere = (_on_cluster(engine, cluster, clock) for _ in range(2))
    mapping = {"properties": {"title": {"type": "text"}}}

    def generation_of(backend: RemoteBackend) -> str:
        generation = backend.create_generation("products", mapping)
        backend.commit(generation, ready=True)
        return generation

    first = generation_of(here)
    here.swap_alias("products", first)
    second = generation_of(elsewhere)
    elsewhere.swap_alias("products", second)  # another process moves the alias
    cluster.reset()

    def lookups() -> int:
        return sum(r.path == "/_alias/products" for r in cluster.requests)

    clock.advance(RESOLVE_TTL_S - 0.01)
    assert here.resolve("products") == first  # still trusted: nothing asked
    assert lookups() == 0
    clock.advance(0.02)
    assert here.resolve("products") == second  # expired: asked the cluster again
    assert lookups() == 1
    clock.advance(RESOLVE_TTL_S / 2)
    assert here.resolve("products") == second  # and trusted again from then on
    assert lookups() == 1
