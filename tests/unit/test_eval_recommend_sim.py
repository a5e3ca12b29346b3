"""The recommendation traffic simulator: deterministic per seed, on the injected clock,
with substitutes browsed before a purchase and complements bought together."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from shoprank.events.model import Event
from shoprank.events.service import EventService
from shoprank.settings import Settings
from shoprank.simulate_recs import RecCatalog, event_json, simulate, write_offline

START = 1_767_225_600.0


def catalog() -> RecCatalog:
    rows = []
    for c, cat in enumerate(["Laptops", "Bags", "Mice", "Phones", "Cases", "Chargers"]):
        for n in range(8):
            rows.append(
                {
                    "id": f"{cat[:2].lower()}{n}",
                    "category": f"Electronics > {cat}",
                    "brand": ["Acme", "Bolt", "Core"][(n + c) % 3],
                    "price": 10.0 + 7 * n + c,
                }
            )
    rows.append({"id": "no-brand", "category": "Bags", "price": 3.0})  # skipped
    return RecCatalog.from_records(rows)


def sessions_of(events: list[Event]) -> dict[str, list[Event]]:
    out: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        out[e.session_id or ""].append(e)
    return out


def test_the_same_seed_gives_the_same_traffic_and_another_seed_other_traffic() -> None:
    a = simulate(catalog(), shoppers=20, sessions=4, seed=3, start=START)
    b = simulate(catalog(), shoppers=20, sessions=4, seed=3, start=START)
    c = simulate(catalog(), shoppers=20, sessions=4, seed=4, start=START)
    assert [e.to_record() for e in a.events] == [e.to_record() for e in b.events]
    assert [e.to_record() for e in a.events] != [e.to_record() for e in c.events]
    assert a.world.complements == b.world.complements


def test_timestamps_come_from_the_injected_clock_in_time_order() -> None:
    traffic = simulate(catalog(), shoppers=10, sessions=3, days=5, seed=0, start=START)
    times = [e.timestamp for e in traffic.events]
    assert times == sorted(times)
    assert times[0] >= START and times[-1] <= START + 5 * 86_400 + 3600
    assert len({e.event_id for e in traffic.events}) == len(traffic.events)


def test_purchases_come_with_complements_from_the_paired_category() -> None:
    traffic = simulate(catalog(), shoppers=60, sessions=5, seed=1, start=START, impulse_rate=0.0)
    world = traffic.world
    by_id = {i.id: i for i in world.catalog.items}
    together = 0
    for events in sessions_of(traffic.events).values():
        bought = [e.product_id for e in events if e.type == "purchase"]
        if len(bought) < 2:
            continue
        main, partner = by_id[bought[0] or ""], by_id[bought[1] or ""]
        assert partner.category in world.complements[main.category]
        assert partner.id in world.partners[main.id]
        together += 1
    assert together > 50  # complement_rate 0.6 of the buying sessions


def test_a_purchase_follows_views_of_substitutes_in_its_category() -> None:
    traffic = simulate(catalog(), shoppers=30, sessions=4, seed=2, start=START)
    by_id = {i.id: i for i in traffic.world.catalog.items}
    checked = 0
    for events in sessions_of(traffic.events).values():
        first_buy = next((e for e in events if e.type == "purchase"), None)
        if first_buy is None:
            continue
        category = by_id[first_buy.product_id or ""].category
        viewed = [e.product_id for e in events[: events.index(first_buy)] if e.type == "view"]
        assert len(viewed) >= 2
        assert all(by_id[p or ""].category == category for p in viewed)
        checked += 1
    assert checked > 20


def test_a_catalog_without_categories_is_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match="give products a category"):
        RecCatalog.from_records([{"id": "a", "brand": "b", "price": 1.0}])


def test_offline_mode_writes_the_data_dirs_event_log(tmp_path: Path) -> None:
    traffic = simulate(catalog(), shoppers=5, sessions=2, seed=0, start=START)
    service = EventService(Settings(data_dir=tmp_path, user_id_secret="s"))
    assert write_offline(traffic, service) == len(traffic.events)
    logged = [e for _, e in service.log.read()]
    assert [e.event_id for e in logged] == [e.event_id for e in traffic.events]
    assert all(e.user_id != t.user_id for e, t in zip(logged, traffic.events, strict=True))
    assert write_offline(traffic, service) == 0  # event ids make a second write a no-op
    record = event_json(traffic.events[0])
    assert "idempotent" not in record and record["event_id"] == traffic.events[0].event_id
