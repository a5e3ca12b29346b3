"""The backend behaviour suite, written once and run against every backend.

The embedded backend always runs. Elasticsearch and OpenSearch run against a live cluster
when `SHOPRANK_TEST_ES_URL` / `SHOPRANK_TEST_OS_URL` point at one (e.g. the docker/ stacks'
`http://localhost:9200`), and are skipped otherwise. Every test uses its own alias and
deletes its generations afterwards, so a shared cluster is left as it was.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shoprank.errors import BadRequestError, IndexNotFoundError
from shoprank.indexing.mapping import product_mapping

LIVE = {"elasticsearch": "SHOPRANK_TEST_ES_URL", "opensearch": "SHOPRANK_TEST_OS_URL"}
DOCS: list[dict[str, Any]] = [
    {"_id": "1", "title": "HP Pavilion laptop", "brand": "HP", "price": 40.0},
    {"_id": "2", "title": "HP wireless mouse", "brand": "HP", "price": 15.0},
    {"_id": "3", "title": "Dell XPS laptop", "brand": "Dell", "price": 120.0},
    {"_id": "4", "title": "Dell wireless keyboard", "brand": "Dell", "price": 35.0},
]
# One axis per product: product i is nearest to axis i.
VECTORS = np.eye(4, dtype=np.float32)


@pytest.fixture(params=["embedded", "elasticsearch", "opensearch"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "embedded":
        from shoprank.plugin.backends.embedded.backend import EmbeddedBackend

        yield EmbeddedBackend(tmp_path / "embedded")
        return
    url = os.environ.get(LIVE[request.param])
    if not url:
        pytest.skip(f"set {LIVE[request.param]} to a live {request.param} cluster to run this")
    from shoprank.plugin.backends.connect import cluster_backend
    from shoprank.settings import Settings

    live = cluster_backend(Settings(data_dir=tmp_path, backend=request.param, backend_url=url))
    yield live
    for gen in live.generations():
        if str(gen["alias"]).startswith("shoprank-test-"):
            live.client.indices.delete(index=gen["name"])


@pytest.fixture
def alias() -> str:
    return f"shoprank-test-{uuid.uuid4().hex[:8]}"


def _generation(backend: Any, alias: str, docs: list[dict[str, Any]] = DOCS) -> str:
    generation = str(backend.create_generation(alias, product_mapping(text_dims=4)))
    rows = [int(d["_id"]) - 1 for d in docs]
    backend.write_batch(generation, docs, {"text_vector": VECTORS[rows]})
    assert backend.commit(generation, ready=True) == len(docs)
    return generation


def _ids(response: dict[str, Any]) -> list[str]:
    return [str(h["_id"]) for h in response["hits"]["hits"]]


def test_a_generation_serves_behind_its_alias(backend: Any, alias: str) -> None:
    generation = _generation(backend, alias)
    assert backend.swap_alias(alias, generation) is None
    assert backend.resolve(alias) == generation
    hits = backend.search(alias, {"query": {"match": {"title": "laptop"}}})
    assert sorted(_ids(hits)) == ["1", "3"]
    assert hits["hits"]["total"]["value"] == 2
    (gen,) = backend.generations(alias)
    assert gen["name"] == generation and gen["status"] == "ready" and gen["doc_count"] == 4


def test_swap_rollback_and_retention(backend: Any, alias: str) -> None:
    first = _generation(backend, alias)
    backend.swap_alias(alias, first)
    second = _generation(backend, alias, DOCS[:2])
    assert backend.swap_alias(alias, second) == first
    assert backend.count(alias, None) == 2
    assert backend.rollback(alias) == first
    assert backend.count(alias, None) == 4
    backend.swap_alias(alias, second)
    assert backend.prune(alias, keep=0) == [first]
    assert [g["name"] for g in backend.generations(alias)] == [second]
    with pytest.raises(BadRequestError):
        backend.rollback(alias)


def test_an_unfinished_generation_cannot_go_live(backend: Any, alias: str) -> None:
    building = str(backend.create_generation(alias, product_mapping(text_dims=4)))
    with pytest.raises(BadRequestError, match="not ready"):
        backend.swap_alias(alias, building)
    assert backend.prune(alias, keep=5) == [building]


def test_knn_with_a_filter_returns_the_nearest_allowed_products(backend: Any, alias: str) -> None:
    backend.swap_alias(alias, _generation(backend, alias))
    query = [0.9, 0.1, 0.0, 0.0]  # nearest 1, then 2
    body = {"knn": {"field": "text_vector", "query_vector": query, "k": 2, "num_candidates": 10}}
    assert _ids(backend.search(alias, body)) == ["1", "2"]
    body["knn"]["filter"] = [{"term": {"brand": "Dell"}}]
    hits = _ids(backend.search(alias, body))
    assert hits and set(hits) <= {"3", "4"}


def test_aggregations_count_the_matching_products(backend: Any, alias: str) -> None:
    backend.swap_alias(alias, _generation(backend, alias))
    body = {
        "size": 0,
        "query": {"range": {"price": {"lte": 100}}},
        "aggs": {"brands": {"terms": {"field": "brand"}}},
    }
    buckets = backend.search(alias, body)["aggregations"]["brands"]["buckets"]
    assert {b["key"]: b["doc_count"] for b in buckets} == {"HP": 2, "Dell": 1}


def test_upsert_delete_get_and_mget(backend: Any, alias: str) -> None:
    generation = _generation(backend, alias)
    backend.swap_alias(alias, generation)
    changed = [{"_id": "2", "title": "HP silent mouse", "brand": "HP", "price": 17.0}]
    backend.write_batch(generation, changed, {"text_vector": VECTORS[[1]]}, delete_ids=["4"])
    assert backend.get(alias, "2")["_source"]["title"] == "HP silent mouse"
    assert backend.get(alias, "4")["found"] is False
    sources = backend.mget(alias, ["1", "2", "4"], source=["price"])
    assert sources == {"1": {"price": 40.0}, "2": {"price": 17.0}}
    assert backend.count(alias, {"query": {"match": {"title": "mouse"}}}) == 1
    vectors = backend.vectors_of(alias, ["2"], "text_vector")
    assert np.allclose(vectors["2"], VECTORS[1])


def test_a_missing_index_is_index_not_found(backend: Any, alias: str) -> None:
    with pytest.raises(IndexNotFoundError):
        backend.search(alias, {"query": {"match_all": {}}})
    with pytest.raises(IndexNotFoundError):
        backend.resolve(alias)


def test_a_clone_starts_from_its_source_and_leaves_it_alone(backend: Any, alias: str) -> None:
    backend.swap_alias(alias, _generation(backend, alias))
    assert backend.read_manifest(alias) is None
    clone = backend.clone_generation(alias, alias)
    backend.write_batch(clone, [], delete_ids=["4"])
    assert backend.commit(clone, ready=True) == 3
    assert backend.count(alias, None) == 4  # the live generation is untouched
    manifest = {"signature": "s1", "hashes": {"1": "a", "2": "b"}}
    backend.write_manifest(alias, manifest)
    assert backend.read_manifest(alias) == manifest
    backend.swap_alias(alias, clone)
    knn = {"field": "text_vector", "query_vector": [0.0, 0.0, 1.0, 0.0], "k": 1}
    assert _ids(backend.search(alias, {"knn": knn})) == ["3"]  # vectors came along
