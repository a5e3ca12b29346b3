"""Fusion of ranked legs (RRF, normalised linear) and the ES response-shape helpers
(`_source` filtering, `hits.total`) — values worked out by hand."""

from __future__ import annotations

import copy
import fnmatch
import random
from typing import Any

import pytest

from shoprank.errors import BadRequestError
from shoprank.plugin.fusion import FusedHit, LegHit, fuse, linear, rrf
from shoprank.plugin.shapes import (
    filter_source,
    int_param,
    search_response,
    source_wanted,
    total_hits,
)


def _leg(*items: tuple[str, float]) -> list[LegHit]:
    """Hits in rank order: (id, score) → LegHit with rank 1, 2, ..."""
    return [LegHit(hid, score, rank) for rank, (hid, score) in enumerate(items, start=1)]


def _scores(fused: list[FusedHit]) -> list[tuple[str, float]]:
    return [(h.id, h.score) for h in fused]


# -- RRF -------------------------------------------------------------------------------------


def test_rrf_scores_are_sums_of_reciprocal_ranks() -> None:
    legs = {
        "lexical": _leg(("a", 12.0), ("b", 8.0), ("c", 3.0)),
        "vector": _leg(("c", 0.9), ("d", 0.8)),
    }
    fused = rrf(legs, k=60)
    # a: 1/61; b: 1/62; c: 1/63 + 1/61; d: 1/62 (ties b: lexical seen first)
    assert [h.id for h in fused] == ["c", "a", "b", "d"]
    assert _scores(fused) == [
        ("c", pytest.approx(1 / 63 + 1 / 61)),
        ("a", pytest.approx(1 / 61)),
        ("b", pytest.approx(1 / 62)),
        ("d", pytest.approx(1 / 62)),
    ]
    assert set(fused[0].legs) == {"lexical", "vector"}
    assert fused[0].legs["lexical"].rank == 3 and fused[0].legs["vector"].rank == 1
    assert set(fused[1].legs) == {"lexical"}


def test_rrf_small_k_and_leg_ranks_not_positions() -> None:
    legs = {"lexical": [LegHit("x", 1.0, 4), LegHit("y", 1.0, 9)], "vector": [LegHit("y", 0.5, 1)]}
    fused = rrf(legs, k=1)
    # x: 1/(1+4) = 0.2; y: 1/(1+9) + 1/(1+1) = 0.6
    assert _scores(fused) == [("y", pytest.approx(0.6)), ("x", pytest.approx(0.2))]


def test_rrf_doc_in_both_legs_beats_single_leg_docs() -> None:
    legs = {"lexical": _leg(("p", 3.0), ("q", 2.0)), "vector": _leg(("r", 0.9), ("q", 0.8))}
    fused = fuse(legs, method="rrf", rrf_k=60)
    # q: 2/62 = 0.0323 > p = r = 1/61 = 0.0164, though p and r each rank first in a leg.
    assert [h.id for h in fused] == ["q", "p", "r"]
    assert fused[0].score == pytest.approx(2 / 62)


def test_rrf_ties_keep_first_seen_order_deterministically() -> None:
    a_first = {"lexical": _leg(("a", 1.0)), "vector": _leg(("b", 1.0))}
    b_first = {"vector": _leg(("b", 1.0)), "lexical": _leg(("a", 1.0))}
    assert [h.id for h in rrf(a_first)] == ["a", "b"]
    assert [h.id for h in rrf(b_first)] == ["b", "a"]
    runs = {tuple(h.id for h in fuse(a_first, method="rrf")) for _ in range(20)}
    assert runs == {("a", "b")}


def test_rrf_of_nothing_is_empty() -> None:
    assert rrf({}) == []
    assert rrf({"lexical": [], "vector": []}) == []


# -- linear ----------------------------------------------------------------------------------


def test_linear_min_max_normalisation_with_weights() -> None:
    legs = {
        "lexical": _leg(("a", 10.0), ("b", 6.0), ("c", 2.0)),
        "vector": _leg(("c", 0.9), ("d", 0.5)),
    }
    fused = linear(legs, weights={"lexical": 0.3, "vector": 0.7})
    # lexical → a 1, b 0.5, c 0; vector → c 1, d 0
    assert _scores(fused) == [
        ("c", pytest.approx(0.7)),
        ("a", pytest.approx(0.3)),
        ("b", pytest.approx(0.15)),
        ("d", pytest.approx(0.0)),
    ]


def test_linear_equal_scores_normalise_to_one_and_missing_weight_is_one() -> None:
    legs = {"lexical": _leg(("a", 5.0), ("b", 5.0)), "other": _leg(("b", 2.0), ("c", 1.0))}
    fused = linear(legs, weights={"lexical": 0.25})
    # lexical span 0 → a, b = 1 * 0.25; other (weight 1) → b 1, c 0
    assert _scores(fused) == [
        ("b", pytest.approx(1.25)),
        ("a", pytest.approx(0.25)),
        ("c", pytest.approx(0.0)),
    ]


