"""The embedded event log remembers each stored batch for the dedupe window, as Redis does.

A client that loses the response to a batch sends it again: without `event_id` its events
are recognisable only as a whole batch. Through the real events API on loopback (uvicorn in
a thread), the same batch sent twice is answered as duplicates and counted once in the
user's profile; after the window (an injected clock, no sleeping) it is stored again; a
forgotten user's batch records go with their events. The spool keeps the client-id /
generated-id distinction, so a replayed batch is recognised like the request it came from.
"""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from fastapi import FastAPI

from shoprank.events.batches import batch_key
from shoprank.events.embedded import EmbeddedEventLog
from shoprank.events.model import Event
from shoprank.events.service import EventService
from shoprank.plugin.events_api import make_events_router
from shoprank.settings import Settings
from shoprank.spool import EventSpool, decode, encode

WINDOW_S = 600
WAIT_S = 60.0
T0 = float(int(time.time()) - 3600)  # client timestamps: a retried batch carries the same


class Clock:
    """The dedupe window's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def log(tmp_path: Path, clock: Clock) -> EmbeddedEventLog:
    return EmbeddedEventLog(tmp_path / "events", dedupe_window_s=WINDOW_S, clock=clock)


@pytest.fixture()
def service(tmp_path: Path, log: EmbeddedEventLog) -> EventService:
    return EventService(Settings(data_dir=tmp_path, user_id_secret="dedupe-secret"), log=log)


@pytest.fixture()
def api(service: EventService) -> Iterator[httpx.Client]:
    """The events API of `service`, served by uvicorn on a free loopback port."""
    app = FastAPI()
    app.include_router(make_events_router(service.settings, service=service))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with httpx.Client(base_url=url, timeout=WAIT_S) as client:
        for _ in range(int(WAIT_S * 20)):  # until it accepts connections
            try:
                client.get("/_shoprank/users/nobody/profile")
                break
            except httpx.TransportError:
                threading.Event().wait(0.05)
        yield client
    server.should_exit = True
    thread.join(WAIT_S)
    sock.close()


def batch(user: str, n: int, **extra: Any) -> list[dict[str, Any]]:
    """`n` clicks of `user` with client timestamps and no `event_id`."""
    return [
        {"type": "click", "user_id": user, "product_id": f"p{i}", "timestamp": T0 + i, **extra}
        for i in range(n)
    ]


def post(api: httpx.Client, body: Any) -> tuple[int, int]:
    response = api.post(
        "/_shoprank/events",
        content=orjson.dumps(body),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
    return response.json()["accepted"], response.json()["duplicates"]


def clicks(api: httpx.Client, user: str) -> int:
    """The clicks the user's profile counts (what the ranker personalises on)."""
    response = api.get(f"/_shoprank/users/{user}/profile")
    return 0 if response.status_code == 404 else int(response.json()["counts"].get("click", 0))


def stored(service: EventService, user: str) -> int:
    subject = service.subject(user_id=user)
    return sum(1 for _, event in service.log.read() if event.user_id == subject)


def test_the_same_batch_sent_twice_is_answered_as_duplicates_and_stored_once(
    api: httpx.Client, service: EventService
) -> None:
    assert post(api, batch("alice", 4)) == (4, 0)  # its response lost on the way back
    assert post(api, batch("alice", 4)) == (0, 4)
    assert stored(service, "alice") == 4
    assert clicks(api, "alice") == 4
    # A batch that differs in anything is another batch.
    assert post(api, batch("alice", 3)) == (3, 0)
    assert post(api, batch("alice", 4, position=1)) == (4, 0)
    assert stored(service, "alice") == 11


def test_a_batch_sent_again_after_the_window_is_stored_again(
    api: httpx.Client, service: EventService, clock: Clock
) -> None:
    assert post(api, batch("bob", 3)) == (3, 0)
    clock.now += WINDOW_S - 1
    assert post(api, batch("bob", 3)) == (0, 3)  # still inside the window
    clock.now += 2
    assert post(api, batch("bob", 3)) == (3, 0)  # past it: a new batch
    assert stored(service, "bob") == 6 and clicks(api, "bob") == 6


def test_records_past_the_window_are_pruned(
    api: httpx.Client, log: EmbeddedEventLog, clock: Clock
) -> None:
    for user in ("c1", "c2", "c3"):
        post(api, batch(user, 1))
    clock.now += WINDOW_S + 1
    post(api, batch("c4", 1))
    with sqlite3.connect(log.root / "ids.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*) FROM batches").fetchone()[0] == 1


