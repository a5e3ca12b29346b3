"""Event parsing and validation, and id pseudonymisation."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from shoprank.errors import BadRequestError
from shoprank.events import parse_events, pseudonymise
from shoprank.events.privacy import resolve_secret
from shoprank.settings import Settings

NOW = 1_800_000_000.0
CLICK = {"type": "click", "user_id": "alice", "product_id": "p1"}


def parse(body: object, content_type: str | None = None, **kw: object) -> tuple[list, list]:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return parse_events(raw, content_type, now=NOW, **kw)  # type: ignore[arg-type]


def test_one_event_gets_server_time_and_an_id() -> None:
    events, errors = parse(CLICK)
    assert errors == []
    (event,) = events
    assert (event.type, event.user_id, event.product_id, event.timestamp) == (
        "click",
        "alice",
        "p1",
        NOW,
    )
    assert event.event_id and not event.idempotent


def test_batch_keeps_valid_events_and_reports_bad_ones_by_index() -> None:
    events, errors = parse(
        [
            CLICK,
            {**CLICK, "type": "teleport"},
            {**CLICK, "type": "purchase", "price": 5, "quantity": -2},
            {**CLICK, "type": "purchase", "price": 5, "quantity": 2, "event_id": "e9"},
        ]
    )
    assert [e.type for e in events] == ["click", "purchase"]
    assert events[1].quantity == 2 and events[1].idempotent
    assert [e["index"] for e in errors] == [1, 2]
    assert "teleport" in errors[0]["reason"]
    assert "[quantity] must be >= 1" in errors[1]["reason"]


def test_ndjson_with_a_broken_line() -> None:
    body = orjson.dumps(CLICK) + b"\n{broken\n" + orjson.dumps({**CLICK, "product_id": "p2"})
    events, errors = parse(body, "application/x-ndjson")
    assert [e.product_id for e in events] == ["p1", "p2"]
    assert errors == [{"index": 1, "reason": errors[0]["reason"]}]
    assert "line 2 is not valid JSON" in errors[0]["reason"]


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ({"type": "click", "product_id": "p"}, "[user_id]"),
        ({"type": "view", "user_id": "u"}, "[product_id] is required"),
        ({"type": "purchase", "user_id": "u", "product_id": "p"}, "[price]"),
        ({**CLICK, "price": -1}, "[price] must be a finite number >= 0"),
        ({**CLICK, "position": 1.5}, "[position] must be an integer"),
        ({**CLICK, "timestamp": "yesterday"}, "not ISO 8601"),
        ({**CLICK, "timestamp": NOW + 3 * 86_400}, "in the future"),
        ({**CLICK, "colour": "red"}, "unknown field"),
        ({**CLICK, "user_id": ["a"]}, "[user_id] must be a string"),
        ("click", "must be a JSON object"),
    ],
)
def test_invalid_events_say_why(event: object, reason: str) -> None:
    events, errors = parse([event])
    assert events == []
    assert reason in errors[0]["reason"]


def test_timestamps_iso_and_milliseconds() -> None:
    events, _ = parse(
        [
            {**CLICK, "timestamp": "2026-01-02T10:00:00Z"},
            {**CLICK, "timestamp": 1_767_348_000_000},
        ]
    )
    assert events[0].timestamp == events[1].timestamp == 1_767_348_000.0


def test_session_only_events_are_anonymous_profiles() -> None:
    (event,), _ = parse({"type": "view", "session_id": "s1", "product_id": "p"})
    assert event.user_id is None and event.subject == "s:s1"


@pytest.mark.parametrize("body", [b"", b"{not json", b"[1, 2"])
def test_unusable_bodies_are_400(body: bytes) -> None:
    with pytest.raises(BadRequestError):
        parse(body)


def test_batch_size_limit() -> None:
    with pytest.raises(BadRequestError, match="at most 3"):
        parse([CLICK] * 4, max_events=3)


def test_pseudonyms_are_keyed_and_stable(tmp_path: Path) -> None:
    a = pseudonymise("alice", "k1")
    assert a == pseudonymise("alice", "k1") != pseudonymise("alice", "k2")
    assert "alice" not in a and len(a) == 32
    settings = Settings(data_dir=tmp_path)
    secret = resolve_secret(settings)
    assert secret == resolve_secret(settings) and len(secret) == 64
    assert (tmp_path / "events" / "secret").stat().st_mode & 0o077 == 0
    assert resolve_secret(Settings(data_dir=tmp_path, user_id_secret="s3")) == "s3"