def test_fuse_linear_uses_vector_weight() -> None:
    legs = {
        "lexical": _leg(("p", 3.0), ("q", 2.0), ("z", 1.0)),
        "vector": _leg(("r", 0.9), ("q", 0.8), ("y", 0.1)),
    }
    fused = fuse(legs, method="linear", vector_weight=0.5)
    # lexical p 1, q .5, z 0; vector r 1, q .875, y 0
    assert _scores(fused) == [
        ("q", pytest.approx(0.5 * 0.5 + 0.5 * 0.875)),
        ("p", pytest.approx(0.5)),
        ("r", pytest.approx(0.5)),
        ("z", pytest.approx(0.0)),
        ("y", pytest.approx(0.0)),
    ]
    lexical_only = fuse(legs, method="linear", vector_weight=0.0)
    assert [h.id for h in lexical_only][:2] == ["p", "q"]
    assert lexical_only[0].score == pytest.approx(1.0)
    vector_only = fuse(legs, method="linear", vector_weight=1.0)
    assert [h.id for h in vector_only][:2] == ["r", "q"]


# -- fuse: single leg ------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["rrf", "linear"])
def test_single_non_empty_leg_keeps_raw_scores(method: Any) -> None:
    legs = {"lexical": [], "vector": _leg(("x", 0.93), ("y", 0.71))}
    fused = fuse(legs, method=method)
    assert _scores(fused) == [("x", 0.93), ("y", 0.71)]
    assert list(fused[0].legs) == ["vector"] and fused[0].legs["vector"].rank == 1
    only = fuse({"lexical": _leg(("a", 7.5))}, method=method)
    assert _scores(only) == [("a", 7.5)]


@pytest.mark.parametrize("method", ["rrf", "linear"])
def test_fuse_of_empty_legs_is_empty(method: Any) -> None:
    assert fuse({"lexical": [], "vector": []}, method=method) == []
    assert fuse({}, method=method) == []


# -- _source filtering -----------------------------------------------------------------------

DOC: dict[str, Any] = {
    "id": "p1",
    "title": "Mug",
    "tags": ["kitchen", "gift"],
    "price": 9.5,
    "attrs": {"colour": "red", "size": "M", "dims": {"h": 10, "w": 8}},
}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("title", {"title": "Mug"}),
        (["title", "price"], {"title": "Mug", "price": 9.5}),
        (["t*"], {"title": "Mug", "tags": ["kitchen", "gift"]}),
        (["nope"], {}),
        (["attrs.colour"], {"attrs": {"colour": "red"}}),
        (["attrs.dims.h", "id"], {"id": "p1", "attrs": {"dims": {"h": 10}}}),
        (["attrs.*"], {"attrs": DOC["attrs"]}),
        (["attrs.d*"], {"attrs": {"dims": {"h": 10, "w": 8}}}),
        (["attrs"], {"attrs": DOC["attrs"]}),
        (
            {"includes": ["attrs"], "excludes": ["attrs.size", "attrs.dims.w"]},
            {"attrs": {"colour": "red", "dims": {"h": 10}}},
        ),
        (
            {"excludes": ["price", "attrs"]},
            {"id": "p1", "title": "Mug", "tags": ["kitchen", "gift"]},
        ),
        (
            {"excludes": "attrs.dims"},
            {
                "id": "p1",
                "title": "Mug",
                "tags": ["kitchen", "gift"],
                "price": 9.5,
                "attrs": {"colour": "red", "size": "M"},
            },
        ),
        ({"includes": ["*"], "excludes": ["t*", "id"]}, {"price": 9.5, "attrs": DOC["attrs"]}),
        ({"include": "title", "exclude": "title"}, {}),  # excludes win
        ({"includes": ["title", "attrs.colour"], "excludes": ["attrs.*"]}, {"title": "Mug"}),
    ],
)
def test_filter_source(spec: Any, expected: dict[str, Any]) -> None:
    before = copy.deepcopy(DOC)
    assert filter_source(DOC, spec) == expected
    assert before == DOC  # the stored source is never mutated


@pytest.mark.parametrize("spec", [None, True, [], {"includes": [], "excludes": []}])
def test_filter_source_whole_document(spec: Any) -> None:
    assert filter_source(DOC, spec) == DOC
    assert source_wanted(spec)


@pytest.mark.parametrize("spec", [False, {"enabled": False}])
def test_filter_source_disabled(spec: Any) -> None:
    assert filter_source(DOC, spec) is None
    assert not source_wanted(spec)


@pytest.mark.parametrize("spec", [5, [1, "title"], 1.5])
def test_filter_source_rejects_bad_specs(spec: Any) -> None:
    with pytest.raises(BadRequestError, match=r"\[_source\]"):
        filter_source(DOC, spec)


