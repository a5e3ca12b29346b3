"""The events HTTP routes on the embedded default (in-process ASGI client)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from shoprank.plugin.events_api import make_events_router
from shoprank.settings import Settings

CLICK = {"type": "click", "user_id": "alice", "product_id": "p1"}


@pytest.fixture()
def client(tmp_path: Path) -> TestClient:
    app = FastAPI()
    app.include_router(make_events_router(Settings(data_dir=tmp_path)))
    return TestClient(app, client=("127.0.0.1", 50000))


def count_of(client: TestClient, user: str = "alice") -> int:
    response = client.get(f"/_shoprank/users/{user}/profile")
    return 0 if response.status_code == 404 else int(response.json()["counts"].get("click", 0))


def test_batch_accepts_valid_and_reports_invalid(client: TestClient) -> None:
    response = client.post(
        "/_shoprank/events",
        json=[CLICK, {**CLICK, "type": "teleport"}, {**CLICK, "event_id": "e1"}],
    )
    body = response.json()
    assert response.status_code == 200
    assert (body["accepted"], body["rejected"]) == (2, 1)
    assert body["errors"][0]["index"] == 1
    assert count_of(client) == 2


def test_duplicate_event_id_is_ignored(client: TestClient) -> None:
    client.post("/_shoprank/events", json={**CLICK, "event_id": "same"})
    again = client.post("/_shoprank/events", json={**CLICK, "event_id": "same"}).json()
    assert (again["accepted"], again["duplicates"]) == (0, 1)
    assert count_of(client) == 1


def test_ndjson_body(client: TestClient) -> None:
    body = b"\n".join(orjson.dumps({**CLICK, "product_id": f"p{i}"}) for i in range(3))
    response = client.post(
        "/_shoprank/events", content=body, headers={"content-type": "application/x-ndjson"}
    )
    assert response.json()["accepted"] == 3


@pytest.mark.parametrize(
    ("body", "status", "es_type"),
    [
        (b"{not json", 400, "parsing_exception"),
        (orjson.dumps({**CLICK, "type": "teleport"}), 400, "illegal_argument_exception"),
        (
            orjson.dumps({**CLICK, "type": "purchase", "price": 3, "quantity": -1}),
            400,
            "illegal_argument_exception",
        ),
        (b"[" + b" " * (10 * 1024 * 1024) + b"]", 413, "content_too_long_exception"),
        (orjson.dumps([CLICK] * 100_000), 400, "illegal_argument_exception"),
    ],
    ids=["malformed", "unknown-type", "negative-quantity", "10MB", "100k-events"],
)
def test_bad_input_is_a_clear_4xx_and_nothing_valid_is_lost(
    client: TestClient, body: bytes, status: int, es_type: str
) -> None:
    client.post("/_shoprank/events", json={**CLICK, "event_id": "before"})
    response = client.post(
        "/_shoprank/events", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == status
    error = response.json()
    assert error["status"] == status and error["error"]["type"] == es_type
    assert error["error"]["reason"]
    client.post("/_shoprank/events", json={**CLICK, "event_id": "after"})
    assert count_of(client) == 2


def test_profile_404_after_forget(client: TestClient) -> None:
    client.post("/_shoprank/events", json=CLICK)
    profile = client.get("/_shoprank/users/alice/profile").json()
    assert profile["recent_products"] == ["p1"] and "alice" not in profile["user"]
    forgot = client.delete("/_shoprank/users/alice").json()
    assert forgot["acknowledged"] and forgot["events_deleted"] == 1
    response = client.get("/_shoprank/users/alice/profile")
    assert response.status_code == 404 and response.json()["status"] == 404
