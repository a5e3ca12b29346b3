"""What one request may make the server do (`shoprank.plugin.bounds`): index names as ES
accepts them, ASCII-only numbers, caps on ranges / sort keys / msearch items, the request's
time budget, unambiguous message framing, and error bodies without filesystem paths."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from shoprank.errors import InvalidIndexNameError, ShoprankError, es_error_body
from shoprank.plugin import bounds
from shoprank.plugin.backends.embedded.backend import EmbeddedBackend
from shoprank.plugin.bounds import Deadline, bounded
from tests.unit._apps import make_client
from tests.unit.test_limits import error_of

LONG = "a" * 300


class JumpingClock:
    """Reads 0.0 for its first `after` calls, then far past any deadline: a request's
    budget runs out at a chosen check, whatever the machine's speed."""

    def __init__(self, after: int) -> None:
        self.after = after
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        return 0.0 if self.calls <= self.after else 1e9


@pytest.fixture()
def client(tmp_path: Path, corpus_backend: EmbeddedBackend) -> TestClient:
    return make_client(
        tmp_path, corpus_backend, max_agg_ranges=5, max_sort_keys=3, max_msearch_items=3
    )


def ndjson(*items: Any) -> bytes:
    return b"".join(orjson.dumps(item) + b"\n" for item in items)


# -- index names --------------------------------------------------------------------------


BAD_NAMES = [
    (LONG, "too long"),
    ("é" * 128, "too long"),  # 256 bytes
    ("Products", "must be lowercase"),
    ("prod*", "must not contain"),
    ("a,b", "must not contain"),
    ("a b", "must not contain"),
    ("a#b", "must not contain"),
    ("a:b", "must not contain"),
    ('a"b', "must not contain"),
    ("_x", "must not start with"),
    ("-x", "must not start with"),
    ("+x", "must not start with"),
    ("..", "must not be '.' or '..'"),
]


@pytest.mark.parametrize(("name", "why"), BAD_NAMES)
def test_names_es_refuses_are_invalid_index_name_400(
    client: TestClient, tmp_path: Path, name: str, why: str
) -> None:
    path = quote(name, safe="").replace(".", "%2E")
    for method, url, kw in [
        ("GET", f"/{path}/_search", {}),
        ("POST", f"/{path}/_count", {}),
        ("GET", f"/{path}/_doc/1", {}),
        ("POST", f"/{path}/_msearch", {"content": ndjson({}, {})}),
    ]:
        response = client.request(method, url, **kw)
        assert why in error_of(response, 400, "invalid_index_name_exception"), url
        assert str(tmp_path) not in response.text
        assert response.json()["error"]["index_uuid"] == "_na_"


def test_names_within_the_rules_are_looked_up(client: TestClient) -> None:
    for name in ("a" * 255, "é" * 127, ".hidden", "shop-2024.01_x"):
        error_of(client.get(f"/{quote(name)}/_search"), 404, "index_not_found_exception")


def test_a_300_character_name_is_400_on_every_route(client: TestClient, tmp_path: Path) -> None:
    responses = [
        client.post("/_msearch", content=ndjson({"index": LONG}, {})),
        client.post("/_shoprank/products", json={"index": LONG, "delete": ["1"]}),
        client.get("/_shoprank/intent", params={"q": "laptop", "index": LONG}),
        client.get("/_shoprank/inspect/api/compare", params={"q": "laptop", "index": LONG}),
    ]
    item = responses[0].json()["responses"][0]
    assert item["status"] == 400 and item["error"]["type"] == "invalid_index_name_exception"
    for response in responses[1:]:
        assert "too long" in error_of(response, 400, "invalid_index_name_exception")
    assert all(str(tmp_path) not in r.text and "indices" not in r.text for r in responses)


def test_the_backend_refuses_the_name_before_the_disk_sees_it(
    corpus_backend: EmbeddedBackend,
) -> None:
    with pytest.raises(InvalidIndexNameError):
        corpus_backend.search(LONG, {})
    with pytest.raises(InvalidIndexNameError):
        corpus_backend.count("Products", None)
    with pytest.raises(InvalidIndexNameError, match="at most 201 characters"):
        corpus_backend.create_generation("a" * 250, {})


