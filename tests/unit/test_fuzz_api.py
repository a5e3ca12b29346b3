"""Property-based fuzzing of the HTTP API (hypothesis, bounded example counts so CI runs it).

Search bodies are drawn from the supported DSL grammar (queries, aggregations, paging,
sorting, kNN, ext.shoprank) and from arbitrary JSON; event payloads from the event schema and
arbitrary JSON/NDJSON. Whatever comes in: never a 5xx, always an ES result or a well-formed
ES error body. shoprank's own `/_shoprank/*` API is exercised from its OpenAPI document with
schemathesis.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from shoprank.plugin.backends.embedded.backend import EmbeddedBackend
from tests.unit._apps import make_client

# CI runs a bounded count; SHOPRANK_FUZZ_SCALE=20 digs deeper on demand.
SCALE = float(os.environ.get("SHOPRANK_FUZZ_SCALE", "1"))
FUZZ = settings(
    max_examples=int(120 * SCALE),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

FIELDS = st.sampled_from(
    ["title", "brand", "price", "colour", "rating", "category", "description", "nope", "_id"]
)
TEXT = st.text(max_size=24)
SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    TEXT,
)
JSON = st.recursive(
    SCALAR,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
NUMBER = st.one_of(
    st.integers(min_value=-5, max_value=500), st.floats(-10, 1e6, allow_nan=False), TEXT
)


def _field_map(value: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(lambda f, v: {f: v}, FIELDS, value)


LEAF = st.one_of(
    st.builds(
        lambda m: {"match": m},
        _field_map(
            st.one_of(
                TEXT,
                st.fixed_dictionaries(
                    {"query": TEXT},
                    optional={
                        "operator": st.sampled_from(["and", "or", "xor"]),
                        "fuzziness": st.sampled_from(["AUTO", 0, 1, 2, "x"]),
                        "minimum_should_match": st.one_of(
                            st.integers(-3, 5), st.sampled_from(["50%", "x"])
                        ),
                    },
                ),
            )
        ),
    ),
    st.builds(lambda m: {"match_phrase": m}, _field_map(TEXT)),
    st.builds(
        lambda q, fs, t: {"multi_match": {"query": q, "fields": fs, "type": t}},
        TEXT,
        st.lists(st.builds(lambda f, b: f"{f}^{b}", FIELDS, st.integers(0, 5)), max_size=3),
        st.sampled_from(["best_fields", "most_fields", "phrase", "cross_fields"]),
    ),
    st.builds(lambda m: {"term": m}, _field_map(SCALAR)),
    st.builds(lambda m: {"terms": m}, _field_map(st.lists(SCALAR, max_size=4))),
    st.builds(
        lambda m: {"range": m},
        _field_map(
            st.dictionaries(st.sampled_from(["gte", "gt", "lte", "lt", "boost", "x"]), NUMBER)
        ),
    ),
    st.builds(lambda f: {"exists": {"field": f}}, FIELDS),
    st.builds(
        lambda v: {"ids": {"values": v}}, st.lists(st.one_of(TEXT, st.integers()), max_size=3)
    ),
    st.just({"match_all": {}}),
    st.just({"match_none": {}}),
    JSON.map(lambda j: {"weird": j}),
)


def _compound(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    clauses = st.one_of(inner, st.lists(inner, max_size=3))
    return st.one_of(
        st.builds(
            lambda b: {"bool": b},
            st.fixed_dictionaries(
                {},
                optional={
                    "must": clauses,
                    "should": clauses,
                    "filter": clauses,
                    "must_not": clauses,
                    "minimum_should_match": st.one_of(st.integers(-2, 3), TEXT),
                },
            ),
        ),
        st.builds(lambda f, b: {"constant_score": {"filter": f, "boost": b}}, inner, NUMBER),
        st.builds(lambda qs: {"dis_max": {"queries": qs}}, st.lists(inner, max_size=3)),
    )


QUERY = st.recursive(LEAF, _compound, max_leaves=6)
AGG_BODY = st.one_of(
    st.builds(lambda f, s: {"terms": {"field": f, "size": s}}, FIELDS, st.integers(-2, 30_000)),
    st.builds(
        lambda f, r: {"range": {"field": f, "ranges": r}},
        FIELDS,
        st.lists(st.dictionaries(st.sampled_from(["from", "to", "key"]), NUMBER), max_size=3),
    ),
    st.builds(lambda f, i: {"histogram": {"field": f, "interval": i}}, FIELDS, NUMBER),
    st.builds(
        lambda k, f: {k: {"field": f}},
        st.sampled_from(["stats", "min", "max", "avg", "sum", "value_count", "cardinality"]),
        FIELDS,
    ),
)
AGGS = st.dictionaries(
    st.text(min_size=1, max_size=8),
    st.one_of(
        AGG_BODY,
        st.builds(
            lambda a, sub: {**a, "aggs": sub},
            AGG_BODY,
            st.dictionaries(st.text(min_size=1, max_size=5), AGG_BODY, max_size=2),
        ),
    ),
    max_size=2,
)
KNN = st.fixed_dictionaries(
    {
        "field": st.sampled_from(["text_vector", "nope", "price"]),
        "query_vector": st.lists(st.floats(-2, 2, allow_nan=False), min_size=0, max_size=6),
    },
    optional={"k": st.integers(-1, 50), "num_candidates": st.integers(-1, 200), "filter": QUERY},
)
EXT = st.fixed_dictionaries(
    {},
    optional={
        "mode": st.sampled_from(["lexical", "vector", "hybrid", "full", "magic"]),
        "fusion": st.sampled_from(["rrf", "linear", "x"]),
        "window": st.one_of(st.integers(-1, 2000), TEXT),
        "explain": st.booleans(),
        "user_id": st.one_of(TEXT, st.integers(), st.none()),
        "query": st.one_of(TEXT, st.integers()),
    },
)
SEARCH_BODY = st.fixed_dictionaries(
    {},
    optional={
        "query": QUERY,
        "aggs": AGGS,
        "from": st.one_of(st.integers(-5, 12_000), TEXT),
        "size": st.one_of(st.integers(-5, 2_000), TEXT),
        "sort": st.lists(
            st.one_of(
                FIELDS,
                st.builds(lambda f, o: {f: o}, FIELDS, st.sampled_from(["asc", "desc", "up"])),
            ),
            max_size=2,
        ),
        "_source": st.one_of(st.booleans(), st.lists(FIELDS, max_size=2), FIELDS),
        "track_total_hits": st.one_of(st.booleans(), st.integers(-1, 100)),
        "min_score": NUMBER,
        "post_filter": QUERY,
        "knn": KNN,
        "ext": st.builds(lambda e: {"shoprank": e}, EXT),
    },
)
EVENT = st.fixed_dictionaries(
    {"type": st.sampled_from(["view", "click", "add_to_cart", "purchase", "search", "hug"])},
    optional={
        "user_id": st.one_of(TEXT, st.integers(), st.none()),
        "session_id": TEXT,
        "product_id": st.one_of(TEXT, st.integers()),
        "query_id": TEXT,
        "position": st.one_of(st.integers(-3, 10**6), TEXT),
        "timestamp": st.one_of(
            st.floats(allow_nan=False, allow_infinity=False), TEXT, st.just("2026-01-02T10:00:00Z")
        ),
        "event_id": st.one_of(TEXT, st.integers()),
        "quantity": NUMBER,
        "price": NUMBER,
        "product_ids": st.lists(TEXT, max_size=3),
        "extra": JSON,
    },
)


FUZZ_KEY = "fuzz-admin-key"
AUTH = {"Authorization": f"ApiKey {FUZZ_KEY}"}


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory, corpus_backend: EmbeddedBackend
) -> Iterator[TestClient]:
    client = make_client(
        tmp_path_factory.mktemp("fuzz"),
        corpus_backend,
        max_buckets=1_000,
        max_page_size=1_000,
        api_keys={FUZZ_KEY: "admin"},
    )
    client.headers.update(AUTH)
    yield client


def assert_well_formed(response: Any, *, result_key: str | None = "hits", sent: Any = None) -> None:
    assert response.status_code < 500, (sent, response.text)
    body = response.json()
    if response.status_code == 200:
        if result_key:
            assert result_key in body, body
        return
    assert body["status"] == response.status_code, body
    error = body["error"]
    assert isinstance(error["type"], str) and isinstance(error["reason"], str)
    assert isinstance(error["root_cause"], list) and error["root_cause"]


@FUZZ
@given(body=SEARCH_BODY)
def test_search_bodies_from_the_dsl_grammar(client: TestClient, body: dict[str, Any]) -> None:
    assert_well_formed(client.post("/products/_search", json=body), sent=body)


@FUZZ
@given(body=JSON)
def test_search_bodies_of_arbitrary_json(client: TestClient, body: Any) -> None:
    assert_well_formed(client.post("/products/_search", json=body), sent=body)


@settings(FUZZ, max_examples=int(60 * SCALE))
@given(
    raw=st.binary(max_size=200),
    params=st.dictionaries(
        st.sampled_from(["size", "from", "q", "_source", "sort", "track_total_hits", "bogus"]),
        TEXT,
        max_size=3,
    ),
)
def test_search_raw_bytes_and_params(
    client: TestClient, raw: bytes, params: dict[str, str]
) -> None:
    assert_well_formed(client.post("/products/_search", content=raw, params=params))


@settings(FUZZ, max_examples=int(60 * SCALE))
@given(
    items=st.lists(
        st.tuples(st.one_of(JSON, st.just({"index": "products"})), SEARCH_BODY), max_size=3
    )
)
def test_msearch_bodies(client: TestClient, items: list[tuple[Any, Any]]) -> None:
    raw = "".join(json.dumps(h) + "\n" + json.dumps(b) + "\n" for h, b in items).encode()
    response = client.post(
        "/_msearch", content=raw, headers={"content-type": "application/x-ndjson"}
    )
    assert_well_formed(response, result_key="responses")
    if response.status_code == 200:
        for item in response.json()["responses"]:
            assert item["status"] < 500, item


@settings(FUZZ, max_examples=int(60 * SCALE))
@given(
    name=st.one_of(
        st.text(min_size=1, max_size=40),
        st.text(alphabet="aZ-_.*,#:é", min_size=1, max_size=300),
    )
)
def test_index_names(client: TestClient, name: str) -> None:
    """Any index name: a lookup, an `invalid_index_name_exception`, never a 5xx or a path."""
    if name in (".", "..") or "/" in name:
        return  # clients normalise these out of the URL path
    for path in ("_search", "_count", "_doc/1"):
        response = client.get(f"/{quote(name, safe='')}/{path}")
        assert response.status_code < 500, (name, response.text)
        assert str(client.service.settings.data_dir) not in response.text  # type: ignore[attr-defined]


@settings(FUZZ, max_examples=int(60 * SCALE))
# "." and ".." are path dot segments, which HTTP clients remove before sending (RFC 3986).
@given(
    query=st.one_of(QUERY, JSON),
    doc_id=TEXT.filter(lambda t: "/" not in t and t.strip() and t not in (".", "..")),
)
def test_count_and_get_doc(client: TestClient, query: Any, doc_id: str) -> None:
    assert_well_formed(client.post("/products/_count", json={"query": query}), result_key="count")
    response = client.get(f"/products/_doc/{quote(doc_id, safe='')}")
    assert response.status_code in (200, 404), response.text
    assert response.json().get("found") is not None or response.json()["status"] == 404


@FUZZ
@given(payload=st.one_of(EVENT, st.lists(EVENT, max_size=4), JSON))
def test_event_payloads(client: TestClient, payload: Any) -> None:
    response = client.post("/_shoprank/events", json=payload)
    assert_well_formed(response, result_key="accepted")


@settings(FUZZ, max_examples=int(60 * SCALE))
@given(
    lines=st.lists(
        st.one_of(EVENT.map(lambda e: json.dumps(e).encode()), st.binary(max_size=40)), max_size=4
    )
)
def test_event_ndjson(client: TestClient, lines: list[bytes]) -> None:
    response = client.post(
        "/_shoprank/events",
        content=b"\n".join(lines),
        headers={"content-type": "application/x-ndjson"},
    )
    assert_well_formed(response, result_key="accepted")


@pytest.fixture(scope="module")
def api_schema(client: TestClient) -> Any:
    return schemathesis.openapi.from_asgi("/_shoprank/openapi.json", client.app, headers=AUTH)


def test_openapi_documents_shoprank_routes(api_schema: Any) -> None:
    paths = set(api_schema.raw_schema["paths"])
    assert {"/_shoprank/events", "/_shoprank/products", "/_shoprank/ready"} <= paths
    assert not any("_search" in p for p in paths)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_shoprank_api_from_openapi(api_schema: Any, mode: GenerationMode) -> None:
    """Every operation of the OpenAPI document, with valid and invalid inputs."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 6
    strategy = st.one_of([op.as_strategy(generation_mode=mode) for op in operations])

    @settings(
        max_examples=int(80 * SCALE),
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        response = case.call(headers=AUTH)
        assert response.status_code < 500, (case.method, case.formatted_path, response.text)
        if response.status_code >= 400:
            body = response.json()
            assert body["status"] == response.status_code
            assert body["error"]["type"] and body["error"]["root_cause"]

    run()
