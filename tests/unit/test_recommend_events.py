"""Recommendation events: `rec_id` and `strategy` on events, the `impression` type, and a
logged recommendation list in the behaviour log and the search log, joined to its clicks."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoprank.events.model import Event, EventError, validate_event
from shoprank.events.service import EventService
from shoprank.searchlog import make_sinks
from shoprank.searchlog.logger import SearchLogger
from shoprank.searchlog.record import SearchRecord, WindowItem
from shoprank.searchlog.store import search_log_store
from shoprank.settings import Settings

NOW = 1_767_225_600.0


def test_a_click_from_a_recommendation_keeps_rec_id_and_strategy() -> None:
    raw = {
        "type": "click",
        "user_id": "u1",
        "product_id": "B1",
        "rec_id": "r-1",
        "strategy": "bought_together",
        "position": 1,
    }
    event = validate_event(raw, now=NOW)
    assert (event.rec_id, event.strategy) == ("r-1", "bought_together")
    assert event.query_id == "r-1"  # joins the logged list as a search's clicks do
    again = Event.from_record(event.to_record())
    assert (again.rec_id, again.strategy, again.query_id) == ("r-1", "bought_together", "r-1")


def test_an_impression_is_stored_as_a_search_event_of_the_list() -> None:
    event = validate_event(
        {
            "type": "impression",
            "session_id": "s1",
            "rec_id": "r-2",
            "strategy": "trending",
            "product_ids": ["a", "b"],
        },
        now=NOW,
    )
    assert event.type == "search" and event.product_ids == ("a", "b")
    assert event.rec_id == "r-2"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"type": "click", "product_id": "a", "strategy": "popular"}, "[strategy]"),
        ({"type": "click", "product_id": "a", "rec_id": 5.5}, "[rec_id]"),
        ({"type": "click", "product_id": "a", "rec_id": "r", "query_id": "q"}, "[rec_id]"),
        ({"type": "impression", "product_ids": ["a"]}, "[rec_id]"),
        ({"type": "impression", "rec_id": "r"}, "[product_ids]"),
        ({"type": "wink", "product_id": "a"}, "impression"),
    ],
)
def test_bad_recommendation_fields_are_refused_with_the_key(
    raw: dict[str, object], message: str
) -> None:
    with pytest.raises(EventError) as caught:
        validate_event({"user_id": "u1", **raw}, now=NOW)
    assert message in str(caught.value)


def test_a_logged_list_reaches_the_behaviour_log_and_the_search_log(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    events = EventService(settings)
    logger = SearchLogger(settings, events=events, sinks=make_sinks(settings))
    record = SearchRecord(
        index="products",
        query=None,
        mode="recommend",
        user_id="u1",
        query_id="rec-7",
        window=[WindowItem("B1", 1, 1, 2.0), WindowItem("H1", 2, 2, 1.0)],
        total_hits=2,
        surface="recommend",
        strategy="bought_together",
    )
    assert logger.log(record) == "rec-7"
    logger.flush()
    logged = [e for _, e in events.log.read(None, limit=100)]
    (impression,) = [e for e in logged if e.type == "search"]
    assert impression.rec_id == "rec-7" and impression.query_id == "rec-7"
    assert impression.strategy == "bought_together"
    assert impression.product_ids == ("B1", "H1")
    assert impression.user_id != "u1"  # pseudonymised like every event
    click = validate_event(
        {"type": "click", "user_id": "u1", "product_id": "B1", "rec_id": "rec-7", "position": 1},
        now=NOW + 1,
    )
    events.ingest([click], now=NOW + 1)
    store = search_log_store(settings)
    store.sync_events(events.log)
    doc = store.get("rec-7")
    assert doc is not None
    assert (doc["surface"], doc["strategy"], doc["rec_id"]) == (
        "recommend",
        "bought_together",
        "rec-7",
    )
    assert [e["product_id"] for e in doc["events"]] == ["B1"]
