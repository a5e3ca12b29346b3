"""Profile stores: one behaviour suite every store passes (Redis runs it in integration),
and the embedded service path: immediate freshness, exact rebuild, forget, retention."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from shoprank.events.model import Event
from shoprank.events.service import METRICS, EventService
from shoprank.profiles.embedded import EmbeddedProfileStore
from shoprank.profiles.folding import DAY, FoldConfig
from shoprank.profiles.protocol import ProfileStore
from shoprank.settings import Settings

T = 1_800_000_000.0
CFG = FoldConfig(
    half_life_s={"default": 10 * DAY}, weights={"click": 2.0, "view": 1.0}, facets=("brand",)
)


def lookup(ids: Sequence[str]) -> Mapping[str, Mapping[str, Any]]:
    brands = ["HP", "Dell", "Sony"]
    return {
        i: {"brand": brands[int(i[1:]) % 3], "price": float(i[1:]), "vector": [1.0, 0.5]}
        for i in ids
    }


def batch(start: int, n: int, *, user: str = "u1", t: float = T) -> list[tuple[str, Event]]:
    return [
        (
            f"{i}-0",
            Event(
                type="click", timestamp=t + i, event_id=f"e{i}", user_id=user, product_id=f"p{i}"
            ),
        )
        for i in range(start, start + n)
    ]


class ProfileStoreSuite:
    """Behaviour every `ProfileStore` must show; subclasses provide a fresh `store`."""

    def test_is_a_profile_store(self, store: ProfileStore) -> None:
        assert isinstance(store, ProfileStore)

    def test_repeated_delivery_is_folded_once(self, store: ProfileStore) -> None:
        assert store.apply(batch(0, 3), lookup=lookup) == 3
        assert store.apply(batch(0, 3), lookup=lookup) == 0
        assert store.apply(batch(2, 3), lookup=lookup) == 2  # overlap: only 3 and 4
        profile = store.get("u1")
        assert profile is not None and profile["counts"] == {"click": 5}
        assert store.watermark() == "4-0"

    def test_get_many_returns_only_existing(self, store: ProfileStore) -> None:
        store.apply(batch(0, 1, user="a") + batch(1, 1, user="b"))
        assert set(store.get_many(["a", "b", "zz"])) == {"a", "b"}
        assert store.get("zz") is None

    def test_product_and_query_stats(self, store: ProfileStore) -> None:
        search = Event(
            type="search",
            timestamp=T,
            event_id="q",
            user_id="u",
            query_id="q",
            query="Laptop",
            product_ids=("p1", "p2"),
        )
        click = Event(
            type="click", timestamp=T, event_id="c", user_id="u", product_id="p1", query_id="q"
        )
        store.apply([("0-0", search)])
        store.apply([("1-0", click)])  # the query text comes from the stored search
        stats = store.product_stats(["p1", "p2", "p3"])
        assert stats["p1"]["impressions"] == 1 and stats["p1"]["clicks"] == 1
        assert stats["p1"]["ctr"] == pytest.approx(2 / 21) and "p3" not in stats
        assert store.product_stats(["p1"], query="LAPTOP")["p1"]["clicks"] == 1

    def test_stored_profiles_fold_on_exactly_like_one_pass(self, store: ProfileStore) -> None:
        rng = random.Random(3)
        facts = {
            f"p{k}": {"brand": str(k % 3), "vector": [rng.uniform(-1, 1) for _ in range(8)]}
            for k in range(7)
        }
        events = [
            (
                f"{i}-0",
                Event(
                    type="click",
                    timestamp=T + rng.uniform(-5 * DAY, 5 * DAY),  # out of order
                    event_id=f"v{i}",
                    user_id=f"u{i % 3}",
                    product_id=f"p{i % 7}",
                ),
            )
            for i in range(60)
        ]
        for start in range(0, 60, 7):  # many stored round trips
            store.apply(events[start : start + 7], lookup=lambda ids: facts)
        live = dict(store.profiles())
        store.clear()
        store.apply(events, lookup=lambda ids: facts)  # one pass, in memory
        assert dict(store.profiles()) == live  # == on every float of every vector

    def test_a_poison_event_is_quarantined_and_the_watermark_moves_past(
        self, store: ProfileStore
    ) -> None:
        poison = Event(
            type="purchase",
            timestamp=T + 1,
            event_id="bad",
            user_id="u1",
            product_id="p1",
            quantity=1,
            price=1e308,  # what an older version accepted
        )
        applied = store.apply(batch(0, 1) + [("1-0", poison)] + batch(2, 1), lookup=lookup)
        assert applied == 2 and store.watermark() == "2-0"
        profile = store.get("u1")
        assert profile is not None and profile["counts"] == {"click": 2}
        (entry,) = store.quarantined()
        assert entry["offset"] == "1-0" and entry["subject"] == "u1"
        assert entry["record"]["price"] == 1e308 and "price" in entry["error"]
        assert store.apply(batch(3, 1), lookup=lookup) == 1  # the next batch folds as usual
        store.apply([("1-0", poison)])  # a repeated delivery is not quarantined twice
        assert len(store.quarantined()) == 1

    def test_quarantine_goes_with_forget_retention_and_clear(self, store: ProfileStore) -> None:
        def poison(offset: int, user: str, t: float) -> tuple[str, Event]:
            bad = Event(type="click", timestamp=t, event_id=f"x{offset}", user_id=user)
            return f"{offset}-0", bad  # a click without a product: cannot be folded

        store.apply([poison(0, "old", T - 30 * DAY), poison(1, "a", T), poison(2, "b", T)])
        assert [q["subject"] for q in store.quarantined()] == ["old", "a", "b"]
        store.enforce_retention(T, retention_s=10 * DAY)
        store.forget(["a"])
        assert [q["subject"] for q in store.quarantined()] == ["b"]
        store.clear()
        assert store.quarantined() == []

    def test_forget_retention_clear(self, store: ProfileStore) -> None:
        store.apply(batch(0, 1, user="old", t=T - 30 * DAY) + batch(1, 1, user="new"))
        assert store.enforce_retention(T, retention_s=10 * DAY) == 1
        assert store.get("old") is None and store.get("new") is not None
        assert store.forget(["new"]) == 1 and store.get("new") is None
        store.clear()
        assert list(store.profiles()) == [] and store.watermark() is None


class TestEmbeddedProfileStore(ProfileStoreSuite):
    @pytest.fixture()
    def store(self, tmp_path: Path) -> EmbeddedProfileStore:
        return EmbeddedProfileStore(tmp_path / "p.sqlite", CFG)


def random_events(rng: random.Random, n: int) -> list[dict[str, Any]]:
    kinds = ["view", "click", "add_to_cart", "purchase"]
    out = []
    for i in range(n):
        kind = rng.choice(kinds)
        event: dict[str, Any] = {
            "type": kind,
            "product_id": f"p{rng.randrange(40)}",
            "timestamp": T - rng.uniform(0, 20 * DAY),
            "event_id": f"e{i}",
        }
        if rng.random() < 0.8:
            event["user_id"] = f"user{rng.randrange(15)}"
        else:
            event["session_id"] = f"sess{rng.randrange(5)}"
        if kind in ("add_to_cart", "purchase"):
            event["quantity"] = rng.randrange(1, 4)
        if kind == "purchase":
            event["price"] = round(rng.uniform(1, 500), 2)
        out.append(event)
    return out


def ingest(service: EventService, raw: list[dict[str, Any]], now: float = T) -> dict[str, Any]:
    from shoprank.events.model import validate_event

    return service.ingest([validate_event(e, now=now) for e in raw], now=now)


@pytest.fixture()
def service(tmp_path: Path) -> EventService:
    return EventService(Settings(data_dir=tmp_path), product_lookup=lookup)


def test_embedded_ingest_is_reflected_immediately(service: EventService) -> None:
    ingest(service, [{"type": "click", "user_id": "alice", "product_id": "p1", "timestamp": T}])
    profile = service.profile("alice", now=T)
    assert profile is not None and profile["affinities"]["brand"] == {"Dell": 2.0}
    assert "alice" not in str(profile)


def test_rebuild_reproduces_live_profiles_exactly(service: EventService) -> None:
    rng = random.Random(5)
    raw = random_events(rng, 600)
    for start in range(0, 600, 37):  # many small live batches, out-of-order timestamps
        ingest(service, raw[start : start + 37])
    live = dict(service.store.profiles())
    live_stats = service.store.stats_snapshot()
    assert len(live) > 15
    report = service.rebuild()
    assert report["events"] == 600
    assert dict(service.store.profiles()) == live  # bit-for-bit: == on every float
    assert service.store.stats_snapshot() == live_stats


def test_forget_erases_events_and_profiles_everywhere(
    service: EventService, tmp_path: Path
) -> None:
    ingest(
        service,
        [
            {
                "type": "click",
                "user_id": "alice",
                "session_id": "tab-1",
                "product_id": "p1",
                "timestamp": T,
            },
            {"type": "view", "session_id": "tab-1", "product_id": "p2", "timestamp": T},
            {"type": "view", "user_id": "bob", "product_id": "p2", "timestamp": T},
        ],
    )
    result = service.forget("alice")
    assert result["events_deleted"] == 2 and result["profiles_deleted"] == 2
    assert service.profile("alice") is None and service.profile("bob") is not None
    assert [e.user_id for _, e in service.log.read()] == [service.subject(user_id="bob")]
    service.rebuild()  # nothing of alice comes back
    assert service.profile("alice") is None
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert b"alice" not in path.read_bytes() and b"tab-1" not in path.read_bytes()


def test_retention_is_enforced_on_ingest_and_on_stored_data(tmp_path: Path) -> None:
    service = EventService(Settings(data_dir=tmp_path, retention_days=10), product_lookup=lookup)
    result = ingest(
        service,
        [
            {"type": "click", "user_id": "a", "product_id": "p1", "timestamp": T - 11 * DAY},
            {"type": "click", "user_id": "b", "product_id": "p1", "timestamp": T - 5 * DAY},
        ],
    )
    assert result["accepted"] == 1 and "retention" in result["errors"][0]["reason"]
    dropped = service.enforce_retention(now=T + 6 * DAY)
    assert dropped == {"events_deleted": 1, "profiles_deleted": 1}
    assert service.log.count() == 0 and service.profile("b") is None


def test_retention_runs_by_itself_from_the_fold_path(tmp_path: Path) -> None:
    service = EventService(Settings(data_dir=tmp_path, retention_days=10), product_lookup=lookup)
    old = {"type": "click", "user_id": "old", "product_id": "p1", "timestamp": T - 9 * DAY}
    assert ingest(service, [old], now=T)["accepted"] == 1  # within the window: kept
    assert service.profile("old", now=T) is not None
    later = T + 2 * DAY  # the click is now 11 days old; the next fold enforces retention
    ingest(
        service,
        [{"type": "view", "user_id": "new", "product_id": "p2", "timestamp": later}],
        now=later,
    )
    assert service.profile("old", now=later) is None
    assert [e.user_id for _, e in service.log.read()] == [service.subject(user_id="new")]
    assert service.store.get_many([service.subject(user_id="old")]) == {}

    hour = 3600.0
    edge_t = later - 10 * DAY + hour / 4  # 15 minutes inside the window at `later`
    edge = {"type": "click", "user_id": "edge", "product_id": "p3", "timestamp": edge_t}
    ingest(service, [edge], now=later)
    service.fold(now=later + hour / 2)  # expired now, but the last pass is under an hour old
    assert service.profile("edge", now=later) is not None
    service.fold(now=later + 1.5 * hour)  # over an hour since the last pass: it runs again
    assert service.profile("edge", now=later) is None and service.log.count() == 1


class _DownStore(EmbeddedProfileStore):
    def get_many(self, subjects: Sequence[str]) -> dict[str, Any]:
        raise ConnectionError("store down")


def test_features_degrade_when_the_store_is_down(tmp_path: Path) -> None:
    down = EventService(Settings(data_dir=tmp_path), store=_DownStore(tmp_path / "x", CFG))
    before = METRICS["profile_store_errors"]
    assert down.features(user_id="alice") is None
    assert METRICS["profile_store_errors"] == before + 1
