"""Every request body the cluster backends emit conforms to the engine's own specification."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shoprank.indexing.encoders.protocol import TextEncoder
from shoprank.indexing.mapping import product_mapping
from shoprank.plugin.backends.remote import RESOLVE_TTL_S, BulkWriteError
from shoprank.plugin.search import SearchService
from shoprank.settings import Settings

from .conftest import Engine, service_for

DOCS: list[dict[str, Any]] = [
    {"_id": "p1", "title": "Trail running shoes", "brand": "Acme", "price": 89.0,
     "category": "Shoes", "category_levels": ["Sport", "Sport > Shoes"]},
    {"_id": "p2", "title": "Leather office shoes", "brand": "Brogue", "price": 120.0,
     "category": "Shoes", "colour": "brown"},
    {"_id": "p3", "title": "Espresso machine", "brand": "Acme", "price": 249.0,
     "category": "Kitchen", "description": "15 bar pump espresso maker"},
]  # fmt: skip


def _load(engine: Engine, encoder: TextEncoder) -> str:
    backend = engine.backend
    generation = backend.create_generation("products", product_mapping(text_dims=encoder.dims))
    vectors = encoder.encode([d["title"] for d in DOCS]).astype(np.float32)
    backend.write_batch(generation, DOCS, {"text_vector": vectors})
    backend.commit(generation, ready=True)
    backend.swap_alias("products", generation)
    return generation


@pytest.fixture
def loaded(engine: Engine, minilm: TextEncoder) -> Engine:
    _load(engine, minilm)
    engine.cluster.reset()  # loading is checked by the lifecycle test
    return engine


def _paths(requests: list[Any]) -> list[str]:
    return [f"{r.method} {r.path}" for r in requests]


# -- the validator can fail ------------------------------------------------------------------

GOOD_SEARCH = {"query": {"bool": {"must": [{"match": {"title": {"query": "shoes"}}}]}}}
MALFORMED: list[tuple[str, str, Any]] = [
    # (method, path, body) — each breaks the specification in one way
    ("POST", "/products/_search", {"query": {"bool": {"must": [{"matchh": {"title": "x"}}]}}}),
    ("POST", "/products/_search", {"query": {"match": {"t": {"query": "x", "operatr": "and"}}}}),
    ("POST", "/products/_search", {"size": "ten"}),
    ("POST", "/products/_search", {"query": {"term": {"brand": {"value": "x"}}}, "from_": 5}),
    ("POST", "/_aliases", {"actions": [{"swap": {"index": "a", "alias": "b"}}]}),
    ("POST", "/_bulk", [{"indx": {"_index": "a", "_id": "1"}}, {"title": "x"}]),
    ("PUT", "/products-000001", {"mappings": {"properties": {"title": {"type": 7}}}}),
    # a wrongly typed option on a text field deep in an object (tagged unions stay strict)
    ("PUT", "/products-000001", {"mappings": {"properties": {"o": {"properties": {
        "t": {"type": "text", "analyzer": 7}}}}}}),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "body"), MALFORMED)
def test_the_validator_rejects_malformed_bodies(
    engine: Engine, method: str, path: str, body: Any
) -> None:
    assert engine.spec.errors(method, path, {}, body), f"{engine.name} accepted {body}"


def test_the_validator_accepts_the_well_formed_counterpart(engine: Engine) -> None:
    assert engine.spec.errors("POST", "/products/_search", {}, GOOD_SEARCH) == []
    swap = {
        "actions": [{"remove": {"index": "a", "alias": "b"}}, {"add": {"index": "c", "alias": "b"}}]
    }
    assert engine.spec.errors("POST", "/_aliases", {}, swap) == []
    with pytest.raises(LookupError):
        engine.spec.operation("POST", "/products/_no_such_api")
    assert engine.spec.errors("GET", "/products/_mapping", {"no_such_param": "1"}, None)


# -- indexing --------------------------------------------------------------------------------


def test_generation_lifecycle_requests_conform(engine: Engine, minilm: TextEncoder) -> None:
    backend = engine.backend
    first = _load(engine, minilm)
    requests = engine.conforming()
    create = next(r for r in requests if r.method == "PUT" and r.path == f"/{first}")
    props = create.body["mappings"]["properties"]
    assert props["title"]["analyzer"] == "english"
    assert props["brand"]["type"] == "keyword" and props["price"]["type"] == "float"
    vector = props["text_vector"]
    if engine.name == "elasticsearch":
        assert vector["type"] == "dense_vector" and vector["dims"] == minilm.dims
        assert vector["similarity"] == "cosine"
        assert vector["index_options"] == {"type": "int8_hnsw"}
    else:
        assert vector["type"] == "knn_vector" and vector["dimension"] == minilm.dims
        assert vector["method"]["name"] == "hnsw"
        assert vector["method"]["engine"] == "faiss"
        assert vector["method"]["space_type"] == "cosinesimil"
        assert create.body["settings"]["index"]["knn"] is True
    bulk = next(r for r in requests if r.path.endswith("_bulk"))
    assert len(bulk.body) == 2 * len(DOCS)
    assert len(bulk.body[1]["text_vector"]) == minilm.dims

    # A second generation with CJK text fields, image vectors for some products and a delete.
    mapping = product_mapping(text_dims=minilm.dims, image_dims=8, language="cjk")
    second = backend.create_generation("products", mapping)
    images = np.ones((1, 8), dtype=np.float32)
    vectors = minilm.encode([d["title"] for d in DOCS]).astype(np.float32)
    backend.write_batch(
        second,
        DOCS,
        {"text_vector": vectors},
        partial_vectors={"image_vector": ([2], images)},
        delete_ids=["p9"],
    )
    backend.commit(second, ready=True)
    assert backend.swap_alias("products", second) == first
    assert backend.rollback("products") == first
    assert backend.resolve("products") == first
    assert backend.swap_alias("products", second) == first
    assert backend.prune("products", keep=0) == [first]
    assert [g["name"] for g in backend.generations("products")] == [second]
    requests = engine.conforming()
    swaps = [r for r in requests if r.path == "/_aliases"]
    assert len(swaps) == 3  # swap, rollback, swap: one atomic call each
    assert swaps[0].body["actions"] == [
        {"remove": {"index": first, "alias": "products"}},
        {"add": {"index": second, "alias": "products", "is_write_index": True}},
    ]
    created = next(r for r in requests if r.method == "PUT" and r.path == f"/{second}")
    assert created.body["mappings"]["properties"]["title"]["analyzer"] == "cjk"
    bulk = next(r for r in requests if r.path.endswith("_bulk"))
    assert bulk.body[-1] == {"delete": {"_index": second, "_id": "p9"}}
    assert "image_vector" in bulk.body[5] and "image_vector" not in bulk.body[1]
    assert any(r.method == "DELETE" and r.path == f"/{first}" for r in requests)


def test_refused_bulk_items_are_reported_and_the_rest_written(
    loaded: Engine, minilm: TextEncoder
) -> None:
    generation = loaded.backend.resolve("products")
    loaded.cluster.refuse_ids = {"p2"}
    docs = [{**d, "title": d["title"] + " v2"} for d in DOCS]
    with pytest.raises(BulkWriteError) as info:
        loaded.backend.write_batch(generation, docs)
    assert "p2" in info.value.reason and "1 of 3" in info.value.reason
    assert info.value.details["failures"][0]["_id"] == "p2"
    stored = loaded.cluster.indices[generation].docs
    assert stored["p1"]["title"].endswith("v2") and not stored["p2"]["title"].endswith("v2")
    loaded.conforming()


# -- searching -------------------------------------------------------------------------------

FILTERED = {
    "bool": {
        "must": [{"multi_match": {"query": "running shoes", "fields": ["title^3", "brand.text"]}}],
        "filter": [{"range": {"price": {"lte": 150}}}, {"term": {"brand": "Acme"}}],
        "must_not": [{"terms": {"colour": ["red", "green"]}}],
        "should": [{"match": {"category.text": {"query": "sport", "boost": 2.0}}}],
    }
}
AGGS = {
    "brands": {"terms": {"field": "brand", "size": 5}},
    "prices": {"range": {"field": "price", "ranges": [{"to": 100}, {"from": 100}]}},
    "stats": {"stats": {"field": "price"}},
}
SHAPES: dict[str, dict[str, Any]] = {
    "lexical": {"query": FILTERED, "aggs": AGGS, "size": 2, "from": 1, "_source": ["title"],
                "sort": [{"price": "asc"}], "ext": {"shoprank": {"mode": "lexical"}}},
    "vector": {"query": {"match": {"title": "espresso"}}, "size": 2,
               "ext": {"shoprank": {"mode": "vector"}}},
    "hybrid-rrf": {"query": FILTERED, "aggs": AGGS, "post_filter": {"term": {"category": "Shoes"}},
                   "ext": {"shoprank": {"mode": "hybrid", "fusion": "rrf", "window": 20}}},
    "hybrid-linear": {"query": {"match": {"title": {"query": "shoes", "operator": "and"}}},
                      "track_total_hits": True,
                      "ext": {"shoprank": {"mode": "hybrid", "fusion": "linear"}}},
    "full": {"query": FILTERED, "aggs": {"brands": {"terms": {"field": "brand"},
             "aggs": {"avg_price": {"avg": {"field": "price"}}}}}},
    "client-knn": {"knn": {"field": "text_vector", "k": 5, "num_candidates": 50,
                           "filter": {"term": {"brand": "Acme"}},
                           "query_vector_builder": {"text_embedding": {"model_text": "shoes"}}},
                   "query": {"match": {"title": "shoes"}}, "ext": {"shoprank": {"mode": "hybrid"}}},
}  # fmt: skip


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_search_requests_conform(
    loaded: Engine, minilm: TextEncoder, tmp_path: Path, shape: str
) -> None:
    service = service_for(loaded, minilm, tmp_path)
    response = service.search("products", SHAPES[shape])
    requests = loaded.conforming()
    if shape == "full":
        # Query understanding read the catalog's vocabulary (terms/stats aggregations) once;
        # from the second search on, a full search is the same two requests as hybrid.
        assert any("aggregations" in (r.body or {}) for r in requests)
        response = service.search("products", SHAPES[shape])
        requests = loaded.conforming()
    assert response["hits"]["hits"], "the scripted cluster holds matching products"
    if shape == "lexical":
        assert _paths(requests) == ["POST /products/_search"]
        assert response["aggregations"].keys() == AGGS.keys()
        return
    # Fused modes: both legs in one _msearch, then one _mget for the page's sources.
    assert _paths(requests) == ["POST /_msearch", "POST /products/_mget"]
    lexical_leg, vector_leg = requests[0].body[1], requests[0].body[3]
    if "aggs" in SHAPES[shape]:
        assert lexical_leg["aggregations"].keys() == SHAPES[shape]["aggs"].keys()
        assert response["aggregations"].keys() == SHAPES[shape]["aggs"].keys()
    if loaded.name == "elasticsearch":
        knn = vector_leg["knn"][0]
        assert len(knn["query_vector"]) == minilm.dims
        assert "query" not in vector_leg
    else:
        assert "knn" not in vector_leg
        ((field, knn),) = vector_leg["query"]["knn"].items()
        assert field == "text_vector" and len(knn["vector"]) == minilm.dims
    if shape in ("hybrid-rrf", "full"):  # the client's filters reach the kNN leg
        filters = knn["filter"]
        text = str(filters)
        assert "'lte': 150" in text and "Acme" in text and "green" in text
    if shape == "client-knn":
        assert "Acme" in str(knn["filter"])


def test_count_get_and_mget_conform(loaded: Engine) -> None:
    backend = loaded.backend
    assert backend.count("products", {"query": {"term": {"brand": "Acme"}}}) == len(DOCS)
    assert backend.get("products", "p1")["found"] is True
    assert backend.get("products", "nope")["found"] is False
    assert set(backend.mget("products", ["p1", "p3", "nope"], source=["title"])) == {"p1", "p3"}
    assert "text_vector" in backend.vector_fields("products")
    assert backend.vectors_of("products", ["p1"], "text_vector")["p1"].shape == (384,)
    requests = loaded.conforming()
    fetch = requests[-1].body["docs"][0]["_source"]
    if loaded.name == "elasticsearch":  # 9.2+ leaves vectors out of _source unless asked
        assert fetch == {"includes": ["text_vector"], "exclude_vectors": False}


def test_opensearch_refuses_knn_similarity_it_cannot_translate(
    loaded: Engine, minilm: TextEncoder, tmp_path: Path
) -> None:
    if loaded.name != "opensearch":
        pytest.skip("Elasticsearch takes knn.similarity natively")
    from shoprank.errors import UnsupportedQueryError

    body = {"knn": {"field": "text_vector", "query_vector": [0.0] * minilm.dims,
                    "k": 3, "similarity": 0.5}}  # fmt: skip
    with pytest.raises(UnsupportedQueryError, match="similarity"):
        loaded.backend.search("products", body)
    assert loaded.cluster.requests == []  # refused before anything was sent


def test_native_fusion_requests_conform(
    loaded: Engine, minilm: TextEncoder, tmp_path: Path
) -> None:
    from shoprank.plugin.search import SearchService
    from shoprank.settings import Settings

    settings = Settings(
        data_dir=tmp_path, native_fusion=True, linear_vector_weight=0.7, knn_candidates_factor=6
    )
    service = SearchService(backend=loaded.backend, settings=settings, encoder=lambda: minilm)
    window = 40
    body = {
        "query": FILTERED,
        "aggs": AGGS,
        "size": 2,
        "ext": {"shoprank": {"mode": "hybrid", "window": window}},
    }
    for _ in range(2):
        response = service.search("products", body)
        assert response["hits"]["hits"]
    requests = loaded.conforming()
    if loaded.name == "elasticsearch":
        assert _paths(requests) == ["POST /products/_search"] * 2
        rrf = requests[0].body["retriever"]["rrf"]
        standard, knn = rrf["retrievers"]
        assert standard["standard"]["query"] == FILTERED
        assert "Acme" in str(knn["knn"]["filter"]) and rrf["rank_constant"] == 60
        # The kNN search breadth follows SHOPRANK_KNN_CANDIDATES_FACTOR, as fused legs do.
        assert knn["knn"]["num_candidates"] == 6 * window
        return
    # OpenSearch: the normalization pipeline is created once, then one search per request.
    assert _paths(requests) == [
        "PUT /_search/pipeline/shoprank-hybrid",
        "POST /products/_search",
        "POST /products/_search",
    ]
    processor = requests[0].body["phase_results_processors"][0]["normalization-processor"]
    assert processor["combination"]["parameters"]["weights"] == [pytest.approx(0.3), 0.7]
    search = requests[1]
    assert search.params == {"search_pipeline": "shoprank-hybrid"}
    lexical, knn = search.body["query"]["hybrid"]["queries"]
    assert lexical == FILTERED and "Acme" in str(knn["knn"]["text_vector"]["filter"])
    assert knn["knn"]["text_vector"]["method_parameters"] == {"ef_search": 6 * window}


def test_a_catalog_reload_is_incremental_on_the_cluster(
    engine: Engine, minilm: TextEncoder, tmp_path: Path
) -> None:
    """The re-index pipeline on a cluster: the second load clones the live generation with
    `_reindex`, writes only the changed product, deletes the dropped one, swaps the alias."""
    import json

    from shoprank.indexing.loader import load_catalog

    rows = [
        {"id": "p1", "title": "Trail running shoes", "brand": "Acme", "price": 89.0},
        {"id": "p2", "title": "Leather office shoes", "brand": "Brogue", "price": 120.0},
        {"id": "p3", "title": "Espresso machine", "brand": "Acme", "price": 249.0},
    ]

    def load(name: str, catalog: list[dict[str, Any]]) -> Any:
        path = tmp_path / name
        path.write_text("".join(json.dumps(r) + "\n" for r in catalog))
        return load_catalog(
            path, index="shop", backend=engine.backend, encoder=minilm, lock_dir=tmp_path / "l"
        )

    first = load("a.jsonl", rows)
    engine.conforming()
    changed = [rows[0], {**rows[1], "title": "Suede office shoes"}]  # p2 changed, p3 dropped
    second = load("b.jsonl", changed)
    requests = engine.conforming()
    assert second.generation != first.generation
    (reindex,) = [r for r in requests if r.path == "/_reindex"]
    assert reindex.body == {
        "source": {"index": first.generation},
        "dest": {"index": second.generation},
    }
    bulks = [r.body for r in requests if r.path.endswith("_bulk")]
    written = [line["index"]["_id"] for body in bulks for line in body if "index" in line]
    deleted = [line["delete"]["_id"] for body in bulks for line in body if "delete" in line]
    assert written == ["p2"] and deleted == ["p3"]
    assert engine.backend.resolve("shop") == second.generation
    stored = engine.cluster.indices[second.generation].docs
    assert sorted(stored) == ["p1", "p2"] and stored["p2"]["title"] == "Suede office shoes"
    manifest = engine.backend.read_manifest("shop")
    assert manifest is not None and sorted(manifest["hashes"]) == ["p1", "p2"]


def test_the_text_to_image_leg_conforms(
    engine: Engine, minilm: TextEncoder, tmp_path: Path
) -> None:
    from shoprank.plugin.search import SearchService
    from shoprank.settings import Settings

    mapping = product_mapping(text_dims=minilm.dims, image_dims=minilm.dims)
    generation = engine.backend.create_generation("products", mapping)
    vectors = minilm.encode([d["title"] for d in DOCS]).astype(np.float32)
    engine.backend.write_batch(generation, DOCS, {"text_vector": vectors, "image_vector": vectors})
    engine.backend.commit(generation, ready=True)
    engine.backend.swap_alias("products", generation)
    engine.cluster.reset()
    service = SearchService(
        backend=engine.backend,
        settings=Settings(data_dir=tmp_path),
        encoder=lambda: minilm,
        image_text_encoder=lambda: minilm,
    )
    body = {"query": FILTERED, "ext": {"shoprank": {"mode": "hybrid", "explain": True}}}
    response = service.search("products", body)
    assert "retrieve:image" in response["_shoprank"]["stages"]
    requests = engine.conforming()
    image = [r for r in requests if r.path == "/products/_search"]
    assert len(image) == 1  # the image leg: one more search beside the _msearch
    text = str(image[0].body)
    assert "image_vector" in text and "Acme" in text  # the client's filters apply here too


def test_a_full_search_after_the_resolve_ttl_asks_for_the_alias_once(
    loaded: Engine, minilm: TextEncoder, tmp_path: Path
) -> None:
    """Query understanding keys its vocabulary on the concrete index behind the alias, trusted
    for `RESOLVE_TTL_S` since the cluster last named it (each page's `_mget` does). After
    that the next search looks it up again (one conforming `GET /_alias`) and, the
    generation being the same, reads no vocabulary."""
    service = service_for(loaded, minilm, tmp_path)
    service.search("products", SHAPES["full"])
    loaded.conforming()
    loaded.clock.advance(RESOLVE_TTL_S - 0.01)
    service.search("products", SHAPES["full"])
    assert _paths(loaded.conforming()) == ["POST /_msearch", "POST /products/_mget"]
    loaded.clock.advance(RESOLVE_TTL_S + 0.01)
    response = service.search("products", SHAPES["full"])
    assert _paths(loaded.conforming()) == [
        "GET /_alias/products",
        "POST /_msearch",
        "POST /products/_mget",
    ]
    assert response["hits"]["hits"]


def test_spelling_on_a_cluster_runs_only_on_the_fields_named(
    loaded: Engine, minilm: TextEncoder, tmp_path: Path
) -> None:
    """Off by default on a cluster (its `term` suggester reads stems); with
    `SHOPRANK_SPELLING_FIELDS` a `full` search first asks a `term` suggester on exactly those
    fields, in an otherwise spec-valid `_search` (the specs cannot check suggesters: see
    `test_frontend_passthrough`), and then searches as before."""
    body = {"query": {"match": {"title": "shoes"}}, "ext": {"shoprank": {"mode": "full"}}}
    service_for(loaded, minilm, tmp_path).search("products", body)
    assert not [r for r in loaded.conforming() if "suggest" in (r.body or {})]

    settings = Settings(
        data_dir=tmp_path,
        backend=loaded.name,  # type: ignore[arg-type]
        spelling_fields=["title.plain"],
    )
    service = SearchService(backend=loaded.backend, settings=settings, encoder=lambda: minilm)
    response = service.search("products", body)
    assert response["hits"]["hits"]
    requests = list(loaded.cluster.requests)
    loaded.cluster.reset()
    suggests = [r for r in requests if isinstance(r.body, dict) and "suggest" in r.body]
    assert len(suggests) == 1 and suggests[0].path == "/products/_search"
    section = suggests[0].body["suggest"]
    assert section["text"] == "shoes"
    assert {s["term"]["field"] for k, s in section.items() if k != "text"} == {"title.plain"}
    for req in requests:
        plain = (
            {k: v for k, v in req.body.items() if k != "suggest"}
            if isinstance(req.body, dict)
            else req.body
        )
        assert loaded.spec.errors(req.method, req.path, req.params, plain) == [], req.path
