"""The embedded DSL's prefix, pattern, fuzzy, query-string and cross-field queries: what
Searchkit, Search UI and elasticsearch-dsl users send.

Expected ids are read off the corpus table in `conftest.py` (or the small corpora built
here) by hand: e.g. "mo*" completes to "mouse", which is in the titles of 2, 4 and 8.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shoprank.errors import BadRequestError, UnsupportedQueryError
from shoprank.plugin.backends.embedded import dsl_expand
from shoprank.plugin.backends.embedded.dsl import SUPPORTED_QUERIES
from shoprank.plugin.backends.embedded.dsl_syntax import query_text_of

from .conftest import build_index, hit_ids


def ids(search: Any, query: dict[str, Any]) -> set[str]:
    return set(hit_ids(search({"query": query})))


# -- bool_prefix: Searchkit's and Search UI's default query ---------------------------------


def test_searchkit_default_query_body(search: Any) -> None:
    # The query Searchkit 4 sends for a search box, verbatim apart from the words.
    def body(text: str) -> dict[str, Any]:
        return {
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
                                                "fields": ["title^3", "description", "brand.text"],
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
                            {
                                "multi_match": {
                                    "query": text,
                                    "type": "phrase",
                                    "fields": ["title^6", "description", "brand.text"],
                                }
                            },
                        ]
                    }
                },
            }
        }

    # "lenov" is a prefix of Lenovo (5) only; "lap" of laptop (1, 3, 5).
    assert ids(search, body("lenov")) == {"5"}
    assert ids(search, body("lap")) == {"1", "3", "5"}


def test_search_ui_autocomplete_with_unmapped_gram_subfields(search: Any) -> None:
    # Search UI / the ES search-as-you-type template send `title._2gram` / `._3gram`; the
    # mapping has neither, so (as in ES) they are ignored and `title` alone answers.
    fields = ["title", "title._2gram", "title._3gram"]
    mm = {"multi_match": {"query": "wireless mo", "type": "bool_prefix", "fields": fields}}
    assert ids(search, mm) == {"2", "4", "8"}  # wireless (2, 4) or mo* = mouse (2, 4, 8)
    mm["multi_match"]["operator"] = "and"
    assert ids(search, mm) == {"2", "4"}
    only_unmapped = {"multi_match": {"query": "mo", "type": "bool_prefix", "fields": fields[1:]}}
    assert ids(search, only_unmapped) == set()


def test_bool_prefix_only_the_last_word_is_a_prefix(search: Any) -> None:
    # "lap hp": "lap" must be a whole word (none is), "hp" a prefix (HP: 1, 2, 7).
    query = {"match_bool_prefix": {"title": {"query": "lap hp", "operator": "and"}}}
    assert ids(search, query) == set()
    query = {"match_bool_prefix": {"title": {"query": "laptop hp", "operator": "and"}}}
    assert ids(search, query) == {"1"}
    assert ids(search, {"match_bool_prefix": {"title": "laptop hp"}}) == {"1", "2", "3", "5", "7"}


def test_bool_prefix_on_a_keyword_field_is_a_prefix_of_the_value(search: Any) -> None:
    mm = {"multi_match": {"query": "Del", "type": "bool_prefix", "fields": ["brand"]}}
    assert ids(search, mm) == {"3", "4"}


def test_bool_prefix_max_expansions_keeps_the_most_frequent(tmp_path: Path) -> None:
    docs = [{"_id": str(i), "title": "mouse"} for i in range(3)]
    docs.append({"_id": "m", "title": "mountain bike"})
    backend, _ = build_index(tmp_path, docs)

    def run(extra: dict[str, Any]) -> set[str]:
        spec = {"query": "mou", **extra}
        return set(
            hit_ids(backend.search("products", {"query": {"match_bool_prefix": {"title": spec}}}))
        )

    assert run({}) == {"0", "1", "2", "m"}
    assert run({"max_expansions": 1}) == {"0", "1", "2"}  # "mouse" (3 docs) beats "mountain"


# -- phrase prefix / cross_fields ----------------------------------------------------------


def test_match_phrase_prefix(search: Any) -> None:
    assert ids(search, {"match_phrase_prefix": {"title": "wireless mo"}}) == {"2"}
    assert ids(search, {"match_phrase_prefix": {"title": "keyboard and mo"}}) == {"4"}
    assert ids(search, {"match_phrase_prefix": {"title": "mouse wire"}}) == set()
    slop = {"match_phrase_prefix": {"title": {"query": "wireless mo", "slop": 2}}}
    assert ids(search, slop) == {"2", "4"}  # "wireless keyboard and mouse" within 2 moves


def test_multi_match_phrase_prefix_over_fields(search: Any) -> None:
    mm = {
        "multi_match": {
            "query": "laptop with a go",
            "type": "phrase_prefix",
            "fields": ["title", "description"],
        }
    }
    assert ids(search, mm) == {"5"}  # "Business laptop with a good keyboard"


def test_cross_fields_treats_the_fields_as_one(search: Any) -> None:
    # Lenovo is in 5's title, "business" in its description: no single field has both.
    fields = ["title", "description"]
    best = {"multi_match": {"query": "lenovo business", "fields": fields, "operator": "and"}}
    assert ids(search, best) == set()
    cross = {"multi_match": {**best["multi_match"], "type": "cross_fields"}}
    assert ids(search, cross) == {"5"}
    either = {"multi_match": {"query": "lenovo business", "fields": fields, "type": "cross_fields"}}
    assert ids(search, either) == {"5"}
    brand = {
        "multi_match": {
            "query": "hp laptop",
            "type": "cross_fields",
            "fields": ["title", "brand.text"],
            "operator": "and",
        }
    }
    assert ids(search, brand) == {"1"}


# -- term-level patterns -------------------------------------------------------------------


def test_prefix_on_keyword_and_text(search: Any) -> None:
    assert ids(search, {"prefix": {"brand": "De"}}) == {"3", "4"}
    assert ids(search, {"prefix": {"brand": "de"}}) == set()  # keyword: case matters
    insensitive = {"prefix": {"brand": {"value": "de", "case_insensitive": True}}}
    assert ids(search, insensitive) == {"3", "4"}
    assert ids(search, {"prefix": {"title": "lap"}}) == {"1", "3", "5"}
    scores = {
        h["_score"]
        for h in search({"query": {"prefix": {"title": {"value": "lap", "boost": 2}}}})["hits"][
            "hits"
        ]
    }
    assert scores == {2.0}  # constant score, as ES's default rewrite


def test_wildcard(search: Any) -> None:
    # Not analysed, as in ES: the indexed term of "mouse" is its stem "mous".
    assert ids(search, {"wildcard": {"title": "l*p"}}) == {"1", "3", "5"}  # laptop
    assert ids(search, {"wildcard": {"title": {"value": "m?us"}}}) == {"2", "4", "8"}
    assert ids(search, {"wildcard": {"brand": "*o*"}}) == {"5", "8"}  # Lenovo, Logitech
    assert ids(search, {"wildcard": {"brand": {"wildcard": "h*", "case_insensitive": True}}}) == {
        "1",
        "2",
        "7",
    }


def test_fuzzy(search: Any) -> None:
    assert ids(search, {"fuzzy": {"title": "laptp"}}) == {"1", "3", "5"}
    assert ids(search, {"fuzzy": {"title": {"value": "laptp", "fuzziness": 0}}}) == set()
    near = {"fuzzy": {"title": {"value": "moos", "prefix_length": 2}}}  # 1 edit from "mous"
    assert ids(search, near) == {"2", "4", "8"}
    assert ids(search, {"fuzzy": {"title": {"value": "moos", "prefix_length": 3}}}) == set()


def test_expansion_cost_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # 1,100 distinct words starting with "w": more than the 1,024 a prefix may expand to.
    docs = [{"_id": str(i), "title": f"w{i:04d}"} for i in range(1100)]
    backend, _ = build_index(tmp_path, docs)
    with pytest.raises(BadRequestError, match=r"1100 terms; at most 1024") as err:
        backend.search("products", {"query": {"prefix": {"title": "w"}}})
    assert err.value.to_es_body()["status"] == 400
    # A longer prefix is fine: w000x are 10 words.
    narrow = backend.search("products", {"query": {"prefix": {"title": "w000"}}, "size": 100})
    assert set(hit_ids(narrow)) == {str(i) for i in range(10)}
    # A leading wildcard walks the whole dictionary: capped too.
    monkeypatch.setattr(dsl_expand, "MAX_SCANNED_TERMS", 500)
    with pytest.raises(BadRequestError, match="would examine more than 500 terms"):
        backend.search("products", {"query": {"wildcard": {"title": "*99"}}})
    ok = backend.search("products", {"query": {"wildcard": {"title": "w10*9"}}, "size": 100})
    assert set(hit_ids(ok)) == {str(i) for i in range(1000, 1100) if str(i).endswith("9")}


# -- query_string / simple_query_string ----------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"query": "title:laptop AND NOT brand:HP"}, {"3", "5"}),
        ({"query": "(wireless OR gaming) mouse", "default_operator": "AND"}, {"2", "4", "8"}),
        ({"query": "wireless mouse", "fields": ["title"]}, {"2", "4", "8"}),
        ({"query": "+mouse -wireless", "fields": ["title"]}, {"8"}),
        ({"query": '"wireless mouse"', "default_field": "title"}, {"2"}),
        ({"query": "title:(ink charger)"}, {"6", "7"}),
        ({"query": "lap*", "fields": ["title"]}, {"1", "3", "5"}),
        ({"query": "brand:Del? OR brand:Apple"}, {"3", "4", "6"}),
        ({"query": "lenov*"}, {"5"}),
    ],
)
def test_query_string(search: Any, body: dict[str, Any], expected: set[str]) -> None:
    assert ids(search, {"query_string": body}) == expected


def test_query_string_leading_wildcard_and_field_boosts(search: Any) -> None:
    leading = {"query": "*top", "fields": ["title"]}
    assert ids(search, {"query_string": leading}) == {"1", "3", "5"}
    with pytest.raises(BadRequestError, match="allow_leading_wildcard"):
        search({"query": {"query_string": {**leading, "allow_leading_wildcard": False}}})
    boosted = {"query": "lap*", "fields": ["title^4"]}
    result = search({"query": {"query_string": boosted}})
    assert {h["_score"] for h in result["hits"]["hits"]} == {4.0}


def test_simple_query_string(search: Any) -> None:
    simple = {"query": "mouse -wireless", "fields": ["title"], "default_operator": "and"}
    assert ids(search, {"simple_query_string": simple}) == {"8"}
    either = {"query": "charger | cartridge", "fields": ["title"]}
    assert ids(search, {"simple_query_string": either}) == {"6", "7"}
    # AND is a word in simple_query_string, not an operator (no title holds "and" + ink).
    words = {"query": "ink AND charger", "fields": ["title"], "default_operator": "and"}
    assert ids(search, {"simple_query_string": words}) == set()


@pytest.mark.parametrize(
    ("text", "construct"),
    [
        ("/lap.*/", "query_string.regexp"),
        ("price:[10 TO 20]", "query_string.range"),
        ("laptp~1", "query_string.fuzzy"),
        ("laptop^2", "query_string.boost"),
        ('"hp laptop"~2', "query_string.~"),
    ],
)
def test_query_string_outside_the_subset_is_a_400(search: Any, text: str, construct: str) -> None:
    with pytest.raises(UnsupportedQueryError) as err:
        search({"query": {"query_string": {"query": text}}})
    assert err.value.to_es_body()["error"]["construct"] == construct


# -- every option either works or is refused by name ---------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        {"match": {"title": {"query": "x", "bogus": 1}}},
        {"match_phrase": {"title": {"query": "x", "bogus": 1}}},
        {"match_phrase_prefix": {"title": {"query": "x", "bogus": 1}}},
        {"match_bool_prefix": {"title": {"query": "x", "bogus": 1}}},
        {"multi_match": {"query": "x", "bogus": 1}},
        {"term": {"brand": {"value": "HP", "bogus": 1}}},
        {"prefix": {"brand": {"value": "H", "bogus": 1}}},
        {"prefix": {"brand": {"value": "H", "rewrite": "top_terms_10"}}},
        {"wildcard": {"brand": {"value": "H*", "bogus": 1}}},
        {"fuzzy": {"title": {"value": "x", "bogus": 1}}},
        {"exists": {"field": "brand", "bogus": 1}},
        {"ids": {"values": ["1"], "bogus": 1}},
        {"constant_score": {"filter": {"match_all": {}}, "bogus": 1}},
        {"dis_max": {"queries": [{"match_all": {}}], "bogus": 1}},
        {"bool": {"must": [], "bogus": 1}},
        {"range": {"price": {"gte": 1, "bogus": 1}}},
        {"query_string": {"query": "x", "bogus": 1}},
        {"simple_query_string": {"query": "x", "bogus": 1}},
        {"function_score": {"query": {"match_all": {}}, "bogus": 1}},
    ],
)
def test_unknown_options_are_refused_by_name(search: Any, query: dict[str, Any]) -> None:
    with pytest.raises(UnsupportedQueryError) as err:
        search({"query": query})
    reason = err.value.to_es_body()["error"]["reason"]
    assert "bogus" in reason or "rewrite" in reason


def test_supported_queries_all_compile(search: Any) -> None:
    samples = {
        "match_all": {},
        "match_none": {},
        "match": {"title": "x"},
        "match_phrase": {"title": "x"},
        "match_phrase_prefix": {"title": "x"},
        "match_bool_prefix": {"title": "x"},
        "multi_match": {"query": "x"},
        "term": {"brand": "x"},
        "terms": {"brand": ["x"]},
        "range": {"price": {"gte": 1}},
        "exists": {"field": "brand"},
        "ids": {"values": ["1"]},
        "prefix": {"brand": "x"},
        "wildcard": {"brand": "x*"},
        "fuzzy": {"title": "x"},
        "query_string": {"query": "x"},
        "simple_query_string": {"query": "x"},
        "bool": {},
        "constant_score": {"filter": {"match_all": {}}},
        "dis_max": {"queries": [{"match_all": {}}]},
        "function_score": {"query": {"match_all": {}}},
    }
    assert set(samples) == set(SUPPORTED_QUERIES)
    for name, body in samples.items():
        assert "hits" in search({"query": {name: body}})


def test_range_format_on_a_number_is_refused(search: Any) -> None:
    with pytest.raises(BadRequestError, match="format"):
        search({"query": {"range": {"price": {"gte": 1, "format": "yyyy"}}}})


# -- the shopper's words -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ({"match": {"title": "hp laptop"}}, "hp laptop"),
        ({"match_phrase_prefix": {"title": {"query": "hp la"}}}, "hp la"),
        ({"match_bool_prefix": {"title": "hp la"}}, "hp la"),
        ({"multi_match": {"query": "sam", "type": "bool_prefix"}}, "sam"),
        (
            {"query_string": {"query": 'title:(hp laptop) AND NOT brand:Dell "usb c"'}},
            "hp laptop usb c",
        ),
        ({"simple_query_string": {"query": "mouse -wireless | gaming"}}, "mouse gaming"),
        ({"prefix": {"brand": "De"}}, "De"),
        ({"wildcard": {"title": {"value": "lap*"}}}, "lap"),
        ({"fuzzy": {"title": {"value": "laptp"}}}, "laptp"),
        ({"term": {"brand": "HP"}}, None),
        ({"bool": {"must": []}}, None),
    ],
)
def test_query_text_of(query: dict[str, Any], words: str | None) -> None:
    assert query_text_of(query) == words
