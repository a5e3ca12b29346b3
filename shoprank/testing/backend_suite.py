"""The backend behaviour suite: what every `Backend` must do, written once.

A backend proves itself by subclassing `BackendBehaviour` in a test module and providing a
`backend` fixture (the class name starting with `Test`, so pytest collects it):

    class TestMyBackend(BackendBehaviour):
        @pytest.fixture
        def backend(self, tmp_path: Path) -> Iterator[Backend]:
            yield MyBackend(tmp_path)

Every test uses its own alias (`shoprank-test-<random>`), so a shared cluster is left as
it was once the fixture deletes the generations of such aliases.
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pytest

from shoprank.errors import BadRequestError, IndexNotFoundError, ShoprankError
from shoprank.indexing.mapping import product_mapping
from shoprank.plugin.backends.protocol import Backend

TEST_ALIAS_PREFIX = "shoprank-test-"
DOCS: list[dict[str, Any]] = [
    {"_id": "1", "title": "HP Pavilion laptop", "brand": "HP", "price": 40.0},
    {"_id": "2", "title": "HP wireless mouse", "brand": "HP", "price": 15.0},
    {"_id": "3", "title": "Dell XPS laptop", "brand": "Dell", "price": 120.0},
    {"_id": "4", "title": "Dell wireless keyboard", "brand": "Dell", "price": 35.0},
]
# One axis per product: product i is nearest to axis i.
VECTORS = np.eye(4, dtype=np.float32)


def build_generation(backend: Backend, alias: str, docs: list[dict[str, Any]] = DOCS) -> str:
    """A ready generation of `alias` holding `docs` and their `text_vector`s."""
    generation = backend.create_generation(alias, product_mapping(text_dims=4))
    rows = [int(d["_id"]) - 1 for d in docs]
    backend.write_batch(generation, docs, {"text_vector": VECTORS[rows]})
    assert backend.commit(generation, ready=True) == len(docs)
    return generation


def hit_ids(response: dict[str, Any]) -> list[str]:
    return [str(h["_id"]) for h in response["hits"]["hits"]]


class BackendBehaviour:
    """The tests; a subclass provides the `backend` fixture."""

    @pytest.fixture
    def alias(self) -> str:
        return f"{TEST_ALIAS_PREFIX}{uuid.uuid4().hex[:8]}"

    def test_it_is_a_complete_backend(self, backend: Backend) -> None:
        assert isinstance(backend, Backend)
        assert backend.name

    def test_a_generation_serves_behind_its_alias(self, backend: Backend, alias: str) -> None:
        generation = build_generation(backend, alias)
        assert backend.swap_alias(alias, generation) is None
        assert backend.resolve(alias) == generation
        hits = backend.search(alias, {"query": {"match": {"title": "laptop"}}})
        assert sorted(hit_ids(hits)) == ["1", "3"]
        assert hits["hits"]["total"]["value"] == 2
        (gen,) = backend.generations(alias)
        assert gen["name"] == generation and gen["status"] == "ready" and gen["doc_count"] == 4

    def test_swap_rollback_and_retention(self, backend: Backend, alias: str) -> None:
        first = build_generation(backend, alias)
        backend.swap_alias(alias, first)
        second = build_generation(backend, alias, DOCS[:2])
        assert backend.swap_alias(alias, second) == first
        assert backend.count(alias, None) == 2
        assert backend.rollback(alias) == first
        assert backend.count(alias, None) == 4
        backend.swap_alias(alias, second)
        assert backend.prune(alias, keep=0) == [first]
        assert [g["name"] for g in backend.generations(alias)] == [second]
        with pytest.raises(BadRequestError):
            backend.rollback(alias)

    def test_an_unfinished_generation_cannot_go_live(self, backend: Backend, alias: str) -> None:
        building = backend.create_generation(alias, product_mapping(text_dims=4))
        with pytest.raises(BadRequestError, match="not ready"):
            backend.swap_alias(alias, building)
        assert backend.prune(alias, keep=5) == [building]

    def test_knn_with_a_filter_returns_the_nearest_allowed_products(
        self, backend: Backend, alias: str
    ) -> None:
        backend.swap_alias(alias, build_generation(backend, alias))
        query = [0.9, 0.1, 0.0, 0.0]  # nearest 1, then 2
        knn: dict[str, Any] = {
            "field": "text_vector",
            "query_vector": query,
            "k": 2,
            "num_candidates": 10,
        }
        assert hit_ids(backend.search(alias, {"knn": knn})) == ["1", "2"]
        knn["filter"] = [{"term": {"brand": "Dell"}}]
        hits = hit_ids(backend.search(alias, {"knn": knn}))
        assert hits and set(hits) <= {"3", "4"}

    def test_aggregations_count_the_matching_products(self, backend: Backend, alias: str) -> None:
        backend.swap_alias(alias, build_generation(backend, alias))
        body = {
            "size": 0,
            "query": {"range": {"price": {"lte": 100}}},
            "aggs": {"brands": {"terms": {"field": "brand"}}},
        }
        buckets = backend.search(alias, body)["aggregations"]["brands"]["buckets"]
        assert {b["key"]: b["doc_count"] for b in buckets} == {"HP": 2, "Dell": 1}

    def test_upsert_delete_get_and_mget(self, backend: Backend, alias: str) -> None:
        generation = build_generation(backend, alias)
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

    def test_a_missing_index_is_index_not_found(self, backend: Backend, alias: str) -> None:
        with pytest.raises(IndexNotFoundError):
            backend.search(alias, {"query": {"match_all": {}}})
        with pytest.raises(IndexNotFoundError):
            backend.resolve(alias)

    def test_a_clone_starts_from_its_source_and_leaves_it_alone(
        self, backend: Backend, alias: str
    ) -> None:
        backend.swap_alias(alias, build_generation(backend, alias))
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
        assert hit_ids(backend.search(alias, {"knn": knn})) == ["3"]  # vectors came along

    def test_msearch_answers_in_order_with_a_failure_in_its_place(
        self, backend: Backend, alias: str
    ) -> None:
        backend.swap_alias(alias, build_generation(backend, alias))
        bodies: list[dict[str, Any]] = [
            {"query": {"match": {"title": "laptop"}}},
            {"query": {"no_such_query": {"title": "laptop"}}},
            {"query": {"match": {"title": "mouse"}}},
        ]
        laptops, bad, mice = backend.msearch(alias, bodies)
        assert isinstance(laptops, dict) and sorted(hit_ids(laptops)) == ["1", "3"]
        assert isinstance(bad, ShoprankError) and 400 <= bad.status < 500
        assert isinstance(mice, dict) and hit_ids(mice) == ["2"]
        assert backend.msearch(alias, []) == []

    def test_vector_fields_name_the_dense_vector_fields_and_their_dims(
        self, backend: Backend, alias: str
    ) -> None:
        backend.swap_alias(alias, build_generation(backend, alias))
        assert backend.vector_fields(alias) == {"text_vector": 4}

    def test_vectors_of_returns_the_stored_vectors_of_the_ids_that_exist(
        self, backend: Backend, alias: str
    ) -> None:
        backend.swap_alias(alias, build_generation(backend, alias))
        vectors = backend.vectors_of(alias, ["3", "1", "no-such-id"], "text_vector")
        assert sorted(vectors) == ["1", "3"]
        assert np.allclose(vectors["1"], VECTORS[0]) and np.allclose(vectors["3"], VECTORS[2])
        assert all(v.dtype == np.float32 for v in vectors.values())
        assert backend.vectors_of(alias, ["1"], "image_vector") == {}
        assert backend.vectors_of(alias, [], "text_vector") == {}
