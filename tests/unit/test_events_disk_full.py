"""A full disk under the embedded event log, by injection: the events API answers 507 (ES
error shape, no filesystem path), nothing is acknowledged that was not stored, and a partly
written segment line never stays in the log."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from shoprank.events.embedded import EmbeddedEventLog
from shoprank.events.service import EventService
from shoprank.settings import Settings

CLICK = {"type": "click", "user_id": "alice", "product_id": "p1"}


def enospc(path: Path) -> OSError:
    return OSError(errno.ENOSPC, "No space left on device", str(path))


class FullDiskLog(EmbeddedEventLog):
    """The embedded log on a disk that fills up: while `full`, a segment write stores half
    of its bytes (a torn line) and raises ENOSPC, as `write(2)` does."""

    full = False

    def _write_lines(self, target: Path, data: bytes) -> int:
        if not self.full:
            return super()._write_lines(target, data)
        with open(target, "ab") as fh:
            fh.write(data[: len(data) // 2])
        raise enospc(target)


def client_for(service: EventService) -> TestClient:
    from shoprank.plugin.events_api import make_events_router

    app = FastAPI()
    app.include_router(make_events_router(service.settings, service=service))
    return TestClient(app, raise_server_exceptions=False, client=("127.0.0.1", 50000))


@pytest.fixture()
def log(tmp_path: Path) -> FullDiskLog:
    return FullDiskLog(tmp_path / "events")


@pytest.fixture()
def service(tmp_path: Path, log: FullDiskLog) -> EventService:
    return EventService(Settings(data_dir=tmp_path), log=log)


def segments(log: EmbeddedEventLog) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(log.segments.glob("*.jsonl"))}


def assert_507(response: Any, tmp_path: Path) -> None:
    assert response.status_code == 507
    body = response.json()
    assert body["status"] == 507 and body["error"]["type"] == "cluster_block_exception"
    assert body["error"]["root_cause"][0]["type"] == "cluster_block_exception"
    assert "disk" in body["error"]["reason"] and "not stored" in body["error"]["reason"]
    assert str(tmp_path) not in response.text and "/" not in body["error"]["reason"]


def test_a_full_disk_is_a_507_and_the_torn_write_is_undone(
    service: EventService, log: FullDiskLog, tmp_path: Path
) -> None:
    client = client_for(service)
    assert client.post("/_shoprank/events", json={**CLICK, "event_id": "kept"}).status_code == 200
    before = segments(log)
    log.full = True
    batch = [{**CLICK, "product_id": f"p{i}", "event_id": f"e{i}"} for i in range(5)]
    assert_507(client.post("/_shoprank/events", json=batch), tmp_path)
    assert segments(log) == before  # not one byte of the failed append is left
    log.full = False  # space freed: the client sends the same events again
    again = client.post("/_shoprank/events", json=batch).json()
    assert (again["accepted"], again["duplicates"]) == (5, 0)  # none was kept before
    assert [e.event_id for _, e in log.read()] == ["kept", *(f"e{i}" for i in range(5))]
    profile = client.get("/_shoprank/users/alice/profile").json()
    assert profile["counts"] == {"click": 6}


def test_a_new_segment_that_could_not_be_written_is_removed(tmp_path: Path) -> None:
    log = FullDiskLog(tmp_path / "events", segment_bytes=1)  # every append opens a segment
    service = EventService(Settings(data_dir=tmp_path), log=log)
    client = client_for(service)
    client.post("/_shoprank/events", json=CLICK)
    before = segments(log)
    log.full = True
    assert_507(client.post("/_shoprank/events", json=CLICK), tmp_path)
    assert segments(log) == before
    log.full = False
    assert client.post("/_shoprank/events", json=CLICK).json()["accepted"] == 1
    assert log.count() == 2


def test_a_full_disk_under_the_id_index_stores_nothing(
    service: EventService, log: FullDiskLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = client_for(service)
    client.post("/_shoprank/events", json=CLICK)
    before = segments(log)
    real = log._ids

    class FullIds:
        """The idempotency index on a full disk: its commit fails as SQLite's does."""

        def __init__(self) -> None:
            self.conn = real()

        def __getattr__(self, name: str) -> Any:
            return getattr(self.conn, name)

        def commit(self) -> None:
            exc = sqlite3.OperationalError("database or disk is full")
            exc.sqlite_errorcode = sqlite3.SQLITE_FULL
            raise exc

    monkeypatch.setattr(log, "_ids", FullIds)
    assert_507(client.post("/_shoprank/events", json={**CLICK, "event_id": "x"}), tmp_path)
    assert segments(log) == before
    monkeypatch.undo()
    again = client.post("/_shoprank/events", json={**CLICK, "event_id": "x"}).json()
    assert (again["accepted"], again["duplicates"]) == (1, 0)
    assert log.count() == 2


def test_events_stored_before_the_disk_filled_are_acknowledged_once(
    service: EventService, log: FullDiskLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The segment and the ids are durable, only `head` could not move: the events are
    stored, so the answer is 200 (a 5xx would make the client store them twice)."""
    client = client_for(service)
    real = log._write_small

    def full_for_head(name: str, text: str) -> None:
        if name == "head":
            raise enospc(log.root / name)
        real(name, text)

    monkeypatch.setattr(log, "_write_small", full_for_head)
    response = client.post("/_shoprank/events", json=[CLICK, {**CLICK, "event_id": "once"}])
    assert response.status_code == 200 and response.json()["accepted"] == 2
    monkeypatch.undo()
    retry = client.post("/_shoprank/events", json={**CLICK, "event_id": "once"}).json()
    assert (retry["accepted"], retry["duplicates"]) == (0, 1)
    assert log.count() == 2
    assert client.get("/_shoprank/users/alice/profile").json()["counts"] == {"click": 2}


def test_a_disk_full_error_from_anywhere_in_ingest_is_a_507(
    service: EventService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(events: Any) -> Any:
        raise enospc(tmp_path / "events" / "head")

    monkeypatch.setattr(service, "ingest", full)
    assert_507(client_for(service).post("/_shoprank/events", json=CLICK), tmp_path)
