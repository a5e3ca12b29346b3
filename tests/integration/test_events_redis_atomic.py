"""Event appends to Redis that fail part-way: never stored twice, and honestly answered.

A real redis-server sits behind `FaultyLink`, a loopback TCP proxy that breaks only the
event-append commands it is told to: it drops the reply of an append Redis has run (a cut
connection or a timeout after Redis did the work), holds an append back and delivers it
late (a command still on its way when the client gave up), or refuses every connection
(Redis unreachable). The real events API runs in a subprocess, its production Redis
client pointed at the proxy; one test adds a client that resends after a dropped
connection. Every test counts the user's events in the stream: a failed append followed
by a retry must leave exactly the batch. Nothing is timed: the proxy acts on the commands
it sees, and every wait is for a condition, bounded by `PATIENCE_S`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest

from shoprank.events.model import Event
from shoprank.events.service import EventService
from shoprank.events.stores import make_event_log
from shoprank.settings import Settings
from tests.integration.conftest import RedisServer, free_port

pytestmark = pytest.mark.slow  # starts redis-server and uvicorn

SECRET = "atomic-secret"
PATIENCE_S = 120.0
WINDOW_S = 120
T0 = float(int(time.time()) - 3600)  # client timestamps: a retried batch carries the same
APP = """
import uvicorn
from fastapi import FastAPI
from shoprank.events.service import EventService
from shoprank.plugin.events_api import make_events_router
from shoprank.settings import get_settings
settings = get_settings()
app = FastAPI()
app.include_router(make_events_router(settings, service=EventService(settings)))
uvicorn.run(app, host="127.0.0.1", port={port}, log_level="warning")
"""


def _command(buf: bytes | bytearray) -> tuple[list[bytes], int] | None:
    """The first whole RESP command in `buf`: its arguments and its length in bytes."""
    end = buf.find(b"\r\n")
    if end < 0:
        return None
    pos, args = end + 2, []
    for _ in range(int(buf[1:end])):
        end = buf.find(b"\r\n", pos)
        if end < 0:
            return None
        start = end + 2
        stop = start + int(buf[pos + 1 : end])
        if len(buf) < stop + 2:
            return None
        args.append(bytes(buf[start:stop]))
        pos = stop + 2
    return args, pos


def _is_append(args: list[bytes]) -> bool:
    return args[0].upper() == b"EVALSHA" and b"shoprank:events" in args[3:4]


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


@dataclass(eq=False)
class _Link:
    client: socket.socket
    upstream: socket.socket
    pending: bytearray = field(default_factory=bytearray)
    lose_reply: bool = False
    held: bytes | None = None
    answered: threading.Event = field(default_factory=threading.Event)


class FaultyLink:
    """A loopback proxy in front of redis-server that breaks the event appends it is told
    to (an `EVALSHA` on `shoprank:events`) and passes everything else through."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"redis://127.0.0.1:{self._listener.getsockname()[1]}/0"
        self._lock = threading.Lock()
        self._links: set[_Link] = set()
        self._held: list[_Link] = []
        self.lose = 0  # the next N appends run in Redis; their replies are dropped
        self.hold = 0  # the next N appends are held back until `release()`
        self.down_after_loss = False  # after a lost reply, refuse connections until `heal()`
        self.down = False
        self.appends = 0  # append commands that reached the proxy
        threading.Thread(target=self._accept, daemon=True).start()

    def heal(self) -> None:
        with self._lock:
            self.lose = self.hold = 0
            self.down = self.down_after_loss = False

    def release(self) -> int:
        """Deliver the held appends late; returns how many, once Redis answered each."""
        with self._lock:
            held, self._held = self._held, []
        for link in held:
            assert link.held is not None
            link.upstream.sendall(link.held)
        for link in held:
            assert link.answered.wait(PATIENCE_S), "Redis never answered a released append"
        return len(held)

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for link in self._links:
                _close(link.client)
                _close(link.upstream)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if self.down:
                    _close(client)
                    continue
            link = _Link(client, socket.create_connection(("127.0.0.1", self.upstream_port)))
            with self._lock:
                self._links.add(link)
            threading.Thread(target=self._to_redis, args=(link,), daemon=True).start()
            threading.Thread(target=self._to_client, args=(link,), daemon=True).start()

    def _cut_everything(self) -> None:
        self.down = True
        for link in self._links:
            if link.held is None:
                _close(link.client)
                _close(link.upstream)

    def _to_redis(self, link: _Link) -> None:
        while True:
            try:
                data = link.client.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            link.pending += data
            while (parsed := _command(link.pending)) is not None:
                args, size = parsed
                command = bytes(link.pending[:size])
                del link.pending[:size]
                with self._lock:
                    if _is_append(args):
                        self.appends += 1
                        if self.hold:
                            # Held on its way: the client's connection drops, Redis has not
                            # seen the command yet; `release()` delivers it.
                            self.hold -= 1
                            link.held = command
                            self._held.append(link)
                            _close(link.client)
                            return
                        if self.lose:
                            self.lose -= 1
                            link.lose_reply = True
                try:
                    link.upstream.sendall(command)
                except OSError:
                    return
        if link.held is None:
            _close(link.upstream)

    def _to_client(self, link: _Link) -> None:
        while True:
            try:
                data = link.upstream.recv(65536)
            except OSError:
                data = b""
            with self._lock:
                if link.held is not None:  # a late append's answer: nobody waits for it
                    link.answered.set()
                    break
                if not data or link.lose_reply:  # Redis ran it; its reply is lost
                    if data and self.down_after_loss:
                        self._cut_everything()
                    break
            try:
                link.client.sendall(data)
            except OSError:
                break
        _close(link.client)
        _close(link.upstream)


