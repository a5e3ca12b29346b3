"""Poison inputs on the events API (embedded store): out-of-range numbers are a 400 per item,
an event the fold cannot use is quarantined instead of wedging the log, and events the log
stored are never answered with a retryable error."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from shoprank.events.model import Event
from shoprank.events.service import EventService
from shoprank.profiles.embedded import EmbeddedProfileStore
from shoprank.profiles.folding import FoldConfig, ProductLookup
from shoprank.settings import Settings

CLICK = {"type": "click", "user_id": "alice", "product_id": "p1"}
BUY = {"type": "purchase", "user_id": "alice", "product_id": "p1", "price": 10.0}


def app_for(service: EventService) -> TestClient:
    from shoprank.plugin.events_api import make_events_router

    app = FastAPI()
    app.include_router(make_events_router(service.settings, service=service))
    return TestClient(app, raise_server_exceptions=False, client=("127.0.0.1", 50000))


@pytest.fixture()
def service(tmp_path: Path) -> EventService:
    return EventService(Settings(data_dir=tmp_path))


@pytest.fixture()
def client(service: EventService) -> TestClient:
    return app_for(service)


def quarantined_total() -> float:
    return REGISTRY.get_sample_value("shoprank_events_quarantined_total") or 0.0


def counts(client: TestClient, user: str) -> dict[str, int]:
    response = client.get(f"/_shoprank/users/{user}/profile")
    return {} if response.status_code == 404 else dict(response.json()["counts"])


@pytest.mark.parametrize(
    ("field", "value", "shown"),
    [
        ("price", 1e308, "1e+308"),
        ("price", 1e13, "10000000000000.0"),
        ("position", 2**64, "1.8446744073709552e+19"),
        ("position", 1e308, "1e+308"),
        ("quantity", 1e308, "1e+308"),
        ("quantity", 2**64, "1.8446744073709552e+19"),
    ],
)
def test_out_of_range_numbers_are_a_400_naming_field_and_value(
    client: TestClient, service: EventService, field: str, value: float, shown: str
) -> None:
    response = client.post("/_shoprank/events", json={**BUY, field: value})
    assert response.status_code == 400  # permanently invalid: never a retryable 503
    error = response.json()["error"]
    assert error["type"] == "illegal_argument_exception"
    (item,) = error["errors"]
    assert item["index"] == 0 and f"[{field}]" in item["reason"] and shown in item["reason"]
    assert service.log.count() == 0


def test_a_bad_item_in_a_batch_is_reported_and_the_rest_accepted(client: TestClient) -> None:
    body = [CLICK, {**BUY, "price": 1e308}, {**CLICK, "position": 2**64}, BUY]
    response = client.post("/_shoprank/events", json=body)
    result = response.json()
    assert response.status_code == 200 and result["accepted"] == 2
    assert [e["index"] for e in result["errors"]] == [1, 2]
    assert "[price]" in result["errors"][0]["reason"]
    assert "[position]" in result["errors"][1]["reason"]
    assert counts(client, "alice") == {"click": 1, "purchase": 1}


def test_a_poison_event_in_the_log_is_quarantined_and_writes_go_on(
    client: TestClient, service: EventService
) -> None:
    # What an older version let in: appended straight to the log, past the API's checks.
    poison = Event(
        type="purchase",
        timestamp=1_800_000_000.0,
        event_id="poison",
        user_id=service.subject(user_id="mallory"),
        product_id="p1",
        quantity=1,
        price=1e308,
    )
    before = quarantined_total()
    client.post("/_shoprank/events", json={**BUY, "user_id": "mallory"})
    service.log.append([poison])
    for user in ("mallory", "bob", "carol"):
        response = client.post("/_shoprank/events", json={**CLICK, "user_id": user})
        assert response.status_code == 200 and response.json()["accepted"] == 1
        assert counts(client, user)["click"] == 1
    assert counts(client, "mallory") == {"purchase": 1, "click": 1}
    (entry,) = service.store.quarantined()
    assert entry["record"]["event_id"] == "poison" and "price" in entry["error"]
    assert quarantined_total() == before + 1
    assert service.log.count() == 5  # nothing duplicated
    profile = client.get("/_shoprank/users/mallory/profile").json()
    assert profile["price"]["mean"] == 10.0


class _FailingOnce(EmbeddedProfileStore):
    """A profile store whose next `apply` fails (a disk error, a lock timeout, a bug)."""

    fail = 0

    def apply(
        self, batch: Sequence[tuple[str, Event]], *, lookup: ProductLookup | None = None
    ) -> int:
        if self.fail:
            self.fail -= 1
            raise TypeError("fold failed")
        return super().apply(batch, lookup=lookup)


def test_a_fold_failing_after_the_append_still_answers_200_and_stores_once(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path)
    store = _FailingOnce(tmp_path / "profiles.sqlite", FoldConfig.from_settings(settings))
    service = EventService(settings, store=store)
    client = app_for(service)
    store.fail = 1
    response = client.post("/_shoprank/events", json=[CLICK, {**CLICK, "product_id": "p2"}])
    assert response.status_code == 200 and response.json()["accepted"] == 2
    assert counts(client, "alice") == {}  # stored, not yet folded
    assert client.post("/_shoprank/events", json=BUY).status_code == 200
    assert counts(client, "alice") == {"click": 2, "purchase": 1}  # folded by the next one
    assert service.log.count() == 3


def test_an_ingest_failing_before_the_append_stores_nothing(
    client: TestClient, service: EventService, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(events: Any) -> Any:
        raise ConnectionError("log down")

    monkeypatch.setattr(service.log, "append", down)
    response = client.post("/_shoprank/events", json=CLICK)
    assert response.status_code == 503  # nothing stored: the retry is safe
    monkeypatch.undo()
    assert service.log.count() == 0
