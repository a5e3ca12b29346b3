"""The aggregations frontends send (Search UI's `filter`-wrapped facets, Searchkit's facet
search, elasticsearch-dsl's composite paging) on the real embedded backend.

Expected counts are computed in the test from the documents it indexed (`CORPUS` or the
test's own rows), never from the code under test.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from shoprank.errors import BadRequestError, UnsupportedQueryError

from .conftest import CORPUS, build_index


def aggs_of(search: Any, aggs: dict[str, Any], **body: Any) -> dict[str, Any]:
    result: dict[str, Any] = search({"size": 0, "aggs": aggs, **body})["aggregations"]
    return result


def brand_counts(rows: list[dict[str, Any]]) -> Counter[str]:
    return Counter(r["brand"] for r in rows if "brand" in r)


def test_filter_aggregation_with_sub_terms(search: Any) -> None:
    agg = aggs_of(
        search,
        {
            "cheap": {
                "filter": {"range": {"price": {"lt": 50}}},
                "aggs": {"brands": {"terms": {"field": "brand"}}},
            }
        },
    )["cheap"]
    cheap = [r for r in CORPUS if r["price"] < 50]
    assert agg["doc_count"] == len(cheap)
    got = {b["key"]: b["doc_count"] for b in agg["brands"]["buckets"]}
    assert got == dict(brand_counts(cheap))


def test_named_filters_with_other_bucket(search: Any) -> None:
    agg = aggs_of(
        search,
        {
            "kinds": {
                "filters": {
                    "filters": {
                        "laptops": {"term": {"category": "Laptops"}},
                        "hp": {"term": {"brand": "HP"}},
                    },
                    "other_bucket_key": "rest",
                },
                "aggs": {"n": {"value_count": {"field": "price"}}},
            }
        },
    )["kinds"]["buckets"]
    laptops = [r for r in CORPUS if r["category"] == "Laptops"]
    hp = [r for r in CORPUS if r["brand"] == "HP"]
    rest = [r for r in CORPUS if r not in laptops and r not in hp]
    assert list(agg) == ["laptops", "hp", "rest"]
    assert agg["laptops"]["doc_count"] == len(laptops)
    assert agg["hp"]["doc_count"] == len(hp)
    assert agg["rest"] == {"doc_count": len(rest), "n": {"value": len(rest)}}


def test_anonymous_filters_are_a_list(search: Any) -> None:
    agg = aggs_of(
        search,
        {
            "f": {
                "filters": {
                    "filters": [{"term": {"colour": "black"}}, {"term": {"colour": "white"}}],
                    "other_bucket": True,
                }
            }
        },
    )["f"]
    colours = Counter(r.get("colour") for r in CORPUS)
    other = len(CORPUS) - colours["black"] - colours["white"]
    assert [b["doc_count"] for b in agg["buckets"]] == [colours["black"], colours["white"], other]


def test_search_ui_shaped_facets(search: Any) -> None:
    """Search UI: each facet is a `filter` agg holding the other facets' selections."""
    brand_filter = {"terms": {"brand": ["HP", "Dell"]}}
    colour_filter = {"term": {"colour": "black"}}
    body = {
        "query": {"bool": {"must": [{"match": {"title": "laptop mouse"}}]}},
        "post_filter": {"bool": {"filter": [brand_filter, colour_filter]}},
        "aggs": {
            "facet_bucket_brand": {
                "filter": {"bool": {"filter": [colour_filter]}},
                "aggs": {"brand": {"terms": {"field": "brand", "size": 20}}},
            },
            "facet_bucket_colour": {
                "filter": {"bool": {"filter": [brand_filter]}},
                "aggs": {"colour": {"terms": {"field": "colour", "size": 20}}},
            },
        },
        "size": 0,
    }
    out = search(body)["aggregations"]
    words = {"laptop", "mouse"}
    matched = [r for r in CORPUS if words & set(r["title"].lower().split())]
    black = [r for r in matched if r.get("colour") == "black"]
    by_brand = [r for r in matched if r["brand"] in ("HP", "Dell")]
    assert out["facet_bucket_brand"]["doc_count"] == len(black)
    got = {b["key"]: b["doc_count"] for b in out["facet_bucket_brand"]["brand"]["buckets"]}
    assert got == dict(brand_counts(black))
    colours = Counter(r["colour"] for r in by_brand if "colour" in r)
    got = {b["key"]: b["doc_count"] for b in out["facet_bucket_colour"]["colour"]["buckets"]}
    assert got == dict(colours)


