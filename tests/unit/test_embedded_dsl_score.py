"""`function_score` (a rescoring step) and `range` on date fields on the embedded backend.

Expected scores are computed here from the corpus prices in `conftest.py` with ES's
formulas, independently of the code under test.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from shoprank.errors import BadRequestError, UnsupportedQueryError
from shoprank.indexing.mapping import product_mapping
from shoprank.plugin.backends.embedded.backend import EmbeddedBackend

from .conftest import CORPUS, hit_ids, total

PRICE = {d["_id"]: float(d["price"]) for d in CORPUS}
MICE = {"2", "4", "8"}  # "mouse" in the title


def scores(result: dict[str, Any]) -> dict[str, float]:
    return {h["_id"]: h["_score"] for h in result["hits"]["hits"]}


def fs(search: Any, **spec: Any) -> dict[str, Any]:
    body = {"query": {"match": {"title": "mouse"}}, "boost_mode": "replace", **spec}
    result: dict[str, Any] = search({"query": {"function_score": body}})
    return result


def test_field_value_factor_with_modifier_and_factor(search: Any) -> None:
    result = fs(search, field_value_factor={"field": "price", "factor": 2, "modifier": "sqrt"})
    expected = {i: math.sqrt(2 * PRICE[i]) for i in MICE}
    assert scores(result) == pytest.approx(expected)
    assert hit_ids(result) == sorted(MICE, key=lambda i: -PRICE[i])  # 8 (60), 4 (35), 2 (15)


@pytest.mark.parametrize(
    ("modifier", "fn"),
    [
        ("log1p", lambda v: math.log10(v + 1)),
        ("ln2p", lambda v: math.log(v + 2)),
        ("square", lambda v: v * v),
        ("reciprocal", lambda v: 1 / v),
        ("none", lambda v: v),
    ],
)
def test_field_value_factor_modifiers(search: Any, modifier: str, fn: Any) -> None:
    result = fs(search, field_value_factor={"field": "price", "modifier": modifier})
    assert scores(result) == pytest.approx({i: fn(PRICE[i]) for i in MICE})


def test_boost_mode_multiply_keeps_the_query_score(search: Any) -> None:
    plain = scores(search({"query": {"match": {"title": "mouse"}}}))
    body = {"query": {"match": {"title": "mouse"}}, "weight": 3}
    assert scores(search({"query": {"function_score": body}})) == pytest.approx(
        {i: 3 * s for i, s in plain.items()}
    )
    summed = {**body, "boost_mode": "sum"}
    assert scores(search({"query": {"function_score": summed}})) == pytest.approx(
        {i: s + 3 for i, s in plain.items()}
    )


def test_filtered_weights_and_score_mode(search: Any) -> None:
    functions = [
        {"filter": {"term": {"brand": "HP"}}, "weight": 3},
        {"filter": {"range": {"price": {"gte": 30}}}, "weight": 2},
    ]
    result = fs(search, functions=functions, score_mode="sum")
    # 2: HP, 15 → 3; 4: Dell, 35 → 2; 8: Logitech, 60 → 2.
    assert scores(result) == pytest.approx({"2": 3.0, "4": 2.0, "8": 2.0})
    product = fs(search, functions=functions, score_mode="multiply")
    assert scores(product) == pytest.approx({"2": 3.0, "4": 2.0, "8": 2.0})
    none_match = fs(search, functions=[{"filter": {"term": {"brand": "Apple"}}, "weight": 5}])
    assert scores(none_match) == pytest.approx({i: 1.0 for i in MICE})  # ES: no function → 1


@pytest.mark.parametrize("kind", ["gauss", "exp", "linear"])
def test_decay_functions(search: Any, kind: str) -> None:
    origin, scale, offset, decay = 50.0, 20.0, 5.0, 0.5

    def expected(v: float) -> float:
        d = max(0.0, abs(v - origin) - offset)
        if kind == "gauss":
            return math.exp(-(d**2) / (2 * (-(scale**2) / (2 * math.log(decay)))))
        if kind == "exp":
            return math.exp(math.log(decay) / scale * d)
        s = scale / (1 - decay)
        return max(0.0, (s - d) / s)

    params = {"price": {"origin": origin, "scale": scale, "offset": offset, "decay": decay}}
    result = fs(search, **{kind: params})
    assert scores(result) == pytest.approx({i: expected(PRICE[i]) for i in MICE})
    # At scale past the offset the score is exactly `decay`: 8 costs 60 = origin + 5 + 5.
    at_scale = fs(search, **{kind: {"price": {"origin": 35, "scale": 20, "offset": 5}}})
    assert scores(at_scale)["8"] == pytest.approx(0.5)


def test_min_score_max_boost_and_total(search: Any) -> None:
    result = fs(search, field_value_factor={"field": "price"}, min_score=30)
    assert set(hit_ids(result)) == {"4", "8"} and total(result) == 2
    capped = fs(search, field_value_factor={"field": "price"}, max_boost=20)
    assert scores(capped) == pytest.approx({"2": 15.0, "4": 20.0, "8": 20.0})


def test_function_score_ranks_every_match_not_only_the_top(search: Any) -> None:
    # size 1: the most expensive match must win even though BM25 ranks it elsewhere.
    body = {"query": {"match_all": {}}, "field_value_factor": {"field": "price"}}
    result = search({"query": {"function_score": body}, "size": 1})
    assert hit_ids(result) == ["3"] and total(result) == 8  # 3 costs 120


def test_function_score_directly_in_top_level_bool_must(search: Any) -> None:
    inner = {"query": {"match": {"title": "mouse"}}, "field_value_factor": {"field": "price"}}
    body = {
        "query": {
            "bool": {"must": [{"function_score": inner}], "filter": [{"term": {"brand": "HP"}}]}
        }
    }
    result = search(body)
    assert hit_ids(result) == ["2"]


def test_function_score_errors(search: Any) -> None:
    nested = {"bool": {"filter": [{"function_score": {"query": {"match_all": {}}}}]}}
    with pytest.raises(UnsupportedQueryError, match="top-level"):
        search({"query": nested})
    script = {"query": {"match_all": {}}, "script_score": {"script": "1"}}
    with pytest.raises(UnsupportedQueryError, match="script_score"):
        search({"query": {"function_score": script}})
    random = {"functions": [{"random_score": {}}]}
    with pytest.raises(UnsupportedQueryError, match="random_score"):
        search({"query": {"function_score": random}})
    # 6 has a price; the catalog has no document without one, so ask for a missing field.
    with pytest.raises(BadRequestError, match="not a number|numeric"):
        search({"query": {"function_score": {"field_value_factor": {"field": "brand"}}}})
    with pytest.raises(UnsupportedQueryError, match="bogus"):
        search(
            {"query": {"function_score": {"field_value_factor": {"field": "price", "bogus": 1}}}}
        )


def test_field_value_factor_missing(tmp_path: Path) -> None:
    backend = EmbeddedBackend(tmp_path)
    gen = backend.create_generation("products", product_mapping(text_dims=0))
    backend.bulk_upsert(gen, [{"_id": "a", "price": 4.0}, {"_id": "b", "title": "x"}], None)
    backend.commit(gen, ready=True)
    backend.swap_alias("products", gen)
    fvf = {"field": "price"}
    with pytest.raises(BadRequestError, match="missing"):
        backend.search("products", {"query": {"function_score": {"field_value_factor": fvf}}})
    ok = {"function_score": {"field_value_factor": {**fvf, "missing": 9}, "boost_mode": "replace"}}
    assert scores(backend.search("products", {"query": ok})) == {"a": 4.0, "b": 9.0}


# -- range on dates ------------------------------------------------------------------------

RELEASES = {"a": "2020-01-15", "b": "2020-02-01T10:00:00Z", "c": "2021-06-30", "d": None}


@pytest.fixture()
def dated(tmp_path: Path) -> EmbeddedBackend:
    mapping = product_mapping(text_dims=0)
    mapping["properties"]["released"] = {"type": "date"}
    backend = EmbeddedBackend(tmp_path)
    gen = backend.create_generation("products", mapping)
    docs = [{"_id": k, "title": "thing", "released": v} for k, v in RELEASES.items()]
    backend.bulk_upsert(gen, docs, None)
    backend.commit(gen, ready=True)
    backend.swap_alias("products", gen)
    return backend


@pytest.mark.parametrize(
    ("bounds", "expected"),
    [
        ({"gte": "2020-01-01", "lt": "2020-02-01"}, {"a"}),
        ({"gte": "2020-02-01"}, {"b", "c"}),
        ({"lte": "2020-02-01"}, {"a", "b"}),  # lte rounds up: the whole of Feb 1st
        ({"lt": "2020-02-01"}, {"a"}),
        ({"gt": "2020-02-01"}, {"c"}),  # gt rounds up too: after Feb 1st
        ({"gte": "2020-01-01||+1M/M"}, {"b", "c"}),
        ({"gte": 1593475200000}, {"c"}),  # epoch ms of 2020-06-30
        ({"gte": "2020", "format": "strict_date_optional_time||epoch_millis"}, {"a", "b", "c"}),
        ({"gte": "2021-06-30T01:00:00", "time_zone": "+02:00"}, {"c"}),
    ],
)
def test_range_on_a_date_field(
    dated: EmbeddedBackend, bounds: dict[str, Any], expected: set[str]
) -> None:
    result = dated.search("products", {"query": {"range": {"released": bounds}}})
    assert set(hit_ids(result)) == expected


def test_range_on_dates_refuses_what_it_cannot_read(dated: EmbeddedBackend) -> None:
    with pytest.raises(BadRequestError, match="released"):
        dated.search("products", {"query": {"range": {"released": {"gte": "last tuesday"}}}})
    with pytest.raises(UnsupportedQueryError, match="dd/MM/yyyy"):
        query = {"range": {"released": {"gte": "01/02/2020", "format": "dd/MM/yyyy"}}}
        dated.search("products", {"query": query})
