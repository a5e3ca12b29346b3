"""Range facets the way frontends send them: overlapping `range` aggregations, Search UI's
`filters` of `range` clauses (inclusive bounds, open ends), and multi-valued numbers.

Expected counts are computed in the test from the rows it indexed.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from .conftest import build_index


def _rows() -> list[dict[str, Any]]:
    rng = random.Random(11)
    rows: list[dict[str, Any]] = []
    for i in range(400):
        row: dict[str, Any] = {"_id": str(i), "title": f"cable {i % 7}", "brand": f"b{i % 5}"}
        if i % 13:
            # Whole numbers land exactly on the facet bounds, so inclusive/exclusive matters.
            row["price"] = float(rng.choice([0, 10, 25, 50, 99, 100, 100.5, 250, 1000]))
        rows.append(row)
    return rows


def _multi_rows() -> list[dict[str, Any]]:
    # One product, several values: a document counts once per bucket however many of its
    # values fall in it.
    return [
        {"_id": "m1", "title": "kit", "attr_n_watts": [5.0, 15.0, 150.0]},
        {"_id": "m2", "title": "kit", "attr_n_watts": [15.0, 16.0]},
        {"_id": "m3", "title": "kit", "attr_n_watts": 500.0},
        {"_id": "m4", "title": "kit"},
    ]


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    return _rows()


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory, rows: list[dict[str, Any]]) -> Any:
    backend, _ = build_index(tmp_path_factory.mktemp("ranges"), rows + _multi_rows(), dims=0)
    return backend


def _aggs(backend: Any, aggs: dict[str, Any], query: dict[str, Any] | None = None) -> Any:
    body: dict[str, Any] = {"size": 0, "aggs": aggs}
    if query is not None:
        body["query"] = query
    return backend.search("products", body)["aggregations"]


def _in(value: float, lo: float | None, hi: float | None, *, inclusive_hi: bool) -> bool:
    if lo is not None and value < lo:
        return False
    return not (hi is not None and (value > hi if inclusive_hi else value >= hi))


def test_overlapping_range_buckets_are_counted_like_es(
    backend: Any, rows: list[dict[str, Any]]
) -> None:
    ranges = [
        {"to": 100},
        {"from": 0, "to": 50},
        {"from": 25, "to": 250},
        {"from": 100},
        {"from": 50, "to": 100.5},
    ]
    got = _aggs(backend, {"p": {"range": {"field": "price", "ranges": ranges}}})["p"]["buckets"]
    prices = [r["price"] for r in rows if "price" in r]
    expected = [
        sum(_in(p, r.get("from"), r.get("to"), inclusive_hi=False) for p in prices) for r in ranges
    ]
    assert [b["doc_count"] for b in got] == expected
    # Every overlapping pair really overlaps here, so this is not the disjoint case.
    assert sum(expected) > len(prices)


def test_overlapping_ranges_respect_the_query(backend: Any, rows: list[dict[str, Any]]) -> None:
    ranges = [{"to": 100}, {"from": 50}, {"from": 10, "to": 1000}]
    got = _aggs(
        backend,
        {"p": {"range": {"field": "price", "ranges": ranges, "keyed": True}}},
        {"term": {"brand": "b2"}},
    )["p"]["buckets"]
    prices = [r["price"] for r in rows if "price" in r and r["brand"] == "b2"]
    expected = [
        sum(_in(p, r.get("from"), r.get("to"), inclusive_hi=False) for p in prices) for r in ranges
    ]
    assert [b["doc_count"] for b in got.values()] == expected


def test_search_ui_range_filters_facet_counts(backend: Any, rows: list[dict[str, Any]]) -> None:
    # Search UI's stock range facet: a `filters` aggregation of inclusive `range` clauses that
    # touch at their bounds, plus an open top range.
    bounds = [(0, 50), (50, 100), (100, 500), (500, None)]
    filters = {
        f"{lo}-{hi}": {"range": {"price": {"gte": lo, **({"lte": hi} if hi is not None else {})}}}
        for lo, hi in bounds
    }
    got = _aggs(backend, {"price": {"filters": {"filters": filters}}})["price"]["buckets"]
    prices = [r["price"] for r in rows if "price" in r]
    expected = {
        f"{lo}-{hi}": sum(_in(p, lo, hi, inclusive_hi=True) for p in prices) for lo, hi in bounds
    }
    assert {k: v["doc_count"] for k, v in got.items()} == expected
    assert list(got) == list(expected)


@pytest.mark.parametrize(
    "clause",
    [
        {"gt": 50, "lt": 250},
        {"gt": 10},
        {"lte": 25},
        {"gte": 100, "lt": 100.5},
        {"gte": 100.5, "lte": 100.5},
    ],
)
def test_range_filters_match_the_same_range_as_a_query(backend: Any, clause: Any) -> None:
    # The facet fast path must count exactly what the same range clause matches as a query.
    facet = _aggs(backend, {"f": {"filters": {"filters": {"x": {"range": {"price": clause}}}}}})
    as_query = backend.search("products", {"size": 0, "query": {"range": {"price": clause}}})
    assert facet["f"]["buckets"]["x"]["doc_count"] == as_query["hits"]["total"]["value"]


def test_multi_valued_numbers_count_each_document_once(backend: Any) -> None:
    got = _aggs(
        backend,
        {
            "r": {
                "range": {
                    "field": "attr_n_watts",
                    "ranges": [{"to": 20}, {"from": 10, "to": 200}, {"from": 100}],
                }
            },
            "f": {
                "filters": {
                    "filters": {
                        "low": {"range": {"attr_n_watts": {"lte": 16}}},
                        "high": {"range": {"attr_n_watts": {"gte": 16}}},
                    }
                }
            },
        },
    )
    # m1 {5,15,150}, m2 {15,16}, m3 {500}
    assert [b["doc_count"] for b in got["r"]["buckets"]] == [2, 2, 2]
    assert got["f"]["buckets"]["low"]["doc_count"] == 2
    assert got["f"]["buckets"]["high"]["doc_count"] == 3


def test_filters_mixing_range_and_term_clauses(backend: Any, rows: list[dict[str, Any]]) -> None:
    # Not all-range: the generic path; counts still exact.
    got = _aggs(
        backend,
        {
            "f": {
                "filters": {
                    "filters": {
                        "cheap": {"range": {"price": {"lt": 50}}},
                        "b1": {"term": {"brand": "b1"}},
                    }
                }
            }
        },
    )["f"]["buckets"]
    assert got["cheap"]["doc_count"] == sum(1 for r in rows if r.get("price", 1e9) < 50)
    assert got["b1"]["doc_count"] == sum(1 for r in rows if r["brand"] == "b1")


def test_range_agg_with_many_ranges_stays_exact(tmp_path: Path) -> None:
    rows = [{"_id": str(i), "title": "x", "price": float(i)} for i in range(200)]
    backend, _ = build_index(tmp_path, rows, dims=0)
    ranges = [{"from": i, "to": i + 30} for i in range(0, 200, 7)]
    got = _aggs(backend, {"p": {"range": {"field": "price", "ranges": ranges}}})["p"]["buckets"]
    expected = [sum(1 for i in range(200) if r["from"] <= i < r["to"]) for r in ranges]
    assert [b["doc_count"] for b in got] == expected