def test_searchkit_facet_search_include_regex(search: Any) -> None:
    agg = aggs_of(search, {"b": {"terms": {"field": "brand", "include": ".*[lL]e.*"}}})["b"]
    wanted = {k: n for k, n in brand_counts(CORPUS).items() if re.fullmatch(".*[lL]e.*", k)}
    assert {b["key"]: b["doc_count"] for b in agg["buckets"]} == wanted
    assert set(wanted) == {"Apple", "Lenovo"}


def test_include_regex_is_anchored_and_lucene_literal(search: Any) -> None:
    agg = aggs_of(search, {"b": {"terms": {"field": "brand", "include": "e"}}})["b"]
    assert agg["buckets"] == []  # a whole-term match, not a substring search
    agg = aggs_of(search, {"b": {"terms": {"field": "brand", "include": "^HP$"}}})["b"]
    assert agg["buckets"] == []  # ^ and $ are ordinary characters in Lucene regexes


def test_include_exclude_lists_and_sum_other(search: Any) -> None:
    agg = aggs_of(
        search,
        {"b": {"terms": {"field": "brand", "exclude": ["HP"], "size": 1}}},
    )["b"]
    counts = brand_counts(CORPUS)
    del counts["HP"]
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    assert [(b["key"], b["doc_count"]) for b in agg["buckets"]] == top[:1]
    assert agg["sum_other_doc_count"] == sum(n for _, n in top[1:])


def test_terms_missing_and_min_doc_count_zero(search: Any) -> None:
    agg = aggs_of(search, {"c": {"terms": {"field": "colour", "missing": "none"}}})["c"]
    got = {b["key"]: b["doc_count"] for b in agg["buckets"]}
    assert got["none"] == sum(1 for r in CORPUS if "colour" not in r)
    agg = aggs_of(
        search,
        {"b": {"terms": {"field": "brand", "min_doc_count": 0, "size": 10}}},
        query={"term": {"brand": "HP"}},
    )["b"]
    got = {b["key"]: b["doc_count"] for b in agg["buckets"]}
    assert got == {b: (n if b == "HP" else 0) for b, n in brand_counts(CORPUS).items()}


def test_cardinality_missing_and_keyed_range(search: Any) -> None:
    out = aggs_of(
        search,
        {
            "brands": {"cardinality": {"field": "brand", "precision_threshold": 100}},
            "no_colour": {"missing": {"field": "colour"}},
            "prices": {
                "range": {
                    "field": "price",
                    "keyed": True,
                    "ranges": [{"to": 50}, {"from": 50, "key": "dear"}],
                }
            },
        },
    )
    assert out["brands"] == {"value": len(brand_counts(CORPUS))}
    assert out["no_colour"] == {"doc_count": sum(1 for r in CORPUS if "colour" not in r)}
    assert out["prices"]["buckets"] == {
        "*-50.0": {"to": 50.0, "doc_count": sum(1 for r in CORPUS if r["price"] < 50)},
        "dear": {"from": 50.0, "doc_count": sum(1 for r in CORPUS if r["price"] >= 50)},
    }


def test_top_hits_under_terms(search: Any) -> None:
    out = aggs_of(
        search,
        {
            "b": {
                "terms": {"field": "brand", "size": 1},
                "aggs": {
                    "cheapest": {
                        "top_hits": {"size": 2, "sort": [{"price": "asc"}], "_source": ["price"]}
                    }
                },
            }
        },
    )
    top = out["b"]["buckets"][0]["cheapest"]["hits"]
    hp_prices = sorted(r["price"] for r in CORPUS if r["brand"] == "HP")
    assert top["total"] == {"value": len(hp_prices), "relation": "eq"}
    assert [h["_source"] for h in top["hits"]] == [{"price": p} for p in hp_prices[:2]]


def test_composite_pages_with_after(search: Any) -> None:
    def page(after: dict[str, Any] | None) -> dict[str, Any]:
        spec: dict[str, Any] = {"size": 2, "sources": [{"brand": {"terms": {"field": "brand"}}}]}
        if after:
            spec["after"] = after
        return aggs_of(search, {"c": {"composite": spec}})["c"]

    seen: list[tuple[str, int]] = []
    after = None
    while True:
        out = page(after)
        if not out["buckets"]:
            assert "after_key" not in out
            break
        seen += [(b["key"]["brand"], b["doc_count"]) for b in out["buckets"]]
        after = out["after_key"]
    assert seen == sorted(brand_counts(CORPUS).items())


