"""Operations: JSON logs carrying the request and query ids, readiness with its dependency
checks, events refused or spooled while Redis is unreachable, the backend-down 503."""

from __future__ import annotations

import io
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from shoprank.logs import JsonFormatter
from shoprank.plugin.backends.embedded.backend import EmbeddedBackend
from shoprank.spool import EventSpool
from tests.unit._apps import make_client


def closed_port() -> int:
    """A loopback port nothing listens on: Redis that is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture()
def access_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("shoprank.access")
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(old)


def test_access_log_is_json_with_request_and_query_id(
    tmp_path: Path, corpus_backend: EmbeddedBackend, access_lines: io.StringIO
) -> None:
    client = make_client(tmp_path, corpus_backend, search_log=True)
    body = {"query": {"match": {"title": "laptop"}}, "ext": {"shoprank": {"user_id": "u1"}}}
    response = client.post("/products/_search", json=body, headers={"x-request-id": "req-42"})
    query_id = response.json()["_shoprank"]["query_id"]
    line = orjson.loads(access_lines.getvalue().strip().splitlines()[-1])
    assert line["request_id"] == "req-42" == response.headers["x-request-id"]
    assert line["query_id"] == query_id
    assert (line["status"], line["route"], line["logger"]) == (200, "search", "shoprank.access")
    assert line["duration_ms"] > 0


def test_readiness_reports_each_dependency(tmp_path: Path, corpus_backend: EmbeddedBackend) -> None:
    client = make_client(tmp_path, corpus_backend)
    ready = client.get("/_shoprank/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert ready.json()["checks"]["backend"]["ok"] is True

    down = make_client(
        tmp_path, corpus_backend, redis_url=f"redis://127.0.0.1:{closed_port()}/0"
    ).get("/_shoprank/ready")
    assert down.status_code == 200  # searches are still served
    assert down.json()["status"] == "degraded"
    assert "refused with 503" in down.json()["checks"]["redis"]["impact"]


def test_events_answer_503_while_redis_is_unreachable(
    tmp_path: Path, corpus_backend: EmbeddedBackend
) -> None:
    client = make_client(tmp_path, corpus_backend, redis_url=f"redis://127.0.0.1:{closed_port()}/0")
    response = client.post(
        "/_shoprank/events", json={"type": "view", "user_id": "u", "product_id": "1"}
    )
    assert response.status_code == 503
    assert response.json()["error"]["type"] == "unavailable_shards_exception"
    # Searches go on.
    assert client.post("/products/_search", json={"size": 1}).status_code == 200


def test_events_are_spooled_with_pseudonymous_ids(
    tmp_path: Path, corpus_backend: EmbeddedBackend
) -> None:
    spool_dir = tmp_path / "spool"
    client = make_client(
        tmp_path,
        corpus_backend,
        redis_url=f"redis://127.0.0.1:{closed_port()}/0",
        event_spool_dir=spool_dir,
    )
    events = [
        {"type": "view", "user_id": "alice@example.com", "product_id": str(i)} for i in range(3)
    ]
    response = client.post("/_shoprank/events", json=events)
    assert response.status_code == 200
    assert (response.json()["accepted"], response.json()["spooled"]) == (3, 3)
    spool = EventSpool(spool_dir)
    assert spool.depth() == 3
    raw = b"".join(p.read_bytes() for p in spool.files())
    assert b"alice" not in raw  # never the raw id on disk
    records: list[dict[str, Any]] = [orjson.loads(line) for line in raw.splitlines()]
    assert all(r["idempotent"] and r["event_id"] for r in records)


class DiskGone(EmbeddedBackend):
    """The embedded index whose disk fails under it."""

    def search(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        raise OSError(5, "Input/output error")


def test_backend_down_is_503(tmp_path: Path, corpus_backend: EmbeddedBackend) -> None:
    client = make_client(tmp_path, DiskGone(corpus_backend.store.root))
    response = client.post("/products/_search", json={"size": 1})
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["type"] == "unavailable_shards_exception"
    assert "search backend cannot answer" in error["reason"]
