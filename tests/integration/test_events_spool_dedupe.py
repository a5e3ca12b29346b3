"""Spooled batches whose first append had an unknown outcome are counted once.

With `SHOPRANK_EVENT_SPOOL_DIR` set, an append Redis may have run (its reply lost) while
Redis then cannot be reached to settle it is kept in the spool and answered 200. The replay
must hash like the request it came from, so that when Redis did store the request, the
replay is answered as duplicates instead of storing the events (without `event_id`) again.
A real redis-server sits behind the `FaultyLink` proxy of `test_events_redis_atomic`; the
real events API runs in a subprocess with a spool directory. Nothing is timed: every wait
is for a condition, bounded by `PATIENCE_S`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shoprank.events.service import EventService
from shoprank.settings import Settings
from tests.integration.conftest import RedisServer, free_port
from tests.integration.test_events_redis_atomic import (
    APP,
    PATIENCE_S,
    FaultyLink,
    batch,
    post,
    stored,
)

pytestmark = pytest.mark.slow  # starts redis-server and uvicorn

SECRET = "spool-dedupe-secret"
WINDOW_S = 600


@pytest.fixture(scope="module")
def redis_direct(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis-spool")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def proxy(redis_direct: RedisServer) -> Iterator[FaultyLink]:
    link = FaultyLink(redis_direct.port)
    yield link
    link.close()


@pytest.fixture(scope="module")
def direct(redis_direct: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> EventService:
    """The event service on Redis itself (not through the proxy): counts and folds."""
    settings = Settings(
        redis_url=redis_direct.url,
        data_dir=tmp_path_factory.mktemp("spool-direct"),
        user_id_secret=SECRET,
    )
    service = EventService(settings)
    service.log.clear()
    return service


@pytest.fixture(scope="module")
def spool_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("spool")


@pytest.fixture(scope="module")
def api(
    proxy: FaultyLink,
    direct: EventService,
    spool_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    data_dir = tmp_path_factory.mktemp("spool-api")
    env = {
        **os.environ,
        "SHOPRANK_REDIS_URL": proxy.url,
        "SHOPRANK_DATA_DIR": str(data_dir),
        "SHOPRANK_USER_ID_SECRET": SECRET,
        "SHOPRANK_EVENT_DEDUPE_WINDOW_S": str(WINDOW_S),
        "SHOPRANK_EVENT_SPOOL_DIR": str(spool_dir),
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
            if post(url, batch("warm-up", 1)).status_code == 200:  # also loads the script
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture()
def link(proxy: FaultyLink) -> Iterator[FaultyLink]:
    proxy.heal()
    yield proxy
    proxy.heal()
    proxy.release()


def replayed(spool_dir: Path) -> bool:
    """Wait until the API's replayer has emptied the spool (Redis is reachable again)."""
    deadline = time.monotonic() + PATIENCE_S
    while list(spool_dir.glob("*.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not list(spool_dir.glob("*.jsonl"))


def clicks(direct: EventService, user: str) -> int:
    """The clicks the user's profile counts once the log is folded."""
    direct.fold()
    profile = direct.profile(user)
    return 0 if profile is None else int(profile["counts"].get("click", 0))


def test_a_spooled_batch_that_redis_had_stored_is_counted_once(
    api: str, link: FaultyLink, direct: EventService, spool_dir: Path
) -> None:
    # Redis stores the batch, the reply is lost, then Redis cannot be reached to settle.
    link.lose, link.down_after_loss = 1, True
    response = post(api, batch("lost-then-spooled", 5))
    assert response.status_code == 200 and response.json()["spooled"] == 5
    assert list(spool_dir.glob("*.jsonl"))  # kept on disk, waiting for Redis
    assert stored(direct, "lost-then-spooled") == 5  # ...which in fact has the batch
    link.heal()
    assert replayed(spool_dir), "the spool was never replayed"
    assert stored(direct, "lost-then-spooled") == 5
    assert clicks(direct, "lost-then-spooled") == 5


def test_a_spooled_batch_that_redis_never_stored_is_stored_once(
    api: str, link: FaultyLink, direct: EventService, spool_dir: Path
) -> None:
    link.hold = 1  # cut off on its way to Redis: settled as not stored, and fenced
    response = post(api, batch("held-then-spooled", 6))
    assert response.status_code == 200 and response.json()["spooled"] == 6
    assert replayed(spool_dir), "the spool was never replayed"
    assert link.release() == 1  # the held copy arrives late and stores nothing
    assert stored(direct, "held-then-spooled") == 6
    assert clicks(direct, "held-then-spooled") == 6


def test_forget_removes_the_users_batch_records(
    api: str, link: FaultyLink, direct: EventService
) -> None:
    assert post(api, batch("forget-me", 3)).json()["accepted"] == 3
    assert post(api, batch("keep-me", 2)).json()["accepted"] == 2
    forgotten = httpx.delete(api + "/_shoprank/users/forget-me", timeout=PATIENCE_S).json()
    assert forgotten["events_deleted"] == 3
    # Nothing of the forgotten user is remembered: the same batch again is new data; the
    # other user's batch is still recognised as a repeat.
    again = post(api, batch("forget-me", 3)).json()
    assert (again["accepted"], again["duplicates"]) == (3, 0)
    kept = post(api, batch("keep-me", 2)).json()
    assert (kept["accepted"], kept["duplicates"]) == (0, 2)
    assert stored(direct, "forget-me") == 3 and stored(direct, "keep-me") == 2
