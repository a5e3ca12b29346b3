"""Aggregations on the embedded backend, in Elasticsearch's response shape.

All expected buckets and metrics are worked out by hand from the corpus table in
`conftest.py` (prices: 40, 15, 120, 35, 95, 55, 25, 60; sum 445).
"""

from __future__ import annotations

from typing import Any

import pytest

from shoprank.errors import BadRequestError, UnsupportedQueryError

from .conftest import hit_ids, total


def aggs_of(search: Any, aggs: dict[str, Any], **body: Any) -> dict[str, Any]:
    result: dict[str, Any] = search({"size": 0, "aggs": aggs, **body})["aggregations"]
    return result


def buckets(agg: dict[str, Any]) -> list[tuple[Any, int]]:
    return [(b["key"], b["doc_count"]) for b in agg["buckets"]]


# -- terms ---------------------------------------------------------------------------------


def test_terms_counts_on_brand(search: Any) -> None:
    agg = aggs_of(search, {"brands": {"terms": {"field": "brand"}}})["brands"]
    # Count descending, ties broken by key ascending, as ES does.
    assert buckets(agg) == [("HP", 3), ("Dell", 2), ("Apple", 1), ("Lenovo", 1), ("Logitech", 1)]
    assert agg["sum_other_doc_count"] == 0
    assert agg["doc_count_error_upper_bound"] == 0


def test_terms_size_and_sum_other_doc_count(search: Any) -> None:
    agg = aggs_of(search, {"brands": {"terms": {"field": "brand", "size": 2}}})["brands"]
    assert buckets(agg) == [("HP", 3), ("Dell", 2)]
    assert agg["sum_other_doc_count"] == 3  # Apple, Lenovo, Logitech


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ({"_key": "asc"}, ["Apple", "Dell", "HP", "Lenovo", "Logitech"]),
        ({"_key": "desc"}, ["Logitech", "Lenovo", "HP", "Dell", "Apple"]),
        ([{"_count": "asc"}], ["Apple", "Lenovo", "Logitech", "Dell", "HP"]),
        ({"_count": "desc"}, ["HP", "Dell", "Apple", "Lenovo", "Logitech"]),
    ],
)
def test_terms_order(search: Any, order: Any, expected: list[str]) -> None:
    agg = aggs_of(search, {"b": {"terms": {"field": "brand", "order": order}}})["b"]
    assert [k for k, _ in buckets(agg)] == expected


def test_terms_min_doc_count(search: Any) -> None:
    agg = aggs_of(search, {"b": {"terms": {"field": "brand", "min_doc_count": 2}}})["b"]
    assert buckets(agg) == [("HP", 3), ("Dell", 2)]


def test_terms_on_unmapped_string_attribute(search: Any) -> None:
    agg = aggs_of(search, {"c": {"terms": {"field": "colour"}}})["c"]
    assert buckets(agg) == [("black", 4), ("white", 2), ("silver", 1)]  # doc 7 has none


def test_terms_on_category(search: Any) -> None:
    agg = aggs_of(search, {"c": {"terms": {"field": "category"}}})["c"]
    assert buckets(agg) == [("Accessories", 4), ("Laptops", 3), ("Printing", 1)]


def test_aggregations_key_spelled_out(search: Any) -> None:
    result = search({"size": 0, "aggregations": {"b": {"terms": {"field": "brand", "size": 1}}}})
    assert buckets(result["aggregations"]["b"]) == [("HP", 3)]


# -- range / histogram ---------------------------------------------------------------------


def test_range_buckets_with_es_keys(search: Any) -> None:
    agg = aggs_of(
        search,
        {
            "p": {
                "range": {
                    "field": "price",
                    "ranges": [{"to": 50}, {"from": 50, "to": 100}, {"from": 100}],
                }
            }
        },
    )["p"]
    assert agg["buckets"] == [
        {"key": "*-50.0", "to": 50.0, "doc_count": 4},  # 15, 25, 35, 40
        {"key": "50.0-100.0", "from": 50.0, "to": 100.0, "doc_count": 3},  # 55, 60, 95
        {"key": "100.0-*", "from": 100.0, "doc_count": 1},  # 120
    ]