@pytest.fixture(scope="module")
def redis_direct(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis-atomic")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def proxy(redis_direct: RedisServer) -> Iterator[FaultyLink]:
    link = FaultyLink(redis_direct.port)
    yield link
    link.close()


@pytest.fixture(scope="module")
def direct(redis_direct: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> EventService:
    """The event service on Redis itself (not through the proxy), to count what is stored."""
    settings = Settings(
        redis_url=redis_direct.url,
        data_dir=tmp_path_factory.mktemp("atomic-direct"),
        user_id_secret=SECRET,
    )
    service = EventService(settings)
    service.log.clear()
    return service


@pytest.fixture(scope="module")
def api(
    proxy: FaultyLink, direct: EventService, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    data_dir = tmp_path_factory.mktemp("atomic-api")
    env = {
        **os.environ,
        "SHOPRANK_REDIS_URL": proxy.url,
        "SHOPRANK_DATA_DIR": str(data_dir),
        "SHOPRANK_USER_ID_SECRET": SECRET,
        "SHOPRANK_EVENT_DEDUPE_WINDOW_S": str(WINDOW_S),
    }
    port = free_port()
    with open(data_dir / "api.log", "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", APP.format(port=port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + PATIENCE_S
    while True:
        assert proc.poll() is None, (data_dir / "api.log").read_text()
        assert time.monotonic() < deadline, (data_dir / "api.log").read_text()
        try:
            # Also loads the append script into Redis, so that no test's first append is
            # the NOSCRIPT round trip.
            if post(url, batch("warm-up", 1)).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture()
def link(proxy: FaultyLink) -> Iterator[FaultyLink]:
    proxy.heal()
    proxy.appends = 0
    yield proxy
    proxy.heal()
    proxy.release()


def batch(user: str, n: int, *, timestamps: bool = True) -> list[dict[str, Any]]:
    """`n` clicks of `user`, with client timestamps unless told otherwise; no `event_id`."""
    return [
        {
            "type": "click",
            "user_id": user,
            "product_id": f"p{i}",
            **({"timestamp": T0 + i} if timestamps else {}),
        }
        for i in range(n)
    ]


def post(api: str, body: Any) -> httpx.Response:
    return httpx.post(
        api + "/_shoprank/events",
        content=orjson.dumps(body),
        headers={"content-type": "application/json"},
        timeout=PATIENCE_S,
    )


def stored(direct: EventService, user: str) -> int:
    """How many events of `user` the Redis stream holds."""
    subject = direct.subject(user_id=user)
    return sum(1 for _, event in direct.log.read() if event.user_id == subject)


def test_a_lost_reply_is_answered_200_because_the_batch_is_stored(
    api: str, link: FaultyLink, direct: EventService
) -> None:
    link.lose = 1  # Redis appends the batch; the reply never reaches shoprank
    response = post(api, batch("lost-reply", 5))
    # shoprank asks Redis what became of the batch: stored, so the answer says so (a 503
    # here would make the client send it again).
    assert response.status_code == 200 and response.json()["accepted"] == 5
    assert stored(direct, "lost-reply") == 5


def test_a_503_means_nothing_is_stored_even_when_the_command_arrives_late(
    api: str, link: FaultyLink, direct: EventService
) -> None:
    link.hold = 1  # the append is cut off on its way to Redis and held there
    refused = post(api, batch("late", 6))
    assert refused.status_code == 503
    assert refused.json()["error"]["type"] == "unavailable_shards_exception"
    assert link.release() == 1  # the held command reaches Redis after the 503, and runs
    assert stored(direct, "late") == 0  # ...storing nothing: the 503 told the truth
    retried = post(api, batch("late", 6))
    assert retried.status_code == 200 and retried.json()["accepted"] == 6
    assert stored(direct, "late") == 6


def test_resends_and_late_copies_of_an_append_store_it_once(
    link: FaultyLink, direct: EventService
) -> None:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # A client (or a proxy in between) that resends a command after a dropped connection.
    client = redis.Redis.from_url(link.url, retry=Retry(NoBackoff(), 3))
    log = make_event_log(
        direct.settings.model_copy(
            update={"redis_url": link.url, "event_dedupe_window_s": WINDOW_S}
        ),
        client=client,
    )
    log.append([Event("view", T0, "w", user_id="warm-up", product_id="p")])  # loads the script

    def events(tag: str) -> list[Event]:
        return [
            Event("click", T0 + i, f"{tag}-{i}", user_id="resend", product_id=f"{tag}{i}")
            for i in range(4)
        ]

    link.lose = 1  # runs, its reply is lost, the client resends it
    assert len(log.append(events("a")).offsets) == 4
    link.hold = 1  # held on its way; the client resends it, and the held copy comes late
    assert len(log.append(events("b")).offsets) == 4
    assert link.release() == 1
    assert link.appends == 5
    assert sum(1 for _, e in direct.log.read() if e.user_id == "resend") == 8


def test_a_retry_after_a_503_from_an_unreachable_redis_is_not_stored_twice(
    api: str, link: FaultyLink, direct: EventService
) -> None:
    link.lose, link.down_after_loss = 1, True  # stored, reply lost, then Redis unreachable
    refused = post(api, batch("unreachable", 5))
    assert refused.status_code == 503  # shoprank cannot tell whether the batch was stored
    link.heal()
    retried = post(api, batch("unreachable", 5))
    assert stored(direct, "unreachable") == 5
    assert retried.status_code == 200
    assert (retried.json()["accepted"], retried.json()["duplicates"]) == (0, 5)


def test_a_batch_sent_again_after_its_200_is_answered_as_duplicates(
    api: str, link: FaultyLink, direct: EventService
) -> None:
    first = post(api, batch("resent", 3))  # its response lost on the way to the client
    again = post(api, batch("resent", 3))
    assert stored(direct, "resent") == 3
    assert (first.json()["accepted"], first.json()["duplicates"]) == (3, 0)
    assert (again.json()["accepted"], again.json()["duplicates"]) == (0, 3)


def test_event_ids_and_resends_keep_the_accounting_exact(
    api: str, link: FaultyLink, direct: EventService
) -> None:
    first = [{"type": "view", "user_id": "mixed", "product_id": "p0", "event_id": "m-0"}]
    assert post(api, first).status_code == 200
    events = [
        {"type": "view", "user_id": "mixed", "product_id": "p0", "event_id": "m-0"},  # kept
        {"type": "view", "user_id": "mixed", "product_id": "p1", "event_id": "m-1"},
        {"type": "view", "user_id": "mixed", "product_id": "p2", "timestamp": T0},
    ]
    link.lose = 1
    response = post(api, events)
    if response.status_code != 200:  # what a client does with a 503
        response = post(api, events)
    assert stored(direct, "mixed") == 3
    assert (response.json()["accepted"], response.json()["duplicates"]) == (2, 1)


def test_events_without_timestamps_are_never_taken_for_a_retry(
    api: str, link: FaultyLink, direct: EventService
) -> None:
    # Server time stamps them: the same body sent twice is two sets of events.
    for _ in range(2):
        assert post(api, batch("untimed", 2, timestamps=False)).json()["accepted"] == 2
    assert stored(direct, "untimed") == 4


def test_an_append_refused_for_memory_stores_nothing_and_its_retry_stores_it_once(
    api: str, link: FaultyLink, direct: EventService
) -> None:
    client = direct.client
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", "1")  # every write is refused (OOM)
    try:
        refused = post(api, batch("oom", 8))
    finally:
        client.config_set("maxmemory", "0")
    assert refused.status_code == 503
    assert stored(direct, "oom") == 0
    retried = post(api, batch("oom", 8))
    assert retried.status_code == 200 and retried.json()["accepted"] == 8
    assert stored(direct, "oom") == 8


def test_a_memory_limit_reached_mid_batch_stores_all_of_it_or_none(
    api: str, link: FaultyLink, direct: EventService
) -> None:
    # The limit is set `headroom` bytes above what Redis uses, for headrooms rising in steps
    # smaller than what one batch adds, up to the first batch let in: it crosses the limit
    # part-way, and Redis lets a script that has begun writing finish.
    client, size = direct.client, 300
    client.config_set("maxmemory-policy", "noeviction")
    outcomes = {}
    for headroom in range(0, 2_000_001, 10_000):
        user = f"limit-{headroom}"
        used = int(client.info("memory")["used_memory"])
        client.config_set("maxmemory", str(used + headroom))
        try:
            status = post(api, batch(user, size)).status_code
        finally:
            client.config_set("maxmemory", "0")
        outcomes[headroom] = (status, stored(direct, user))
        if status == 503:  # the client retries once Redis has room
            assert post(api, batch(user, size)).json()["accepted"] == size
        assert stored(direct, user) == size
        if status == 200:
            break
    assert set(outcomes.values()) == {(200, size), (503, 0)}, outcomes


def test_batches_are_remembered_for_the_dedupe_window_only(
    api: str, link: FaultyLink, direct: EventService
) -> None:
    assert post(api, batch("window", 1)).status_code == 200
    ttls = [direct.client.ttl(key) for key in direct.client.scan_iter(match="shoprank:batch:*")]
    assert any(ttl > 0 for ttl in ttls)
    assert all(0 < ttl <= WINDOW_S for ttl in ttls if ttl != -2)  # -2: expired meanwhile