def test_events_without_timestamps_are_never_taken_for_a_retry(
    api: httpx.Client, service: EventService
) -> None:
    untimed = [{"type": "view", "user_id": "dora", "product_id": "p1"}]
    assert post(api, untimed) == (1, 0)
    assert post(api, untimed) == (1, 0)  # server time stamps each: two views
    assert stored(service, "dora") == 2


def test_client_event_ids_and_batch_dedupe_keep_the_accounting_exact(
    api: httpx.Client, service: EventService
) -> None:
    assert post(api, [{**batch("erin", 1)[0], "event_id": "e-0"}]) == (1, 0)
    mixed = [{**batch("erin", 1)[0], "event_id": "e-0"}, *batch("erin", 3)[1:]]
    assert post(api, mixed) == (2, 1)  # e-0 was stored already
    assert post(api, mixed) == (0, 3)  # the whole batch again
    assert stored(service, "erin") == 3


def test_forget_removes_the_users_batch_records(
    api: httpx.Client, service: EventService, log: EmbeddedEventLog
) -> None:
    assert post(api, batch("fay", 2)) == (2, 0)
    assert post(api, batch("gus", 2)) == (2, 0)
    forgotten = api.delete("/_shoprank/users/fay").json()
    assert forgotten["events_deleted"] == 2
    with sqlite3.connect(log.root / "ids.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*) FROM batches").fetchone()[0] == 1  # gus's
    # Nothing of fay is remembered: her batch sent again is new data, gus's still a repeat.
    assert post(api, batch("fay", 2)) == (2, 0)
    assert post(api, batch("gus", 2)) == (0, 2)
    assert stored(service, "fay") == 2 and stored(service, "gus") == 2


def events(user: str, n: int) -> list[Event]:
    return [
        Event("click", T0 + i, f"gen-{user}-{i}", user_id=user, product_id="p") for i in range(n)
    ]


def test_a_batch_stored_just_before_a_crash_is_still_recognised(
    log: EmbeddedEventLog, clock: Clock
) -> None:
    first = log.append(events("hal", 3))
    # The crash: the segment was fsynced, then neither the SQLite commit nor `head` made it.
    with sqlite3.connect(log.root / "ids.sqlite") as conn:
        conn.execute("DELETE FROM batches")
    (log.root / "head").write_text("0 0")
    again = EmbeddedEventLog(log.root, dedupe_window_s=WINDOW_S, clock=clock).append(
        events("hal", 3)
    )
    assert len(first.offsets) == 3 and again.duplicates == [0, 1, 2]
    assert log.count() == 3


def test_spool_lines_keep_generated_ids_apart_from_client_ids() -> None:
    client = Event("click", T0, "c-1", user_id="u", product_id="p", idempotent=True)
    generated = Event("click", T0, "9f3a", user_id="u", product_id="p")
    assert [decode(encode(e)) for e in (client, generated)] == [client, generated]
    # Every spooled event carries an id the replay deduplicates on.
    assert all(orjson.loads(encode(e))["idempotent"] for e in (client, generated))
    assert batch_key([decode(encode(generated))]) == batch_key([generated])


def test_a_spooled_batch_whose_request_was_stored_is_replayed_as_duplicates(
    tmp_path: Path, service: EventService, log: EmbeddedEventLog
) -> None:
    original = events("ivy", 4)
    log.append(original)  # stored, but the client was told it may not have been
    spool = EventSpool(tmp_path / "spool")
    spool.put(original)
    assert spool.replay(service) == 4 and not spool.files()
    assert log.count() == 4  # recognised as the stored batch


def test_a_replay_repeated_after_the_window_stores_nothing_twice(
    tmp_path: Path, service: EventService, log: EmbeddedEventLog, clock: Clock
) -> None:
    spool = EventSpool(tmp_path / "spool")
    spool.put(events("kim", 3))
    assert spool.replay(service) == 3 and log.count() == 3
    # The process died before it deleted the file, and restarts after the window: the
    # generated ids the replay kept as idempotency keys still recognise the events.
    spool.put(events("kim", 3))
    clock.now += WINDOW_S + 1
    spool.replay(service)
    assert log.count() == 3


def test_old_spool_files_still_replay(
    tmp_path: Path, service: EventService, log: EmbeddedEventLog
) -> None:
    # Written before `generated_id`: every event marked idempotent, as the spool did then.
    old = [replace(e, idempotent=True) for e in events("jo", 2)]
    directory = tmp_path / "spool"
    directory.mkdir()
    (directory / "00000000000000000001-1-000000-2.jsonl").write_bytes(
        b"".join(orjson.dumps(e.to_record()) + b"\n" for e in old)
    )
    spool = EventSpool(directory)
    assert spool.depth() == 2 and spool.replay(service) == 2
    assert [e.event_id for _, e in log.read()] == ["gen-jo-0", "gen-jo-1"]
    assert not spool.files()