def test_range_from_is_inclusive_to_is_exclusive(search: Any) -> None:
    agg = aggs_of(
        search, {"p": {"range": {"field": "price", "ranges": [{"to": 40}, {"from": 40}]}}}
    )["p"]
    assert buckets(agg) == [("*-40.0", 3), ("40.0-*", 5)]  # 40 itself goes up


def test_range_custom_keys(search: Any) -> None:
    agg = aggs_of(
        search,
        {
            "p": {
                "range": {
                    "field": "price",
                    "ranges": [{"key": "cheap", "to": 50}, {"key": "dear", "from": 50}],
                }
            }
        },
    )["p"]
    assert buckets(agg) == [("cheap", 4), ("dear", 4)]


def test_range_on_unmapped_numeric_attribute(search: Any) -> None:
    agg = aggs_of(
        search, {"r": {"range": {"field": "rating", "ranges": [{"to": 4}, {"from": 4}]}}}
    )["r"]
    # 3.9, 3.0 below 4; 4.5, 4.8, 4.1, 4.0, 4.7 from 4; doc 6 has no rating.
    assert buckets(agg) == [("*-4.0", 2), ("4.0-*", 5)]


def test_range_buckets_keep_their_own_key_when_ranges_are_unsorted(search: Any) -> None:
    agg = aggs_of(
        search,
        {
            "p": {
                "range": {
                    "field": "price",
                    "ranges": [{"from": 100}, {"to": 50}, {"from": 50, "to": 100}],
                }
            }
        },
    )["p"]
    by_key = {b["key"]: b for b in agg["buckets"]}
    assert set(by_key) == {"*-50.0", "50.0-100.0", "100.0-*"}
    assert by_key["*-50.0"]["doc_count"] == 4 and by_key["*-50.0"]["to"] == 50.0
    assert by_key["100.0-*"]["doc_count"] == 1 and by_key["100.0-*"]["from"] == 100.0


def test_histogram_buckets(search: Any) -> None:
    agg = aggs_of(search, {"h": {"histogram": {"field": "price", "interval": 50}}})["h"]
    assert buckets(agg) == [(0.0, 4), (50.0, 3), (100.0, 1)]
    # 15 | 25 35 40 | 55 60 | 95 | 120
    agg = aggs_of(search, {"h": {"histogram": {"field": "price", "interval": 25}}})["h"]
    assert buckets(agg) == [(0.0, 1), (25.0, 3), (50.0, 2), (75.0, 1), (100.0, 1)]


def test_histogram_fills_empty_buckets_between_values(search: Any) -> None:
    agg = aggs_of(
        search,
        {"h": {"histogram": {"field": "price", "interval": 50}}},
        query={"ids": {"values": ["2", "3"]}},
    )["h"]  # 15 and 120
    assert buckets(agg) == [(0.0, 1), (50.0, 0), (100.0, 1)]
    agg = aggs_of(
        search,
        {"h": {"histogram": {"field": "price", "interval": 50, "min_doc_count": 1}}},
        query={"ids": {"values": ["2", "3"]}},
    )["h"]
    assert buckets(agg) == [(0.0, 1), (100.0, 1)]


def test_histogram_extended_bounds(search: Any) -> None:
    agg = aggs_of(
        search,
        {
            "h": {
                "histogram": {
                    "field": "price",
                    "interval": 50,
                    "extended_bounds": {"min": 0, "max": 200},
                }
            }
        },
        query={"term": {"brand": "HP"}},
    )["h"]  # 15, 25, 40
    assert buckets(agg) == [(0.0, 3), (50.0, 0), (100.0, 0), (150.0, 0), (200.0, 0)]


# -- metrics -------------------------------------------------------------------------------


def test_stats(search: Any) -> None:
    stats = aggs_of(search, {"s": {"stats": {"field": "price"}}})["s"]
    assert stats == {
        "count": 8,
        "min": 15.0,
        "max": 120.0,
        "avg": pytest.approx(55.625),
        "sum": 445.0,
    }


