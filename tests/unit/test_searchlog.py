"""The search log: UBI-style documents, the embedded store with events joined by query id,
and the logger's batching (a real SearchService on the shared 8-product corpus)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from shoprank.events.embedded import EmbeddedEventLog
from shoprank.events.model import Event
from shoprank.events.privacy import pseudonymise
from shoprank.plugin.backends.embedded.backend import EmbeddedBackend
from shoprank.plugin.search import SearchService
from shoprank.searchlog import make_sinks
from shoprank.searchlog.documents import impression_documents, latency_breakdown, query_document
from shoprank.searchlog.logger import SearchLogger
from shoprank.searchlog.mapping import dynamic_prefixes, field_paths
from shoprank.searchlog.record import SearchRecord, WindowItem
from shoprank.searchlog.sinks import EmbeddedSearchLogSink
from shoprank.searchlog.store import SearchLogStore
from shoprank.settings import Settings

SECRET = "test-secret"


def record(
    query_id: str, query: str = "laptop", *, ts: float | None = None, **kw: Any
) -> SearchRecord:
    return SearchRecord(
        index="products",
        query=query,
        mode="full",
        query_id=query_id,
        timestamp=time.time() if ts is None else ts,
        user_id=kw.pop("user_id", "alice"),
        window=kw.pop(
            "window",
            [
                WindowItem("5", rank_before=3, rank_after=1, score=0.9, features={"bm25": 2.5}),
                WindowItem("1", rank_before=1, rank_after=2, score=0.8),
                WindowItem("3", rank_before=2, rank_after=3, score=0.7),
            ],
        ),
        total_hits=kw.pop("total_hits", 3),
        **kw,
    )


def leaf_paths(doc: dict[str, Any], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for key, value in doc.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out |= leaf_paths(value, path + ".")
        else:
            out.add(path)
    return out


def test_documents_pseudonymise_users_and_carry_rank_shifts() -> None:
    rec = record(
        "q1",
        intent={
            "categories": [{"category": "Laptops", "probability": 0.8}],
            "attributes": {"brand": ["Lenovo"]},
            "price": {"lte": 100.0},
        },
        rewrite=[{"action": "filter", "field": "brand"}],
        timings_ms={"embed_ms": 1.0, "lexical_ms": 2.0, "vector_ms": 3.0, "learned_ms": 4.0},
    )
    pseudonym = pseudonymise("alice", SECRET)
    doc = query_document(rec, client_id=pseudonym, session_id=None)
    assert "alice" not in str(doc)
    assert doc["client_id"] == pseudonym
    assert doc["query_response_object_ids"] == ["5", "1", "3"]
    assert doc["intent"]["category"] == "Laptops"
    assert doc["intent"]["attributes"] == {"brand": ["Lenovo"]}
    assert doc["rewrite"]["actions"] == ["filter"]
    assert doc["latency_ms"]["retrieval"] == 6.0 and doc["latency_ms"]["rerank"] == 4.0
    assert doc["latency_ms"]["total"] == 10.0
    impressions = impression_documents(rec, client_id=pseudonym, session_id=None)
    by_id = {d["event_attributes"]["object"]["object_id"]: d for d in impressions}
    assert by_id["5"]["event_attributes"]["rank_shift"] == 2  # 3 → 1: moved up two
    assert by_id["1"]["event_attributes"]["rank_shift"] == -1
    assert by_id["5"]["event_attributes"]["position"]["ordinal"] == 1
    assert by_id["5"]["event_attributes"]["features"] == {"bm25": 2.5}
    assert {d["action_name"] for d in impressions} == {"impression"}


def test_every_document_field_is_in_the_mapping() -> None:
    rec = record(
        "q1",
        intent={"categories": [{"category": "Laptops", "probability": 0.8}], "query_type": "x"},
        rewrite=[{"action": "boost"}],
        relaxation="dropped brand",
        model_version="m1",
        session_id="s1",
    )
    mapped = field_paths()
    dynamic = tuple(dynamic_prefixes())
    disabled = ("timings_ms", "window", "rewrite.details")
    docs = [query_document(rec, client_id="c", session_id="s")]
    docs += impression_documents(rec, client_id="c", session_id="s")
    for doc in docs:
        for path in leaf_paths(doc):
            if path.startswith(disabled) or path.startswith(dynamic):
                continue
            assert path in mapped, f"{path} is written but not mapped"


def test_latency_breakdown_of_an_empty_timing_is_zero() -> None:
    assert latency_breakdown({})["total"] == 0


def test_store_lists_recent_searches_and_filters(tmp_path: Path) -> None:
    store = SearchLogStore(tmp_path)
    sink = EmbeddedSearchLogSink(store, secret=lambda: SECRET)
    now = time.time()
    sink.write(record("q1", "laptop bag", ts=now - 30))
    sink.write(record("q2", "usb charger", ts=now - 20, total_hits=0, window=[]))
    sink.write(record("q3", "laptop", ts=now - 10, user_id=None))
    assert store.count() == 0  # buffered until the logger flushes
    sink.flush()
    assert [s["query_id"] for s in store.recent()] == ["q3", "q2", "q1"]
    assert [s["query_id"] for s in store.recent(query="laptop")] == ["q3", "q1"]
    assert [s["query_id"] for s in store.recent(zero_results=True)] == ["q2"]
    assert [s["query_id"] for s in store.recent(query="100%")] == []
    assert store.get("q1")["client_id"] == pseudonymise("alice", SECRET)
    assert store.get("q3")["client_id"] is None
    assert store.get("nope") is None


def test_events_join_by_query_id_incrementally(tmp_path: Path) -> None:
    store = SearchLogStore(tmp_path / "searchlog")
    sink = EmbeddedSearchLogSink(store, secret=lambda: SECRET)
    sink.write(record("q1"))
    sink.write(record("q2", "mouse"))
    sink.flush()
    log = EmbeddedEventLog(tmp_path / "events")
    now = time.time()

    def event(etype: str, qid: str | None, pid: str, pos: int | None, n: int) -> Event:
        return Event(
            etype, now + n, f"e{n}", user_id="p1", query_id=qid, product_id=pid, position=pos
        )

    log.append(
        [
            event("click", "q1", "5", 1, 1),
            event("click", None, "9", None, 2),
            event("add_to_cart", "q1", "5", None, 3),
        ]
    )
    assert store.sync_events(log) == 2  # the click without a query id is not joined
    joined = store.get("q1")
    assert [e["type"] for e in joined["events"]] == ["click", "add_to_cart"]
    # Rank before reranking comes from the logged window; a missing position from rank after.
    assert joined["events"][0]["rank_before"] == 3
    assert joined["events"][1]["position"] == 1
    assert joined["summary"]["click"] == 1 and joined["summary"]["purchase"] == 0
    assert store.get("q2")["events"] == []
    log.append([event("purchase", "q2", "1", 2, 4)])
    assert store.sync_events(log) == 1  # only what arrived since the last sync
    assert store.sync_events(log) == 0
    assert store.get("q2")["summary"]["purchase"] == 1


def test_forget_and_prune(tmp_path: Path) -> None:
    store = SearchLogStore(tmp_path)
    sink = EmbeddedSearchLogSink(store, secret=lambda: SECRET)
    sink.write(record("old", ts=time.time() - 10 * 86_400, user_id="bob"))
    sink.write(record("new", user_id="alice"))
    sink.flush()
    assert store.prune(time.time() - 86_400) == 1
    assert store.forget(pseudonymise("alice", SECRET)) == 1
    assert store.count() == 0


def test_forgetting_a_user_deletes_their_logged_searches(tmp_path: Path) -> None:
    from shoprank.events.service import EventService

    settings = Settings(data_dir=tmp_path, user_id_secret=SECRET)
    store = SearchLogStore(tmp_path / "searchlog")
    sink = EmbeddedSearchLogSink(store, secret=lambda: SECRET)
    sink.write(record("q1", user_id="alice"))
    sink.write(record("q2", user_id="bob"))
    sink.flush()
    result = EventService(settings).forget("alice")
    assert result["searches_deleted"] == 1
    assert [s["query_id"] for s in store.recent()] == ["q2"]


@pytest.fixture()
def service(corpus_backend: EmbeddedBackend, tmp_path: Path) -> SearchService:
    settings = Settings(data_dir=tmp_path, user_id_secret=SECRET)
    logger = SearchLogger(settings)
    logger.sinks.extend(make_sinks(settings))
    return SearchService(backend=corpus_backend, settings=settings, search_logger=logger)


def test_every_search_is_logged_with_its_window(service: SearchService, tmp_path: Path) -> None:
    body = {"query": {"match": {"title": "laptop"}}, "size": 2}
    response = service.search("products", body)
    service.search("products", {"query": {"match": {"title": "zzzz"}}})
    service.search_logger.flush()
    store = SearchLogStore(tmp_path / "searchlog")
    found = store.recent()
    assert [s["user_query"] for s in found] == ["zzzz", "laptop"]
    laptop = found[1]
    assert laptop["query_response_object_ids"] == [h["_id"] for h in response["hits"]["hits"]]
    assert laptop["total_hits"] == response["hits"]["total"]["value"]
    assert found[0]["zero_results"] == 1
    # An anonymous search gets no query id in the response (nothing to send events with).
    assert "query_id" not in response.get("_shoprank", {})


def test_a_failing_sink_never_fails_a_search(service: SearchService) -> None:
    class Broken:
        def write(self, record: SearchRecord) -> None:
            raise OSError("disk full")

    logger = service.search_logger
    logger.sinks.insert(0, Broken())
    response = service.search("products", {"query": {"match": {"title": "laptop"}}})
    logger.flush()
    assert response["hits"]["hits"]
    assert logger.failed == 1
    assert SearchLogStore(service.settings.data_dir / "searchlog").count() == 1


def test_search_log_can_be_turned_off(tmp_path: Path) -> None:
    assert make_sinks(Settings(data_dir=tmp_path, search_log=False)) == []


def test_batches_are_written_when_the_queue_runs_empty(service: SearchService) -> None:
    class Counting:
        def __init__(self) -> None:
            self.records = 0
            self.flushes: list[int] = []
            self.release = threading.Event()

        def write(self, record: SearchRecord) -> None:
            self.records += 1
            # Held until every search is in (the cap only ends a broken run): the other
            # records queue up behind this one however fast or slow searching is.
            self.release.wait(60)

        def flush(self) -> None:
            self.flushes.append(self.records)

    sink = Counting()
    service.search_logger.sinks = [sink]
    try:
        for _ in range(20):
            service.search("products", {"query": {"match": {"title": "mouse"}}})
    finally:
        sink.release.set()
    service.search_logger.flush()
    assert sink.records == 20
    assert sink.flushes and sink.flushes[-1] == 20
    assert len(sink.flushes) < 20  # batched, not one write per search


def test_a_batch_of_searches_is_one_append_and_every_search_is_in_the_log(
    corpus_backend: EmbeddedBackend, tmp_path: Path
) -> None:
    from shoprank.events.service import EventService

    class CountingEvents:
        """The real behaviour log, counting how often the logger writes to it."""

        def __init__(self, inner: EventService) -> None:
            self.inner = inner
            self.batches: list[int] = []

        def ingest(self, events: Any, *, fold: bool = True, now: float | None = None) -> Any:
            self.batches.append(len(events))
            return self.inner.ingest(events, fold=fold, now=now)

        def log_search(self, **kw: Any) -> str | None:
            raise AssertionError("a search logged on its own")

    class Holding:
        """A sink that holds the first batch until every search is in."""

        def __init__(self) -> None:
            self.release = threading.Event()

        def write(self, record: SearchRecord) -> None:
            self.release.wait(60)

    settings = Settings(data_dir=tmp_path, user_id_secret=SECRET)
    inner = EventService(settings)
    events = CountingEvents(inner)
    sink = Holding()
    logger = SearchLogger(settings, events=events, sinks=[sink])  # type: ignore[arg-type]
    service = SearchService(backend=corpus_backend, settings=settings, search_logger=logger)
    query_ids = []
    try:
        for i in range(20):
            body = {"query": {"match": {"title": "mouse"}}, "size": 3}
            found = service.search("products", body, user_id=f"shopper-{i % 4}")
            query_ids.append(found["_shoprank"]["query_id"])
    finally:
        sink.release.set()
    logger.flush()
    assert sum(events.batches) == 20 and len(events.batches) < 20
    logged = [e for _, e in inner.log.read() if e.type == "search"]
    assert sorted(e.query_id for e in logged) == sorted(query_ids)
    assert logger.failed == 0
