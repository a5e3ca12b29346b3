"""Does logging every search cost search latency? p50/p99 of `full` searches with the
search log on (embedded store, written off the hot path) vs off, on the demo catalog.

    python benchmarks/bench_search_log.py --out benchmarks/results/search-log.json
    python benchmarks/bench_search_log.py --data-dir /tmp/bench-log --skip-load   # reuse

Both services are built by the real wiring (`make_service`; `SHOPRANK_SEARCH_LOG` on/off)
over one index, in one process, and measured in alternating blocks so that drift on a
shared machine hits both alike. The query-embedding cache is left on (every query repeats),
so the search itself is short and the logging overhead, if any, is not hidden by the ~5 ms
numpy query encoder. Searches are anonymous: only the search log (not the behaviour log)
runs. With `--users`, every search names a user and the behaviour log runs too (both).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from shoprank.indexing.demo import write_demo_catalog  # noqa: E402
from shoprank.indexing.loader import load_catalog  # noqa: E402
from shoprank.searchlog import search_log_store  # noqa: E402
from shoprank.settings import Settings  # noqa: E402
from shoprank.wiring import embedding_cache, make_backend, make_service, text_encoder  # noqa: E402

QUERIES = [
    "running shoes",
    "wireless headphones",
    "espresso machine",
    "gaming laptop 16gb",
    "red dress",
    "noise cancelling headphones",
    "kids bike",
    "led desk lamp",
    "yoga mat",
    "coffee grinder",
    "women's jacket",
    "bluetooth speaker",
    "office chair",
    "smart watch",
    "cast iron pan",
    "backpack",
    "mechanical keyboard",
    "4k monitor",
    "trail running shoes men",
    "vacuum cleaner",
]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def hot_path_and_background_cost(service: Any, bodies: list[dict[str, Any]]) -> dict[str, Any]:
    """Two numbers the shared machine cannot blur much: what `SearchLogger.log` costs the
    search thread, and the background work per search (document + SQLite), run here in the
    foreground on real records of real searches."""
    import copy

    from shoprank.searchlog.sinks import EmbeddedSearchLogSink

    captured: list[Any] = []
    logger = service.search_logger

    class Capture:
        def write(self, record: Any) -> None:
            captured.append(record)

    sinks, logger.sinks = logger.sinks, [Capture()]
    for body in bodies * 5:
        service.search("demo", body)
    logger.flush(timeout=60)
    logger.sinks = sinks
    records = captured[:100]
    log_calls = []
    for _ in range(20):
        for rec in records:
            rec = copy.copy(rec)
            t0 = time.perf_counter()
            logger.log(rec)
            log_calls.append((time.perf_counter() - t0) * 1000)
        logger.flush(timeout=60)
    sink = next(s for s in sinks if isinstance(s, EmbeddedSearchLogSink))
    per_batch = []
    for _ in range(20):
        t0 = time.perf_counter()
        for rec in records:
            sink.write(rec)
        sink.flush()
        per_batch.append((time.perf_counter() - t0) * 1000 / len(records))
    return {
        "log_call_on_search_thread_ms": {
            "p50": round(pct(log_calls, 50), 4),
            "p99": round(pct(log_calls, 99), 4),
        },
        "background_work_per_search_ms": round(statistics.median(per_batch), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--products", type=int, default=2000)
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--blocks", type=int, default=40, help="alternating on/off blocks")
    parser.add_argument("--passes", type=int, default=3, help="passes over the queries a block")
    parser.add_argument("--users", action="store_true", help="every search names a user")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="bench-search-log-"))
    base = Settings(data_dir=data_dir, user_id_secret="bench")
    if not args.skip_load:
        catalog = write_demo_catalog(data_dir / "catalog.jsonl", n=args.products, seed=7)
        report = load_catalog(
            catalog,
            index="demo",
            backend=make_backend(base),
            encoder=text_encoder(base),
            lock_dir=data_dir / "locks",
            keep=1,
            cache=embedding_cache(base),
        )
        print(f"indexed {report.documents} products")

    services = {
        "on": make_service(base.model_copy(update={"search_log": True})),
        "off": make_service(base.model_copy(update={"search_log": False})),
    }
    fields = base.default_text_fields.split(",")
    bodies = [
        {
            "query": {"multi_match": {"query": q, "fields": fields}},
            "size": 10,
            "ext": {"shoprank": {"mode": "full"}},
        }
        for q in QUERIES
    ]
    for service in services.values():  # warm: encoder loaded, every query vector cached
        for body in bodies:
            service.search("demo", body)
        service.search_logger.flush(timeout=60)
    logged_before = search_log_store(base).count()

    times: dict[str, list[float]] = {"on": [], "off": []}
    pair_p50_diffs: list[float] = []
    for block in range(args.blocks):
        order = ("on", "off") if block % 2 == 0 else ("off", "on")
        block_times: dict[str, list[float]] = {}
        for name in order:
            service = services[name]
            block_times[name] = []
            for p in range(args.passes):
                for i, body in enumerate(bodies):
                    user = f"user-{(i + p) % 50}" if args.users else None
                    t0 = time.perf_counter()
                    service.search("demo", body, user_id=user)
                    block_times[name].append((time.perf_counter() - t0) * 1000)
            # The background writes of this block overlap its own searches (a batch every
            # 20 ms); the last batch is drained here, so it never runs in the other variant.
            service.search_logger.flush(timeout=60)
            times[name] += block_times[name]
        pair_p50_diffs.append(
            statistics.median(block_times["on"]) - statistics.median(block_times["off"])
        )
    drain_started = time.perf_counter()
    services["on"].search_logger.flush(timeout=120)
    drain_s = time.perf_counter() - drain_started
    logged = search_log_store(base).count() - logged_before

    result: dict[str, Any] = {
        "benchmark": "search-log",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "products": args.products,
        "mode": "full",
        "users": args.users,
        "searches_per_variant": len(times["on"]),
        "searches_logged": logged,
        "drain_after_last_search_s": round(drain_s, 3),
        "logger_failed": services["on"].search_logger.failed,
        "logger_dropped": services["on"].search_logger.dropped,
    }
    for name, values in times.items():
        result[name] = {
            "p50_ms": round(pct(values, 50), 3),
            "p99_ms": round(pct(values, 99), 3),
            "mean_ms": round(statistics.fmean(values), 3),
        }
    result["p99_diff_ms"] = round(result["on"]["p99_ms"] - result["off"]["p99_ms"], 3)
    result["p50_diff_ms"] = round(result["on"]["p50_ms"] - result["off"]["p50_ms"], 3)
    # Median over adjacent on/off block pairs of their median difference: robust to drift.
    result["paired_block_p50_diff_ms"] = round(statistics.median(pair_p50_diffs), 3)
    result.update(hot_path_and_background_cost(services["on"], bodies))
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
