"""Every construct of the search DSL, as the Elasticsearch specification names them, is either
supported by the embedded backend or refused with a clean 400 that names it: never a 500,
never a 200 that silently ignores it.

The names come from ../shared/specs (the `_search` body's keys, the query container's query
types, the aggregation container's aggregation types); the bodies are this file's, one
minimal valid body per name, sent through the real HTTP app to the embedded backend over the
shared 8-product corpus (tests/unit/conftest.py). A 200 must show the construct's effect:
the ids a query matches, counted by hand from the corpus table, or a check on the response.
A name with no expected answer (geo, scripts, joins, ...) must be refused.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from tests.unit._apps import make_client
from tests.unit.conftest import CORPUS, CORPUS_VECTORS, build_index

from .specs import ES_SPEC

ALL = {str(d["_id"]) for d in CORPUS}
Check = Callable[[dict[str, Any], TestClient], None]


def spec_names() -> tuple[list[str], list[str], list[str]]:
    if not ES_SPEC.exists():
        return [], [], []
    schemas = orjson.loads(ES_SPEC.read_bytes())["components"]["schemas"]
    body = sorted(schemas["_global.search._types.SearchRequestBody"]["properties"])
    queries = sorted(schemas["_types.query_dsl.QueryContainer"]["properties"])
    aggs_schema = schemas["_types.aggregations.AggregationContainer"]
    aggs = sorted(
        name
        for part in aggs_schema.get("allOf", [aggs_schema])
        for name in part.get("properties", {})
        if name not in ("aggregations", "meta")
    )
    return body, queries, aggs


BODY_KEYS, QUERY_TYPES, AGG_TYPES = spec_names()
pytestmark = pytest.mark.skipif(
    not ES_SPEC.exists(), reason=f"the API specifications are missing ({ES_SPEC})"
)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("dsl-coverage")
    backend, _ = build_index(root / "index", CORPUS, CORPUS_VECTORS)
    with make_client(root, backend, default_mode="lexical") as test_client:
        yield test_client


def search(client: TestClient, body: dict[str, Any], path: str = "/products/_search") -> Any:
    return client.post(path, json=body)


def ids(resp: dict[str, Any]) -> set[str]:
    return {h["_id"] for h in resp["hits"]["hits"]}


def first_id(resp: dict[str, Any]) -> str:
    return str(resp["hits"]["hits"][0]["_id"])


# --- queries: name -> (query, the ids it matches in Elasticsearch, or None: must be refused) --
LAPTOPS = {"1", "3", "5"}
HP = {"1", "2", "7"}
QUERIES: dict[str, tuple[dict[str, Any], set[str] | None]] = {
    "bool": (
        {
            "bool": {
                "must": [{"match": {"title": "laptop"}}],
                "must_not": [{"term": {"brand": "Dell"}}],
            }
        },
        {"1", "5"},
    ),
    "boosting": (
        {
            "boosting": {
                "positive": {"match": {"title": "laptop"}},
                "negative": {"term": {"brand": "HP"}},
                "negative_boost": 0.5,
            }
        },
        LAPTOPS,
    ),
    "combined_fields": (
        {
            "combined_fields": {
                "query": "hp mouse",
                "fields": ["title", "brand.text"],
                "operator": "and",
            }
        },
        {"2"},
    ),
    "common": ({"common": {"title": {"query": "laptop"}}}, None),
    "constant_score": ({"constant_score": {"filter": {"term": {"brand": "HP"}}}}, HP),
    "dis_max": (
        {"dis_max": {"queries": [{"term": {"brand": "Dell"}}, {"term": {"brand": "Apple"}}]}},
        {"3", "4", "6"},
    ),
    "distance_feature": (
        {"distance_feature": {"field": "price", "origin": 50, "pivot": 10}},
        None,
    ),
    "exists": ({"exists": {"field": "rating"}}, ALL - {"6"}),
    "function_score": (
        {
            "function_score": {
                "query": {"term": {"brand": "HP"}},
                "field_value_factor": {"field": "price"},
            }
        },
        HP,
    ),
    "fuzzy": ({"fuzzy": {"title": {"value": "laptp"}}}, LAPTOPS),
    "geo_bounding_box": (
        {"geo_bounding_box": {"loc": {"top_left": [0, 1], "bottom_right": [1, 0]}}},
        None,
    ),
    "geo_distance": ({"geo_distance": {"distance": "1km", "loc": [0, 0]}}, None),
    "geo_grid": ({"geo_grid": {"loc": {"geotile": "6/32/22"}}}, None),
    "geo_polygon": ({"geo_polygon": {"loc": {"points": [[0, 0], [0, 1], [1, 1]]}}}, None),
    "geo_shape": (
        {"geo_shape": {"loc": {"shape": {"type": "point", "coordinates": [0, 0]}}}},
        None,
    ),
    "has_child": ({"has_child": {"type": "review", "query": {"match_all": {}}}}, None),
    "has_parent": ({"has_parent": {"parent_type": "shop", "query": {"match_all": {}}}}, None),
    "ids": ({"ids": {"values": ["2", "4"]}}, {"2", "4"}),
    "intervals": (
        {"intervals": {"title": {"match": {"query": "wireless mouse", "ordered": True}}}},
        {"2", "4"},
    ),
    "knn": (
        {"knn": {"field": "text_vector", "query_vector": [1.0, 0.0, 0.0, 0.0], "k": 2}},
        {"1", "3"},
    ),
    "match": ({"match": {"title": "laptop"}}, LAPTOPS),
    "match_all": ({"match_all": {}}, ALL),
    "match_bool_prefix": ({"match_bool_prefix": {"title": "wireless mou"}}, {"2", "4", "8"}),
    "match_none": ({"match_none": {}}, set()),
    "match_phrase": ({"match_phrase": {"title": "wireless mouse"}}, {"2"}),
    "match_phrase_prefix": ({"match_phrase_prefix": {"title": "wireless mo"}}, {"2"}),
    "more_like_this": (
        {"more_like_this": {"fields": ["title"], "like": "laptop", "min_term_freq": 1}},
        None,
    ),
    "multi_match": (
        {"multi_match": {"query": "logitech", "fields": ["title", "brand.text"]}},
        {"8"},
    ),
    "nested": ({"nested": {"path": "offers", "query": {"match_all": {}}}}, None),
    "parent_id": ({"parent_id": {"type": "review", "id": "1"}}, None),
    "percolate": ({"percolate": {"field": "query", "document": {"title": "x"}}}, None),
    "pinned": (
        {"pinned": {"ids": ["6"], "organic": {"match": {"title": "laptop"}}}},
        LAPTOPS | {"6"},
    ),
    "prefix": ({"prefix": {"brand": {"value": "L"}}}, {"5", "8"}),
    "query_string": ({"query_string": {"query": "title:mouse AND brand:HP"}}, {"2"}),
    "range": ({"range": {"price": {"gte": 50}}}, {"3", "5", "6", "8"}),
    "rank_feature": ({"rank_feature": {"field": "rating"}}, None),
    "regexp": ({"regexp": {"brand": {"value": "D.*"}}}, {"3", "4"}),
    "rule": (
        {"rule": {"ruleset_ids": ["r"], "match_criteria": {}, "organic": {"match_all": {}}}},
        None,
    ),
    "script": ({"script": {"script": {"source": "true"}}}, None),
    "script_score": (
        {"script_score": {"query": {"match_all": {}}, "script": {"source": "1"}}},
        None,
    ),
    "semantic": ({"semantic": {"field": "title", "query": "laptop"}}, None),
    "shape": ({"shape": {"loc": {"shape": {"type": "point", "coordinates": [0, 0]}}}}, None),
    "simple_query_string": (
        {"simple_query_string": {"query": "laptop + silver", "fields": ["title"]}},
        {"3"},
    ),
    "span_containing": (
        {
            "span_containing": {
                "little": {"span_term": {"title": "mouse"}},
                "big": {"span_term": {"title": "mouse"}},
            }
        },
        None,
    ),
    "span_field_masking": (
        {"span_field_masking": {"query": {"span_term": {"title": "mouse"}}, "field": "title"}},
        None,
    ),
    "span_first": ({"span_first": {"match": {"span_term": {"title": "hp"}}, "end": 1}}, None),
    "span_multi": ({"span_multi": {"match": {"prefix": {"title": {"value": "mou"}}}}}, None),
    "span_near": (
        {"span_near": {"clauses": [{"span_term": {"title": "wireless"}}], "slop": 0}},
        None,
    ),
    "span_not": (
        {
            "span_not": {
                "include": {"span_term": {"title": "mouse"}},
                "exclude": {"span_term": {"title": "hp"}},
            }
        },
        None,
    ),
    "span_or": ({"span_or": {"clauses": [{"span_term": {"title": "mouse"}}]}}, None),
    "span_term": ({"span_term": {"title": "mouse"}}, None),
    "span_within": (
        {
            "span_within": {
                "little": {"span_term": {"title": "mouse"}},
                "big": {"span_term": {"title": "mouse"}},
            }
        },
        None,
    ),
    "sparse_vector": ({"sparse_vector": {"field": "tokens", "query_vector": {"a": 1.0}}}, None),
    "term": ({"term": {"brand": "HP"}}, HP),
    "terms": ({"terms": {"brand": ["Dell", "Apple"]}}, {"3", "4", "6"}),
    "terms_set": (
        {"terms_set": {"brand": {"terms": ["HP"], "minimum_should_match_field": "rating"}}},
        None,
    ),
    "text_expansion": (
        {"text_expansion": {"tokens": {"model_id": "elser", "model_text": "laptop"}}},
        None,
    ),
    "type": ({"type": {"value": "_doc"}}, None),
    "weighted_tokens": ({"weighted_tokens": {"tokens": {"tokens": {"a": 1.0}}}}, None),
    "wildcard": ({"wildcard": {"brand": {"value": "L*"}}}, {"5", "8"}),
    "wrapper": (
        {"wrapper": {"query": base64.b64encode(b'{"term": {"brand": "HP"}}').decode()}},
        None,
    ),
}


def expect(condition: bool, resp: Any) -> None:
    assert condition, json.dumps(resp)[:800]


def agg_value(name: str, key: str, expected: Any) -> Check:
    def check(resp: dict[str, Any], _: TestClient) -> None:
        assert resp["aggregations"][name][key] == pytest.approx(expected), resp["aggregations"]

    return check


def buckets(name: str, expected: dict[Any, int]) -> Check:
    def check(resp: dict[str, Any], _: TestClient) -> None:
        raw = resp["aggregations"][name]["buckets"]
        got = (
            {k: v["doc_count"] for k, v in raw.items()}
            if isinstance(raw, dict)
            else {
                json.dumps(b["key"], sort_keys=True) if isinstance(b["key"], dict) else b["key"]: b[
                    "doc_count"
                ]
                for b in raw
            }
        )
        assert got == expected, raw

    return check


def present(name: str) -> Check:
    def check(resp: dict[str, Any], _: TestClient) -> None:
        assert name in resp.get("aggregations", {}), resp.get("aggregations")

    return check


BY_BRAND = {"by_brand": {"terms": {"field": "brand"}, "aggs": {"p": {"sum": {"field": "price"}}}}}
HISTO = {"histogram": {"field": "price", "interval": 50}}


def pipeline(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {**BY_BRAND, "x": {kind: spec}}


def parent_pipeline(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "h": {**HISTO, "aggs": {"p": {"sum": {"field": "price"}}, "x": {kind: spec}}},
    }


# --- aggregations: name -> (the aggs object, a check, or None: must be refused) ---------------
SUM = 445.0
AGGS: dict[str, tuple[dict[str, Any], Check | None]] = {
    "adjacency_matrix": (
        {"x": {"adjacency_matrix": {"filters": {"hp": {"term": {"brand": "HP"}}}}}},
        present("x"),
    ),
    "auto_date_histogram": ({"x": {"auto_date_histogram": {"field": "price", "buckets": 2}}}, None),
    "avg": ({"x": {"avg": {"field": "price"}}}, agg_value("x", "value", SUM / 8)),
    "avg_bucket": (pipeline("avg_bucket", {"buckets_path": "by_brand>p"}), present("x")),
    "boxplot": ({"x": {"boxplot": {"field": "price"}}}, present("x")),
    "bucket_correlation": (
        pipeline(
            "bucket_correlation",
            {
                "buckets_path": "by_brand>_count",
                "function": {
                    "count_correlation": {"indicator": {"doc_count": 8, "expectations": [1, 2]}}
                },
            },
        ),
        None,
    ),
    "bucket_count_ks_test": (
        pipeline("bucket_count_ks_test", {"buckets_path": "by_brand>_count"}),
        None,
    ),
    "bucket_script": (
        parent_pipeline("bucket_script", {"buckets_path": {"a": "p"}, "script": "params.a"}),
        None,
    ),
    "bucket_selector": (
        parent_pipeline("bucket_selector", {"buckets_path": {"a": "p"}, "script": "params.a > 0"}),
        None,
    ),
    "bucket_sort": (parent_pipeline("bucket_sort", {"size": 1}), present("h")),
    "cardinality": ({"x": {"cardinality": {"field": "brand"}}}, agg_value("x", "value", 5)),
    "cartesian_bounds": ({"x": {"cartesian_bounds": {"field": "loc"}}}, None),
    "cartesian_centroid": ({"x": {"cartesian_centroid": {"field": "loc"}}}, None),
    "categorize_text": ({"x": {"categorize_text": {"field": "title"}}}, None),
    "change_point": (pipeline("change_point", {"buckets_path": "by_brand>p"}), None),
    "children": ({"x": {"children": {"type": "review"}}}, None),
    "composite": (
        {"x": {"composite": {"sources": [{"b": {"terms": {"field": "brand"}}}]}}},
        buckets(
            "x",
            {
                json.dumps({"b": k}): n
                for k, n in {"Apple": 1, "Dell": 2, "HP": 3, "Lenovo": 1, "Logitech": 1}.items()
            },
        ),
    ),
    "cumulative_cardinality": (
        parent_pipeline("cumulative_cardinality", {"buckets_path": "p"}),
        None,
    ),
    "cumulative_sum": (parent_pipeline("cumulative_sum", {"buckets_path": "p"}), present("h")),
    "date_histogram": (
        {"x": {"date_histogram": {"field": "price", "calendar_interval": "month"}}},
        present("x"),
    ),
    "date_range": (
        {"x": {"date_range": {"field": "release", "ranges": [{"to": "now"}]}}},
        present("x"),
    ),
    "derivative": (parent_pipeline("derivative", {"buckets_path": "p"}), present("h")),
    "diversified_sampler": (
        {
            "x": {
                "diversified_sampler": {"field": "brand"},
                "aggs": {"c": {"value_count": {"field": "price"}}},
            }
        },
        present("x"),
    ),
    "extended_stats": ({"x": {"extended_stats": {"field": "price"}}}, agg_value("x", "sum", SUM)),
    "extended_stats_bucket": (
        pipeline("extended_stats_bucket", {"buckets_path": "by_brand>p"}),
        present("x"),
    ),
    "filter": ({"x": {"filter": {"term": {"brand": "HP"}}}}, agg_value("x", "doc_count", 3)),
    "filters": (
        {
            "x": {
                "filters": {
                    "filters": {
                        "hp": {"term": {"brand": "HP"}},
                        "dell": {"term": {"brand": "Dell"}},
                    }
                }
            }
        },
        buckets("x", {"hp": 3, "dell": 2}),
    ),
    "frequent_item_sets": (
        {"x": {"frequent_item_sets": {"fields": [{"field": "brand"}, {"field": "colour"}]}}},
        None,
    ),
    "geo_bounds": ({"x": {"geo_bounds": {"field": "loc"}}}, None),
    "geo_centroid": ({"x": {"geo_centroid": {"field": "loc"}}}, None),
    "geo_distance": (
        {"x": {"geo_distance": {"field": "loc", "origin": [0, 0], "ranges": [{"to": 100}]}}},
        None,
    ),
    "geo_line": (
        {"x": {"geo_line": {"point": {"field": "loc"}, "sort": {"field": "price"}}}},
        None,
    ),
    "geohash_grid": ({"x": {"geohash_grid": {"field": "loc"}}}, None),
    "geohex_grid": ({"x": {"geohex_grid": {"field": "loc"}}}, None),
    "geotile_grid": ({"x": {"geotile_grid": {"field": "loc"}}}, None),
    "global": ({"x": {"global": {}}}, agg_value("x", "doc_count", 8)),
    "histogram": ({"x": HISTO}, buckets("x", {0.0: 4, 50.0: 3, 100.0: 1})),
    "inference": (
        pipeline("inference", {"model_id": "m", "buckets_path": {"a": "by_brand>p"}}),
        None,
    ),
    "ip_prefix": ({"x": {"ip_prefix": {"field": "ip", "prefix_length": 8}}}, None),
    "ip_range": ({"x": {"ip_range": {"field": "ip", "ranges": [{"to": "10.0.0.5"}]}}}, None),
    "line": ({"x": {"line": {"point": {"field": "loc"}, "sort": {"field": "price"}}}}, None),
    "matrix_stats": ({"x": {"matrix_stats": {"fields": ["price", "rating"]}}}, present("x")),
    "max": ({"x": {"max": {"field": "price"}}}, agg_value("x", "value", 120.0)),
    "max_bucket": (
        pipeline("max_bucket", {"buckets_path": "by_brand>p"}),
        agg_value("x", "value", 155.0),
    ),
    "median_absolute_deviation": (
        {"x": {"median_absolute_deviation": {"field": "price"}}},
        present("x"),
    ),
    "min": ({"x": {"min": {"field": "price"}}}, agg_value("x", "value", 15.0)),
    "min_bucket": (
        pipeline("min_bucket", {"buckets_path": "by_brand>p"}),
        agg_value("x", "value", 55.0),
    ),
    "missing": ({"x": {"missing": {"field": "rating"}}}, agg_value("x", "doc_count", 1)),
    "moving_avg": (parent_pipeline("moving_avg", {"buckets_path": "p"}), None),
    "moving_fn": (
        parent_pipeline(
            "moving_fn", {"buckets_path": "p", "window": 2, "script": "MovingFunctions.max(values)"}
        ),
        None,
    ),
    "moving_percentiles": (
        parent_pipeline("moving_percentiles", {"buckets_path": "p", "window": 2}),
        None,
    ),
    "multi_terms": (
        {"x": {"multi_terms": {"terms": [{"field": "brand"}, {"field": "colour"}]}}},
        present("x"),
    ),
    "nested": ({"x": {"nested": {"path": "offers"}}}, None),
    "normalize": (
        parent_pipeline("normalize", {"buckets_path": "p", "method": "percent_of_sum"}),
        present("h"),
    ),
    "parent": ({"x": {"parent": {"type": "review"}}}, None),
    "percentile_ranks": (
        {"x": {"percentile_ranks": {"field": "price", "values": [50]}}},
        present("x"),
    ),
    "percentiles": ({"x": {"percentiles": {"field": "price", "percents": [50]}}}, present("x")),
    "percentiles_bucket": (
        pipeline("percentiles_bucket", {"buckets_path": "by_brand>p"}),
        present("x"),
    ),
    "range": (
        {
            "x": {
                "range": {
                    "field": "price",
                    "ranges": [{"key": "lo", "to": 50}, {"key": "hi", "from": 50}],
                }
            }
        },
        buckets("x", {"lo": 4, "hi": 4}),
    ),
    "rare_terms": ({"x": {"rare_terms": {"field": "brand"}}}, present("x")),
    "rate": ({"x": {"rate": {"field": "price", "unit": "month"}}}, None),
    "reverse_nested": ({"x": {"reverse_nested": {}}}, None),
    "sampler": (
        {"x": {"sampler": {"shard_size": 100}, "aggs": {"c": {"value_count": {"field": "price"}}}}},
        present("x"),
    ),
    "scripted_metric": (
        {
            "x": {
                "scripted_metric": {
                    "map_script": "state.x = 1",
                    "combine_script": "1",
                    "reduce_script": "1",
                }
            }
        },
        None,
    ),
    "serial_diff": (parent_pipeline("serial_diff", {"buckets_path": "p", "lag": 1}), present("h")),
    "significant_terms": ({"x": {"significant_terms": {"field": "brand"}}}, present("x")),
    "significant_text": ({"x": {"significant_text": {"field": "title"}}}, present("x")),
    "stats": ({"x": {"stats": {"field": "price"}}}, agg_value("x", "count", 8)),
    "stats_bucket": (
        pipeline("stats_bucket", {"buckets_path": "by_brand>p"}),
        agg_value("x", "count", 5),
    ),
    "string_stats": ({"x": {"string_stats": {"field": "brand"}}}, agg_value("x", "count", 8)),
    "sum": ({"x": {"sum": {"field": "price"}}}, agg_value("x", "value", SUM)),
    "sum_bucket": (
        pipeline("sum_bucket", {"buckets_path": "by_brand>p"}),
        agg_value("x", "value", SUM),
    ),
    "t_test": (
        {"x": {"t_test": {"a": {"field": "price"}, "b": {"field": "rating"}, "type": "paired"}}},
        present("x"),
    ),
    "terms": (
        {"x": {"terms": {"field": "brand"}}},
        buckets("x", {"HP": 3, "Dell": 2, "Apple": 1, "Lenovo": 1, "Logitech": 1}),
    ),
    "time_series": ({"x": {"time_series": {}}}, None),
    "top_hits": (
        {"x": {"top_hits": {"size": 1, "sort": [{"price": "asc"}]}}},
        lambda resp, _: expect(resp["aggregations"]["x"]["hits"]["hits"][0]["_id"] == "2", resp),
    ),
    "top_metrics": (
        {"x": {"top_metrics": {"metrics": {"field": "price"}, "sort": {"rating": "desc"}}}},
        lambda resp, _: expect(
            resp["aggregations"]["x"]["top"][0]["metrics"]["price"] == 120.0, resp
        ),
    ),
    "value_count": ({"x": {"value_count": {"field": "price"}}}, agg_value("x", "value", 8)),
    "variable_width_histogram": (
        {"x": {"variable_width_histogram": {"field": "price", "buckets": 2}}},
        present("x"),
    ),
    "weighted_avg": (
        {"x": {"weighted_avg": {"value": {"field": "price"}, "weight": {"field": "rating"}}}},
        present("x"),
    ),
}


def hits_check(predicate: Callable[[list[dict[str, Any]]], bool]) -> Check:
    def check(resp: dict[str, Any], _: TestClient) -> None:
        assert predicate(resp["hits"]["hits"]), resp["hits"]

    return check


def doubled_scores(resp: dict[str, Any], client: TestClient) -> None:
    plain = search(client, {"query": {"match": {"title": "laptop"}}}).json()
    base = {h["_id"]: h["_score"] for h in plain["hits"]["hits"]}
    for hit in resp["hits"]["hits"]:
        assert hit["_score"] == pytest.approx(2 * base[hit["_id"]])


def open_pit(client: TestClient) -> dict[str, Any]:
    resp = client.post("/products/_pit?keep_alive=1m")
    if resp.status_code != 200:
        return {"pit": {"id": "not-opened", "keep_alive": "1m"}}
    return {"pit": {"id": resp.json()["id"], "keep_alive": "1m"}}


LAPTOP_QUERY = {"query": {"match": {"title": "laptop"}}}
# --- the `_search` body: key -> (a body, or a body factory; a check, or None: refuse) ---------
BODY: dict[str, tuple[dict[str, Any] | Callable[[TestClient], dict[str, Any]], Check | None]] = {
    "_source": (
        {"_source": ["title"]},
        hits_check(lambda hs: all(set(h["_source"]) == {"title"} for h in hs)),
    ),
    "aggregations": ({"aggregations": {"b": {"terms": {"field": "brand"}}}}, present("b")),
    "collapse": (
        {"collapse": {"field": "brand"}},
        hits_check(lambda hs: len(hs) == 5 and len({h["_source"]["brand"] for h in hs}) == 5),
    ),
    "docvalue_fields": (
        {"docvalue_fields": ["price"]},
        hits_check(lambda hs: all("price" in h.get("fields", {}) for h in hs)),
    ),
    "explain": ({"explain": True}, hits_check(lambda hs: all("_explanation" in h for h in hs))),
    "ext": ({"ext": {"shoprank": {"mode": "lexical"}}}, hits_check(lambda hs: len(hs) == 8)),
    "fields": (
        {"fields": ["brand"]},
        hits_check(lambda hs: all("brand" in h.get("fields", {}) for h in hs)),
    ),
    "from": ({"from": 7}, hits_check(lambda hs: len(hs) == 1)),
    "highlight": (
        {**LAPTOP_QUERY, "highlight": {"fields": {"title": {}}}},
        hits_check(lambda hs: all("<em>" in h["highlight"]["title"][0] for h in hs)),
    ),
    "indices_boost": ({**LAPTOP_QUERY, "indices_boost": [{"products": 2.0}]}, doubled_scores),
    "knn": (
        {
            "knn": {
                "field": "text_vector",
                "query_vector": [1.0, 0.0, 0.0, 0.0],
                "k": 2,
                "num_candidates": 8,
            }
        },
        hits_check(lambda hs: {h["_id"] for h in hs} == {"1", "3"}),
    ),
    "min_score": ({**LAPTOP_QUERY, "min_score": 1e9}, hits_check(lambda hs: hs == [])),
    "pit": (open_pit, hits_check(lambda hs: len(hs) == 8)),
    "post_filter": (
        {"post_filter": {"term": {"brand": "HP"}}},
        hits_check(lambda hs: {h["_id"] for h in hs} == HP),
    ),
    "profile": ({"profile": True}, lambda resp, _: expect("profile" in resp, resp)),
    "query": (
        {"query": {"term": {"brand": "Dell"}}},
        hits_check(lambda hs: {h["_id"] for h in hs} == {"3", "4"}),
    ),
    "rescore": (
        {
            **LAPTOP_QUERY,
            "rescore": {
                "window_size": 10,
                "query": {
                    "rescore_query": {"term": {"brand": "Lenovo"}},
                    "rescore_query_weight": 100,
                },
            },
        },
        hits_check(lambda hs: hs[0]["_id"] == "5"),
    ),
    "retriever": (
        {"retriever": {"standard": {"query": {"term": {"brand": "HP"}}}}},
        hits_check(lambda hs: {h["_id"] for h in hs} == HP),
    ),
    "runtime_mappings": (
        {"runtime_mappings": {"x": {"type": "long", "script": {"source": "emit(1)"}}}},
        None,
    ),
    "script_fields": ({"script_fields": {"x": {"script": {"source": "1"}}}}, None),
    "search_after": (
        {"sort": [{"price": "asc"}], "search_after": [40.0]},
        hits_check(lambda hs: [h["_source"]["price"] for h in hs] == [55.0, 60.0, 95.0, 120.0]),
    ),
    "seq_no_primary_term": (
        {"seq_no_primary_term": True},
        hits_check(lambda hs: all("_seq_no" in h and "_primary_term" in h for h in hs)),
    ),
    "size": ({"size": 2}, hits_check(lambda hs: len(hs) == 2)),
    "slice": ({"slice": {"id": 0, "max": 2}}, None),  # ES: only with scroll or a PIT
    "sort": ({"sort": [{"price": "desc"}]}, hits_check(lambda hs: hs[0]["_id"] == "3")),
    # `stats` groups only tag the request for the node's statistics: no visible effect in ES
    "stats": ({"stats": ["group1"]}, hits_check(lambda hs: len(hs) == 8)),
    "stored_fields": (
        {"stored_fields": ["_none_"]},
        hits_check(lambda hs: all("_source" not in h for h in hs)),
    ),
    "suggest": (
        {"suggest": {"s": {"text": "laptp", "term": {"field": "title"}}}},
        lambda resp, _: expect(resp["suggest"]["s"][0]["options"][0]["text"] == "laptop", resp),
    ),
    "terminate_after": (
        {"terminate_after": 2},
        lambda resp, _: expect(
            resp.get("terminated_early") is True and len(resp["hits"]["hits"]) <= 2, resp
        ),
    ),
    "timeout": ({"timeout": "10s"}, hits_check(lambda hs: len(hs) == 8)),
    "track_scores": (
        {**LAPTOP_QUERY, "sort": [{"price": "asc"}], "track_scores": True},
        hits_check(lambda hs: all(isinstance(h["_score"], float) for h in hs)),
    ),
    "track_total_hits": (
        {"track_total_hits": False},
        lambda resp, _: expect("total" not in resp["hits"], resp["hits"]),
    ),
    "version": ({"version": True}, hits_check(lambda hs: all("_version" in h for h in hs))),
}


def assert_supported_or_refused(
    client: TestClient, construct: str, body: dict[str, Any], check: Check | None
) -> None:
    resp = search(client, body)
    assert resp.status_code in (200, 400), f"{construct}: {resp.status_code} {resp.text[:500]}"
    if resp.status_code == 400:
        error = resp.json()["error"]
        named = " ".join(str(error.get(k, "")) for k in ("reason", "construct")) + " ".join(
            str(c.get("reason", "")) for c in error.get("root_cause", [])
        )
        # a construct whose minimal body needs a script may be refused for the script
        names = [construct] + (["script"] if '"script"' in json.dumps(body) else [])
        assert any(n in named for n in names), f"{construct}: the 400 does not name it: {error}"
        return
    answer = resp.json()
    assert check is not None, (
        f"{construct}: answered 200 but the embedded backend cannot support it; "
        f"refuse it with a 400 naming it (or give this table its expected answer): "
        f"{json.dumps(answer)[:400]}"
    )
    check(answer, client)


def test_the_tables_cover_the_specification() -> None:
    assert set(BODY) == set(BODY_KEYS), set(BODY_KEYS) ^ set(BODY)
    assert set(QUERIES) == set(QUERY_TYPES), set(QUERY_TYPES) ^ set(QUERIES)
    assert set(AGGS) == set(AGG_TYPES), set(AGG_TYPES) ^ set(AGGS)


@pytest.mark.parametrize("key", BODY_KEYS)
def test_search_body_key(client: TestClient, key: str) -> None:
    body, check = BODY[key]
    if callable(body):
        body = body(client)
    assert_supported_or_refused(client, key, {"size": 10, **body}, check)


@pytest.mark.parametrize("query_type", QUERY_TYPES)
def test_query_type(client: TestClient, query_type: str) -> None:
    query, expected = QUERIES[query_type]
    check: Check | None = None
    if expected is not None:
        check = hits_check(lambda hs: {h["_id"] for h in hs} == expected)
    assert_supported_or_refused(client, query_type, {"size": 10, "query": query}, check)


@pytest.mark.parametrize("agg_type", AGG_TYPES)
def test_aggregation_type(client: TestClient, agg_type: str) -> None:
    aggs, check = AGGS[agg_type]
    assert_supported_or_refused(client, agg_type, {"size": 0, "aggs": aggs}, check)
