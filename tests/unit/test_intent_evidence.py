"""Safe rewrites: a hard filter only where the query's own top hits support it, on a real
embedded index (no trained model: brands and colours come from the index's values)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from shoprank.errors import BadRequestError
from shoprank.indexing.mapping import product_mapping
from shoprank.plugin.backends.embedded.backend import EmbeddedBackend
from shoprank.plugin.pipeline.request import Trace
from shoprank.plugin.search import SearchService, extract_filters
from shoprank.rerankers.intent.attributes import AttributeMatcher
from shoprank.rerankers.intent.evidence import check, evidence_bodies
from shoprank.rerankers.intent.model import Vocabulary
from shoprank.rerankers.intent.predictor import IntentPredictor
from shoprank.rerankers.intent.recovery import recover
from shoprank.rerankers.intent.rewriter import RewriteConfig, plan_rewrite, words_query
from shoprank.rerankers.intent.text import tokenize
from shoprank.settings import Settings


def _product(pid: str, title: str, brand: str, colour: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"id": pid, "title": title, "brand": brand, "price": 20.0}
    if colour is not None:
        out["colour"] = colour
    return out


PRODUCTS = [
    # Canon's ink carries no colour attribute; its lenses and straps do.
    _product("c1", "Canon PG-540 Black Ink Cartridge", "Canon"),
    _product("c2", "Canon PGI-580 Black Ink Tank", "Canon"),
    _product("c3", "Canon CL-541 Black Ink Cartridge XL", "Canon"),
    _product("c4", "Canon Black Ink Value Pack", "Canon"),
    _product("c5", "Canon EF 50mm lens", "Canon", "Black"),
    _product("c6", "Canon camera strap", "Canon", "Black"),
    _product("c7", "Canon lens cap", "Canon", "Black"),
    _product("h1", "HP 85A Toner Cartridge", "HP", "Black"),
    _product("h2", "HP 26X Toner", "HP", "Black"),
    _product("h3", "HP 45A Toner", "HP", "Black,Silver"),
    # Kovo's titles say silver where the colour attribute says White.
    _product("k1", "Kovo silver toner cloth", "Kovo", "White"),
    _product("k2", "Kovo silver toner brush", "Kovo", "White"),
    _product("k3", "Kovo silver toner kit", "Kovo", "White"),
    _product("s1", "Silver toner tray", "Acme", "Silver"),
    _product("s2", "Silver toner drawer", "Acme", "Silver"),
    _product("s3", "Silver toner box", "Acme", "Silver"),
]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> SearchService:
    root = tmp_path_factory.mktemp("intent-evidence")
    backend = EmbeddedBackend(root / "embedded")
    gen = backend.create_generation("shop", product_mapping(text_dims=0))
    backend.bulk_upsert(gen, [{"_id": p["id"], **p} for p in PRODUCTS])
    backend.commit(gen, ready=True)
    backend.swap_alias("shop", gen)
    return SearchService(
        backend=backend,
        settings=Settings(data_dir=root, intent_attributes=["brand", "colour"]),
    )


def _search(service: SearchService, text: str) -> dict[str, Any]:
    body = {
        "query": {"multi_match": {"query": text, "fields": ["title"]}},
        "size": 10,
        "ext": {"shoprank": {"mode": "full", "explain": True}},
    }
    return service.search("shop", body)


def test_a_filter_the_relevant_products_lack_becomes_a_boost(service: SearchService) -> None:
    response = _search(service, "canon ink black")
    rewrite = response["_shoprank"]["rewrite"]
    colour = next(a for a in rewrite if a.get("field") == "colour")
    assert colour["action"] == "boost"
    assert colour["reason"] == "evidence: 0/4 top hits with its words pass the filter"
    assert colour["weight"] == 0.0  # the field the ink lacks boosts nothing
    assert {"action": "filter", "field": "brand", "values": ["Canon"], "reason": "attribute"} in (
        rewrite
    )
    # "black" stays a word of the search, so the ink comes first, not the black lens.
    assert next(a for a in rewrite if a["action"] == "remove_words")["after"] == "ink black"
    top = [h["_id"] for h in response["hits"]["hits"][:4]]
    assert sorted(top) == ["c1", "c2", "c3", "c4"]
    assert response["_shoprank"]["relaxation"] is None


def test_a_filter_the_top_hits_agree_with_stays(service: SearchService) -> None:
    response = _search(service, "hp toner")
    rewrite = response["_shoprank"]["rewrite"]
    assert {"action": "filter", "field": "brand", "values": ["HP"], "reason": "attribute"} in (
        rewrite
    )
    evidence = next(a for a in rewrite if a["action"] == "evidence")
    assert evidence["with_words"] == {"brand": 3} and evidence["passing"] == {"brand": 3}
    assert {h["_source"]["brand"] for h in response["hits"]["hits"]} == {"HP"}


def test_filters_that_together_drop_the_top_hits_relax_one_at_a_time(
    service: SearchService,
) -> None:
    # Each filter alone keeps half or more of the hits with its words; together they keep
    # none of the hits that say both "kovo" and "silver": the weaker one (colour) relaxes.
    response = _search(service, "kovo silver toner")
    explained = response["_shoprank"]
    assert explained["relaxation"] == "drop_attribute_filter:colour"
    assert any("relaxed (drop_attribute_filter:colour)" in n for n in explained["notes"])
    filters = [a for a in explained["rewrite"] if a["action"] == "filter"]
    assert [a["field"] for a in filters] == ["brand"]
    assert {h["_id"] for h in response["hits"]["hits"][:3]} == {"k1", "k2", "k3"}


def test_a_list_value_is_found_by_each_of_its_parts() -> None:
    matcher = AttributeMatcher({"colour": ["Black", "Black,Silver", "Silver"]})
    found = matcher.match(tokenize("silver toner"))
    assert {m.value for m in found} == {"Silver", "Black,Silver"}
    assert {m.value for m in matcher.match(tokenize("black toner"))} == {"Black", "Black,Silver"}
    assert {m.value for m in matcher.match(tokenize("black silver"))} == {"Black,Silver"}


def test_the_evidence_searches_are_the_query_with_the_words_required() -> None:
    query = {"bool": {"must": {"match": {"title": "hp toner"}}, "filter": {"term": {"x": 1}}}}
    assert words_query(query, "hp") == {
        "bool": {
            "must": {"match": {"title": {"query": "hp", "operator": "and"}}},
            "filter": {"term": {"x": 1}},
        }
    }
    assert words_query({"term": {"brand": "HP"}}, "hp") is None
    predictor = IntentPredictor(Vocabulary(attributes={"brand": ["HP"]}))
    body = {"query": {"match": {"title": "hp toner under 40"}}}
    plan = plan_rewrite(body, predictor.predict("hp toner under 40"), RewriteConfig())
    (found, kept) = evidence_bodies(plan, plan.constraints)
    assert found["size"] == 20 and found["_source"] is False
    # The baseline: every word searching, under the explicit price, no brand filter.
    baseline = plan.baseline()["query"]
    assert {"range": {"price": {"lte": 40.0}}} in extract_filters(baseline)
    assert {"terms": {"brand": ["HP"]}} not in extract_filters(baseline)
    assert baseline["bool"]["must"] == [{"match": {"title": "hp toner"}}]
    assert found["query"]["bool"]["must"] == [baseline]
    assert kept["query"] == {
        "bool": {"must": [found["query"]], "filter": [{"terms": {"brand": ["HP"]}}]}
    }


def test_a_failed_check_keeps_the_rewrite() -> None:
    predictor = IntentPredictor(Vocabulary(attributes={"brand": ["HP"]}))
    body = {"query": {"match": {"title": "hp toner"}}}
    plan = plan_rewrite(body, predictor.predict("hp toner"), RewriteConfig())
    checked = check(plan, lambda bodies: [BadRequestError("down")] * len(bodies))
    assert checked.body == plan.body
    assert checked.checked and checked.relaxed == () and not checked.starved


def test_without_hits_to_judge_by_the_filter_stays() -> None:
    predictor = IntentPredictor(Vocabulary(attributes={"brand": ["HP"]}))
    body = {"query": {"match": {"title": "hp toner"}}}
    plan = plan_rewrite(body, predictor.predict("hp toner"), RewriteConfig())
    empty = {"hits": {"hits": []}}
    checked = check(plan, lambda bodies: [empty] * len(bodies))
    assert checked.body == plan.body
    assert [c.key for c in checked.constraints] == ["brand"]


def test_softening_keeps_the_actions_a_caller_added_first() -> None:
    # Query understanding prepends its own actions (a spelling correction) to the plan.
    predictor = IntentPredictor(Vocabulary(attributes={"brand": ["HP"], "colour": ["Black"]}))
    body = {"query": {"match": {"title": "hp black toner"}}}
    plan = plan_rewrite(body, predictor.predict("hp black toner"), RewriteConfig())
    spelled = {"action": "spelling", "before": "hp blakc toner", "after": "hp black toner"}
    plan = replace(plan, actions=(spelled, *plan.actions))
    soft = plan.soften({"colour": "evidence: 0/5"}, kept={"colour": 0.0})
    assert soft.actions[0] == spelled
    assert {"terms": {"brand": ["HP"]}} in extract_filters(soft.body["query"])
    assert {"terms": {"colour": ["Black"]}} not in extract_filters(soft.body["query"])
    inner = soft.body["query"]["bool"]["must"][0]
    assert inner == {"match": {"title": "black toner"}}


def test_a_rewrite_that_matches_nothing_relaxes_once_even_with_hits() -> None:
    # The vector leg fills the page (10 hits ranked) but the rewritten query matches no
    # product: one constraint relaxes, never the explicit price.
    predictor = IntentPredictor(Vocabulary(attributes={"brand": ["Brother"], "colour": ["Cyan"]}))
    body = {"query": {"match": {"title": "brother cyan toner under 40"}}}
    plan = plan_rewrite(body, predictor.predict("brother cyan toner under 40"), RewriteConfig())
    plan = replace(plan, checked=True, starved=True)
    searched: list[dict[str, Any]] = []

    def search(body: dict[str, Any]) -> int:
        searched.append(body)
        return 10

    def counts(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # Dropping the colour brings back 3 matches, dropping the brand none.
        brand = {"terms": {"brand": ["Brother"]}}
        found = [3 if brand in extract_filters(b["query"]) else 0 for b in bodies]
        return [{"hits": {"total": {"value": n}}} for n in found]

    trace = Trace()
    recover(plan, 10, search, counts, trace=trace, min_results=1)
    assert trace.relaxation == "drop_attribute_filter:colour"
    (relaxed,) = searched
    assert {"terms": {"brand": ["Brother"]}} in extract_filters(relaxed["query"])
    assert {"range": {"price": {"lte": 40.0}}} in extract_filters(relaxed["query"])
    assert any("its words matched nothing" in n for n in trace.notes)
