"""The serving modes keep Elasticsearch's semantics for what a frontend shows: totals and
facets of the client's own query, highlights on the shopper's words, deep pages past the
fused window, order-only constructs run lexical, and every body key reaches the backend.

A real embedded index and a real `SearchService` with a deterministic encoder (so the
hybrid and full modes really fuse a vector leg); every expected count is derived from the
catalog rows below, not from the code under test.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from shoprank.indexing.catalog import embedding_text
from shoprank.indexing.mapping import TEXT_VECTOR_FIELD, product_mapping
from shoprank.plugin.backends.embedded.backend import EmbeddedBackend
from shoprank.plugin.search import SearchService, extract_query_text
from shoprank.settings import Settings
from tests.unit.test_search_service import ConceptEncoder

INDEX = "shop"
FUSED = ("hybrid", "full")

# id, title, brand, price
ROWS = [
    ("t1", "HP 85A Black Toner Cartridge", "HP", 35.0),
    ("t2", "HP 26X High Yield Toner", "HP", 89.0),
    ("t3", "Brother TN-2420 Toner Cartridge", "Brother", 29.0),
    ("t4", "HP 305 Ink Cartridge", "HP", 15.0),
    ("t5", "HP EliteBook laptop", "HP", 900.0),
    ("t6", "Toner cleaning cloth", "Kovo", 5.0),
    ("t7", "Brother laser printer toner saver", "Brother", 39.0),
    ("t8", "Canon 052 Toner", "Canon", 60.0),
    ("t9", "Canon PIXMA printer", "Canon", 120.0),
    ("t10", "Samsung MLT toner", "Samsung", 45.0),
    ("m1", "Espresso coffee mug", "Brewmaster", 9.0),
    ("m2", "Wireless headphones", "Sonic", 89.0),
] + [(f"g{i}", f"Refill toner kit {chr(97 + i)}", "Refilla", 10.0 + i) for i in range(12)]
PRODUCTS = [{"id": i, "title": t, "brand": b, "price": p} for i, t, b, p in ROWS]
BRAND = {p["id"]: p["brand"] for p in PRODUCTS}
ROW = {r[0]: r for r in ROWS}


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def matching(*query_words: str) -> set[str]:
    """Ids whose title has any of the words (an OR `match` on `title`), by hand."""
    return {p["id"] for p in PRODUCTS if words(p["title"]) & set(query_words)}


def brand_counts(ids: set[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for i in ids:
        counts[BRAND[i]] = counts.get(BRAND[i], 0) + 1
    return counts


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> EmbeddedBackend:
    be = EmbeddedBackend(tmp_path_factory.mktemp("es-semantics"))
    enc = ConceptEncoder()
    gen = be.create_generation(INDEX, product_mapping(text_dims=enc.dims))
    vectors = enc.encode([embedding_text(p) for p in PRODUCTS])
    be.bulk_upsert(gen, [{"_id": p["id"], **p} for p in PRODUCTS], {TEXT_VECTOR_FIELD: vectors})
    be.commit(gen, ready=True)
    be.swap_alias(INDEX, gen)
    return be


@pytest.fixture
def service(backend: EmbeddedBackend, tmp_path: Path) -> SearchService:
    enc = ConceptEncoder()
    return SearchService(
        backend=backend,
        settings=Settings(data_dir=tmp_path, intent_attributes=["brand"]),
        encoder=lambda: enc,
    )


def run(service: SearchService, body: dict[str, Any], mode: str, **ext: Any) -> dict[str, Any]:
    return service.search(INDEX, {**body, "ext": {"shoprank": {"mode": mode, **ext}}})


def ids(response: dict[str, Any]) -> list[str]:
    return [h["_id"] for h in response["hits"]["hits"]]


def title_query(text: str) -> dict[str, Any]:
    return {"query": {"match": {"title": text}}}


# -- totals ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["lexical", *FUSED])
def test_total_is_the_count_of_the_client_query(service: SearchService, mode: str) -> None:
    body = {**title_query("hp toner under 40"), "size": 5}
    got = run(service, body, mode, explain=True)
    expected = len(matching("hp", "toner", "under", "40"))
    assert got["hits"]["total"] == {"value": expected, "relation": "eq"}
    if mode == "full":  # the rewrite (brand HP, price ≤ 40) narrowed the ranked hits only
        assert got["_shoprank"]["rewrite"], got["_shoprank"]
        assert {BRAND[i] for i in ids(got)} == {"HP"}


@pytest.mark.parametrize("mode", FUSED)
def test_a_query_nothing_matches_has_total_zero(service: SearchService, mode: str) -> None:
    got = run(service, title_query("sneakers"), mode)
    assert matching("sneakers") == set()
    assert got["hits"]["total"] == {"value": 0, "relation": "eq"}
    assert got["hits"]["hits"], "the vector leg still ranks semantic hits"


@pytest.mark.parametrize("mode", FUSED)
def test_post_filter_narrows_the_total_not_the_facets(service: SearchService, mode: str) -> None:
    aggs = {"brands": {"terms": {"field": "brand"}}}
    body = {**title_query("toner"), "aggs": aggs, "post_filter": {"term": {"brand": "Brother"}}}
    got = run(service, body, mode)
    toner = matching("toner")
    assert got["hits"]["total"]["value"] == brand_counts(toner)["Brother"]
    facets = {b["key"]: b["doc_count"] for b in got["aggregations"]["brands"]["buckets"]}
    assert facets == brand_counts(toner)
    assert {BRAND[i] for i in ids(got)} == {"Brother"}


# -- facets ----------------------------------------------------------------------------------


def test_full_mode_brand_facet_is_the_lexical_facet(service: SearchService) -> None:
    aggs = {"brands": {"terms": {"field": "brand"}}}
    body = {**title_query("hp toner"), "aggs": aggs}
    full = run(service, body, "full", explain=True)
    lexical = run(service, body, "lexical")
    assert any(a["action"] == "filter" for a in full["_shoprank"]["rewrite"])
    assert {BRAND[i] for i in ids(full)} == {"HP"}  # the intent filter ranks HP ...
    facets = {b["key"]: b["doc_count"] for b in full["aggregations"]["brands"]["buckets"]}
    assert facets == brand_counts(matching("hp", "toner"))  # ... the facet keeps every brand
    assert full["aggregations"] == lexical["aggregations"]
    assert full["hits"]["total"] == lexical["hits"]["total"]


def test_full_mode_with_a_sort_keeps_the_client_facets(service: SearchService) -> None:
    aggs = {"brands": {"terms": {"field": "brand"}}}
    body = {**title_query("hp toner"), "aggs": aggs, "sort": [{"price": "asc"}]}
    full = run(service, body, "full", explain=True)
    assert full["_shoprank"]["mode_applied"] == "lexical"
    assert {BRAND[i] for i in ids(full)} == {"HP"}
    facets = {b["key"]: b["doc_count"] for b in full["aggregations"]["brands"]["buckets"]}
    assert facets == brand_counts(matching("hp", "toner"))
    assert full["hits"]["total"]["value"] == len(matching("hp", "toner"))


# -- deep pages ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", FUSED)
def test_pages_past_the_fused_window_continue_without_repeats(
    service: SearchService, mode: str
) -> None:
    toner = matching("toner")
    assert len(toner) > 3 * 5  # the window below is 5: pages cross it
    seen: list[str] = []
    for page in range(20):
        got = run(service, {**title_query("toner"), "from": page * 4, "size": 4}, mode, window=5)
        if not got["hits"]["hits"]:
            break
        seen += ids(got)
    assert len(seen) == len(set(seen)), "a hit repeated across pages"
    assert toner <= set(seen), "a lexical match was never shown"
    # One request of the same depth gives the same order as the pages.
    whole = run(service, {**title_query("toner"), "size": len(seen)}, mode, window=5)
    assert ids(whole) == seen


# -- highlight -------------------------------------------------------------------------------

HIGHLIGHT = {"highlight": {"fields": {"title": {}}}}


def highlighted(response: dict[str, Any]) -> dict[str, set[str]]:
    """id → the words marked in its title fragments."""
    out = {}
    for hit in response["hits"]["hits"]:
        fragments = hit.get("highlight", {}).get("title", [])
        out[hit["_id"]] = {w.lower() for f in fragments for w in re.findall(r"<em>(.*?)</em>", f)}
    return out


@pytest.mark.parametrize("mode", ["lexical", *FUSED])
def test_highlight_marks_the_shoppers_words_in_every_mode(
    service: SearchService, mode: str
) -> None:
    body = {**title_query("hp toner under 40"), **HIGHLIGHT, "size": 10}
    got = run(service, body, mode, explain=True)
    marks = highlighted(got)
    assert marks, got
    for hit in got["hits"]["hits"]:
        expected = words(hit["_source"]["title"]) & {"hp", "toner"}
        assert marks[hit["_id"]] == expected, hit
    if mode == "full":
        # The rewrite took "hp" out of the match text (it became a brand filter): the
        # highlight still marks it, because it comes from the shopper's own query.
        removed = [a for a in got["_shoprank"]["rewrite"] if a["action"] == "remove_words"]
        assert removed and "hp" not in removed[0]["after"].lower()
        assert marks["t1"] == {"hp", "toner"}


def test_highlight_after_a_rewrite_in_lexical_order(service: SearchService) -> None:
    body = {**title_query("hp toner"), **HIGHLIGHT, "sort": [{"price": "asc"}]}
    got = run(service, body, "full", explain=True)
    assert got["_shoprank"]["rewrite"] and got["_shoprank"]["mode_applied"] == "lexical"
    marks = highlighted(got)
    assert marks["t1"] == {"hp", "toner"}


# -- order-only constructs -------------------------------------------------------------------


def test_scroll_in_full_mode_runs_the_client_query_lexical(service: SearchService) -> None:
    body = {**title_query("hp toner"), "size": 50, "ext": {"shoprank": {"explain": True}}}
    got = service.search(INDEX, body, scroll="1m")
    assert got["_shoprank"]["mode"] == "full" and got["_shoprank"]["mode_applied"] == "lexical"
    assert any("scroll" in n for n in got["_shoprank"]["notes"])
    assert got["_shoprank"]["rewrite"] == []  # a scan sees every match of the query
    assert set(ids(got)) == matching("hp", "toner")


def test_search_after_in_full_mode_pages_the_lexical_order(service: SearchService) -> None:
    sort = [{"price": "asc"}]  # the toner prices are all different: one order
    body = {**title_query("toner"), "size": 4, "sort": sort}
    first = run(service, body, "full", explain=True)
    assert first["_shoprank"]["mode_applied"] == "lexical"
    after = first["hits"]["hits"][-1]["sort"]
    second = run(service, {**body, "search_after": after}, "full", explain=True)
    assert any("search_after" in n for n in second["_shoprank"]["notes"])
    by_price = sorted(matching("toner"), key=lambda i: ROW[i][3])
    assert ids(first) + ids(second) == by_price[:8]


@pytest.mark.parametrize("mode", FUSED)
def test_collapse_in_fused_modes_is_the_lexical_collapse(service: SearchService, mode: str) -> None:
    body = {**title_query("toner"), "collapse": {"field": "brand"}}
    got = run(service, body, mode, explain=True)
    assert got["_shoprank"]["mode_applied"] == "lexical"
    assert any("collapse" in n for n in got["_shoprank"]["notes"])
    lexical = run(service, body, "lexical")
    assert ids(got) == ids(lexical)
    assert (
        len({BRAND[i] for i in ids(got)}) == len(ids(got)) == len(brand_counts(matching("toner")))
    )


@pytest.mark.parametrize("mode", FUSED)
def test_suggest_answers_in_fused_modes(service: SearchService, mode: str) -> None:
    suggest = {"fix": {"text": "tonr", "term": {"field": "title"}}}
    body = {**title_query("hp toner"), "suggest": suggest}
    got = run(service, body, mode)
    assert got["suggest"] == run(service, body, "lexical")["suggest"]
    options = [o["text"] for o in got["suggest"]["fix"][0]["options"]]
    assert "toner" in options


# -- the shopper's words in every text query -------------------------------------------------


def searchkit(text: str) -> dict[str, Any]:
    """The body stock Searchkit sends for a query (captured from the real library)."""
    fields = ["title^3", "description", "brand.text"]
    return {
        "aggs": {"brand": {"terms": {"field": "brand", "size": 10}}},
        "query": {
            "bool": {
                "filter": [],
                "must": {
                    "bool": {
                        "should": [
                            {
                                "bool": {
                                    "should": [
                                        {
                                            "multi_match": {
                                                "query": text,
                                                "fields": fields,
                                                "fuzziness": "AUTO:4,8",
                                            }
                                        },
                                        {
                                            "multi_match": {
                                                "query": text,
                                                "fields": [
                                                    "title^1.5",
                                                    "description",
                                                    "brand.text",
                                                ],
                                                "type": "bool_prefix",
                                            }
                                        },
                                    ]
                                }
                            },
                            {"multi_match": {"query": text, "type": "phrase", "fields": fields}},
                        ]
                    }
                },
            }
        },
        "size": 20,
        "from": 0,
        "_source": {"includes": ["title", "description", "brand", "price"]},
        "highlight": {
            "pre_tags": ["<em>"],
            "post_tags": ["</em>"],
            "fields": {"title": {"number_of_fragments": 0}},
        },
        "sort": {"_score": "desc"},
    }


SEARCHKIT = searchkit("hp ton")


@pytest.mark.parametrize(
    ("query", "text"),
    [
        (SEARCHKIT["query"], "hp ton"),
        ({"bool": {"must": {"match_all": {}}, "filter": []}}, None),
        ({"match_bool_prefix": {"title": "hp ton"}}, "hp ton"),
        ({"match_phrase_prefix": {"title": {"query": "black ton"}}}, "black ton"),
        ({"combined_fields": {"query": "red shoes", "fields": ["title"]}}, "red shoes"),
        (
            {"query_string": {"query": 'title:"red shoes" AND (acme OR nike) -kids NOT x'}},
            "red shoes acme nike",
        ),
        ({"query_string": {"query": "lap* price:[10 TO 20] boots~2 price:>5"}}, "lap boots"),
        (
            {"simple_query_string": {"query": 'red +shoes | -kids "big boots"~2'}},
            "red shoes big boots",
        ),
        ({"prefix": {"title": {"value": "lap"}}}, "lap"),
        ({"wildcard": {"title": {"value": "lapt*"}}}, "lapt"),
        ({"fuzzy": {"title": "laptpo"}}, "laptpo"),
        (
            {"function_score": {"query": {"match": {"title": "mug"}}, "functions": []}},
            "mug",
        ),
        (
            {"bool": {"must": {"multi_match": {"query": "a"}}, "should": {"match": {"t": "a"}}}},
            "a",
        ),
    ],
)
def test_the_shoppers_words_of_every_text_query(query: Any, text: str | None) -> None:
    assert extract_query_text(query) == text


def test_a_searchkit_query_gets_full_mode(service: SearchService) -> None:
    body = searchkit("hp toner")
    got = run(service, body, "full", explain=True)
    explained = got["_shoprank"]
    assert explained["mode_applied"] == "full", explained["notes"]
    assert explained["query_text"] == "hp toner"
    lexical = run(service, body, "lexical")
    assert got["hits"]["total"] == lexical["hits"]["total"]
    assert got["aggregations"] == lexical["aggregations"]
    assert {BRAND[i] for i in ids(got)} == {"HP"}  # the intent's brand filter ranks HP
    assert highlighted(got)["t1"] == {"hp", "toner"}  # "hp" left the rewritten text


def test_query_string_survives_the_rewrite(service: SearchService) -> None:
    body = {"query": {"query_string": {"query": "hp AND toner", "default_field": "title"}}}
    got = run(service, body, "full", explain=True)
    assert got["_shoprank"]["intent"]["attributes"] == {"brand": ["HP"]}
    hp_toner = {i for i in matching("toner") if "hp" in words(ROW[i][1])}
    assert set(ids(got)) >= hp_toner
    assert got["hits"]["total"]["value"] == len(hp_toner)


# -- every body key reaches the backend ------------------------------------------------------


def test_every_client_key_reaches_a_backend_search(
    service: SearchService, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[dict[str, Any]] = []
    real_search, real_msearch = service.backend.search, service.backend.msearch

    def search(index: str, body: dict[str, Any]) -> dict[str, Any]:
        sent.append(body)
        return real_search(index, body)

    def msearch(index: str, bodies: list[dict[str, Any]]) -> Any:
        sent.extend(bodies)
        return real_msearch(index, bodies)

    monkeypatch.setattr(service.backend, "search", search)
    monkeypatch.setattr(service.backend, "msearch", msearch)
    body = {
        **title_query("hp toner"),
        "aggs": {"brands": {"terms": {"field": "brand"}}},
        "post_filter": {"range": {"price": {"lte": 100}}},
        "timeout": "5s",
        "track_scores": True,
        "stored_fields": ["_source"],
        "version": True,
    }
    for mode in FUSED:
        sent.clear()
        run(service, body, mode)
        keys = {k for b in sent for k in b}
        assert set(body) <= keys, sorted(set(body) - keys)


# -- the intent rewrite keeps every client query -------------------------------------------


def test_the_rewrite_edits_prefix_queries_and_keeps_query_string_whole() -> None:
    from shoprank.rerankers.intent.model import Vocabulary
    from shoprank.rerankers.intent.predictor import IntentPredictor
    from shoprank.rerankers.intent.rewriter import RewriteConfig, rewrite

    predictor = IntentPredictor(Vocabulary(attributes={"brand": ["HP", "Brother"]}))
    understanding = predictor.predict("hp toner under 40")
    bool_prefix = {"multi_match": {"query": "hp toner under 40", "type": "bool_prefix"}}
    match_prefix = {"match_bool_prefix": {"title": "hp toner under 40"}}
    query_string = {"query_string": {"query": "hp AND toner under 40"}}
    for query, kept in ((bool_prefix, False), (match_prefix, False), (query_string, True)):
        new, actions = rewrite({"query": query}, understanding, RewriteConfig())
        outer = new["query"]["bool"]
        assert {"terms": {"brand": ["HP"]}} in outer["filter"]
        (inner,) = outer["must"]
        if kept:  # the query_string syntax is never cut: the client's query, whole
            assert inner == query
        else:
            assert extract_query_text(inner) == "toner"
            assert any(a["action"] == "remove_words" for a in actions)


def test_size_zero_in_full_mode_counts_the_client_query(service: SearchService) -> None:
    aggs = {"brands": {"terms": {"field": "brand"}}}
    got = run(service, {**title_query("hp toner"), "size": 0, "aggs": aggs}, "full", explain=True)
    assert got["_shoprank"]["mode_applied"] == "lexical" and got["_shoprank"]["rewrite"] == []
    assert got["hits"]["hits"] == []
    assert got["hits"]["total"]["value"] == len(matching("hp", "toner"))
    facets = {b["key"]: b["doc_count"] for b in got["aggregations"]["brands"]["buckets"]}
    assert facets == brand_counts(matching("hp", "toner"))


# -- through the HTTP app, in the default mode -------------------------------------------


def test_a_frontend_page_over_http_in_the_default_mode(
    tmp_path: Path, corpus_backend: EmbeddedBackend
) -> None:
    from tests.unit._apps import make_client
    from tests.unit.conftest import CORPUS

    client = make_client(tmp_path, corpus_backend)
    body = {
        "query": {
            "bool": {"should": [{"multi_match": {"query": "hp laptop", "fields": ["title"]}}]}
        },
        "aggs": {"brands": {"terms": {"field": "brand"}}},
        "highlight": {"fields": {"title": {}}},
        "size": 10,
        "ext": {"shoprank": {"explain": True}},
    }
    response = client.post("/products/_search", json=body)
    assert response.status_code == 200, response.text
    got = response.json()
    assert got["_shoprank"]["mode"] == "full"
    matches = [d for d in CORPUS if words(d["title"]) & {"hp", "laptop"}]
    assert got["hits"]["total"] == {"value": len(matches), "relation": "eq"}
    brands: dict[str, int] = {}
    for doc in matches:
        brands[doc["brand"]] = brands.get(doc["brand"], 0) + 1
    facets = {b["key"]: b["doc_count"] for b in got["aggregations"]["brands"]["buckets"]}
    assert facets == brands  # every brand of the matches, whatever the intent filtered
    for hit in got["hits"]["hits"]:
        marked = highlighted({"hits": {"hits": [hit]}})[hit["_id"]]
        assert marked == words(hit["_source"]["title"]) & {"hp", "laptop"}


@pytest.mark.parametrize("mode", FUSED)
def test_search_as_you_type_answers_prefix_matches_only(service: SearchService, mode: str) -> None:
    # Search UI's autocomplete: `bool_prefix` alone, the last word half typed. Embedding
    # "bro" finds things by meaning that do not start with it; the box must not show them.
    body = {"size": 5, "query": {"multi_match": {"query": "bro", "type": "bool_prefix",
                                                 "fields": ["title"]}}}  # fmt: skip
    got = run(service, body, mode, explain=True)
    assert got["_shoprank"]["mode_applied"] == "lexical"
    assert any("search-as-you-type" in n for n in got["_shoprank"]["notes"])
    expected = {p["id"] for p in PRODUCTS if any(w.startswith("bro") for w in words(p["title"]))}
    assert expected and set(ids(got)) == expected
    assert got["hits"]["total"] == {"value": len(expected), "relation": "eq"}
