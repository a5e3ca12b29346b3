"""Fold cost per event with and without the behaviour statistics (session co-occurrence and
trending), side by side on the same events, pinned to 2 CPU cores.

    python benchmarks/bench_cooccur.py                       # embedded, and redis when
                                                             # redis-server is installed
    python benchmarks/bench_cooccur.py --events 100000 --store embedded

Synthetic traffic over --products ids (the size of the Icecat catalog by default) with
Zipf-like popularity: shoppers browse in sessions (a few to a few dozen interactions seconds
to minutes apart, hours between sessions), mostly views and clicks, some carts and
purchases. Events are applied through `ProfileStore.apply` in batches of 1000, as
`Folder.fold` does, with product facts (category, brand, price, a 384-d vector) from a
prebuilt lookup. "without" is the same store with `BehaviourStats.observe` and the store's
statistics write patched out: the fold as it was before these statistics.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

from shoprank.events.model import Event
from shoprank.profiles.cooccur import BehaviourStats
from shoprank.profiles.folding import FoldConfig
from shoprank.settings import Settings

KINDS = ["view"] * 6 + ["click"] * 3 + ["add_to_cart", "purchase"]
CATEGORIES = ["Laptops", "Mice", "Audio", "Printers", "Cables", "Monitors", "Phones"]
BRANDS = ["HP", "Dell", "Sony", "Lenovo", "Apple", "Logitech", "Samsung"]


def make_events(n: int, *, users: int, products: int, seed: int = 3) -> list[tuple[str, Event]]:
    rng = random.Random(seed)
    weights = [1.0 / (k + 1) for k in range(products)]
    popular = rng.choices(range(products), weights=weights, k=n)
    clock = {u: 1_800_000_000.0 + rng.uniform(0, 86_400) for u in range(users)}
    left = {u: 0 for u in range(users)}
    out = []
    for i in range(n):
        user = rng.randrange(users)
        if left[user] == 0:  # a new session: hours later, a few to a few dozen interactions
            clock[user] += rng.uniform(2, 48) * 3600
            left[user] = rng.randint(2, 30)
        clock[user] += rng.uniform(5, 300)
        left[user] -= 1
        kind = rng.choice(KINDS)
        event = Event(
            type=kind,
            timestamp=clock[user],
            event_id=f"e{i}",
            user_id=f"user-{user}",
            product_id=f"p{popular[i]}",
            quantity=1 if kind == "purchase" else None,
            price=19.99 if kind == "purchase" else None,
        )
        out.append((f"{i + 1}-0", event))
    return out


def make_lookup(products: int) -> Any:
    facts = {}
    for n in range(products):
        rng = random.Random(n)
        facts[f"p{n}"] = {
            "category": CATEGORIES[n % len(CATEGORIES)],
            "brand": BRANDS[n % len(BRANDS)],
            "price": 5.0 + n % 500,
            "vector": [rng.uniform(-1, 1) for _ in range(384)],
        }

    def lookup(ids: Sequence[str]) -> dict[str, Any]:
        return {i: facts[i] for i in ids if i in facts}

    return lookup


@contextmanager
def without_statistics(store: Any) -> Iterator[None]:
    """The fold as before the behaviour statistics: no observing, nothing written."""
    with (
        mock.patch.object(BehaviourStats, "observe", lambda self, profile, event, cfg: None),
        mock.patch.object(type(store), "_write_behaviour", lambda self, conn, stats: None),
    ):
        yield


def fold(store: Any, events: list[tuple[str, Event]], lookup: Any) -> float:
    store.clear()
    started = time.perf_counter()
    for start in range(0, len(events), 1000):
        store.apply(events[start : start + 1000], lookup=lookup)
    return time.perf_counter() - started


def measure(name: str, store: Any, events: list[tuple[str, Event]], lookup: Any) -> dict[str, Any]:
    with without_statistics(store):
        off = fold(store, events, lookup)
    on = fold(store, events, lookup)
    ids = [f"p{n}" for n in range(50)]
    started = time.perf_counter()
    reads = 200
    for i in range(reads):
        store.neighbours([ids[i % 50]], kind="view", limit=200)
    neighbours_ms = (time.perf_counter() - started) * 1000 / reads
    started = time.perf_counter()
    for _ in range(reads):
        store.trending(now=events[-1][1].timestamp, limit=200)
    trending_ms = (time.perf_counter() - started) * 1000 / reads
    n = len(events)
    return {
        "store": name,
        "events": n,
        "without_us_per_event": round(off / n * 1e6, 1),
        "with_us_per_event": round(on / n * 1e6, 1),
        "statistics_us_per_event": round((on - off) / n * 1e6, 1),
        "view_sessions": store.cooccur_totals(kind="view")["sessions"],
        "buy_sessions": store.cooccur_totals(kind="buy")["sessions"],
        "neighbours_read_ms": round(neighbours_ms, 3),
        "trending_read_ms": round(trending_ms, 3),
    }


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    binary = shutil.which("redis-server")
    assert binary is not None
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.exceptions.ConnectionError:
            time.sleep(0.1)
    return proc, f"redis://127.0.0.1:{port}/0"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--products", type=int, default=19_406)
    parser.add_argument("--store", choices=["embedded", "redis", "both"], default="both")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[: args.cores]))
    cfg = FoldConfig.from_settings(Settings())
    events = make_events(args.events, users=args.users, products=args.products)
    lookup = make_lookup(args.products)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.store in ("embedded", "both"):
            from shoprank.profiles.embedded import EmbeddedProfileStore

            store = EmbeddedProfileStore(Path(tmp) / "profiles.sqlite", cfg)
            results.append(measure("embedded", store, events, lookup))
            print(json.dumps(results[-1]), flush=True)
        if args.store in ("redis", "both") and shutil.which("redis-server"):
            import redis

            from shoprank.profiles.redis_store import RedisProfileStore

            proc, url = start_redis(Path(tmp))
            try:
                redis_store = RedisProfileStore(redis.Redis.from_url(url), cfg)
                results.append(measure("redis", redis_store, events, lookup))
                print(json.dumps(results[-1]), flush=True)
            finally:
                proc.terminate()
                proc.wait(timeout=10)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
