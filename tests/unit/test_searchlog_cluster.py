"""The Elasticsearch / OpenSearch search-log sink through the official clients' transport
layer (no network): what it sends, in which order, and how it handles refusals."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from elastic_transport import ApiResponseMeta, BaseNode, HttpHeaders
from elastic_transport._node import NodeApiResponse

from shoprank.events.embedded import EmbeddedEventLog
from shoprank.events.model import Event
from shoprank.searchlog import make_sinks
from shoprank.searchlog.logger import SearchLogger
from shoprank.searchlog.mapping import dynamic_prefixes, field_paths
from shoprank.searchlog.record import SearchRecord, WindowItem
from shoprank.searchlog.sinks import BulkError, ClusterSearchLogSink, daily_index
from shoprank.settings import Settings

Sent = list[tuple[str, str, bytes | None]]
Reply = Callable[[str, str, bytes | None], tuple[int, dict[str, Any]]]


def bulk_ok(method: str, path: str, body: bytes | None) -> tuple[int, dict[str, Any]]:
    if path.startswith("/_bulk"):
        lines = [json.loads(x) for x in (body or b"").splitlines() if x.strip()]
        items = [{next(iter(a)): {"status": 201}} for a in lines[::2]]
        return 200, {"took": 1, "errors": False, "items": items}
    return 200, {"acknowledged": True}


def es_client(sent: Sent, reply: Reply = bulk_ok) -> Any:
    from elasticsearch import Elasticsearch

    class Node(BaseNode):
        def perform_request(self, method, target, body=None, headers=None, request_timeout=None):  # type: ignore[no-untyped-def]
            sent.append((method, target, body))
            status, payload = reply(method, target, body)
            meta = ApiResponseMeta(
                status=status,
                http_version="1.1",
                headers=HttpHeaders(
                    {"content-type": "application/json", "x-elastic-product": "Elasticsearch"}
                ),
                duration=0.0,
                node=self.config,
            )
            return NodeApiResponse(meta, json.dumps(payload).encode())

    return Elasticsearch("http://127.0.0.1:9", node_class=Node)


def os_client(sent: Sent, reply: Reply = bulk_ok) -> Any:
    from opensearchpy import Connection, OpenSearch

    class Conn(Connection):
        def perform_request(
            self, method, url, params=None, body=None, timeout=None, ignore=(), headers=None
        ):  # type: ignore[no-untyped-def]
            raw = body.encode() if isinstance(body, str) else body
            sent.append((method, url, raw))
            status, payload = reply(method, url, raw)
            return status, {"content-type": "application/json"}, json.dumps(payload)

    return OpenSearch([{"host": "127.0.0.1", "port": 9}], connection_class=Conn)


CLIENTS = {"elasticsearch": es_client, "opensearch": os_client}


def record(query_id: str, ts: float) -> SearchRecord:
    return SearchRecord(
        index="products",
        query="red shoes",
        mode="full",
        query_id=query_id,
        timestamp=ts,
        user_id="alice",
        model_version="ranker-3",
        timings_ms={"lexical_ms": 1.0, "learned_ms": 2.0},
        total_hits=2,
        window=[
            WindowItem("p2", rank_before=2, rank_after=1, score=1.5, features={"ctr": 0.1}),
            WindowItem("p1", rank_before=1, rank_after=2, score=1.2, features={"ctr": 0.3}),
        ],
    )


def ndjson(body: bytes | None) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (body or b"").splitlines() if line.strip()]


@pytest.mark.parametrize("engine", sorted(CLIENTS))
def test_template_first_then_one_bulk_of_queries_and_impressions(engine: str) -> None:
    sent: Sent = []
    sink = ClusterSearchLogSink(CLIENTS[engine](sent), secret=lambda: "k")
    ts = time.time()
    sink.write(record("q1", ts))
    sink.write(record("q2", ts))
    assert sent == []  # nothing leaves before the logger flushes
    sink.flush()
    # Each client's own verb for bulk (elasticsearch-py PUTs, opensearch-py POSTs).
    assert [(m, p.split("?")[0]) for m, p, _ in sent] == [
        ("PUT", "/_index_template/shoprank-searches"),
        ("POST" if engine == "opensearch" else "PUT", "/_bulk"),
    ]
    template = json.loads(sent[0][2] or b"{}")
    assert template["index_patterns"] == ["shoprank-searches-*"]
    lines = ndjson(sent[1][2])
    actions, docs = lines[::2], lines[1::2]
    assert len(docs) == 2 * (1 + 2)  # per search: the query and two impressions
    index = daily_index("shoprank-searches", ts)
    assert all(next(iter(a.values()))["_index"] == index for a in actions)
    queries = [(a, d) for a, d in zip(actions, docs, strict=True) if d["doc_type"] == "query"]
    assert [a["index"]["_id"] for a, _ in queries] == ["q1", "q2"]  # retries overwrite
    assert all(d["client_id"] != "alice" and d["clicks"] == 0 for _, d in queries)
    shifts = {
        d["event_attributes"]["object"]["object_id"]: d["event_attributes"]["rank_shift"]
        for d in docs
        if d.get("action_name") == "impression"
    }
    assert shifts == {"p2": 1, "p1": -1}
    sink.write(record("q3", ts))
    sink.flush()
    assert len(sent) == 3  # the template is put once per process


def test_documents_use_only_mapped_fields() -> None:
    sent: Sent = []
    sink = ClusterSearchLogSink(es_client(sent), secret=lambda: "k")
    sink.write(record("q1", time.time()))
    sink.flush()
    mapped = field_paths(json.loads(sent[0][2] or b"{}")["template"]["mappings"])
    skip = (*dynamic_prefixes(), "timings_ms", "window")

    def leaves(doc: dict[str, Any], prefix: str = "") -> list[str]:
        out = []
        for k, v in doc.items():
            out += leaves(v, f"{prefix}{k}.") if isinstance(v, dict) and v else [prefix + k]
        return out

    for doc in ndjson(sent[1][2])[1::2]:
        for path in leaves(doc):
            assert path.startswith(skip) or path in mapped, path


def test_refused_documents_are_counted_and_never_fail_the_search() -> None:
    def refuse(method: str, path: str, body: bytes | None) -> tuple[int, dict[str, Any]]:
        if path.startswith("/_bulk"):
            items = [
                {"index": {"status": 400, "error": {"type": "mapper_parsing_exception"}}}
                for _ in ndjson(body)[::2]
            ]
            return 200, {"errors": True, "items": items}
        return 200, {"acknowledged": True}

    sent: Sent = []
    sink = ClusterSearchLogSink(es_client(sent, refuse), secret=lambda: "k")
    sink.write(record("q1", time.time()))
    with pytest.raises(BulkError, match="3 of 3 .*mapper_parsing_exception"):
        sink.flush()
    logger = SearchLogger(Settings(data_dir=Path("/nonexistent"), search_log=False))
    logger.sinks.append(sink)
    logger.log(record("q2", time.time()))
    logger.flush()
    assert logger.failed == 1 and sink.errors == 6


def test_unreachable_cluster_is_a_counted_failure() -> None:
    def down(method: str, path: str, body: bytes | None) -> tuple[int, dict[str, Any]]:
        return 503, {"error": {"type": "unavailable", "reason": "down"}, "status": 503}

    sink = ClusterSearchLogSink(es_client([], down), secret=lambda: "k")
    logger = SearchLogger(Settings(data_dir=Path("/nonexistent"), search_log=False))
    logger.sinks.append(sink)
    logger.log(record("q1", time.time()))
    logger.flush()
    assert logger.failed == 1


@pytest.mark.parametrize("engine", sorted(CLIENTS))
def test_behaviour_events_are_shipped_once_with_rank_before(engine: str, tmp_path: Path) -> None:
    sent: Sent = []
    log = EmbeddedEventLog(tmp_path / "events")
    sink = ClusterSearchLogSink(
        CLIENTS[engine](sent),
        secret=lambda: "k",
        event_log=log,
        offset_path=tmp_path / "offset",
        ship_every_s=0,
    )
    now = time.time()
    sink.write(record("q1", now))
    sink.flush()
    log.append(
        [
            Event("click", now + 1, "e1", user_id="u", query_id="q1", product_id="p2", position=1),
            Event("search", now + 1, "e2", user_id="u", query_id="q9", product_ids=("p1",)),
            Event("purchase", now + 2, "e3", user_id="u", query_id="q1", product_id="p2"),
        ]
    )
    assert sink.ship_events() == 2
    lines = ndjson(sent[-1][2])
    events = [d for d in lines if d.get("doc_type") == "event"]
    assert [e["action_name"] for e in events] == ["click", "purchase"]
    assert events[0]["event_attributes"]["rank_before"] == 2
    assert events[0]["event_attributes"]["rank_shift"] == 1
    updates = [a for a in lines if "update" in a]
    assert [u["update"]["_id"] for u in updates] == ["q1", "q1"]
    scripts = [d["script"]["source"] for d in lines if "script" in d]
    assert "clicks" in scripts[0] and "purchases" in scripts[1]
    before = len(sent)
    assert sink.ship_events() == 0  # the offset moved: nothing is shipped twice
    assert len(sent) == before
    assert (tmp_path / "offset").read_text()


def test_make_sinks_adds_the_cluster_sink_for_a_url(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, search_log_url="http://127.0.0.1:9")
    sinks = make_sinks(settings, client=es_client([]))
    assert [type(s).__name__ for s in sinks] == ["EmbeddedSearchLogSink", "ClusterSearchLogSink"]


def test_shipped_clicks_of_an_interleaved_page_carry_the_arm_that_showed_the_product(
    tmp_path: Path,
) -> None:
    sent: Sent = []
    log = EmbeddedEventLog(tmp_path / "events")
    sink = ClusterSearchLogSink(
        CLIENTS["elasticsearch"](sent),
        secret=lambda: "k",
        event_log=log,
        offset_path=tmp_path / "offset",
        ship_every_s=0,
    )
    now = time.time()
    search = record("q1", now)
    search.experiment = {
        "id": "exp-1",
        "method": "interleave",
        "variant": "interleave",
        "runs": {"A": {"zero_results": False, "latency_ms": 1.0}},
        "teams": {"p1": "A", "p2": "B"},
    }
    sink.write(search)
    sink.flush()
    log.append(
        [
            Event("click", now + 1, "e1", user_id="u", query_id="q1", product_id="p2"),
            Event("click", now + 2, "e2", user_id="u", query_id="q1", product_id="p1"),
        ]
    )
    assert sink.ship_events() == 2
    events = [d for d in ndjson(sent[-1][2]) if d.get("doc_type") == "event"]
    assert [e["event_attributes"]["experiment_arm"] for e in events] == ["B", "A"]
    assert all(e["experiment"]["id"] == "exp-1" for e in events)
