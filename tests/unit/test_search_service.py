"""SearchService: modes, legs, filters on every leg, aggregations, explain and request errors.

Runs on the embedded backend with a deterministic "concept" encoder: words of one concept
(e.g. sneakers / shoes / trainers / boots) share one dimension, so "sneakers" is close to
"running shoes" by construction while sharing no word with it. The real MiniLM encoder is
used by one slow test at the end.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from shoprank.errors import BadRequestError, UnsupportedQueryError
from shoprank.indexing.catalog import embedding_text
from shoprank.indexing.encoders.protocol import TextEncoder
from shoprank.indexing.mapping import TEXT_VECTOR_FIELD, product_mapping
from shoprank.plugin.backends.embedded.backend import EmbeddedBackend
from shoprank.plugin.search import SearchService, extract_filters, extract_query_text
from shoprank.rerankers.protocol import Candidate, RerankContext
from shoprank.settings import Settings

INDEX = "products"

CONCEPTS = {
    "footwear": {
        "sneakers",
        "sneaker",
        "shoes",
        "shoe",
        "trainers",
        "boots",
        "footwear",
        "running",
    },
    "coffee": {"coffee", "espresso", "mug", "kitchen"},
    "audio": {"headphones", "speaker", "audio", "bluetooth", "wireless"},
    "light": {"lamp", "lighting", "bulb", "led"},
    "zebra": {"zebra", "striped"},
}
CONCEPT_DIMS = {name: i for i, name in enumerate(CONCEPTS)}
WORD_CONCEPT = {w: c for c, words in CONCEPTS.items() for w in words}


class ConceptEncoder:
    """Concept words → one shared dimension (weight 3); other words hashed (weight 1)."""

    model_id = "concept-bow@test"
    dims = 24

    def __init__(self) -> None:
        self.texts: list[str] = []

    def warm_up(self) -> None:
        pass

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> npt.NDArray[np.float32]:
        self.texts.extend(texts)
        out = np.zeros((len(texts), self.dims), dtype=np.float32)
        hashed = self.dims - len(CONCEPTS)
        for i, text in enumerate(texts):
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                concept = WORD_CONCEPT.get(word)
                if concept is not None:
                    out[i, CONCEPT_DIMS[concept]] += 3.0
                else:
                    out[i, len(CONCEPTS) + zlib.crc32(word.encode()) % hashed] += 1.0
            norm = float(np.linalg.norm(out[i]))
            if norm == 0.0:
                out[i, -1], norm = 1.0, 1.0
            out[i] /= norm
        return out


PRODUCTS: list[dict[str, Any]] = [
    {
        "id": "s1",
        "title": "Trail running shoes",
        "brand": "Acme",
        "category": "Sport > Footwear",
        "price": 59.9,
    },
    {
        "id": "s2",
        "title": "Leather boots",
        "brand": "Boulder",
        "category": "Fashion > Footwear",
        "price": 120.0,
    },
    {
        "id": "s3",
        "title": "Classic trainers",
        "brand": "Acme",
        "category": "Sport > Footwear",
        "price": 45.0,
    },
    {
        "id": "s4",
        "title": "Canvas shoes",
        "brand": "Boulder",
        "category": "Fashion > Footwear",
        "price": 35.0,
    },
    {
        "id": "s5",
        "title": "Shoe cleaning kit",
        "brand": "Acme",
        "category": "Sport > Care",
        "price": 12.0,
        "description": "Brush and spray for leather and canvas",
    },
    {
        "id": "c1",
        "title": "Espresso machine",
        "brand": "Brewmaster",
        "category": "Home > Kitchen",
        "price": 249.0,
    },
    {
        "id": "c2",
        "title": "Coffee mug",
        "brand": "Acme",
        "category": "Home > Kitchen",
        "price": 9.5,
    },
    {
        "id": "a1",
        "title": "Wireless headphones",
        "brand": "Sonic",
        "category": "Electronics > Audio",
        "price": 89.0,
    },
    {
        "id": "a2",
        "title": "Bluetooth speaker",
        "brand": "Sonic",
        "category": "Electronics > Audio",
        "price": 49.0,
    },
    {
        "id": "l1",
        "title": "Desk lamp",
        "brand": "Lumo",
        "category": "Home > Lighting",
        "price": 25.0,
    },
    {
        "id": "l2",
        "title": "LED bulb pack",
        "brand": "Lumo",
        "category": "Home > Lighting",
        "price": 15.0,
    },
]
BRAND = {p["id"]: p["brand"] for p in PRODUCTS}
FOOTWEAR = {"s1", "s2", "s3", "s4", "s5"}
TITLE_SHOES = {"s1", "s4", "s5"}  # titles matching "shoes" after stemming


def _build(backend: EmbeddedBackend, index: str, products: list[dict[str, Any]]) -> None:
    enc = ConceptEncoder()
    gen = backend.create_generation(index, product_mapping(text_dims=enc.dims))
    vectors = enc.encode([embedding_text(p) for p in products])
    backend.bulk_upsert(
        gen, [{"_id": p["id"], **p} for p in products], {TEXT_VECTOR_FIELD: vectors}
    )
    backend.commit(gen, ready=True)
    backend.swap_alias(index, gen)


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> EmbeddedBackend:
    be = EmbeddedBackend(tmp_path_factory.mktemp("embedded"))
    _build(be, INDEX, PRODUCTS)
    return be


@pytest.fixture
def encoder() -> ConceptEncoder:
    return ConceptEncoder()


def _service(
    backend: EmbeddedBackend, tmp_path: Path, enc: TextEncoder | None, **settings: Any
) -> SearchService:
    return SearchService(
        backend=backend,
        settings=Settings(data_dir=tmp_path, **settings),
        encoder=(lambda: enc) if enc is not None else None,
    )


@pytest.fixture
def service(backend: EmbeddedBackend, tmp_path: Path, encoder: ConceptEncoder) -> SearchService:
    return _service(backend, tmp_path, encoder)


def _with(body: dict[str, Any], **opts: Any) -> dict[str, Any]:
    return {**body, "ext": {"shoprank": opts}}


def _ids(response: dict[str, Any]) -> list[str]:
    return [h["_id"] for h in response["hits"]["hits"]]


def _without_took(response: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in response.items() if k != "took"}


SHOES = {"query": {"match": {"title": "shoes"}}}


# -- extract_query_text / extract_filters ----------------------------------------------------


@pytest.mark.parametrize(
    ("query", "text"),
    [
        ({"match": {"title": "red shoes"}}, "red shoes"),
        ({"match": {"title": {"query": "red shoes", "operator": "and"}}}, "red shoes"),
        ({"match_phrase": {"title": "red shoes"}}, "red shoes"),
        ({"multi_match": {"query": "red shoes", "fields": ["title", "description"]}}, "red shoes"),
        (
            {
                "bool": {
                    "must": [{"match": {"title": "red"}}],
                    "should": {"match_phrase": {"description": "running"}},
                    "filter": [{"match": {"brand": "acme"}}],
                    "must_not": [{"match": {"title": "kids"}}],
                }
            },
            "red running",
        ),
        (
            {
                "bool": {
                    "must": {
                        "bool": {
                            "should": [{"match": {"title": "a"}}, {"multi_match": {"query": "b"}}]
                        }
                    }
                }
            },
            "a b",
        ),
        ({"dis_max": {"queries": [{"match": {"title": "x"}}, {"match": {"brand": "y"}}]}}, "x y"),
        ({"constant_score": {"filter": {"match": {"title": "hidden"}}}}, None),
        ({"match_all": {}}, None),
        ({"term": {"brand": "Acme"}}, None),
        ({"match": {"title": "   "}}, None),
        ({"match": {"price": 10}}, None),
        (None, None),
    ],
)
def test_extract_query_text(query: Any, text: str | None) -> None:
    assert extract_query_text(query) == text


def test_extract_filters() -> None:
    brand = {"term": {"brand": "Acme"}}
    cheap = {"range": {"price": {"lte": 50}}}
    kids = {"match": {"title": "kids"}}
    assert extract_filters({"match": {"title": "x"}}) == []
    assert extract_filters(None) == []
    assert extract_filters({"bool": {"must": {"match": {"title": "x"}}}}) == []
    assert extract_filters({"bool": {"filter": brand}}) == [brand]
    assert extract_filters({"bool": {"filter": [brand, cheap], "must_not": kids}}) == [
        brand,
        cheap,
        {"bool": {"must_not": [kids]}},
    ]


# -- lexical ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        SHOES,
        {
            "query": {
                "bool": {
                    "must": {"match": {"title": "shoes"}},
                    "filter": {"term": {"brand": "Acme"}},
                }
            },
            "size": 1,
            "from": 1,
        },
        {
            "query": {"match_all": {}},
            "aggs": {"b": {"terms": {"field": "brand"}}},
            "_source": ["title"],
        },
    ],
)
def test_lexical_mode_equals_backend(
    service: SearchService, backend: EmbeddedBackend, body: dict[str, Any]
) -> None:
    got = service.search(INDEX, _with(body, mode="lexical"))
    assert _without_took(got) == _without_took(backend.search(INDEX, body))


def test_request_body_is_not_mutated(service: SearchService) -> None:
    body = _with(
        {
            "query": {"match": {"title": "shoes"}},
            "knn": {
                "field": TEXT_VECTOR_FIELD,
                "k": 2,
                "num_candidates": 10,
                "query_vector_builder": {"text_embedding": {"model_text": "x"}},
            },
        },
        mode="hybrid",
    )
    before = json.dumps(body, sort_keys=True)
    service.search(INDEX, body)
    assert json.dumps(body, sort_keys=True) == before


# -- vector ----------------------------------------------------------------------------------


def test_vector_mode_ignores_lexical_matching(
    service: SearchService, backend: EmbeddedBackend
) -> None:
    body = {"query": {"match": {"title": "sneakers"}}, "size": 11}
    assert backend.search(INDEX, body)["hits"]["hits"] == []  # no title says "sneakers"
    got = service.search(INDEX, _with(body, mode="vector"))
    ids = _ids(got)
    assert len(ids) == 11
    # "sneakers" is pure footwear concept: every footwear product ranks above the rest,
    # and the rest have cosine 0, i.e. score (1 + 0) / 2.
    assert set(ids[:5]) == FOOTWEAR
    for hit in got["hits"]["hits"][5:]:
        assert hit["_score"] == pytest.approx(0.5, abs=1e-4)
    assert got["hits"]["total"] == {"value": 11, "relation": "eq"}
    assert got["hits"]["hits"][0]["_source"]["id"] == ids[0]


def test_vector_mode_ranks_by_cosine(service: SearchService, encoder: ConceptEncoder) -> None:
    got = service.search(
        INDEX, _with({"query": {"match": {"title": "shoes"}}, "size": 11}, mode="vector")
    )
    ref = ConceptEncoder()
    docs = ref.encode([embedding_text(p) for p in PRODUCTS])
    query = ref.encode(["shoes"])[0]
    expected = {p["id"]: (1.0 + float(docs[i] @ query)) / 2.0 for i, p in enumerate(PRODUCTS)}
    scores = {h["_id"]: h["_score"] for h in got["hits"]["hits"]}
    assert scores == pytest.approx(expected, abs=1e-4)
    assert [s for s in (h["_score"] for h in got["hits"]["hits"])] == sorted(
        scores.values(), reverse=True
    )
    assert encoder.texts == ["shoes"]


# -- hybrid ----------------------------------------------------------------------------------


def test_hybrid_includes_docs_from_both_legs(service: SearchService) -> None:
    got = service.search(INDEX, _with({**SHOES, "size": 11}, mode="hybrid", explain=True))
    hits = got["hits"]["hits"]
    legs = {h["_id"]: set(h["_shoprank"]["legs"]) for h in hits}
    # Found by both legs: the title matches; vector-only: the other footwear first.
    assert {i for i, leg in legs.items() if leg == {"lexical", "vector"}} == TITLE_SHOES
    assert legs["s2"] == legs["s3"] == {"vector"}
    assert set(_ids(got)[:3]) == TITLE_SHOES
    assert set(_ids(got)[3:5]) == {"s2", "s3"}
    assert got["_shoprank"]["stages"] == ["retrieve:lexical", "retrieve:vector", "fuse:rrf"]
    assert got["_shoprank"]["mode_applied"] == "hybrid"
    assert got["_shoprank"]["query_text"] == "shoes"


def test_explain_leg_ranks_match_each_leg(service: SearchService, backend: EmbeddedBackend) -> None:
    got = service.search(INDEX, _with({**SHOES, "size": 11}, mode="hybrid", explain=True))
    lexical = [h["_id"] for h in backend.search(INDEX, {**SHOES, "size": 100})["hits"]["hits"]]
    vector = _ids(service.search(INDEX, _with({**SHOES, "size": 11}, mode="vector")))
    k = service.settings.rrf_k
    for position, hit in enumerate(got["hits"]["hits"], start=1):
        info = hit["_shoprank"]
        assert info["rank"] == position
        expected = 0.0
        if hit["_id"] in lexical:
            assert info["legs"]["lexical"]["rank"] == lexical.index(hit["_id"]) + 1
            expected += 1.0 / (k + lexical.index(hit["_id"]) + 1)
        else:
            assert "lexical" not in info["legs"]
        assert info["legs"]["vector"]["rank"] == vector.index(hit["_id"]) + 1
        expected += 1.0 / (k + vector.index(hit["_id"]) + 1)
        assert hit["_score"] == pytest.approx(expected)


def test_hybrid_linear_fusion_is_weighted_min_max(service: SearchService) -> None:
    got = service.search(
        INDEX, _with({**SHOES, "size": 11}, mode="hybrid", explain=True, fusion="linear")
    )
    hits = got["hits"]["hits"]
    assert got["_shoprank"]["fusion"] == "linear"
    legs = {
        leg: [h["_shoprank"]["legs"][leg]["score"] for h in hits if leg in h["_shoprank"]["legs"]]
        for leg in ("lexical", "vector")
    }
    w = service.settings.linear_vector_weight
    for hit in hits:
        expected = 0.0
        for leg, weight in (("lexical", 1.0 - w), ("vector", w)):
            if leg in hit["_shoprank"]["legs"]:
                lo, hi = min(legs[leg]), max(legs[leg])
                expected += weight * (hit["_shoprank"]["legs"][leg]["score"] - lo) / (hi - lo)
        assert hit["_score"] == pytest.approx(expected)


def test_hybrid_pages_are_slices_of_one_ranking(service: SearchService) -> None:
    whole = _ids(service.search(INDEX, _with({**SHOES, "size": 7}, mode="hybrid")))
    page = _ids(service.search(INDEX, _with({**SHOES, "from": 3, "size": 4}, mode="hybrid")))
    assert page == whole[3:7]


@pytest.mark.parametrize("mode", ["vector", "hybrid"])
def test_bool_filter_on_brand_is_honoured_by_every_leg(service: SearchService, mode: str) -> None:
    body = {
        "query": {
            "bool": {"must": {"match": {"title": "shoes"}}, "filter": [{"term": {"brand": "Acme"}}]}
        },
        "size": 11,
    }
    got = service.search(INDEX, _with(body, mode=mode))
    ids = _ids(got)
    assert ids, "expected Acme products"
    assert {BRAND[i] for i in ids} == {"Acme"}
    assert {h["_source"]["brand"] for h in got["hits"]["hits"]} == {"Acme"}
    # The vector leg found Acme's trainers, which do not say "shoes".
    assert "s3" in ids
    assert set(ids) == {"s1", "s3", "s5", "c2"}


@pytest.mark.parametrize("mode", ["vector", "hybrid"])
def test_must_not_and_post_filter_are_honoured_by_every_leg(
    service: SearchService, mode: str
) -> None:
    body = {
        "query": {
            "bool": {"must": {"match": {"title": "shoes"}}, "must_not": {"term": {"brand": "Acme"}}}
        },
        "post_filter": {"range": {"price": {"lt": 100}}},
        "size": 11,
    }
    ids = _ids(service.search(INDEX, _with(body, mode=mode)))
    expected = {p["id"] for p in PRODUCTS if p["brand"] != "Acme" and p["price"] < 100}
    assert set(ids) == expected


def test_hybrid_aggregations_come_from_the_lexical_query(
    service: SearchService, backend: EmbeddedBackend
) -> None:
    aggs = {"brands": {"terms": {"field": "brand"}}, "price": {"stats": {"field": "price"}}}
    got = service.search(INDEX, _with({**SHOES, "aggs": aggs}, mode="hybrid"))
    own = backend.search(INDEX, {**SHOES, "aggs": aggs, "size": 0})["aggregations"]
    assert got["aggregations"] == own
    # By hand: the title matches are s1 (Acme), s4 (Boulder), s5 (Acme).
    buckets = [(b["key"], b["doc_count"]) for b in got["aggregations"]["brands"]["buckets"]]
    assert buckets == [("Acme", 2), ("Boulder", 1)]
    stats = got["aggregations"]["price"]
    assert stats["count"] == 3
    assert stats["min"] == pytest.approx(12.0) and stats["max"] == pytest.approx(59.9)
    assert stats["sum"] == pytest.approx(106.9)
    # ... while the hits also hold vector-only products.
    assert len(_ids(got)) == 10


def test_vector_mode_aggregations_come_from_the_lexical_query(
    service: SearchService, backend: EmbeddedBackend
) -> None:
    aggs = {"brands": {"terms": {"field": "brand"}}}
    body = {
        "query": {
            "bool": {"must": {"match": {"title": "shoes"}}, "filter": {"term": {"brand": "Acme"}}}
        },
        "aggs": aggs,
    }
    got = service.search(INDEX, _with(body, mode="vector"))
    assert got["aggregations"] == backend.search(INDEX, {**body, "size": 0})["aggregations"]
    assert [(b["key"], b["doc_count"]) for b in got["aggregations"]["brands"]["buckets"]] == [
        ("Acme", 2)
    ]


def test_hybrid_total_counts_the_client_query_as_es_would(
    service: SearchService,
) -> None:
    got = service.search(INDEX, _with(SHOES, mode="hybrid"))
    # The 3 title matches (s1, s4, s5), as ES counts the query; the vector-only products
    # the window ranks in are not matches of the client's query.
    assert got["hits"]["total"] == {"value": len(TITLE_SHOES), "relation": "eq"}
    assert len(_ids(got)) == 10
    none = service.search(INDEX, _with({**SHOES, "track_total_hits": False}, mode="hybrid"))
    assert "total" not in none["hits"]


def test_source_filtering_in_hybrid(service: SearchService) -> None:
    got = service.search(INDEX, _with({**SHOES, "_source": ["title"]}, mode="hybrid"))
    assert all(set(h["_source"]) == {"title"} for h in got["hits"]["hits"])
    none = service.search(INDEX, _with({**SHOES, "_source": False}, mode="hybrid"))
    assert all("_source" not in h for h in none["hits"]["hits"])
    concrete = service.backend.resolve(INDEX)
    assert all(h["_index"] == concrete for h in none["hits"]["hits"])


def test_ext_query_overrides_the_text_to_embed(
    service: SearchService, encoder: ConceptEncoder
) -> None:
    got = service.search(
        INDEX,
        _with(
            {"query": {"match": {"title": "lamp"}}, "size": 2},
            mode="vector",
            query="headphones",
            explain=True,
        ),
    )
    assert set(_ids(got)) == {"a1", "a2"}
    assert encoder.texts == ["headphones"]
    assert got["_shoprank"]["query_text"] == "headphones"


def test_query_embeddings_are_cached(service: SearchService, encoder: ConceptEncoder) -> None:
    for _ in range(3):
        service.search(INDEX, _with(SHOES, mode="hybrid"))
    assert encoder.texts == ["shoes"]


def test_full_mode_applies_rerankers(
    backend: EmbeddedBackend, tmp_path: Path, encoder: ConceptEncoder
) -> None:
    class Reverse:
        name = "reverse"

        def rerank(self, context: RerankContext, candidates: list[Candidate]) -> list[Candidate]:
            assert context.query_text == "shoes"
            return [Candidate(c.id, float(i)) for i, c in enumerate(reversed(candidates))]

    plain = _service(backend, tmp_path, encoder)
    reranked = SearchService(
        backend=backend,
        settings=Settings(data_dir=tmp_path),
        encoder=lambda: encoder,
        rerankers=[Reverse()],
    )
    hybrid = _ids(plain.search(INDEX, _with({**SHOES, "size": 11}, mode="hybrid")))
    full = reranked.search(INDEX, _with({**SHOES, "size": 11}, mode="full", explain=True))
    assert _ids(full) == hybrid[::-1]
    assert full["_shoprank"]["stages"][-1] == "rerank:reverse"


# -- fallbacks to lexical --------------------------------------------------------------------


def test_explicit_sort_falls_back_to_lexical_with_a_note(
    service: SearchService, backend: EmbeddedBackend
) -> None:
    body = {**SHOES, "sort": [{"price": "asc"}]}
    got = service.search(INDEX, _with(body, mode="hybrid", explain=True))
    own = backend.search(INDEX, body)
    assert got["hits"] == own["hits"]
    assert _ids(got) == ["s5", "s4", "s1"]  # prices 12, 35, 59.9
    assert got["_shoprank"]["mode_applied"] == "lexical"
    assert got["_shoprank"]["mode"] == "hybrid"
    assert any("explicit sort" in note for note in got["_shoprank"]["notes"])


@pytest.mark.parametrize("sort", ["_score", ["_score"], [{"_score": "desc"}]])
def test_score_sort_keeps_fusion(service: SearchService, sort: Any) -> None:
    got = service.search(INDEX, _with({**SHOES, "sort": sort}, mode="hybrid", explain=True))
    assert got["_shoprank"]["mode_applied"] == "hybrid"


def test_min_score_falls_back_to_lexical(service: SearchService) -> None:
    got = service.search(INDEX, _with({**SHOES, "min_score": 0.01}, mode="hybrid", explain=True))
    assert got["_shoprank"]["mode_applied"] == "lexical"
    assert set(_ids(got)) == TITLE_SHOES


def test_match_all_in_hybrid_falls_back_to_lexical(
    service: SearchService, backend: EmbeddedBackend, encoder: ConceptEncoder
) -> None:
    body = {"query": {"match_all": {}}, "size": 5}
    got = service.search(INDEX, _with(body, mode="hybrid", explain=True))
    assert got["hits"] == backend.search(INDEX, body)["hits"]
    assert got["_shoprank"]["mode_applied"] == "lexical"
    assert got["_shoprank"]["query_text"] is None
    assert "no query text to embed: lexical only" in got["_shoprank"]["notes"]
    assert encoder.texts == []


def test_no_encoder_degrades_hybrid_to_the_lexical_leg(
    backend: EmbeddedBackend, tmp_path: Path
) -> None:
    service = _service(backend, tmp_path, None)
    got = service.search(INDEX, _with(SHOES, mode="hybrid", explain=True))
    assert set(_ids(got)) == TITLE_SHOES
    own = backend.search(INDEX, SHOES)["hits"]["hits"]
    # One leg only: its own scores are kept.
    assert [(h["_id"], h["_score"]) for h in got["hits"]["hits"]] == [
        (h["_id"], pytest.approx(h["_score"])) for h in own
    ]
    assert any(n.startswith("vector leg skipped") for n in got["_shoprank"]["notes"])


# -- query_vector_builder --------------------------------------------------------------------


def test_query_vector_builder_is_embedded_by_the_service(
    service: SearchService, backend: EmbeddedBackend, encoder: ConceptEncoder
) -> None:
    knn = {"field": TEXT_VECTOR_FIELD, "k": 3, "num_candidates": 20}
    body = {
        "knn": {
            **knn,
            "query_vector_builder": {
                "text_embedding": {"model_id": "anything", "model_text": "sneakers"}
            },
        }
    }
    got = service.search(INDEX, _with(body, mode="lexical"))
    vector = [float(x) for x in ConceptEncoder().encode(["sneakers"])[0]]
    own = backend.search(INDEX, {"knn": {**knn, "query_vector": vector}})
    assert got["hits"] == own["hits"]
    assert set(_ids(got)) <= FOOTWEAR and len(_ids(got)) == 3
    assert encoder.texts == ["sneakers"]


def test_query_vector_builder_in_hybrid_replaces_the_automatic_vector_leg(
    service: SearchService, encoder: ConceptEncoder
) -> None:
    body = {
        "query": {"match": {"title": "lamp"}},
        "knn": {
            "field": TEXT_VECTOR_FIELD,
            "k": 2,
            "num_candidates": 20,
            "query_vector_builder": {"text_embedding": {"model_text": "headphones"}},
        },
    }
    got = service.search(INDEX, _with({**body, "size": 3}, mode="hybrid", explain=True))
    assert encoder.texts == ["headphones"]
    assert _ids(got)[0] == "l1"  # found by the lexical leg
    legs = {h["_id"]: set(h["_shoprank"]["legs"]) for h in got["hits"]["hits"]}
    assert legs["l1"] <= {"lexical", "vector"}
    vector_only = {i for i, leg in legs.items() if leg == {"vector"}}
    assert vector_only <= {"a1", "a2"} and vector_only


@pytest.mark.parametrize(
    "builder",
    [
        {},
        {"text_embedding": {"model_id": "m"}},
        {"text_embedding": {"model_text": "   "}},
        {"text_embedding": {"model_text": 3}},
    ],
)
def test_query_vector_builder_needs_model_text(
    service: SearchService, builder: dict[str, Any]
) -> None:
    body = {"knn": {"field": TEXT_VECTOR_FIELD, "k": 3, "query_vector_builder": builder}}
    with pytest.raises(BadRequestError, match="model_text") as err:
        service.search(INDEX, _with(body, mode="lexical"))
    assert err.value.status == 400


# -- bad requests ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ext", "message"),
    [
        ({"shoprank": {"mode": "semantic"}}, "ext.shoprank.mode must be one of"),
        ({"shoprank": {"mode": "hybrid", "rerank": True}}, r"unknown ext.shoprank option.*rerank"),
        ({"shoprank": {"fusion": "max"}}, "fusion must be rrf or linear"),
        ({"shoprank": {"window": 0}}, "cannot be negative|window"),
        ({"shoprank": {"window": "many"}}, r"\[window\] must be an integer"),
        ({"shoprank": "hybrid"}, r"\[ext.shoprank\] must be an object"),
        ("hybrid", r"\[ext\] must be an object"),
    ],
)
def test_bad_ext_options_are_400(service: SearchService, ext: Any, message: str) -> None:
    with pytest.raises(BadRequestError, match=message) as err:
        service.search(INDEX, {**SHOES, "ext": ext})
    assert err.value.status == 400


def test_non_shoprank_ext_key_is_400(service: SearchService) -> None:
    with pytest.raises(UnsupportedQueryError, match="ext.shoprank") as err:
        service.search(INDEX, {**SHOES, "ext": {"shoprank": {}, "learning_to_rank": {}}})
    assert err.value.status == 400
    assert isinstance(err.value, BadRequestError)


def test_from_plus_size_beyond_max_result_window_is_400(
    backend: EmbeddedBackend, tmp_path: Path, encoder: ConceptEncoder
) -> None:
    service = _service(
        backend, tmp_path, encoder, window_size=10, max_window_size=20, max_result_window=30
    )
    body = {**SHOES, "from": 25, "size": 10}
    with pytest.raises(BadRequestError, match=r"\[30\] but was \[35\]") as err:
        service.search(INDEX, _with(body, mode="hybrid"))
    assert err.value.status == 400
    assert err.value.es_type == "illegal_argument_exception"
    with pytest.raises(BadRequestError, match="window must be at most 20"):
        service.search(INDEX, _with(SHOES, mode="hybrid", window=21))
    # Past the fused window (10) is fine: the page continues in the lexical order.
    service.search(INDEX, _with({**SHOES, "from": 15, "size": 10}, mode="hybrid"))


def test_default_mode_comes_from_settings(
    backend: EmbeddedBackend, tmp_path: Path, encoder: ConceptEncoder
) -> None:
    service = _service(backend, tmp_path, encoder, default_mode="lexical")
    got = service.search(INDEX, {**SHOES, "ext": {"shoprank": {"explain": True}}})
    assert got["_shoprank"]["mode"] == "lexical"
    assert got["_shoprank"]["fusion"] is None


def test_malformed_query_vector_builder_is_400(service: SearchService) -> None:
    body = {
        "knn": {
            "field": TEXT_VECTOR_FIELD,
            "k": 3,
            "query_vector_builder": {"text_embedding": "sneakers"},
        }
    }
    with pytest.raises(BadRequestError):
        service.search(INDEX, _with(body, mode="lexical"))


def test_non_integer_knn_k_is_400_in_hybrid(service: SearchService) -> None:
    knn = {"field": TEXT_VECTOR_FIELD, "query_vector": [0.0] * 23 + [1.0], "k": "abc"}
    with pytest.raises(BadRequestError):
        service.search(INDEX, _with({"knn": knn}, mode="lexical"))
    with pytest.raises(BadRequestError):
        service.search(INDEX, _with({**SHOES, "knn": knn}, mode="hybrid"))


def test_non_string_ext_query_is_400(service: SearchService) -> None:
    with pytest.raises(BadRequestError):
        service.search(INDEX, _with(SHOES, mode="hybrid", query=5))


# -- known bugs ------------------------------------------------------------------------------


def test_hybrid_total_never_exceeds_the_index(tmp_path: Path, encoder: ConceptEncoder) -> None:
    backend = EmbeddedBackend(tmp_path / "small")
    _build(
        backend,
        "small",
        [
            {"id": "A", "title": "shoe"},
            {"id": "B", "title": "shoe"},
            {"id": "C", "title": "shoe zebra striped canvas slip on for summer"},
            {"id": "D", "title": "zebra"},
        ],
    )
    service = _service(backend, tmp_path, encoder)
    body = _with(
        {"query": {"match": {"title": "shoe"}}, "size": 2},
        mode="hybrid",
        window=2,
        query="zebra",
        explain=True,
    )
    got = service.search("small", body)
    # The scenario: lexical window {A, B} of 3 matches (C scores lower), vector leg {D, C};
    # RRF ties A and D at 1/61 and keeps the lexical one first.
    legs = {h["_id"]: set(h["_shoprank"]["legs"]) for h in got["hits"]["hits"]}
    assert legs == {"A": {"lexical"}, "D": {"vector"}}
    total = got["hits"]["total"]
    assert total["value"] <= 4, total


# -- the real encoder ------------------------------------------------------------------------

REAL_CATALOG = [
    ("r01", "Men's running shoes with cushioned sole", "Stride", "Sport > Footwear"),
    ("r02", "Stainless steel chef knife", "Kochwerk", "Home > Kitchen"),
    ("r03", "Espresso coffee machine", "Brewmaster", "Home > Kitchen"),
    ("r04", "Wireless noise cancelling headphones", "Sonic", "Electronics > Audio"),
    ("r05", "Portable bluetooth speaker", "Sonic", "Electronics > Audio"),
    ("r06", "LED desk lamp", "Lumo", "Home > Lighting"),
    ("r07", "Ceramic dinner plates set", "Kochwerk", "Home > Kitchen"),
    ("r08", "Cotton bath towel", "Softy", "Home > Bathroom"),
    ("r09", "Mechanical gaming keyboard", "Clicky", "Electronics > Computers"),
    ("r10", "Optical computer mouse", "Clicky", "Electronics > Computers"),
    ("r11", "27 inch 4K monitor", "Viewz", "Electronics > Computers"),
    ("r12", "Yoga mat non-slip", "Zenfit", "Sport > Fitness"),
    ("r13", "Adjustable dumbbell pair", "Zenfit", "Sport > Fitness"),
    ("r14", "Children's picture book about dinosaurs", "Readmore", "Books > Kids"),
    ("r15", "Thriller novel paperback", "Readmore", "Books > Fiction"),
    ("r16", "Garden hose 20 m", "Greeny", "Garden > Watering"),
    ("r17", "Electric lawn mower", "Greeny", "Garden > Tools"),
    ("r18", "Cordless power drill", "Bolt", "DIY > Tools"),
    ("r19", "Box of assorted screws", "Bolt", "DIY > Hardware"),
    ("r20", "Winter down jacket", "Northy", "Fashion > Coats"),
    ("r21", "Wool knitted scarf", "Northy", "Fashion > Accessories"),
    ("r22", "Leather wallet", "Hyde", "Fashion > Accessories"),
    ("r23", "Stainless steel water bottle", "Hydra", "Sport > Accessories"),
    ("r24", "Baby stroller", "Tiny", "Baby > Travel"),
    ("r25", "Dog food dry 10 kg", "Woof", "Pets > Food"),
    ("r26", "Cat scratching post", "Meow", "Pets > Toys"),
    ("r27", "Acoustic guitar", "Strum", "Music > Instruments"),
    ("r28", "Digital wrist watch", "Ticker", "Fashion > Watches"),
    ("r29", "Sunscreen lotion SPF 50", "Sunny", "Beauty > Skin care"),
    ("r30", "Electric toothbrush", "Brite", "Beauty > Dental"),
]


@pytest.mark.slow
def test_real_encoder_finds_a_synonym_lexical_search_cannot(tmp_path: Path) -> None:
    from shoprank.indexing.encoders import get_text_encoder
    from shoprank.indexing.loader import load_catalog

    path = tmp_path / "catalog.jsonl"
    path.write_text(
        "".join(
            json.dumps({"id": i, "title": t, "brand": b, "category": c}) + "\n"
            for i, t, b, c in REAL_CATALOG
        ),
        encoding="utf-8",
    )
    assert not any("sneaker" in t.lower() for _, t, _, _ in REAL_CATALOG)
    backend = EmbeddedBackend(tmp_path / "embedded")
    encoder = get_text_encoder(backend="numpy")
    report = load_catalog(
        path, index=INDEX, backend=backend, encoder=encoder, lock_dir=tmp_path / "locks"
    )
    assert report.documents == 30
    service = SearchService(
        backend=backend, settings=Settings(data_dir=tmp_path), encoder=lambda: encoder
    )
    query = {
        "query": {
            "multi_match": {"query": "sneakers", "fields": ["title", "brand.text", "category.text"]}
        },
        "size": 3,
    }
    assert _ids(service.search(INDEX, _with(query, mode="lexical"))) == []
    vector = _ids(service.search(INDEX, _with(query, mode="vector")))
    assert vector[0] == "r01", vector
    hybrid = _ids(service.search(INDEX, _with(query, mode="hybrid")))
    assert hybrid[0] == "r01", hybrid