def test_single_value_metrics(search: Any) -> None:
    result = aggs_of(
        search,
        {
            "lo": {"min": {"field": "price"}},
            "hi": {"max": {"field": "price"}},
            "mean": {"avg": {"field": "price"}},
            "total": {"sum": {"field": "price"}},
            "n": {"value_count": {"field": "price"}},
            "brands": {"value_count": {"field": "brand"}},
            "rated": {"value_count": {"field": "rating"}},
        },
    )
    assert result["lo"] == {"value": 15.0}
    assert result["hi"] == {"value": 120.0}
    assert result["mean"] == {"value": pytest.approx(55.625)}
    assert result["total"] == {"value": 445.0}
    assert result["n"] == {"value": 8}
    assert result["brands"] == {"value": 8}
    assert result["rated"] == {"value": 7}  # doc 6 has no rating


def test_avg_on_unmapped_numeric_attribute(search: Any) -> None:
    # 4.5 + 3.9 + 4.8 + 4.1 + 4.0 + 3.0 + 4.7 = 29.0 over 7 rated docs
    result = aggs_of(search, {"r": {"avg": {"field": "rating"}}})["r"]
    assert result == {"value": pytest.approx(29.0 / 7)}


def test_metrics_on_no_documents(search: Any) -> None:
    result = aggs_of(
        search,
        {
            "s": {"stats": {"field": "price"}},
            "lo": {"min": {"field": "price"}},
            "mean": {"avg": {"field": "price"}},
            "total": {"sum": {"field": "price"}},
            "n": {"value_count": {"field": "price"}},
            "b": {"terms": {"field": "brand"}},
        },
        query={"match_none": {}},
    )
    assert result["s"] == {"count": 0, "min": None, "max": None, "avg": None, "sum": 0.0}
    assert result["lo"] == {"value": None}
    assert result["mean"] == {"value": None}
    assert result["total"] == {"value": 0.0}
    assert result["n"] == {"value": 0}
    assert result["b"]["buckets"] == []


# -- sub-aggregations ----------------------------------------------------------------------


def test_stats_per_brand(search: Any) -> None:
    agg = aggs_of(
        search,
        {"brands": {"terms": {"field": "brand"}, "aggs": {"price": {"stats": {"field": "price"}}}}},
    )
    got = {b["key"]: (b["doc_count"], b["price"]) for b in agg["brands"]["buckets"]}
    assert got["HP"] == (
        3,
        {"count": 3, "min": 15.0, "max": 40.0, "avg": pytest.approx(80 / 3), "sum": 80.0},
    )
    assert got["Dell"] == (
        2,
        {"count": 2, "min": 35.0, "max": 120.0, "avg": pytest.approx(77.5), "sum": 155.0},
    )
    assert got["Lenovo"] == (
        1,
        {"count": 1, "min": 95.0, "max": 95.0, "avg": pytest.approx(95.0), "sum": 95.0},
    )
    assert set(got) == {"HP", "Dell", "Lenovo", "Apple", "Logitech"}


def test_nested_bucket_aggregations(search: Any) -> None:
    agg = aggs_of(
        search,
        {
            "brands": {
                "terms": {"field": "brand", "size": 2},
                "aggregations": {
                    "colours": {"terms": {"field": "colour"}},
                    "bands": {"range": {"field": "price", "ranges": [{"to": 50}, {"from": 50}]}},
                },
            }
        },
    )
    hp, dell = agg["brands"]["buckets"]
    assert hp["key"] == "HP" and buckets(hp["colours"]) == [("black", 2)]
    assert buckets(hp["bands"]) == [("*-50.0", 3), ("50.0-*", 0)]
    assert dell["key"] == "Dell"
    assert buckets(dell["colours"]) == [("silver", 1), ("white", 1)]
    assert buckets(dell["bands"]) == [("*-50.0", 1), ("50.0-*", 1)]