def test_filter_source_wildcard_parent_include() -> None:
    assert filter_source(DOC, ["*.colour"]) == {"attrs": {"colour": "red"}}


def test_filter_source_wildcard_parent_exclude() -> None:
    got = filter_source(DOC, {"excludes": ["*.size"]})
    assert got is not None
    assert got["attrs"] == {"colour": "red", "dims": {"h": 10, "w": 8}}


def test_filter_source_array_of_objects() -> None:
    doc = {"id": "p1", "variants": [{"sku": "a", "size": "M"}, {"sku": "b", "size": "L"}]}
    assert filter_source(doc, ["variants.sku"]) == {"variants": [{"sku": "a"}, {"sku": "b"}]}


# -- hits.total and other shapes -------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "track", "expected"),
    [
        (5, None, {"value": 5, "relation": "eq"}),
        (10_000, None, {"value": 10_000, "relation": "eq"}),
        (10_001, None, {"value": 10_000, "relation": "gte"}),
        (25_000, True, {"value": 25_000, "relation": "eq"}),
        (0, True, {"value": 0, "relation": "eq"}),
        (25_000, False, None),
        (150, 100, {"value": 100, "relation": "gte"}),
        (100, 100, {"value": 100, "relation": "eq"}),
        (3, 100, {"value": 3, "relation": "eq"}),
    ],
)
def test_total_hits(count: int, track: Any, expected: dict[str, Any] | None) -> None:
    assert total_hits(count, track) == expected


def test_search_response_shape() -> None:
    hits = [{"_id": "a", "_score": 2.0}, {"_id": "b", "_score": None}]
    body = search_response(
        took_ms=12.7,
        hits=hits,
        total={"value": 2, "relation": "eq"},
        aggregations={"x": {"value": 1}},
    )
    assert body == {
        "took": 12,
        "timed_out": False,
        "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
        "hits": {"total": {"value": 2, "relation": "eq"}, "max_score": 2.0, "hits": hits},
        "aggregations": {"x": {"value": 1}},
    }
    empty = search_response(took_ms=0, hits=[], total=None)
    assert empty["hits"] == {"max_score": None, "hits": []}
    assert "aggregations" not in empty


@pytest.mark.parametrize(
    ("body", "expected"), [({}, 10), ({"size": 3}, 3), ({"size": "4"}, 4), ({"size": None}, 10)]
)
def test_int_param(body: dict[str, Any], expected: int) -> None:
    assert int_param(body, "size", 10) == expected


@pytest.mark.parametrize("value", [-1, "x", True, 1.5, [1]])
def test_int_param_rejects(value: Any) -> None:
    with pytest.raises(BadRequestError, match=r"\[size\]"):
        int_param({"size": value}, "size", 10)


def _leaves(obj: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in obj.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_leaves(value, path + "."))
        else:
            out[path] = value
    return out


def _reference_keep(path: str, includes: list[str], excludes: list[str]) -> bool:
    """ES semantics on a leaf: a pattern matches the path or any of its ancestors."""
    parts = path.split(".")
    prefixes = [".".join(parts[: i + 1]) for i in range(len(parts))]

    def hit(patterns: list[str]) -> bool:
        return any(fnmatch.fnmatchcase(p, pat) for p in prefixes for pat in patterns)

    return (not includes or hit(includes)) and not hit(excludes)


def test_filter_source_agrees_with_leaf_semantics_on_random_documents() -> None:
    # Frontends name fields ("title", "attrs.colour"), sometimes with wildcards; stored
    # documents mix nested objects and literal dotted keys ("attrs.size": ...).
    rng = random.Random(5)
    names = ["a", "b", "c", "title", "attrs"]

    def doc(depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for _ in range(rng.randint(1, 4)):
            key = rng.choice(names)
            if rng.random() < 0.2:
                key = f"{key}.{rng.choice(names)}"  # a literal dotted key
            out[key] = doc(depth + 1) if depth < 2 and rng.random() < 0.4 else rng.randint(0, 9)
        return out

    def pattern() -> str:
        parts = [rng.choice(names + ["*", "t*"]) for _ in range(rng.randint(1, 3))]
        return ".".join(parts)

    checked = 0
    for _ in range(3000):
        source = doc(0)
        includes = [pattern() for _ in range(rng.randint(0, 3))]
        excludes = [pattern() for _ in range(rng.randint(0, 1))]
        got = filter_source(source, {"includes": includes, "excludes": excludes})
        assert got is not None
        expected = {
            p: v for p, v in _leaves(source).items() if _reference_keep(p, includes, excludes)
        }
        assert _leaves(got) == expected, (source, includes, excludes)
        checked += bool(expected) and expected != _leaves(source)
    assert checked > 300  # most cases really filter something
