"""Events → Redis Stream → Celery worker → Redis profiles, over real HTTP on loopback.

Starts a real redis-server, a real Celery worker consuming `shoprank.fold_events`, and a
uvicorn server mounting the events router. Checks that each append alone gets its event
folded, idempotency, worker kill/restart (nothing lost, nothing doubled), exact rebuild,
forget, retention, bad input. Nothing is timed: every wait is for a condition, with a bound
(`PATIENCE_S`) that is only reached when the condition never holds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from shoprank.events import Event
from shoprank.events.service import RETENTION_LAST, EventService
from shoprank.profiles.redis_store import RedisProfileStore
from shoprank.settings import Settings
from tests.integration.conftest import RedisServer, Worker, free_port
from tests.unit.test_profiles_store import CFG, ProfileStoreSuite

pytestmark = pytest.mark.slow  # starts redis-server, a Celery worker and uvicorn

SECRET = "integration-secret"
PATIENCE_S = 120.0  # generous: reached only when a condition never holds, even on a busy host
APP = """
import uvicorn
from fastapi import FastAPI
from shoprank.plugin.events_api import make_events_router
from shoprank.settings import get_settings
app = FastAPI()
app.include_router(make_events_router(get_settings()))
uvicorn.run(app, host="127.0.0.1", port={port}, log_level="warning")
"""


class EventsWorker(Worker):
    """A Celery worker that also imports `shoprank.workers.events` (the fold task)."""

    def start(self) -> EventsWorker:
        self.env["SHOPRANK_USER_ID_SECRET"] = SECRET
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "shoprank.workers.app",
                    "worker",
                    "-I",
                    "shoprank.workers.events",
                    f"--concurrency={self.concurrency}",
                    "--loglevel=warning",
                    "--without-gossip",
                    "--without-mingle",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        return self


@pytest.fixture(scope="module")
def env(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    data_dir = tmp_path_factory.mktemp("events")
    return {
        "SHOPRANK_REDIS_URL": redis_server.url,
        "SHOPRANK_DATA_DIR": str(data_dir),
        "SHOPRANK_USER_ID_SECRET": SECRET,
    }


@pytest.fixture(scope="module")
def service(env: dict[str, str]) -> EventService:
    settings = Settings(
        redis_url=env["SHOPRANK_REDIS_URL"],
        data_dir=Path(env["SHOPRANK_DATA_DIR"]),
        user_id_secret=SECRET,
    )
    svc = EventService(settings)
    svc.log.clear()
    svc.store.clear()
    return svc


@pytest.fixture(scope="module")
def worker(env: dict[str, str], service: EventService) -> Iterator[EventsWorker]:
    w = EventsWorker(Path(env["SHOPRANK_DATA_DIR"]), env["SHOPRANK_REDIS_URL"]).start()
    yield w
    w.stop()


@pytest.fixture(scope="module")
def api(env: dict[str, str], worker: EventsWorker) -> Iterator[str]:
    port = free_port()
    log = Path(env["SHOPRANK_DATA_DIR"]) / "api.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", APP.format(port=port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/_shoprank/users/nobody/profile", timeout=1)
            break
        except httpx.HTTPError:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def post(api: str, body: Any, **kw: Any) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    headers = {"content-type": "application/json", **kw.pop("headers", {})}
    return httpx.post(api + "/_shoprank/events", content=content, headers=headers, timeout=60)


def clicks(api: str, user: str) -> int:
    response = httpx.get(f"{api}/_shoprank/users/{user}/profile", timeout=5)
    return 0 if response.status_code == 404 else int(response.json()["counts"].get("click", 0))


def wait_for(predicate: Any, timeout: float = PATIENCE_S) -> None:
    """Return once `predicate()` holds; fail only if it still does not after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"condition never met (gave up after {timeout} s)")


def drained(service: EventService) -> bool:
    last = service.client.xrevrange("shoprank:events", count=1)
    mark = service.store.watermark()
    return not last or (mark is not None and last[0][0].decode() == mark)