def test_index_load_refuses_the_name_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shoprank.cli_index import index
    from shoprank.settings import get_settings

    monkeypatch.setenv("SHOPRANK_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text('{"id": "1", "title": "HP laptop", "price": 3}\n')
    result = CliRunner().invoke(index, ["load", str(catalog), "--index", LONG, "--no-vectors"])
    get_settings.cache_clear()
    assert result.exit_code == 2, result.output
    assert "Invalid index name" in result.output and "too long" in result.output
    assert str(tmp_path) not in result.output


def test_error_bodies_never_carry_a_filesystem_path(tmp_path: Path) -> None:
    secret = tmp_path / "embedded" / "indices" / "x"
    try:
        open(secret)  # noqa: SIM115 - the OSError is the point
    except OSError as exc:
        try:
            raise ShoprankError(f"the engine failed ({type(exc).__name__}: {exc})") from None
        except ShoprankError as wrapped:
            body = es_error_body(wrapped)
    text = orjson.dumps(body).decode()
    assert str(secret) not in text and "<path>" in text
    assert (
        body["status"] == 500
        and body["error"]["root_cause"][0]["reason"] == (body["error"]["reason"])
    )
    # Quoted absolute paths from an engine's message go too; URL paths in brackets stay.
    engine = ShoprankError('IoError { filepath: "/var/lib/shoprank/embedded/meta.json" }')
    assert "/var/lib" not in orjson.dumps(es_error_body(engine)).decode()
    route = es_error_body(ShoprankError("request [/products/_search] has a bad parameter"))
    assert route["error"]["reason"] == "request [/products/_search] has a bad parameter"


# -- work caps ----------------------------------------------------------------------------


def ranges(n: int) -> list[dict[str, float]]:
    return [{"from": 10.0 * i, "to": 10.0 * (i + 1)} for i in range(n)]


def test_ranges_per_aggregation_are_capped(client: TestClient) -> None:
    def agg(n: int, *, nested: bool = False) -> dict[str, Any]:
        spec: dict[str, Any] = {"range": {"field": "price", "ranges": ranges(n)}}
        if nested:
            spec = {"terms": {"field": "brand"}, "aggs": {"inner": spec}}
        return {"size": 0, "aggs": {"p": spec}}

    reason = error_of(
        client.post("/products/_search", json=agg(6)), 400, "illegal_argument_exception"
    )
    assert "6 ranges" in reason and "SHOPRANK_MAX_AGG_RANGES" in reason
    error_of(
        client.post("/products/_search", json=agg(6, nested=True)),
        400,
        "illegal_argument_exception",
    )
    response = client.post("/products/_search", json=agg(5))
    assert response.status_code == 200
    assert len(response.json()["aggregations"]["p"]["buckets"]) == 5


def test_sort_keys_are_capped(client: TestClient) -> None:
    reason = error_of(
        client.get("/products/_search?sort=price,_score,_doc,price:desc"),
        400,
        "illegal_argument_exception",
    )
    assert "4 keys" in reason and "SHOPRANK_MAX_SORT_KEYS" in reason
    error_of(
        client.post("/products/_search", json={"sort": [{"price": "asc"}] * 4}),
        400,
        "illegal_argument_exception",
    )
    assert client.get("/products/_search?sort=price,_score,_doc").status_code == 200


def test_msearch_items_are_capped(client: TestClient) -> None:
    items = [x for _ in range(4) for x in ({"index": "products"}, {"size": 0})]
    reason = error_of(
        client.post("/_msearch", content=ndjson(*items)), 400, "illegal_argument_exception"
    )
    assert "4 searches" in reason and "SHOPRANK_MAX_MSEARCH_ITEMS" in reason
    response = client.post("/_msearch", content=ndjson(*items[:6]))
    assert [r["status"] for r in response.json()["responses"]] == [200, 200, 200]


def test_many_ranges_answer_in_one_pass_with_every_bucket(corpus_backend: EmbeddedBackend) -> None:
    # Prices are 15…120: each requested range comes back once, in order, with its key.
    wanted = [{"from": float(i), "to": float(i + 1), "key": f"r{i}"} for i in range(2_000)]
    body = {"size": 0, "aggs": {"p": {"range": {"field": "price", "ranges": wanted}}}}
    buckets = corpus_backend.search("products", body)["aggregations"]["p"]["buckets"]
    assert [b["key"] for b in buckets] == [r["key"] for r in wanted]
    assert sum(b["doc_count"] for b in buckets) == 8
    assert {b["key"] for b in buckets if b["doc_count"]} == {
        "r15",
        "r25",
        "r35",
        "r40",
        "r55",
        "r60",
        "r95",
        "r120",
    }


# -- the time budget ----------------------------------------------------------------------


def price_ranges_body() -> dict[str, Any]:
    spans = [{"to": 30.0}, {"from": 30.0, "to": 60.0}, {"from": 60.0}]
    return {"size": 0, "aggs": {"p": {"range": {"field": "price", "ranges": spans}}}}


def test_aggregation_past_the_deadline_answers_partial_buckets(
    corpus_backend: EmbeddedBackend,
) -> None:
    # The clock is read once to set the deadline, then once per bucket: the third is late.
    with bounded(Deadline(1.0, clock=JumpingClock(after=3))):
        late = corpus_backend.search("products", price_ranges_body())
    assert late["timed_out"] is True
    assert [b["key"] for b in late["aggregations"]["p"]["buckets"]] == ["*-30.0", "30.0-60.0"]
    with bounded(Deadline(1.0, clock=JumpingClock(after=1_000))):
        whole = corpus_backend.search("products", price_ranges_body())
    assert whole["timed_out"] is False and len(whole["aggregations"]["p"]["buckets"]) == 3


def test_sorting_past_the_deadline_stops_with_timed_out(corpus_backend: EmbeddedBackend) -> None:
    body = {"size": 100, "sort": [{"price": "asc"}]}
    with bounded(Deadline(1.0, clock=JumpingClock(after=1))):
        late = corpus_backend.search("products", body)
    assert late["timed_out"] is True and late["hits"]["hits"] == []
    assert late["hits"]["total"]["value"] == 8  # the count was done before the deadline
    with bounded(Deadline(1.0, clock=JumpingClock(after=1_000))):
        whole = corpus_backend.search("products", body)
    prices = [h["sort"][0] for h in whole["hits"]["hits"]]
    assert whole["timed_out"] is False and prices == sorted(prices) and len(prices) == 8


def test_msearch_items_after_the_deadline_answer_504(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Read once for the request's deadline, once before each item: the second item is late.
    monkeypatch.setattr(bounds, "monotonic", JumpingClock(after=2))
    items = [x for _ in range(3) for x in ({"index": "products"}, {"size": 0})]
    responses = client.post("/_msearch", content=ndjson(*items)).json()["responses"]
    assert responses[0]["status"] == 200 and responses[0]["timed_out"] is False
    for late in responses[1:]:
        assert late["status"] == 504
        assert late["error"]["type"] == "search_timeout_exception"
        assert "SHOPRANK_REQUEST_TIMEOUT_MS" in late["error"]["reason"]


def test_a_search_timeout_in_the_body_narrows_the_budget(client: TestClient) -> None:
    # A zero budget has passed at the first check, however fast the machine.
    body = {"size": 5, "sort": [{"price": "asc"}], "timeout": "0ms"}
    late = client.post("/products/_search", json=body).json()
    assert late["timed_out"] is True and late["hits"]["hits"] == []
    on_time = client.post("/products/_search", json={**body, "timeout": "10m"}).json()
    assert on_time["timed_out"] is False and len(on_time["hits"]["hits"]) == 5
    reason = error_of(
        client.post("/products/_search", json={"timeout": "10"}), 400, "parse_exception"
    )
    assert "[timeout]" in reason


def test_timeout_values_parse_as_es_time_values() -> None:
    assert bounds.search_timeout_s("250ms") == pytest.approx(0.25)
    assert bounds.search_timeout_s("2s") == 2.0 and bounds.search_timeout_s("1m") == 60.0
    assert bounds.search_timeout_s("-1") is None and bounds.search_timeout_s(None) is None
    for bad in ("10", "1_0ms", "１０ms", "fast", True):
        with pytest.raises(ShoprankError):
            bounds.search_timeout_s(bad)


# -- numbers ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1_000", "１０", "10\u0660", "inf", "nan", "1e", "0x10"])
def test_range_numbers_are_ascii_decimal_only(client: TestClient, value: str) -> None:
    query = {"query": {"range": {"price": {"gte": value}}}}
    error_of(client.post("/products/_search", json=query), 400, "parsing_exception")
    agg = {"size": 0, "aggs": {"p": {"range": {"field": "price", "ranges": [{"from": value}]}}}}
    error_of(client.post("/products/_search", json=agg), 400, "parsing_exception")


def test_numeric_strings_in_ascii_still_work(client: TestClient) -> None:
    for value in ("50", " 50 ", "5e1", "50.0", "+50"):
        body = {"size": 0, "query": {"range": {"price": {"gte": value}}}}
        assert client.post("/products/_search", json=body).json()["hits"]["total"]["value"] == 4
    agg = {"size": 0, "aggs": {"p": {"range": {"field": "price", "ranges": [{"from": "50"}]}}}}
    buckets = client.post("/products/_search", json=agg).json()["aggregations"]["p"]["buckets"]
    assert buckets == [{"key": "50.0-*", "doc_count": 4, "from": 50.0}]


# -- message framing ----------------------------------------------------------------------


def raw_post(client: TestClient, headers: list[tuple[bytes, bytes]]) -> tuple[int, dict[str, Any]]:
    """One request straight into the ASGI app, headers exactly as given (a test client
    would drop a Content-Length next to a Transfer-Encoding)."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/products/_search",
        "raw_path": b"/products/_search",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    asyncio.run(client.app(scope, receive, send))  # type: ignore[arg-type]
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return int(status), orjson.loads(body)


def test_content_length_with_transfer_encoding_is_400(client: TestClient) -> None:
    json_type = (b"content-type", b"application/json")
    status, body = raw_post(
        client, [json_type, (b"content-length", b"2"), (b"transfer-encoding", b"chunked")]
    )
    assert status == 400 and body["error"]["type"] == "illegal_argument_exception"
    assert "Content-Length and Transfer-Encoding" in body["error"]["reason"]
    status, body = raw_post(
        client, [json_type, (b"content-length", b"2"), (b"content-length", b"40")]
    )
    assert status == 400 and "conflicting Content-Length" in body["error"]["reason"]
    status, body = raw_post(client, [json_type, (b"content-length", b"2")])
    assert status == 200 and body["hits"]["total"]["value"] == 8
