"""The embedded backend's query DSL: what a frontend sending ES `_search` bodies would see.

Expected ids and orderings are derived by hand from the corpus table in `conftest.py`
(or from the small corpora built inside a test), never copied from a run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shoprank.errors import BadRequestError, UnsupportedQueryError
from shoprank.plugin.backends.embedded import vectors as vectors_module
from shoprank.plugin.backends.embedded.backend import EmbeddedBackend

from .conftest import build_index, hit_ids, total


def ids(response: dict[str, Any]) -> set[str]:
    return set(hit_ids(response))


def scores(response: dict[str, Any]) -> dict[str, float]:
    return {h["_id"]: h["_score"] for h in response["hits"]["hits"]}


def q(search: Any, query: dict[str, Any], **extra: Any) -> dict[str, Any]:
    result: dict[str, Any] = search({"query": query, **extra})
    return result


# -- match ---------------------------------------------------------------------------------


def test_match_single_term_is_analysed(search: Any) -> None:
    # "LAPTOPS" is lower-cased and stemmed to "laptop", like the indexed titles.
    assert ids(q(search, {"match": {"title": "LAPTOPS"}})) == {"1", "3", "5"}


def test_match_operator_or_and(search: Any) -> None:
    body = {"query": "wireless mouse"}
    assert ids(q(search, {"match": {"title": body}})) == {"2", "4", "8"}
    assert ids(q(search, {"match": {"title": {**body, "operator": "and"}}})) == {"2", "4"}
    assert ids(q(search, {"match": {"title": {**body, "operator": "AND"}}})) == {"2", "4"}


@pytest.mark.parametrize(
    ("msm", "expected"),
    [
        (None, {"1", "2", "4", "7", "8"}),  # any of hp / wireless / mouse
        (2, {"2", "4"}),
        ("2", {"2", "4"}),
        (-1, {"2", "4"}),  # 3 - 1 = 2 of 3
        ("66%", {"1", "2", "4", "7", "8"}),  # ES rounds down: floor(3 * .66) = 1, plain OR
        ("67%", {"2", "4"}),  # floor(3 * .67) = 2
        ("100%", {"2"}),
    ],
)
def test_match_minimum_should_match(search: Any, msm: Any, expected: set[str]) -> None:
    spec: dict[str, Any] = {"query": "hp wireless mouse"}
    if msm is not None:
        spec["minimum_should_match"] = msm
    assert ids(q(search, {"match": {"title": spec}})) == expected


def test_match_fuzziness_auto_catches_one_letter_typo(search: Any) -> None:
    assert ids(q(search, {"match": {"title": "laptp"}})) == set()
    fuzzy = {"match": {"title": {"query": "laptp", "fuzziness": "AUTO"}}}
    assert ids(q(search, fuzzy)) == {"1", "3", "5"}
    # AUTO allows no edit at all for terms of one or two characters.
    assert ids(q(search, {"match": {"title": {"query": "hq", "fuzziness": "AUTO"}}})) == set()


def test_match_on_keyword_field_is_exact(search: Any) -> None:
    assert ids(q(search, {"match": {"brand": "HP"}})) == {"1", "2", "7"}
    assert ids(q(search, {"match": {"brand": "hp"}})) == set()


def test_match_on_keyword_subfield_text(search: Any) -> None:
    # brand.text is the analysed multi-field of brand: case no longer matters.
    assert ids(q(search, {"match": {"brand.text": "hp"}})) == {"1", "2", "7"}


# -- match_phrase --------------------------------------------------------------------------


def test_match_phrase_requires_adjacent_terms_in_order(search: Any) -> None:
    # doc 4 has both words but not adjacent; doc 8 has only "mouse".
    assert ids(q(search, {"match_phrase": {"title": "wireless mouse"}})) == {"2"}
    assert ids(q(search, {"match_phrase": {"title": {"query": "wireless mouse"}}})) == {"2"}
    # Order matters: reversed, nothing matches, although `match` finds three docs.
    assert ids(q(search, {"match_phrase": {"title": "mouse wireless"}})) == set()
    assert ids(q(search, {"match": {"title": "mouse wireless"}})) == {"2", "4", "8"}


# -- multi_match ---------------------------------------------------------------------------

# Two mirror-image products: with no boost their scores are equal, so the boost decides.
MIRROR = [
    {"_id": "P", "title": "red shoes", "description": "blue shoes"},
    {"_id": "Q", "title": "blue shoes", "description": "red shoes"},
]


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> EmbeddedBackend:
    backend, _ = build_index(tmp_path_factory.mktemp("mirror"), MIRROR)
    return backend


@pytest.mark.parametrize(
    ("mm_type", "text"),
    [("best_fields", "red"), ("most_fields", "red"), ("phrase", "red shoes")],
)
def test_multi_match_field_boost_changes_the_winner(
    mirror: EmbeddedBackend, mm_type: str, text: str
) -> None:
    def run(fields: list[str]) -> dict[str, Any]:
        return mirror.search(
            "products",
            {"query": {"multi_match": {"query": text, "type": mm_type, "fields": fields}}},
        )

    plain = scores(run(["title", "description"]))
    assert set(plain) == {"P", "Q"}
    assert plain["P"] == pytest.approx(plain["Q"], rel=1e-6)
    assert hit_ids(run(["title^5", "description"]))[0] == "P"
    assert hit_ids(run(["title", "description^5"]))[0] == "Q"
    boosted = scores(run(["title^5", "description"]))
    assert boosted["P"] == pytest.approx(5 * plain["P"], rel=1e-5)
    assert boosted["Q"] == pytest.approx(plain["Q"], rel=1e-5)


def test_multi_match_phrase_order_matters(mirror: EmbeddedBackend) -> None:
    body = {
        "query": {
            "multi_match": {
                "query": "shoes red",
                "type": "phrase",
                "fields": ["title", "description"],
            }
        }
    }
    assert hit_ids(mirror.search("products", body)) == []


def test_multi_match_default_fields_are_all_text_fields(mirror: EmbeddedBackend) -> None:
    body = {"query": {"multi_match": {"query": "red"}}}
    assert set(hit_ids(mirror.search("products", body))) == {"P", "Q"}


def test_multi_match_most_fields_sums_best_fields_takes_max(tmp_path: Path) -> None:
    # Both match "red" in an identical title; only U also matches in its description.
    # "red" is in both titles (low IDF) but one description (high IDF), lengths equal, so
    # U's best field is its description and its title scores exactly like T's title.
    backend, _ = build_index(
        tmp_path,
        [
            {"_id": "U", "title": "red shoes", "description": "red laces"},
            {"_id": "T", "title": "red shoes", "description": "blue laces"},
        ],
    )

    def run(mm_type: str, **extra: Any) -> dict[str, float]:
        return scores(
            backend.search(
                "products",
                {
                    "query": {
                        "multi_match": {
                            "query": "red",
                            "type": mm_type,
                            "fields": ["title", "description"],
                            **extra,
                        }
                    }
                },
            )
        )

    best, most = run("best_fields"), run("most_fields")
    title_only = best["T"]
    assert best["U"] > title_only
    assert most["T"] == pytest.approx(title_only, rel=1e-5)
    assert most["U"] == pytest.approx(best["U"] + title_only, rel=1e-5)
    tie = run("best_fields", tie_breaker=0.5)
    assert tie["U"] == pytest.approx(best["U"] + 0.5 * title_only, rel=1e-5)


def test_multi_match_wildcard_fields(search: Any) -> None:
    # "desc*" expands to description only: "keyboard" is in doc 5's description, and in
    # doc 4's title (which the wildcard does not cover).
    body = {"multi_match": {"query": "keyboard", "fields": ["desc*"]}}
    assert ids(q(search, body)) == {"5"}


# -- term / terms --------------------------------------------------------------------------


def test_term_on_keyword_is_exact_and_case_sensitive(search: Any) -> None:
    assert ids(q(search, {"term": {"brand": "HP"}})) == {"1", "2", "7"}
    assert ids(q(search, {"term": {"brand": {"value": "Dell"}}})) == {"3", "4"}
    assert ids(q(search, {"term": {"brand": "hp"}})) == set()
    assert ids(q(search, {"term": {"brand": "H"}})) == set()


def test_terms_on_keyword(search: Any) -> None:
    assert ids(q(search, {"terms": {"brand": ["HP", "Apple"]}})) == {"1", "2", "6", "7"}
    assert ids(q(search, {"terms": {"brand": ["Acer"]}})) == set()
    assert ids(q(search, {"terms": {"brand": []}})) == set()


def test_term_and_terms_on_unmapped_string_attribute(search: Any) -> None:
    # `colour` is not in the mapping: a dynamic attribute that behaves like a keyword.
    assert ids(q(search, {"term": {"colour": "black"}})) == {"1", "2", "5", "8"}
    assert ids(q(search, {"term": {"colour": "Black"}})) == set()
    assert ids(q(search, {"terms": {"colour": ["white", "silver"]}})) == {"3", "4", "6"}


def test_term_on_number(search: Any) -> None:
    assert ids(q(search, {"term": {"price": 40}})) == {"1"}
    assert ids(q(search, {"term": {"rating": 4.8}})) == {"3"}


# -- range / exists / ids ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bounds", "expected"),
    [
        ({"gt": 40, "lte": 95}, {"5", "6", "8"}),
        ({"gte": 40, "lt": 95}, {"1", "6", "8"}),
        ({"gte": 40.0, "lte": 40.0}, {"1"}),
        ({"lt": 15}, set()),
        ({"lte": 15}, {"2"}),
        ({"gt": 100}, {"3"}),
        ({"gte": "55"}, {"3", "5", "6", "8"}),  # numeric strings are numbers, as in ES
    ],
)
def test_range_on_price(search: Any, bounds: dict[str, Any], expected: set[str]) -> None:
    assert ids(q(search, {"range": {"price": bounds}})) == expected


@pytest.mark.parametrize(
    ("bounds", "expected"),
    [
        ({"gte": 4.0}, {"1", "3", "4", "5", "8"}),
        ({"gte": 4}, {"1", "3", "4", "5", "8"}),
        ({"gt": 4.0}, {"1", "3", "4", "8"}),
        ({"lt": 4}, {"2", "7"}),
        ({"gt": 3.5, "lt": 4.6}, {"1", "2", "4", "5"}),
        ({"gte": 3, "lte": 4}, {"2", "5", "7"}),
        pytest.param({"gt": 3.0, "lt": 4.5}, {"2", "4", "5"}, id="integral-and-fractional"),
        pytest.param({"gte": 4, "lte": 4.75}, {"1", "4", "5", "8"}, id="int-and-fractional"),
    ],
)
def test_range_on_unmapped_numeric_attribute(
    search: Any, bounds: dict[str, Any], expected: set[str]
) -> None:
    assert ids(q(search, {"range": {"rating": bounds}})) == expected


def test_range_scores_are_constant(search: Any) -> None:
    result = q(search, {"range": {"price": {"gte": 50}}})
    assert set(scores(result).values()) == {1.0}


def test_exists_on_mapped_and_unmapped_fields(search: Any) -> None:
    everyone = {str(i) for i in range(1, 9)}
    assert ids(q(search, {"exists": {"field": "description"}})) == {"1", "3", "5"}
    assert ids(q(search, {"exists": {"field": "rating"}})) == everyone - {"6"}
    assert ids(q(search, {"exists": {"field": "colour"}})) == everyone - {"7"}
    assert ids(q(search, {"exists": {"field": "warranty"}})) == set()


def test_ids(search: Any) -> None:
    assert ids(q(search, {"ids": {"values": ["1", "3", "99"]}})) == {"1", "3"}
    assert ids(q(search, {"ids": {"values": []}})) == set()


# -- compound queries ----------------------------------------------------------------------


def test_bool_must_filter_must_not(search: Any) -> None:
    laptops = {"match": {"title": "laptop"}}
    cheap = {"range": {"price": {"lt": 100}}}
    lenovo = {"term": {"brand": "Lenovo"}}
    assert ids(q(search, {"bool": {"must": [laptops]}})) == {"1", "3", "5"}
    assert ids(q(search, {"bool": {"must": laptops, "filter": [cheap]}})) == {"1", "5"}
    assert ids(q(search, {"bool": {"must": [laptops], "filter": cheap, "must_not": [lenovo]}})) == {
        "1"
    }
    # must_not alone: everything else.
    assert ids(q(search, {"bool": {"must_not": {"term": {"brand": "HP"}}}})) == {
        "3",
        "4",
        "5",
        "6",
        "8",
    }


def test_bool_filter_does_not_change_scores(search: Any) -> None:
    plain = scores(q(search, {"match": {"title": "laptop"}}))
    filtered = scores(
        q(
            search,
            {
                "bool": {
                    "must": [{"match": {"title": "laptop"}}],
                    "filter": [{"range": {"price": {"lt": 100}}}],
                }
            },
        )
    )
    assert set(filtered) == {"1", "5"}
    for doc in filtered:
        assert filtered[doc] == pytest.approx(plain[doc], rel=1e-6)
    only_filter = scores(q(search, {"bool": {"filter": [{"term": {"brand": "HP"}}]}}))
    assert set(only_filter) == {"1", "2", "7"}
    assert set(only_filter.values()) == {0.0}


def test_bool_should_alone_needs_one_match(search: Any) -> None:
    body = {"bool": {"should": [{"term": {"brand": "Apple"}}, {"term": {"brand": "Lenovo"}}]}}
    assert ids(q(search, body)) == {"5", "6"}


def test_bool_should_minimum_should_match(search: Any) -> None:
    # Per doc: HP? black? under 50?  1: 3 | 2: 3 | 7: 2 | 4, 5, 8: 1 | 3, 6: 0
    should = [
        {"term": {"brand": "HP"}},
        {"term": {"colour": "black"}},
        {"range": {"price": {"lt": 50}}},
    ]
    assert ids(q(search, {"bool": {"should": should, "minimum_should_match": 2}})) == {
        "1",
        "2",
        "7",
    }
    assert ids(q(search, {"bool": {"should": should, "minimum_should_match": 3}})) == {"1", "2"}
    assert ids(q(search, {"bool": {"should": should}})) == {"1", "2", "4", "5", "7", "8"}


def test_bool_should_with_must_only_boosts(search: Any) -> None:
    # Docs 1 and 5 have equally long titles, so they tie on "laptop"; the should clause
    # lifts Lenovo (doc 5) above doc 1 without excluding anyone.
    laptops = {"match": {"title": "laptop"}}
    plain = scores(q(search, laptops))
    assert plain["1"] == pytest.approx(plain["5"], rel=1e-6)
    result = q(search, {"bool": {"must": [laptops], "should": [{"term": {"brand": "Lenovo"}}]}})
    assert ids(result) == {"1", "3", "5"}
    assert hit_ids(result)[0] == "5"
    assert scores(result)["5"] > scores(result)["1"]


def test_constant_score(search: Any) -> None:
    result = q(search, {"constant_score": {"filter": {"term": {"brand": "HP"}}, "boost": 2.5}})
    assert ids(result) == {"1", "2", "7"}
    assert set(scores(result).values()) == {2.5}


def test_dis_max_takes_best_clause_plus_tie_breaker(search: Any) -> None:
    keyboard, mouse = {"match": {"title": "keyboard"}}, {"match": {"title": "mouse"}}
    k4 = scores(q(search, keyboard))["4"]
    m4 = scores(q(search, mouse))["4"]
    result = q(search, {"dis_max": {"queries": [keyboard, mouse]}})
    assert ids(result) == {"2", "4", "8"}
    assert scores(result)["4"] == pytest.approx(max(k4, m4), rel=1e-5)
    tie = q(search, {"dis_max": {"queries": [keyboard, mouse], "tie_breaker": 0.5}})
    assert scores(tie)["4"] == pytest.approx(max(k4, m4) + 0.5 * min(k4, m4), rel=1e-5)


def test_match_all_and_match_none(search: Any) -> None:
    result = q(search, {"match_all": {}})
    assert total(result) == 8
    assert set(scores(result).values()) == {1.0}
    assert set(scores(q(search, {"match_all": {"boost": 2}})).values()) == {2.0}
    none = q(search, {"match_none": {}})
    assert total(none) == 0 and none["hits"]["hits"] == []
    assert none["hits"]["max_score"] is None


def test_no_query_means_match_all(search: Any) -> None:
    assert total(search({})) == 8


# -- BM25 ----------------------------------------------------------------------------------


def test_bm25_short_title_beats_long_title(tmp_path: Path) -> None:
    backend, _ = build_index(
        tmp_path,
        [
            {"_id": "long", "title": "wireless mouse with a long braided cable and a travel case"},
            {"_id": "short", "title": "wireless mouse"},
            {"_id": "other", "title": "usb cable"},
        ],
    )
    result = backend.search("products", {"query": {"match": {"title": "mouse"}}})
    assert hit_ids(result) == ["short", "long"]
    assert result["hits"]["max_score"] == result["hits"]["hits"][0]["_score"]


def test_bm25_rare_term_outweighs_common_term(tmp_path: Path) -> None:
    # Same title length everywhere; "laptop" is in three titles, "chair" in one.
    backend, _ = build_index(
        tmp_path,
        [
            {"_id": "a", "title": "laptop stand"},
            {"_id": "b", "title": "laptop sleeve"},
            {"_id": "c", "title": "laptop bag"},
            {"_id": "d", "title": "gaming chair"},
        ],
    )
    result = backend.search("products", {"query": {"match": {"title": "laptop chair"}}})
    assert hit_ids(result)[0] == "d"
    got = scores(result)
    assert set(got) == {"a", "b", "c", "d"}
    assert got["d"] > max(got["a"], got["b"], got["c"])
    assert got["a"] == pytest.approx(got["b"], rel=1e-6)


# -- pagination, sort, _source, totals -----------------------------------------------------

BY_PRICE = ["2", "7", "4", "1", "6", "8", "5", "3"]  # 15, 25, 35, 40, 55, 60, 95, 120


def test_sort_by_price_asc_with_from_size(search: Any) -> None:
    result = search({"query": {"match_all": {}}, "sort": [{"price": "asc"}], "from": 2, "size": 3})
    assert hit_ids(result) == ["4", "1", "6"]
    assert [h["sort"] for h in result["hits"]["hits"]] == [[35.0], [40.0], [55.0]]
    assert all(h["_score"] is None for h in result["hits"]["hits"])
    assert result["hits"]["max_score"] is None
    assert total(result) == 8


def test_sort_by_price_desc(search: Any) -> None:
    result = search({"sort": [{"price": {"order": "desc"}}], "size": 8})
    assert hit_ids(result) == BY_PRICE[::-1]
    assert result["hits"]["hits"][0]["sort"] == [120.0]


def test_sort_field_name_defaults_to_asc(search: Any) -> None:
    assert hit_ids(search({"sort": ["price"]})) == BY_PRICE


def test_sort_with_query_and_track_scores(search: Any) -> None:
    result = search(
        {"query": {"match": {"title": "laptop"}}, "sort": [{"price": "desc"}], "track_scores": True}
    )
    assert hit_ids(result) == ["3", "5", "1"]
    assert all(isinstance(h["_score"], float) and h["_score"] > 0 for h in result["hits"]["hits"])


def test_pagination_by_score_is_consistent(search: Any) -> None:
    query = {"match": {"title": "laptop"}}
    full = hit_ids(search({"query": query}))
    pages = [hit_ids(search({"query": query, "from": i, "size": 1})) for i in range(4)]
    assert sorted(full) == ["1", "3", "5"]
    assert full[-1] == "3"  # the longest title of the three
    assert pages == [[full[0]], [full[1]], [full[2]], []]


def test_size_zero_returns_total_only(search: Any) -> None:
    result = search({"query": {"term": {"brand": "HP"}}, "size": 0})
    assert result["hits"]["hits"] == [] and total(result) == 3


def test_hit_shape(search: Any) -> None:
    hit = search({"query": {"ids": {"values": ["6"]}}})["hits"]["hits"][0]
    assert hit["_id"] == "6"
    assert hit["_index"].startswith("products-")  # the concrete generation, as in ES
    assert hit["_source"] == {
        "title": "Apple USB-C charger",
        "brand": "Apple",
        "price": 55.0,
        "colour": "white",
        "category": "Accessories",
    }


@pytest.mark.parametrize(
    ("spec", "keys"),
    [
        (["title", "price"], {"title", "price"}),
        ("brand", {"brand"}),
        (
            {"includes": ["title", "brand", "description"], "excludes": ["description"]},
            {"title", "brand"},
        ),
        ({"excludes": ["rating", "colour", "desc*"]}, {"title", "brand", "price", "category"}),
        (["pri*"], {"price"}),
        (True, {"title", "brand", "price", "colour", "rating", "category", "description"}),
    ],
)
def test_source_filtering(search: Any, spec: Any, keys: set[str]) -> None:
    hit = search({"query": {"ids": {"values": ["1"]}}, "_source": spec})["hits"]["hits"][0]
    assert set(hit["_source"]) == keys


def test_source_false_omits_source(search: Any) -> None:
    hit = search({"query": {"ids": {"values": ["1"]}}, "_source": False})["hits"]["hits"][0]
    assert "_source" not in hit and hit["_id"] == "1"


def test_track_total_hits(search: Any) -> None:
    assert search({})["hits"]["total"] == {"value": 8, "relation": "eq"}
    assert search({"track_total_hits": True})["hits"]["total"] == {"value": 8, "relation": "eq"}
    hidden = search({"track_total_hits": False})
    assert "total" not in hidden["hits"] and len(hidden["hits"]["hits"]) == 8
    capped = search({"track_total_hits": 3})
    assert capped["hits"]["total"] == {"value": 3, "relation": "gte"}
    assert len(capped["hits"]["hits"]) == 8  # the cap is on counting, not on hits
    assert search({"track_total_hits": 8})["hits"]["total"] == {"value": 8, "relation": "eq"}


def test_post_filter_filters_hits(search: Any) -> None:
    result = search(
        {"query": {"match": {"title": "laptop"}}, "post_filter": {"term": {"brand": "Dell"}}}
    )
    assert hit_ids(result) == ["3"] and total(result) == 1


def test_min_score(search: Any) -> None:
    result = search(
        {
            "query": {"constant_score": {"filter": {"term": {"brand": "HP"}}, "boost": 2}},
            "min_score": 2.5,
        }
    )
    assert total(result) == 0


# -- kNN -----------------------------------------------------------------------------------

E1 = [1.0, 0.0, 0.0, 0.0]


def knn(**spec: Any) -> dict[str, Any]:
    return {"field": "text_vector", "query_vector": E1, **spec}


def test_knn_top_k_by_cosine(search: Any) -> None:
    # cos to e1: doc1 1.0, doc3 .994, doc5 .707, docs 2/4/6/7 0, doc8 -1.
    result = search({"knn": knn(k=3, num_candidates=10)})
    assert hit_ids(result) == ["1", "3", "5"]
    assert total(result) == 3
    got = scores(result)
    # ES's cosine score: (1 + cos) / 2
    assert got["1"] == pytest.approx(1.0, abs=1e-4)
    assert got["3"] == pytest.approx((1 + 0.9 / np.hypot(0.9, 0.1)) / 2, abs=1e-4)
    assert got["5"] == pytest.approx((1 + np.sqrt(0.5)) / 2, abs=1e-4)


def test_knn_cosine_ignores_vector_length(search: Any) -> None:
    result = search({"knn": knn(query_vector=[5.0, 0.0, 0.0, 0.0], k=2)})
    assert hit_ids(result) == ["1", "3"]


def test_knn_with_filter_returns_only_matching_docs(search: Any) -> None:
    dell = search({"knn": knn(k=2, filter={"term": {"brand": "Dell"}})})
    assert hit_ids(dell) == ["3", "4"]
    black = search({"knn": knn(k=3, filter=[{"term": {"colour": "black"}}])})
    assert hit_ids(black) == ["1", "5", "2"]  # doc 8 (cos -1) is the 4th black one


def test_knn_similarity_threshold(search: Any) -> None:
    result = search({"knn": knn(k=5, similarity=0.9)})
    assert hit_ids(result) == ["1", "3"]


def test_knn_boost(search: Any) -> None:
    result = search({"knn": knn(k=1, boost=2.0)})
    assert scores(result)["1"] == pytest.approx(2.0, abs=1e-4)


def test_query_plus_knn_is_the_union(search: Any) -> None:
    result = search({"query": {"match": {"title": "mouse"}}, "knn": knn(k=2)})
    assert ids(result) == {"1", "2", "3", "4", "8"}
    assert total(result) == 5


def test_query_plus_knn_sums_scores_of_docs_in_both(search: Any) -> None:
    lexical = scores(search({"query": {"match": {"title": "laptop"}}}))
    result = search({"query": {"match": {"title": "laptop"}}, "knn": knn(k=1)})
    assert ids(result) == {"1", "3", "5"}
    assert hit_ids(result)[0] == "1"
    assert scores(result)["1"] == pytest.approx(lexical["1"] + 1.0, rel=1e-4)
    assert scores(result)["5"] == pytest.approx(lexical["5"], rel=1e-6)


def test_several_knn_sections_add_up(search: Any) -> None:
    other = knn(query_vector=[0.0, 1.0, 0.0, 0.0], k=1)  # doc 2
    result = search({"knn": [knn(k=1), other]})
    assert ids(result) == {"1", "2"}


def test_query_plus_knn_total_counts_each_doc_once(search: Any) -> None:
    # match_all already matches all 8 docs, so the union is 8 docs whatever kNN returns.
    result = search({"query": {"match_all": {}}, "knn": knn(k=3), "size": 1})
    assert total(result) == 8


def test_knn_wrong_dimension_is_400(search: Any) -> None:
    with pytest.raises(BadRequestError) as err:
        search({"knn": knn(query_vector=[1.0, 0.0, 0.0])})
    assert err.value.to_es_body()["status"] == 400
    assert "dimension" in err.value.reason


@pytest.mark.parametrize("field", ["image_vector", "title", "price"])
def test_knn_unknown_vector_field_is_400(search: Any, field: str) -> None:
    with pytest.raises(BadRequestError) as err:
        search({"knn": knn(field=field)})
    assert field in err.value.reason and err.value.status == 400


@pytest.mark.parametrize(
    "spec",
    [
        {"query_vector": "1,0,0,0"},
        {"query_vector": [1, 0, 0, True]},
        {"k": 0},
        {"k": 10, "num_candidates": 5},
    ],
)
def test_knn_malformed_is_400(search: Any, spec: dict[str, Any]) -> None:
    with pytest.raises(BadRequestError):
        search({"knn": knn(**spec)})


# -- kNN over a large corpus (the HNSW over-fetch path of vectors.py) ----------------------

BIG_N, BIG_B, BIG_DIMS = 6000, 1000, 8


@pytest.fixture(scope="module")
def big() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Docs 0..999 are brand B, tightly clustered around `toward_b`; the 5,000 others are
    brand A with random directions. A filter on A (5,000 > EXACT_LIMIT docs) goes through
    HNSW with over-fetch and post-filtering."""
    rng = np.random.default_rng(1234)
    toward_b = rng.normal(size=BIG_DIMS).astype(np.float32)
    toward_b /= np.linalg.norm(toward_b)
    vecs = rng.normal(size=(BIG_N, BIG_DIMS)).astype(np.float32)
    vecs[:BIG_B] = toward_b + 0.02 * rng.normal(size=(BIG_B, BIG_DIMS)).astype(np.float32)
    brands = np.array(["B"] * BIG_B + ["A"] * (BIG_N - BIG_B))
    return vecs, brands, toward_b