def test_metric_under_range_bucket(search: Any) -> None:
    agg = aggs_of(
        search,
        {
            "p": {
                "range": {"field": "price", "ranges": [{"to": 50}]},
                "aggs": {"mean": {"avg": {"field": "price"}}},
            }
        },
    )
    (bucket,) = agg["p"]["buckets"]
    assert bucket["doc_count"] == 4
    assert bucket["mean"] == {"value": pytest.approx((15 + 25 + 35 + 40) / 4)}


# -- aggregations follow the query, not post_filter ----------------------------------------


def test_aggregations_respect_the_query(search: Any) -> None:
    result = aggs_of(
        search,
        {"b": {"terms": {"field": "brand"}}, "s": {"stats": {"field": "price"}}},
        query={"match": {"title": "laptop"}},
    )
    assert buckets(result["b"]) == [("Dell", 1), ("HP", 1), ("Lenovo", 1)]
    assert result["s"] == {
        "count": 3,
        "min": 40.0,
        "max": 120.0,
        "avg": pytest.approx(85.0),
        "sum": 255.0,
    }


def test_aggregations_respect_bool_filters(search: Any) -> None:
    result = aggs_of(
        search,
        {"b": {"terms": {"field": "brand"}}},
        query={"bool": {"filter": [{"range": {"price": {"lt": 50}}}]}},
    )
    assert buckets(result["b"]) == [("HP", 3), ("Dell", 1)]


def test_post_filter_filters_hits_but_not_aggregations(search: Any) -> None:
    result = search(
        {
            "query": {"match_all": {}},
            "post_filter": {"term": {"brand": "HP"}},
            "aggs": {"b": {"terms": {"field": "brand"}}, "s": {"stats": {"field": "price"}}},
        }
    )
    assert sorted(hit_ids(result)) == ["1", "2", "7"] and total(result) == 3
    assert buckets(result["aggregations"]["b"]) == [
        ("HP", 3),
        ("Dell", 2),
        ("Apple", 1),
        ("Lenovo", 1),
        ("Logitech", 1),
    ]
    assert result["aggregations"]["s"]["count"] == 8


def test_aggregations_with_knn_cover_the_knn_hits(search: Any) -> None:
    knn = {"field": "text_vector", "query_vector": [1.0, 0.0, 0.0, 0.0], "k": 3}
    only_knn = aggs_of(search, {"b": {"terms": {"field": "brand"}}}, knn=knn)  # docs 1, 3, 5
    assert buckets(only_knn["b"]) == [("Dell", 1), ("HP", 1), ("Lenovo", 1)]
    union = aggs_of(
        search, {"b": {"terms": {"field": "brand"}}}, knn=knn, query={"match": {"title": "mouse"}}
    )  # + docs 2, 4, 8
    assert buckets(union["b"]) == [("Dell", 2), ("HP", 2), ("Lenovo", 1), ("Logitech", 1)]


def test_post_filter_with_knn_does_not_filter_aggregations(search: Any) -> None:
    knn = {"field": "text_vector", "query_vector": [1.0, 0.0, 0.0, 0.0], "k": 3}
    result = search(
        {
            "knn": knn,
            "post_filter": {"term": {"brand": "HP"}},
            "aggs": {"b": {"terms": {"field": "brand"}}},
        }
    )
    assert hit_ids(result) == ["1"]  # the kNN top 3 are 1, 3, 5; only doc 1 is HP
    assert buckets(result["aggregations"]["b"]) == [("Dell", 1), ("HP", 1), ("Lenovo", 1)]


def test_no_aggregations_key_without_aggs(search: Any) -> None:
    assert "aggregations" not in search({})


# -- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["title", "description", "brand.text"])
def test_terms_on_text_field_is_illegal_argument(search: Any, field: str) -> None:
    with pytest.raises(BadRequestError) as err:
        aggs_of(search, {"t": {"terms": {"field": field}}})
    es = err.value.to_es_body()
    assert es["status"] == 400
    assert es["error"]["type"] == "illegal_argument_exception"
    assert field in es["error"]["reason"]