def test_terms_exact_at_size_one_with_many_brands(tmp_path: Path) -> None:
    rng = random.Random(7)
    brands = [f"brand{i:03d}" for i in range(300)]
    rows = [
        {"_id": str(i), "title": f"item {i}", "brand": rng.choice(brands), "price": float(i)}
        for i in range(3000)
    ]
    rows += [{"_id": f"x{i}", "title": "extra", "brand": "brand042"} for i in range(9)]
    backend, _ = build_index(tmp_path, rows, dims=0)
    truth = brand_counts(rows)
    best = sorted(truth.items(), key=lambda kv: (-kv[1], kv[0]))
    out = backend.search(
        "products", {"size": 0, "aggs": {"b": {"terms": {"field": "brand", "size": 1}}}}
    )["aggregations"]["b"]
    assert [(b["key"], b["doc_count"]) for b in out["buckets"]] == best[:1]
    assert out["sum_other_doc_count"] == len(rows) - best[0][1]


def test_dates_are_mapped_and_histogrammed(tmp_path: Path) -> None:
    from shoprank.indexing.mapping import product_mapping
    from shoprank.plugin.backends.embedded.backend import EmbeddedBackend

    rows = [
        {"_id": "1", "title": "a", "date_released": "2006-07-01T00:00:00Z"},
        {"_id": "2", "title": "b", "date_released": "2006-07-15T10:00:00Z"},
        {"_id": "3", "title": "c", "date_released": "2006-09-02T00:00:00Z"},
        {"_id": "4", "title": "d"},
    ]
    mapping = product_mapping(text_dims=0, docs=rows)
    assert mapping["properties"]["date_released"] == {"type": "date"}
    backend = EmbeddedBackend(tmp_path)
    gen = backend.create_generation("products", mapping)
    backend.bulk_upsert(gen, rows, None)
    backend.commit(gen, ready=True)
    backend.swap_alias("products", gen)
    out = backend.search(
        "products",
        {
            "size": 0,
            "aggs": {
                "m": {
                    "date_histogram": {
                        "field": "date_released",
                        "calendar_interval": "month",
                        "format": "yyyy-MM",
                    }
                }
            },
        },
    )["aggregations"]["m"]["buckets"]
    assert [(b["key_as_string"], b["doc_count"]) for b in out] == [
        ("2006-07", 2),
        ("2006-08", 0),
        ("2006-09", 1),
    ]
    assert out[0]["key"] == 1151712000000  # 2006-07-01T00:00:00Z in epoch ms


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("terms", {"field": "brand", "script": "x"}),
        ("terms", {"field": "brand", "show_term_doc_count_error": True}),
        ("range", {"field": "price", "ranges": [{"to": 5}], "format": "0.0"}),
        ("histogram", {"field": "price", "interval": 10, "hard_bounds": {}}),
        ("date_histogram", {"field": "price", "fixed_interval": "1d", "keyed": True}),
        ("filters", {"filters": {}, "keyed": False}),
        ("missing", {"field": "colour", "value_type": "string"}),
        ("composite", {"sources": [{"b": {"terms": {"field": "brand"}}}], "bogus": 1}),
        ("cardinality", {"field": "brand", "missing": "x"}),
        ("top_hits", {"size": 1, "highlight": {}}),
        ("avg", {"field": "price", "missing": 0}),
    ],
)
def test_unknown_options_are_400s_naming_them(search: Any, kind: str, body: dict[str, Any]) -> None:
    known = {"field", "ranges", "interval", "fixed_interval", "filters", "sources", "size"}
    option = next(k for k in body if k not in known)
    with pytest.raises(UnsupportedQueryError) as err:
        aggs_of(search, {"x": {kind: body}})
    assert f"[{option}]" in err.value.reason
    assert err.value.status == 400


def test_composite_source_option_and_regex_operator_are_400s(search: Any) -> None:
    with pytest.raises(UnsupportedQueryError, match="format"):
        aggs_of(
            search,
            {"c": {"composite": {"sources": [{"b": {"terms": {"field": "brand", "format": 1}}}]}}},
        )
    with pytest.raises(UnsupportedQueryError):
        aggs_of(search, {"b": {"terms": {"field": "brand", "include": "H~P"}}})
    with pytest.raises(BadRequestError):
        aggs_of(search, {"b": {"terms": {"field": "brand", "include": "[HP"}}})