@pytest.fixture(scope="module")
def big_backend(
    tmp_path_factory: pytest.TempPathFactory, big: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> EmbeddedBackend:
    vecs, brands, _ = big
    docs = [{"_id": str(i), "brand": str(brands[i])} for i in range(BIG_N)]
    backend, _ = build_index(tmp_path_factory.mktemp("big"), docs, vecs, dims=BIG_DIMS)
    return backend


def _exact_top(vecs: np.ndarray, mask: np.ndarray, query: np.ndarray, k: int) -> list[str]:
    sims = (vecs @ query) / (np.linalg.norm(vecs, axis=1) * np.linalg.norm(query))
    sims[~mask] = -np.inf
    return [str(i) for i in np.argsort(-sims, kind="stable")[:k]]


def _spy_exact(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = vectors_module.VectorField._exact

    def spy(self: Any, query: Any, allowed: Any, k: int) -> Any:
        calls.append(len(allowed))
        return real(self, query, allowed, k)

    monkeypatch.setattr(vectors_module.VectorField, "_exact", spy)
    return calls


def test_knn_filter_matching_many_docs_uses_hnsw_and_only_returns_matches(
    big_backend: EmbeddedBackend,
    big: tuple[np.ndarray, np.ndarray, np.ndarray],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    vecs, brands, toward_b = big
    query = -toward_b  # far from the B cluster: the nearest docs are mostly brand A
    calls = _spy_exact(monkeypatch)
    result = big_backend.search(
        "products",
        {
            "_source": ["brand"],
            "knn": {
                "field": "text_vector",
                "query_vector": query.tolist(),
                "k": 10,
                "num_candidates": 50,
                "filter": {"term": {"brand": "A"}},
            },
        },
    )
    hits = result["hits"]["hits"]
    assert len(hits) == 10
    assert {h["_source"]["brand"] for h in hits} == {"A"}
    assert calls == []  # answered from the HNSW over-fetch, no exact fallback
    got = [h["_score"] for h in hits]
    assert got == sorted(got, reverse=True)
    expected = _exact_top(vecs, brands == "A", query, 10)
    assert len(set(hit_ids(result)) & set(expected)) >= 8  # HNSW is approximate


def test_knn_filter_matching_many_docs_falls_back_to_exact(
    big_backend: EmbeddedBackend,
    big: tuple[np.ndarray, np.ndarray, np.ndarray],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The query points into the B cluster, so the over-fetched HNSW candidates are all B and
    # none survives the filter on A: the backend must still return the true top A docs.
    vecs, brands, toward_b = big
    calls = _spy_exact(monkeypatch)
    result = big_backend.search(
        "products",
        {
            "_source": ["brand"],
            "knn": {
                "field": "text_vector",
                "query_vector": toward_b.tolist(),
                "k": 5,
                "num_candidates": 10,
                "filter": {"term": {"brand": "A"}},
            },
        },
    )
    assert {h["_source"]["brand"] for h in result["hits"]["hits"]} == {"A"}
    assert calls == [BIG_N - BIG_B]
    assert hit_ids(result) == _exact_top(vecs, brands == "A", toward_b, 5)


def test_knn_filter_matching_few_docs_is_exact(
    big_backend: EmbeddedBackend,
    big: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    vecs, brands, _ = big
    query = np.linspace(-1.0, 1.0, BIG_DIMS, dtype=np.float32)
    result = big_backend.search(
        "products",
        {
            "knn": {
                "field": "text_vector",
                "query_vector": query.tolist(),
                "k": 5,
                "filter": {"term": {"brand": "B"}},
            }
        },
    )
    assert hit_ids(result) == _exact_top(vecs, brands == "B", query, 5)


# -- unsupported constructs: a clear 400 that names them -----------------------------------


def _unsupported(search: Any, body: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(UnsupportedQueryError) as err:
        search(body)
    es: dict[str, Any] = err.value.to_es_body()
    assert es["status"] == 400
    assert es["error"]["type"] == "unsupported_query_exception"
    assert es["error"]["root_cause"][0]["type"] == "unsupported_query_exception"
    return es["error"]


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ({"regexp": {"title": {"value": "lap.*"}}}, "regexp"),
        ({"more_like_this": {"like": "laptop"}}, "more_like_this"),
        ({"script": {"script": "true"}}, "script"),
        ({"intervals": {"title": {}}}, "intervals"),
        ({"combined_fields": {"query": "hp", "fields": ["title"]}}, "combined_fields"),
    ],
)
def test_unknown_query_type(search: Any, query: dict[str, Any], name: str) -> None:
    error = _unsupported(search, {"query": query})
    assert error["construct"] == name and f"[{name}]" in error["reason"]


def test_unknown_query_type_nested_in_bool_is_not_ignored(search: Any) -> None:
    body = {
        "query": {
            "bool": {
                "must": [{"match": {"title": "laptop"}}],
                "filter": [{"regexp": {"brand": "H.*"}}],
            }
        }
    }
    assert _unsupported(search, body)["construct"] == "regexp"


@pytest.mark.parametrize("key", ["rescore", "indices_boost", "slice", "terminate_after"])
def test_unknown_top_level_key(search: Any, key: str) -> None:
    error = _unsupported(search, {"query": {"match_all": {}}, key: {}})
    assert error["construct"] == key and key in error["reason"]


@pytest.mark.parametrize("mm_type", ["bogus_fields", "combined"])
def test_multi_match_unsupported_types(search: Any, mm_type: str) -> None:
    error = _unsupported(
        search,
        {
            "query": {
                "multi_match": {"query": "hp laptop", "type": mm_type, "fields": ["title", "brand"]}
            }
        },
    )
    assert mm_type in error["construct"] and mm_type in error["reason"]


def test_sort_on_a_text_field_is_refused_like_es(search: Any) -> None:
    # Keyword and numeric sorts: tests/unit/test_embedded_sort_paging.py.
    with pytest.raises(BadRequestError, match=r"Text fields .*\[title\]"):
        search({"sort": [{"title": "asc"}]})


def test_explain_and_profile_answer(search: Any) -> None:
    explained = search({"query": {"match": {"title": "laptop"}}, "explain": True})
    assert all(h["_explanation"]["value"] == h["_score"] for h in explained["hits"]["hits"])
    assert "shards" in search({"profile": True})["profile"]


@pytest.mark.parametrize(
    "query",
    [
        {"match": {"title": {"query": "laptop", "cutoff_frequency": 0.1}}},
        {"range": {"price": {"gte": 10, "relation": "within"}}},
        {"range": {"title": {"gte": 10}}},
    ],
)
def test_unsupported_options_are_not_ignored(search: Any, query: dict[str, Any]) -> None:
    with pytest.raises(UnsupportedQueryError):
        search({"query": query})


def test_term_case_insensitive_is_honoured_or_rejected(search: Any) -> None:
    body = {"query": {"term": {"brand": {"value": "hp", "case_insensitive": True}}}}
    try:
        result = search(body)
    except UnsupportedQueryError:
        return
    assert ids(result) == {"1", "2", "7"}


# -- malformed input: always BadRequestError (HTTP 400), never another exception -----------


@pytest.mark.parametrize(
    "body",
    [
        {"query": "laptop"},
        {"query": {"match": {"title": "a"}, "term": {"brand": "HP"}}},
        {"query": {"bool": {"must": [{"match_all": {}}], "shoud": [{"match_all": {}}]}}},
        {"query": {"bool": {"must": "laptop"}}},
        {"query": {"range": {"price": {"gte": "cheap"}}}},
        {"query": {"range": {"price": {"gte": True}}}},
        {"query": {"range": {"price": 10}}},
        {"query": {"term": {"price": "abc"}}},
        {"query": {"terms": {"brand": "HP"}}},
        {"query": {"match": {"title": "a", "brand": "b"}}},
        {"query": {"match": {"title": {"query": "a b", "operator": "xor"}}}},
        {"query": {"match": {"title": {"query": "a b", "minimum_should_match": "most"}}}},
        {"query": {"match": {"title": {"query": "a", "fuzziness": "lots"}}}},
        {"query": {"exists": {}}},
        {"query": {"ids": {"values": "1"}}},
        {"query": {"dis_max": {"queries": []}}},
        {"query": {"constant_score": {"query": {"match_all": {}}}}},
        {"query": {"term": {"text_vector": "x"}}},
        {"query": {"match": {"title": {"query": "a", "boost": -1}}}},
        {"size": -1},
        {"size": "ten"},
        {"size": 1.5},
        {"from": -1},
        {"from": 9995, "size": 10},
        {"from": 0, "size": 10001},
        {"sort": [{"price": {"order": "up"}}]},
        {"sort": [42]},
        {"_source": 5},
        {"knn": "text_vector"},
        {"knn": {"field": "text_vector", "query_vector": E1, "query_vector_builder": {}}},
    ],
)
def test_malformed_input_is_bad_request(search: Any, body: dict[str, Any]) -> None:
    with pytest.raises(BadRequestError) as err:
        search(body)
    assert err.value.to_es_body()["status"] == 400


def test_result_window_error_matches_es(search: Any) -> None:
    with pytest.raises(BadRequestError) as err:
        search({"from": 9995, "size": 10})
    es = err.value.to_es_body()["error"]
    assert es["type"] == "illegal_argument_exception"
    assert "[10000]" in es["reason"] and "[10005]" in es["reason"]


def test_search_body_must_be_an_object(corpus_backend: EmbeddedBackend) -> None:
    with pytest.raises(BadRequestError):
        corpus_backend.search("products", ["match_all"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"query": {"match_all": "x"}}, id="match_all-string"),
        pytest.param({"query": {"ids": "x"}}, id="ids-string"),
        pytest.param({"query": {"dis_max": "x"}}, id="dis_max-string"),
        pytest.param(
            {"query": {"match": {"title": {"query": "a", "boost": "x"}}}}, id="match-boost-string"
        ),
        pytest.param(
            {"query": {"match_phrase": {"title": {"query": "a b", "slop": "x"}}}},
            id="match_phrase-slop-string",
        ),
        pytest.param(
            {"query": {"multi_match": {"query": "a", "tie_breaker": "x"}}},
            id="multi_match-tie_breaker-string",
        ),
        pytest.param(
            {"query": {"constant_score": {"filter": {"match_all": {}}, "boost": "x"}}},
            id="constant_score-boost-string",
        ),
        pytest.param(
            {"query": {"range": {"price": {"gte": 1, "boost": "x"}}}}, id="range-boost-string"
        ),
        pytest.param({"track_total_hits": "abc"}, id="track_total_hits-string"),
        pytest.param({"min_score": "x"}, id="min_score-string"),
        pytest.param({"_source": {"includes": 5}}, id="source-includes-int"),
        pytest.param({"knn": knn(boost="x")}, id="knn-boost-string"),
        pytest.param({"knn": knn(similarity="x")}, id="knn-similarity-string"),
    ],
)
def test_malformed_values_escaping_as_other_exceptions(search: Any, body: dict[str, Any]) -> None:
    with pytest.raises(BadRequestError):
        search(body)


def test_multi_match_fields_as_a_single_string(search: Any) -> None:
    body = {"query": {"multi_match": {"query": "laptop", "fields": "title"}}}
    assert ids(search(body)) == {"1", "3", "5"}


# -- sort edge cases -----------------------------------------------------------------------


@pytest.fixture()
def priced(tmp_path: Path) -> EmbeddedBackend:
    backend, _ = build_index(
        tmp_path,
        [
            {"_id": "short", "title": "mouse", "price": 10.0},
            {
                "_id": "long",
                "title": "mouse with a long braided cable and a travel case",
                "price": 20.0,
            },
            {"_id": "none", "title": "mouse pad and wrist rest"},  # no price
        ],
    )
    return backend


def test_sort_missing_values_go_last(priced: EmbeddedBackend) -> None:
    asc = priced.search("products", {"sort": [{"price": "asc"}]})
    desc = priced.search("products", {"sort": [{"price": "desc"}]})
    assert hit_ids(asc) == ["short", "long", "none"]
    assert hit_ids(desc) == ["long", "short", "none"]
    first = priced.search("products", {"sort": [{"price": {"order": "asc", "missing": "_first"}}]})
    assert hit_ids(first) == ["none", "short", "long"]


def test_sort_missing_custom_value(priced: EmbeddedBackend) -> None:
    result = priced.search("products", {"sort": [{"price": {"order": "asc", "missing": 1000}}]})
    assert hit_ids(result) == ["short", "long", "none"]


def test_sort_by_score_ascending(priced: EmbeddedBackend) -> None:
    # "mouse" in the longest title scores lowest.
    result = priced.search(
        "products", {"query": {"match": {"title": "mouse"}}, "sort": [{"_score": "asc"}], "size": 1}
    )
    assert hit_ids(result) == ["long"]
