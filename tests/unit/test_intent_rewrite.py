"""The rewriter on ES bodies, and the whole loop (predict → rewrite → retrieve → recover)
through `SearchService` on a real embedded index, without a trained model."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from shoprank.indexing.mapping import product_mapping
from shoprank.plugin.backends.embedded.backend import EmbeddedBackend
from shoprank.plugin.search import SearchService, extract_filters
from shoprank.rerankers.intent.model import Vocabulary
from shoprank.rerankers.intent.predictor import IntentPredictor
from shoprank.rerankers.intent.rewriter import RELAXATIONS, RewriteConfig, plan_rewrite, rewrite
from shoprank.rerankers.protocol import Candidate, RerankContext
from shoprank.settings import Settings

VOCAB = Vocabulary(attributes={"brand": ["HP", "Brother"], "colour": ["Black", "Cyan"]})
PREDICTOR = IntentPredictor(VOCAB)
CONFIG = RewriteConfig()


def _body(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "query": {"multi_match": {"query": text, "fields": ["title^3", "description"]}},
        **extra,
    }


def test_client_options_survive_the_rewrite() -> None:
    body = {
        "query": {
            "bool": {
                "must": {"match": {"title": "hp toner under 40"}},
                "filter": [{"term": {"in_stock": True}}],
                "must_not": [{"term": {"brand": "Refurb"}}],
            }
        },
        "aggs": {"brands": {"terms": {"field": "brand"}}},
        "sort": [{"price": "asc"}],
        "from": 10,
        "size": 5,
        "post_filter": {"term": {"colour": "Black"}},
        "_source": ["title"],
    }
    before = copy.deepcopy(body)
    new, actions = rewrite(body, PREDICTOR.predict("hp toner under 40"), CONFIG)
    assert body == before  # the input is not mutated
    for key in ("aggs", "sort", "from", "size", "post_filter", "_source"):
        assert new[key] == body[key]
    filters = extract_filters(new["query"])
    assert {"term": {"in_stock": True}} in filters
    assert {"bool": {"must_not": [{"term": {"brand": "Refurb"}}]}} in filters
    assert {"range": {"price": {"lte": 40.0}}} in filters
    assert {"terms": {"brand": ["HP"]}} in filters
    inner = new["query"]["bool"]["must"][0]["bool"]
    assert inner["must"] == {"match": {"title": "toner"}}
    assert {a["action"] for a in actions} == {"filter", "remove_words"}


def test_query_of_only_filter_words_becomes_match_all() -> None:
    new, _ = rewrite(_body("HP under 40"), PREDICTOR.predict("HP under 40"), CONFIG)
    assert new["query"]["bool"]["must"] == [{"match_all": {}}]


def test_nothing_understood_means_body_unchanged() -> None:
    body = _body("gift for dad")
    new, actions = rewrite(body, PREDICTOR.predict("gift for dad"), CONFIG)
    assert new == body
    assert actions == []


def test_sku_is_an_exact_term_lookup() -> None:
    new, actions = rewrite(_body("C4872A"), PREDICTOR.predict("C4872A"), CONFIG)
    should = new["query"]["bool"]["should"]
    assert {"term": {"id": {"value": "C4872A", "boost": CONFIG.sku_boost}}} in should
    assert actions[-1]["action"] == "sku_lookup"


def test_categories_boost_by_probability_and_filter_when_confident() -> None:
    understanding = PREDICTOR.predict("toner")
    understanding.intent.categories = [
        ("Office", 0.97),
        ("Office > Toner", 0.95),
        ("Office > Ink", 0.02),
    ]
    new, actions = rewrite(_body("toner"), understanding, CONFIG)
    assert {"term": {"category_levels": "Office > Toner"}} in new["query"]["bool"]["filter"]
    boosts = {a["value"]: a["weight"] for a in actions if a["action"] == "boost"}
    assert boosts["Office"] > boosts["Office > Toner"]
    assert "Office > Ink" not in boosts  # below the boost threshold
    relaxed, _ = rewrite(_body("toner"), understanding, CONFIG, relax=1)
    assert "filter" not in relaxed["query"]["bool"]


def test_relaxation_levels_in_order() -> None:
    understanding = PREDICTOR.predict("black hp toner under 40")
    understanding.intent.categories = [("Office > Toner", 0.99)]
    body = _body("black hp toner under 40")
    levels = [rewrite(body, understanding, CONFIG, relax=i)[0] for i in range(4)]
    filters = [extract_filters(b["query"]) for b in levels]
    assert {"term": {"category_levels": "Office > Toner"}} in filters[0]
    assert {"term": {"category_levels": "Office > Toner"}} not in filters[1]
    assert {"terms": {"brand": ["HP"]}} in filters[1]
    assert not any("terms" in f for f in filters[2])  # attribute filters gone …
    assert {"range": {"price": {"lte": 40.0}}} in filters[2]  # … the explicit price stays
    assert levels[3] == body
    assert RELAXATIONS == ("drop_category_filter", "drop_attribute_filters", "original_query")


def test_a_rewrite_plan_leaves_the_body_and_lists_its_relaxations() -> None:
    understanding = PREDICTOR.predict("black hp toner under 40")
    understanding.intent.categories = [("Office > Toner", 0.99)]
    body = _body("black hp toner under 40")
    before = copy.deepcopy(body)
    plan = plan_rewrite(body, understanding, CONFIG)
    assert body == before
    assert (plan.body, list(plan.actions)) == rewrite(body, understanding, CONFIG)
    assert plan.intent is understanding.intent
    # One constraint at a time, the least confident first; the explicit price stays until
    # the client's own body.
    steps = list(plan.relaxations())
    assert [name for name, _ in steps] == [
        "drop_category_filter",
        "drop_attribute_filter:colour",
        "drop_attribute_filter:brand",
        "original_query",
    ]
    filters = [extract_filters(b["query"]) for _, b in steps[:3]]
    category = {"term": {"category_levels": "Office > Toner"}}
    assert category not in filters[0] and {"terms": {"colour": ["Black"]}} in filters[0]
    assert {"terms": {"colour": ["Black"]}} not in filters[1]
    assert {"terms": {"brand": ["HP"]}} in filters[1]
    assert not any("terms" in f for f in filters[2])
    assert all({"range": {"price": {"lte": 40.0}}} in f for f in filters)
    assert steps[-1][1] == body


# -- through the search pipeline ---------------------------------------------------------------

PRODUCTS = [
    {
        "id": "t1",
        "title": "HP 85A Black Toner Cartridge",
        "brand": "HP",
        "price": 35.0,
        "category": "Office > Printers > Toner",
        "colour": "Black",
    },
    {
        "id": "t2",
        "title": "HP 26X High Yield Toner",
        "brand": "HP",
        "price": 89.0,
        "category": "Office > Printers > Toner",
        "colour": "Black",
    },
    {
        "id": "t3",
        "title": "Brother TN-2420 Toner Cartridge",
        "brand": "Brother",
        "price": 29.0,
        "category": "Office > Printers > Toner",
        "colour": "Black",
    },
    {
        "id": "t4",
        "title": "HP 305 Ink Cartridge",
        "brand": "HP",
        "price": 15.0,
        "category": "Office > Printers > Ink",
        "colour": "Cyan",
    },
    {
        "id": "t5",
        "title": "HP EliteBook laptop",
        "brand": "HP",
        "price": 900.0,
        "category": "Computers > Laptops",
        "colour": "Silver",
    },
    {
        "id": "t6",
        "title": "Toner cleaning cloth",
        "brand": "Kovo",
        "price": 5.0,
        "category": "Office > Supplies",
        "colour": "White",
    },
    {
        "id": "t7",
        "title": "Brother laser printer toner saver",
        "brand": "Brother",
        "price": 39.0,
        "category": "Office > Printers > Toner",
        "colour": "Black",
    },
]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> SearchService:
    root = tmp_path_factory.mktemp("intent-search")
    backend = EmbeddedBackend(root / "embedded")
    gen = backend.create_generation("shop", product_mapping(text_dims=0))
    backend.bulk_upsert(gen, [{"_id": p["id"], **p} for p in PRODUCTS])
    backend.commit(gen, ready=True)
    backend.swap_alias("shop", gen)
    return SearchService(
        backend=backend,
        settings=Settings(data_dir=root, intent_attributes=["brand", "colour"]),
    )


def _search(service: SearchService, text: str, **ext: Any) -> dict[str, Any]:
    body = {
        "query": {"multi_match": {"query": text, "fields": ["title^3", "brand.text"]}},
        "size": 10,
        "ext": {"shoprank": {"mode": "full", "explain": True, **ext}},
    }
    return service.search("shop", body)


def test_full_mode_understands_hp_toner_under_40(service: SearchService) -> None:
    response = _search(service, "hp toner under 40")
    hits = response["hits"]["hits"]
    assert hits, response
    assert all(h["_source"]["price"] <= 40 for h in hits)
    assert hits[0]["_id"] == "t1"  # the HP toner
    explained = response["_shoprank"]
    assert explained["intent"]["attributes"] == {"brand": ["HP"]}
    assert explained["intent"]["price"] == {"lte": 40.0}
    assert any(a["action"] == "filter" for a in explained["rewrite"])
    assert explained["relaxation"] is None
    assert any("model missing" in n for n in explained["notes"])


def test_lexical_mode_is_not_rewritten(service: SearchService) -> None:
    response = _search(service, "hp toner under 40", mode="lexical")
    assert response["_shoprank"]["intent"] is None
    assert response["_shoprank"]["rewrite"] == []


def test_empty_result_recovers_and_says_how(service: SearchService) -> None:
    # No Brother product is Cyan: the attribute filters would empty the page. Relaxation
    # drops one constraint at a time, first the one no product text mentions.
    response = _search(service, "brother cyan toner")
    assert response["hits"]["hits"], "recovery must not strand the shopper"
    assert response["_shoprank"]["relaxation"] == "drop_attribute_filter:colour"
    assert {h["_source"]["brand"] for h in response["hits"]["hits"]} == {"Brother"}
    # The price stays a hard constraint through the attribute relaxation.
    response = _search(service, "brother toner under 1")
    assert response["hits"]["hits"]
    assert response["_shoprank"]["relaxation"] == "drop_attribute_filter:brand, original_query"


def test_client_filters_are_kept(service: SearchService) -> None:
    body = {
        "query": {
            "bool": {
                "must": {"match": {"title": "toner under 100"}},
                "filter": {"term": {"brand": "Brother"}},
            }
        },
        "aggs": {"brands": {"terms": {"field": "brand"}}},
        "ext": {"shoprank": {"mode": "full"}},
    }
    response = service.search("shop", body)
    assert {h["_source"]["brand"] for h in response["hits"]["hits"]} == {"Brother"}
    assert [b["key"] for b in response["aggregations"]["brands"]["buckets"]] == ["Brother"]


def test_rerankers_receive_the_intent(tmp_path: Path, service: SearchService) -> None:
    seen: list[Any] = []

    class Spy:
        name = "spy"

        def rerank(self, context: RerankContext, candidates: list[Candidate]) -> list[Candidate]:
            seen.append(context.intent)
            return candidates

    spied = SearchService(backend=service.backend, settings=service.settings, rerankers=[Spy()])
    spied.search(
        "shop", {"query": {"match": {"title": "hp toner"}}, "ext": {"shoprank": {"mode": "full"}}}
    )
    assert seen and seen[0].attributes == {"brand": ["HP"]}


def test_a_corrupt_model_degrades_instead_of_failing(
    tmp_path: Path, service: SearchService
) -> None:
    model = tmp_path / "models" / "intent"
    model.mkdir(parents=True)
    (model / "head.onnx").write_bytes(b"not an onnx model")
    (model / "labels.json").write_text('["A", "B"]')
    (model / "vocab.json").write_text('{"attributes": {}, "price_bands": {}}')
    (model / "metadata.json").write_text('{"model_version": "broken"}')
    broken = SearchService(
        backend=service.backend,
        settings=Settings(data_dir=tmp_path, intent_attributes=["brand", "colour"]),
    )
    response = _search(broken, "hp toner under 40")
    assert all(h["_source"]["price"] <= 40 for h in response["hits"]["hits"])
    notes = response["_shoprank"]["notes"]
    assert any("unreadable" in n and "train intent" in n for n in notes), notes