class TestRedisProfileStore(ProfileStoreSuite):
    @pytest.fixture()
    def store(self, redis_server: RedisServer) -> Iterator[RedisProfileStore]:
        import redis

        client = redis.Redis.from_url(redis_server.url.replace("/0", "/3"))
        store = RedisProfileStore(client, CFG)
        store.clear()
        yield store
        store.clear()


def test_each_event_reaches_the_profile_on_its_own(api: str) -> None:
    # Nothing folds on a timer: only the trigger of each append (and a worker's start) does.
    # So each event showing up with nothing posted after it shows the append folded it.
    post(api, {"type": "click", "user_id": "warm", "product_id": "p0"})
    wait_for(lambda: clicks(api, "warm") == 1)  # the worker is up
    for n in range(1, 6):
        response = post(api, {"type": "click", "user_id": "fresh", "product_id": f"p{n}"})
        assert response.json()["accepted"] == 1
        wait_for(lambda n=n: clicks(api, "fresh") == n)


def test_duplicate_event_id_is_ignored(api: str, service: EventService) -> None:
    event = {"type": "click", "user_id": "dup", "product_id": "p1", "event_id": "dup-1"}
    assert post(api, event).json()["accepted"] == 1
    again = post(api, event).json()
    assert (again["accepted"], again["duplicates"]) == (0, 1)
    wait_for(lambda: drained(service))
    assert clicks(api, "dup") == 1


def test_worker_killed_and_restarted_loses_and_doubles_nothing(
    api: str, service: EventService, worker: EventsWorker
) -> None:
    batches, size = 30, 200
    for b in range(batches):
        if b == 10:
            worker.kill()  # SIGKILL mid-stream, with folds likely in flight
        events = [
            {
                "type": "click",
                "user_id": f"crash{i % 7}",
                "product_id": f"p{i % 50}",
                "event_id": f"crash-{b}-{i}",
            }
            for i in range(size)
        ]
        assert post(api, events).json()["accepted"] == size
    worker.start()
    wait_for(lambda: drained(service))
    assert sum(clicks(api, f"crash{u}") for u in range(7)) == batches * size
    assert service.log.pending() == 0  # type: ignore[attr-defined]


def test_rebuild_reproduces_the_live_profiles_exactly(api: str, service: EventService) -> None:
    wait_for(lambda: drained(service))
    with service.fold_lock():
        live = dict(service.store.profiles())
        stats = service.store.stats_snapshot()
    report = service.rebuild()
    assert report["profiles"] == len(live) > 5
    assert dict(service.store.profiles()) == live
    assert service.store.stats_snapshot() == stats


def test_forget_user_removes_everything(api: str, service: EventService) -> None:
    post(
        api,
        [
            {
                "type": "click",
                "user_id": "forget-me",
                "session_id": "t1",
                "product_id": "p1",
                "event_id": "fm-1",
            },
            {"type": "view", "session_id": "t1", "product_id": "p2"},
        ],
    )
    wait_for(lambda: clicks(api, "forget-me") == 1)
    response = httpx.delete(f"{api}/_shoprank/users/forget-me", timeout=10).json()
    assert response["events_deleted"] == 2 and response["profiles_deleted"] == 2
    assert httpx.get(f"{api}/_shoprank/users/forget-me/profile").status_code == 404
    user = service.subject(user_id="forget-me")
    assert all(e.user_id != user for _, e in service.log.read())
    assert not service.client.exists("shoprank:evid:fm-1")
    keys = b" ".join(service.client.keys("*"))
    assert b"forget-me" not in keys and user.encode() not in keys


def test_retention_drops_old_events(api: str, service: EventService) -> None:
    old = time.time() - 300 * 86_400
    post(api, {"type": "click", "user_id": "ancient", "product_id": "p1", "timestamp": old})
    wait_for(lambda: clicks(api, "ancient") == 1)
    result = service.enforce_retention(now=time.time() + 100 * 86_400)  # 365-day retention
    assert result["events_deleted"] >= 1 and result["profiles_deleted"] >= 1
    assert clicks(api, "ancient") == 0
    assert all(e.timestamp >= old + 1 for _, e in service.log.read())


