"""Event ingest and profile read benchmark, pinned to 2 CPU cores.

    python benchmarks/bench_events.py                 # embedded and redis (needs redis-server)
    python benchmarks/bench_events.py --store embedded --events 50000

Measures, through `EventService` (what the HTTP handler and the worker call):
accepted/s (validate + pseudonymise + durable append, batches of --batch), folded/s
(log → profiles), and profile fetch latency p50/p99 for one user and for --users users
(the ranker's one-round-trip read). Redis runs on loopback, started here; the
process's heap is frozen (`gc.freeze()`) before the reads.

Reads are timed twice: right after the fold (Redis and the kernel are still writing out
the fold's AOF, on the same 2 cores) and in steady state (after that write-out settled,
what a serving ranker sees between bursts). `retention_pass_s` is the hourly retention
scan that `fold` runs, timed on its own (it deletes nothing here).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from shoprank.events.model import validate_event
from shoprank.events.service import EventService
from shoprank.settings import Settings

CATEGORIES = ["Laptops", "Mice", "Audio", "Printers", "Cables", "Monitors"]
BRANDS = ["HP", "Dell", "Sony", "Lenovo", "Apple", "Logitech"]


def lookup(ids: Any) -> dict[str, dict[str, Any]]:
    out = {}
    for pid in ids:
        n = int(pid[1:])
        rng = random.Random(n)
        out[pid] = {
            "category": CATEGORIES[n % 6],
            "brand": BRANDS[n % 5],
            "price": 5.0 + n % 500,
            "vector": [rng.uniform(-1, 1) for _ in range(384)],
        }
    return out


def raw_events(n: int, users: int, seed: int = 1) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    now = time.time()
    kinds = ["view"] * 6 + ["click"] * 3 + ["add_to_cart", "purchase"]
    out = []
    for i in range(n):
        kind = rng.choice(kinds)
        event: dict[str, Any] = {
            "type": kind,
            "user_id": f"user-{rng.randrange(users)}",
            "product_id": f"p{rng.randrange(5000)}",
            "timestamp": now - rng.uniform(0, 30 * 86_400),
            "event_id": f"bench-{seed}-{i}",
        }
        if kind == "purchase":
            event.update(price=19.99, quantity=1)
        out.append(event)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    service = EventService(settings, product_lookup=lookup)
    service.log.clear()
    service.store.clear()
    events = raw_events(args.events, args.users)
    now = time.time()
    started = time.perf_counter()
    accepted = 0
    for start in range(0, len(events), args.batch):
        parsed = [validate_event(e, now=now) for e in events[start : start + args.batch]]
        accepted += service.ingest(parsed, fold=False)["accepted"]
    ingest_s = time.perf_counter() - started
    started = time.perf_counter()
    folded = service.fold(consumer="bench", retention=False)
    fold_s = time.perf_counter() - started
    n_events = len(events)
    # The 100k raw events are the benchmark's, not a server's: drop them, and freeze what is
    # left (as a server does after start-up), so a full GC pass over the benchmark's own heap
    # is not timed as a profile read.
    del events, parsed
    gc.collect()
    gc.freeze()
    subjects = [service.subject(user_id=f"user-{i}") for i in range(args.users)]
    after_fold = reads(service, subjects, args)
    if settings.redis_url:
        settle(service.client)
    started = time.perf_counter()
    service.enforce_retention()
    retention_s = time.perf_counter() - started
    steady = reads(service, subjects, args)
    gc.unfreeze()
    return {
        "store": service.store.name,
        "events": n_events,
        "accepted_per_s": round(accepted / ingest_s),
        "folded": folded,
        "folded_per_s": round(folded / fold_s),
        "retention_pass_s": round(retention_s, 3),
        **{f"{k}_ms": v for k, v in steady.items()},
        **{f"{k}_after_fold_ms": v for k, v in after_fold.items()},
    }


def reads(service: EventService, subjects: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """p50/p99 of `get_many` for one user and for --batch-users users."""
    one, many = [], []
    for i in range(args.reads):
        t0 = time.perf_counter()
        service.store.get_many([subjects[i % len(subjects)]])
        one.append((time.perf_counter() - t0) * 1000)
    for i in range(args.reads // 10):
        part = [subjects[(i * 7 + k) % len(subjects)] for k in range(args.batch_users)]
        t0 = time.perf_counter()
        service.store.get_many(part)
        many.append((time.perf_counter() - t0) * 1000)
    return {
        name: {
            "p50": round(pct(xs, 0.5), 3),
            "p99": round(pct(xs, 0.99), 3),
            "max": round(max(xs), 3),
        }
        for name, xs in (("fetch_one", one), (f"fetch_{args.batch_users}", many))
    }


def settle(client: Any, *, quiet_s: float = 2.0) -> None:
    """Wait for Redis's AOF rewrite to finish, then for the everysec fsync to catch up."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        info = client.info("persistence")
        if not info.get("aof_rewrite_in_progress") and not info.get("aof_rewrite_scheduled"):
            break
        time.sleep(0.1)
    time.sleep(quiet_s)


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    return proc, f"redis://127.0.0.1:{port}/0"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", choices=["embedded", "redis", "both"], default="both")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000, help="events per ingest call")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--reads", type=int, default=5000)
    parser.add_argument("--batch-users", type=int, default=50)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[: args.cores]))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.store in ("embedded", "both"):
            results.append(run(Settings(data_dir=Path(tmp) / "emb"), args))
        if args.store in ("redis", "both"):
            proc, url = start_redis(Path(tmp))
            try:
                results.append(run(Settings(data_dir=Path(tmp) / "red", redis_url=url), args))
            finally:
                proc.terminate()
                proc.wait()
    report = {"cores": args.cores, "cpu": os.cpu_count(), "results": results}
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
