"""Behaviour statistics for recommendations, folded with the profiles: session
co-occurrence (co-viewed, bought together) and trending. One suite every profile store
passes (Redis runs it in tests/integration/test_cooccur_redis.py)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from shoprank.events.model import Event
from shoprank.profiles.embedded import EmbeddedProfileStore
from shoprank.profiles.folding import DAY, FoldConfig
from shoprank.profiles.protocol import ProfileStore

T = 1_800_000_000.0
HOUR = 3600.0
CFG = FoldConfig(
    half_life_s={"default": 10 * DAY},
    weights={"view": 1.0, "click": 2.0, "add_to_cart": 5.0, "purchase": 10.0},
    facets=("brand",),
    session_gap_s=1800.0,
    session_max_items=20,
    trending_half_life_s=DAY,
)


class Log:
    """Events with consecutive offsets, as the event log delivers them."""

    def __init__(self) -> None:
        self.items: list[tuple[str, Event]] = []

    def add(self, kind: str, user: str, product: str, t: float) -> None:
        n = len(self.items)
        self.items.append(
            (
                f"{n}-0",
                Event(type=kind, timestamp=t, event_id=f"e{n}", user_id=user, product_id=product),
            )
        )


StoreFactory = Callable[[FoldConfig], ProfileStore]


class BehaviourStatsSuite:
    """Subclasses provide `make_store`: a fresh, empty store with the given config."""

    @pytest.fixture()
    def store(self, make_store: StoreFactory) -> ProfileStore:
        return make_store(CFG)

    def test_late_events_join_only_the_current_session(self, store: ProfileStore) -> None:
        log = Log()
        log.add("view", "u1", "a", T)
        log.add("view", "u1", "b", T + 3 * HOUR)  # past the gap: a second session
        log.add("view", "u1", "c", T + 3 * HOUR - 20 * 60)  # late, but within that session
        log.add("view", "u1", "d", T + 60)  # late, in the first (closed) session: no pairs
        assert store.apply(log.items) == 4
        view = store.neighbours(["a", "b", "c", "d"], kind="view")
        assert view == {"b": {"c": 1.0}, "c": {"b": 1.0}}
        assert store.item_sessions(["a", "b", "c", "d"], kind="view") == {
            "a": 1.0,
            "b": 1.0,
            "c": 1.0,
        }
        assert store.cooccur_totals(kind="view") == {"sessions": 2.0}
        assert "d" in dict(store.trending(now=T + 3 * HOUR, limit=10))  # still trending

    def test_a_quarantined_event_leaves_the_session_whole(self, store: ProfileStore) -> None:
        log = Log()
        log.add("view", "u1", "a", T)
        log.add("view", "u1", "b", T + 10)
        bad = Event(
            type="view", timestamp=T + 20, event_id="bad", user_id="u1", product_id="x", price=-1.0
        )
        log.items.append((f"{len(log.items)}-0", bad))
        log.add("view", "u1", "c", T + 30)
        assert store.apply(log.items) == 3
        assert store.neighbours(["c", "x"], kind="view") == {"c": {"a": 1.0, "b": 1.0}}
        assert store.item_sessions(["a", "b", "c", "x"], kind="view") == {
            "a": 1.0,
            "b": 1.0,
            "c": 1.0,
        }

    def test_neighbour_lists_keep_the_strongest(self, make_store: StoreFactory) -> None:
        store = make_store(replace(CFG, max_neighbours=3))
        log = Log()
        # "hub" is seen with s1 in five sessions, s2 in four, s3 in three, s4..s6 once.
        for others, sessions in (("s1", 5), ("s2", 4), ("s3", 3), ("s4 s5 s6", 1)):
            for n in range(sessions):
                user = f"{others}-{n}"
                log.add("view", user, "hub", T)
                for i, other in enumerate(others.split()):
                    log.add("view", user, other, T + 1 + i)
        store.apply(log.items)
        hub = store.neighbours(["hub"], kind="view", limit=10)["hub"]
        assert hub == {"s1": 5.0, "s2": 4.0, "s3": 3.0}
        assert store.neighbours(["s4"], kind="view") == {"s4": {"hub": 1.0, "s5": 1.0, "s6": 1.0}}

    def test_pairs_count_sessions_and_are_symmetric(self, store: ProfileStore) -> None:
        log = Log()
        # Session 1 of u1: views a, b, c within minutes; buys a and m.
        log.add("view", "u1", "a", T)
        log.add("click", "u1", "b", T + 60)
        log.add("view", "u1", "c", T + 120)
        log.add("view", "u1", "b", T + 180)  # b again: no new occurrence
        log.add("add_to_cart", "u1", "a", T + 200)
        log.add("purchase", "u1", "m", T + 300)
        # Past the gap: a new session of u1, where a and b occur together again.
        log.add("view", "u1", "a", T + 3 * HOUR)
        log.add("view", "u1", "b", T + 3 * HOUR + 10)
        # Another shopper: a with c.
        log.add("view", "u2", "a", T)
        log.add("view", "u2", "c", T + 5)
        assert store.apply(log.items) == len(log.items)

        view = store.neighbours(["a", "b", "c", "zz"], kind="view")
        assert view["a"] == {"b": 2.0, "c": 2.0}
        assert view["b"] == {"a": 2.0, "c": 1.0}
        assert view["c"] == {"a": 2.0, "b": 1.0}
        assert "zz" not in view
        buy = store.neighbours(["a", "m"], kind="buy")
        assert buy == {"a": {"m": 1.0}, "m": {"a": 1.0}}  # views never count as bought
        assert store.item_sessions(["a", "b", "m"], kind="view") == {"a": 3.0, "b": 2.0}
        assert store.item_sessions(["a", "m"], kind="buy") == {"a": 1.0, "m": 1.0}
        assert store.cooccur_totals(kind="view") == {"sessions": 3.0}
        assert store.cooccur_totals(kind="buy") == {"sessions": 1.0}
        assert list(store.neighbours(["a"], kind="view", limit=1)["a"]) == ["b"]  # ties by id
        with pytest.raises(ValueError, match="kind"):
            store.neighbours(["a"], kind="cart")

    def test_trending_is_recent_velocity_not_all_time_counts(self, store: ProfileStore) -> None:
        log = Log()
        for i in range(30):  # "old": many purchases, three weeks ago
            log.add("purchase", f"o{i}", "old", T - 21 * DAY + i)
        for i in range(3):  # "new": a few clicks in the last hour
            log.add("click", f"n{i}", "new", T - HOUR + i)
        log.add("view", "x", "mid", T - 2 * DAY)
        store.apply(log.items)
        ranked = store.trending(now=T, limit=10)
        assert [p for p, _ in ranked] == ["new", "mid", "old"]
        scores = dict(ranked)
        # Each score is the events' weights decayed with a one-day half-life.
        assert scores["mid"] == pytest.approx(1.0 * 0.25)
        assert scores["new"] == pytest.approx(3 * 2.0 * 2 ** (-1 / 24), rel=1e-3)
        assert scores["old"] == pytest.approx(30 * 10.0 * 2**-21, rel=1e-3)
        # Read later, every score has halved once per day.
        later = dict(store.trending(now=T + DAY, limit=10))
        assert later["new"] == pytest.approx(scores["new"] / 2)
        assert store.trending(now=T, limit=1) == ranked[:1]

    def test_folding_in_batches_equals_one_pass_and_repeats_fold_once(
        self, store: ProfileStore, tmp_path: Path
    ) -> None:
        rng = random.Random(7)
        log = Log()
        t = T
        for _ in range(400):
            t += rng.choice([5.0, 60.0, 600.0, 4 * HOUR])
            kind = rng.choice(["view", "view", "click", "add_to_cart", "purchase"])
            log.add(kind, f"u{rng.randrange(6)}", f"p{rng.randrange(25)}", t)
        one = EmbeddedProfileStore(tmp_path / "one.sqlite", CFG)
        one.apply(log.items)
        for start in range(0, len(log.items), 37):
            store.apply(log.items[start : start + 37])
        store.apply(log.items[100:200])  # delivered again: below the watermark, ignored
        ids = [f"p{i}" for i in range(25)]
        for kind in ("view", "buy"):
            assert store.neighbours(ids, kind=kind) == one.neighbours(ids, kind=kind)
            assert store.item_sessions(ids, kind=kind) == one.item_sessions(ids, kind=kind)
            assert store.cooccur_totals(kind=kind) == one.cooccur_totals(kind=kind)
        got, want = store.trending(now=t, limit=25), one.trending(now=t, limit=25)
        assert [p for p, _ in got] == [p for p, _ in want]
        assert [s for _, s in got] == pytest.approx([s for _, s in want])

    def test_clear_removes_the_statistics(self, store: ProfileStore) -> None:
        log = Log()
        log.add("view", "u", "a", T)
        log.add("view", "u", "b", T + 1)
        store.apply(log.items)
        assert store.neighbours(["a"], kind="view")
        store.clear()
        assert store.neighbours(["a"], kind="view") == {}
        assert store.trending(now=T, limit=5) == []
        assert store.cooccur_totals(kind="view") == {"sessions": 0.0}


class TestEmbeddedBehaviourStats(BehaviourStatsSuite):
    @pytest.fixture()
    def make_store(self, tmp_path: Path) -> StoreFactory:
        made = iter(range(1000))
        return lambda cfg: EmbeddedProfileStore(tmp_path / f"p{next(made)}.sqlite", cfg)


def test_trending_survives_an_epoch_change(tmp_path: Path) -> None:
    """Scores are kept relative to an epoch that moves forward as time passes (forward
    decay without overflow); reads agree across the move."""
    from shoprank.profiles.cooccur import EPOCH_HALF_LIVES

    store = EmbeddedProfileStore(tmp_path / "p.sqlite", CFG)
    log = Log()
    log.add("click", "u", "a", T)
    store.apply(log.items)
    jump = T + 3 * EPOCH_HALF_LIVES * DAY  # far past two epochs: the epoch moves
    log2 = Log()
    log2.items = [
        ("9-0", Event(type="view", timestamp=jump, event_id="x", user_id="v", product_id="b"))
    ]
    store.apply(log2.items)
    scores = dict(store.trending(now=jump, limit=5))
    assert scores["b"] == pytest.approx(1.0)
    assert scores["a"] == pytest.approx(2.0 * 2.0 ** (-(jump - T) / DAY), rel=1e-6, abs=1e-300)


def test_settings_reach_the_fold_config() -> None:
    from shoprank.settings import Settings

    cfg = FoldConfig.from_settings(
        Settings(cooccur_session_gap_s=60, cooccur_max_items=5, trending_half_life_days=2)
    )
    assert (cfg.session_gap_s, cfg.session_max_items, cfg.trending_half_life_s) == (
        60,
        5,
        2 * DAY,
    )