def test_the_worker_enforces_retention_by_itself(api: str, service: EventService) -> None:
    # Accepted on a clock 399 days back, where it is inside the 365-day window; the worker
    # expires it on its own clock, where it is 400 days old. No window is waited out.
    edge = time.time() - 400 * 86_400
    event = Event("click", edge, "exp-1", user_id="expiring", product_id="p1")
    service.client.set(RETENTION_LAST, repr(time.time()))  # the hourly pass just ran
    assert service.ingest([event], fold=False, now=edge + 86_400)["accepted"] == 1
    post(api, {"type": "view", "user_id": "other", "product_id": "p2"})  # folds both
    wait_for(lambda: clicks(api, "expiring") == 1)
    service.client.delete(RETENTION_LAST)  # as if the last hourly pass were long ago
    post(api, {"type": "view", "user_id": "someone", "product_id": "p2"})  # any fold
    wait_for(lambda: clicks(api, "expiring") == 0)
    user = service.subject(user_id="expiring")
    assert all(e.user_id != user for _, e in service.log.read())
    assert float(service.client.get(RETENTION_LAST)) > edge


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{oops", 400),
        (orjson.dumps({"type": "teleport", "user_id": "bad", "product_id": "p"}), 400),
        (
            orjson.dumps(
                {
                    "type": "purchase",
                    "user_id": "bad",
                    "product_id": "p",
                    "price": 1,
                    "quantity": -3,
                }
            ),
            400,
        ),
        (b"[" + b" " * (10 * 1024 * 1024 + 10) + b"]", 413),
        (orjson.dumps([{"type": "click", "user_id": "bad", "product_id": "p"}] * 100_000), 400),
    ],
    ids=["malformed", "unknown-type", "negative-quantity", "10MB", "100k-events"],
)
def test_bad_input_is_a_clear_4xx_and_the_server_stays_up(
    api: str, service: EventService, body: bytes, status: int
) -> None:
    before = clicks(api, "steady")
    response = post(api, body)
    assert response.status_code == status
    assert response.json()["error"]["reason"]
    mixed = post(api, [{"type": "click", "user_id": "steady", "product_id": "p"}, {"type": "x"}])
    assert (mixed.json()["accepted"], mixed.json()["errors"][0]["index"]) == (1, 1)
    wait_for(lambda: clicks(api, "steady") == before + 1)


@pytest.mark.parametrize(
    "extra",
    [{"price": 1e308}, {"position": 2**64}, {"position": 1e308}, {"quantity": 1e308}],
    ids=["price-1e308", "position-2**64", "position-1e308", "quantity-1e308"],
)
def test_out_of_range_numbers_are_a_400_never_a_retryable_503(
    api: str, service: EventService, extra: dict[str, Any]
) -> None:
    event = {"type": "purchase", "user_id": "range", "product_id": "p", "price": 5, **extra}
    response = post(api, json.dumps(event).encode())  # orjson cannot write 2**64
    assert response.status_code == 400
    (item,) = response.json()["error"]["errors"]
    assert f"[{next(iter(extra))}]" in item["reason"]
    user = service.subject(user_id="range")
    assert all(e.user_id != user for _, e in service.log.read())


def test_a_poison_event_in_the_stream_is_quarantined_and_folding_goes_on(
    api: str, service: EventService
) -> None:
    # What an older version let in, appended straight to the stream past the API's checks.
    user = service.subject(user_id="poisoned")
    poison = Event(
        "purchase", time.time(), "poison-1", user_id=user, product_id="p1", quantity=1, price=1e308
    )
    assert service.log.append([poison]).offsets
    buy = {"type": "purchase", "user_id": "poisoned", "product_id": "p1", "price": 5}
    for n in range(1, 4):  # each folds the price band the poison event would have broken
        assert post(api, [buy, {**buy, "type": "click"}]).json()["accepted"] == 2
        wait_for(lambda n=n: clicks(api, "poisoned") == n)
    profile = httpx.get(f"{api}/_shoprank/users/poisoned/profile", timeout=5).json()
    assert profile["counts"]["purchase"] == 3 and profile["price"]["mean"] == 5.0
    entries = [q for q in service.store.quarantined() if q["subject"] == user]
    assert [q["record"]["event_id"] for q in entries] == ["poison-1"]
    assert "price" in entries[0]["error"]