@pytest.mark.parametrize(
    "kind", ["significant_terms", "percentiles", "date_range", "scripted_metric", "nested"]
)
def test_unsupported_aggregation_type_names_it(search: Any, kind: str) -> None:
    with pytest.raises(UnsupportedQueryError) as err:
        aggs_of(search, {"x": {kind: {"field": "brand"}}})
    es = err.value.to_es_body()
    assert es["status"] == 400
    assert es["error"]["construct"] == kind
    assert f"[{kind}]" in es["error"]["reason"]


def test_unsupported_sub_aggregation_is_not_ignored(search: Any) -> None:
    with pytest.raises(UnsupportedQueryError) as err:
        aggs_of(
            search,
            {
                "b": {
                    "terms": {"field": "brand"},
                    "aggs": {"u": {"percentiles": {"field": "price"}}},
                }
            },
        )
    assert err.value.to_es_body()["error"]["construct"] == "percentiles"


def test_terms_order_on_sub_aggregation(search: Any) -> None:
    agg = aggs_of(
        search,
        {
            "b": {
                "terms": {"field": "brand", "order": {"price.avg": "desc"}},
                "aggs": {"price": {"stats": {"field": "price"}}},
            }
        },
    )["b"]
    # Mean prices: Lenovo 95, Dell (120+35)/2, Logitech 60, Apple 55, HP (40+15+25)/3.
    assert [b["key"] for b in agg["buckets"]] == ["Lenovo", "Dell", "Logitech", "Apple", "HP"]


@pytest.mark.parametrize(
    "aggs",
    [
        {"x": "terms"},
        {"x": {}},
        {"x": {"terms": {"field": "brand"}, "avg": {"field": "price"}}},
        {"x": {"terms": "brand"}},
        {"x": {"terms": {}}},
        {"x": {"terms": {"field": "brand", "size": 0}}},
        {"x": {"terms": {"field": "brand", "order": {"_count": "up"}}}},
        {"x": {"stats": {"field": "brand"}}},
        {"x": {"avg": {"field": "brand"}}},
        {"x": {"terms": {"field": "text_vector"}}},
        {"x": {"terms": {"field": "image"}}},  # keyword with index: false
        {"x": {"range": {"field": "price"}}},
        {"x": {"range": {"field": "price", "ranges": []}}},
        {"x": {"range": {"field": "brand", "ranges": [{"to": 5}]}}},
        {"x": {"histogram": {"field": "price"}}},
        {"x": {"histogram": {"field": "price", "interval": 0}}},
        {"x": {"histogram": {"field": "price", "interval": "10"}}},
        {"x": {"avg": {"field": "price"}, "aggs": {"y": {"max": {"field": "price"}}}}},
        {"x": {"terms": {"field": "brand"}, "aggs": "y"}},
    ],
)
def test_malformed_aggregations_are_bad_requests(search: Any, aggs: dict[str, Any]) -> None:
    with pytest.raises(BadRequestError) as err:
        aggs_of(search, aggs)
    assert err.value.status == 400


@pytest.mark.parametrize(
    "aggs",
    [
        pytest.param({"x": {"terms": {"field": "brand", "size": "ten"}}}, id="terms-size-string"),
        pytest.param(
            {"x": {"terms": {"field": "brand", "min_doc_count": "x"}}},
            id="terms-min_doc_count-string",
        ),
        pytest.param(
            {"x": {"range": {"field": "price", "ranges": [{"from": "x"}]}}}, id="range-from-string"
        ),
        pytest.param(
            {"x": {"range": {"field": "price", "ranges": ["0-50"]}}}, id="range-entry-string"
        ),
        pytest.param(
            {"x": {"histogram": {"field": "price", "interval": 10, "extended_bounds": {"min": 0}}}},
            id="histogram-extended_bounds-without-max",
        ),
        pytest.param(
            {"x": {"histogram": {"field": "price", "interval": 10, "offset": "x"}}},
            id="histogram-offset-string",
        ),
    ],
)
def test_malformed_aggregation_values_escaping_as_other_exceptions(
    search: Any, aggs: dict[str, Any]
) -> None:
    with pytest.raises(BadRequestError):
        aggs_of(search, aggs)
