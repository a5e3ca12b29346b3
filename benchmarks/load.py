"""Load and fault run against the real server on loopback (bounded in time and requests).

    python benchmarks/load.py --rate 50 --duration 60 --out benchmarks/results/load.json
    python benchmarks/load.py --rate 50 --duration 60 --fault \
        --out benchmarks/results/load-fault.json

Builds (once, in --data-dir) the generated demo shop, starts a `redis-server` (append-only,
fsync every second) and `shoprank serve` with Redis as the event log, then sends requests
at a fixed rate (open loop: a request is sent on schedule whether or not earlier ones
finished, and its latency counts from its scheduled time, so a stall is not hidden). The mix:
searches in the modes full/hybrid/lexical, half with a price/brand filter, half with terms
and stats aggregations, half for a known shopper, and event batches (1-5 events, each with an
idempotency id).

Reports throughput, p50/p99/p99.9 per request kind, errors, and the server's RSS before and
after. `--fault` also configures the local event spool, stops Redis at a third of the run and
restarts it at two thirds, then waits for the spool to drain and checks that every event the
server accepted is in the Redis stream (lost accepted events) and how many searches failed.
`--workers N` serves with N worker processes (default 1).

    python benchmarks/load.py --capacity --out benchmarks/results/capacity.json

`--capacity` measures, on the same data, searches only: the capacity (the highest offered
rate, stepped up by ~25 %, whose search p99 stays at or under 100 ms (`--p99-ms`) with every search
answered 200) of `--workers 1` and of `--workers 2`, side by side; then, with admission
control on (SHOPRANK_MAX_INFLIGHT), the goodput (searches answered 200 per second) and the
p99 of those accepted searches when offered 1x, 2x and 4x the larger capacity.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from rawhttp import RawClient, RawHTTPError

WORDS = [
    "wireless headphones",
    "running shoes",
    "espresso maker",
    "laptop",
    "gaming mouse",
    "desk lamp",
    "bluetooth speaker",
    "winter jacket",
    "coffee mug",
    "usb charger",
    "backpack",
    "yoga mat",
    "kitchen knife",
    "smart watch",
    "office chair",
]
EVENT_TYPES = ["view", "view", "click", "click", "add_to_cart", "purchase"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def build_demo(data_dir: Path, products: int) -> list[dict[str, Any]]:
    catalog = data_dir / "catalog.jsonl"
    if not (data_dir / "embedded").exists():
        from shoprank.indexing.demo import write_demo_catalog

        write_demo_catalog(catalog, n=products, seed=7)
        subprocess.run(
            [sys.executable, "-m", "shoprank.cli", "--data-dir", str(data_dir), "index", "load"]
            + [str(catalog), "--index", "demo"],
            check=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
    return [orjson.loads(line) for line in catalog.read_bytes().splitlines() if line.strip()]


class Redis:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed (apt-get install redis-server)")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
            + ["--appendonly", "yes", "--appendfsync", "everysec", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        client = redis.Redis.from_url(self.url)
        for _ in range(200):
            try:
                if client.ping():
                    return
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        raise SystemExit("redis-server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # a clean shutdown writes the AOF out
            self.proc.wait(timeout=30)


def start_server(
    data_dir: Path, env: dict[str, str], workers: int = 1
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = open(data_dir / "server.log", "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(
        [sys.executable, "-m", "shoprank.cli", "--data-dir", str(data_dir), "serve"]
        + ["--port", str(port), "--log-level", "warning", "--workers", str(workers)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit("server did not start; see server.log")


def search_body(rng: random.Random, products: list[dict[str, Any]]) -> dict[str, Any]:
    text = rng.choice(WORDS)
    query: dict[str, Any] = {"multi_match": {"query": text, "fields": ["title^3", "description"]}}
    if rng.random() < 0.5:
        filters: list[dict[str, Any]] = [{"range": {"price": {"lte": rng.choice([50, 100, 500])}}}]
        if rng.random() < 0.3:
            filters.append({"term": {"brand": rng.choice(products).get("brand", "x")}})
        query = {"bool": {"must": query, "filter": filters}}
    body: dict[str, Any] = {"query": query, "size": 10}
    if rng.random() < 0.5:
        body["aggs"] = {
            "brands": {"terms": {"field": "brand", "size": 10}},
            "price": {"stats": {"field": "price"}},
        }
    ext: dict[str, Any] = {"mode": rng.choices(["full", "hybrid", "lexical"], [6, 2, 2])[0]}
    if rng.random() < 0.5:
        ext["user_id"] = f"shopper-{rng.randrange(200)}"
    body["ext"] = {"shoprank": ext}
    return body


async def run_load(
    args: argparse.Namespace, url: str, products: list[dict[str, Any]], redis: Redis | None
) -> dict[str, Any]:
    rng = random.Random(args.seed)
    total = int(args.rate * args.duration)
    latencies: dict[str, list[float]] = {"search": [], "events": [], "accepted": []}
    statuses: dict[str, dict[str, int]] = {"search": {}, "events": {}}
    # Search answers per worker process (`X-Shoprank-Worker`) and status: how the load split.
    by_worker: dict[str, dict[str, int]] = {}
    accepted_ids: set[str] = set()
    degraded = 0
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    fault_log: list[dict[str, Any]] = []
    # (scheduled at s, kind, ms, server-side `took` ms of searches) for requests over 100 ms
    slow: list[tuple[float, str, float, int | None]] = []
    start = time.perf_counter()

    raw = getattr(args, "client", "httpx") == "raw"
    client_errors: tuple[type[Exception], ...] = (httpx.HTTPError, RawHTTPError)
    http: Any = (
        RawClient(url, max_connections=200, timeout=30)
        if raw
        else httpx.AsyncClient(base_url=url, timeout=30, limits=limits)
    )
    async with http as client:

        async def one(i: int, due: float) -> None:
            nonlocal degraded
            kind = "events" if rng.random() < args.event_share else "search"
            took = None
            try:
                if kind == "search":
                    resp = await client.post("/demo/_search", json=search_body(rng, products))
                    worker = resp.worker if raw else resp.headers.get("x-shoprank-worker")
                    counts = by_worker.setdefault(str(worker), {})
                    counts[str(resp.status_code)] = counts.get(str(resp.status_code), 0) + 1
                    if resp.status_code == 200:
                        answer = resp.json()
                        took = answer.get("took")
                        if answer.get("_shoprank", {}).get("degraded"):
                            degraded += 1
                else:
                    batch = [
                        {
                            "type": rng.choice(EVENT_TYPES),
                            "user_id": f"shopper-{rng.randrange(200)}",
                            "product_id": rng.choice(products)["id"],
                            "event_id": f"load-{args.seed}-{i}-{k}",
                        }
                        for k in range(rng.randint(1, 5))
                    ]
                    for event in batch:
                        if event["type"] == "purchase":
                            event.update(
                                quantity=rng.randint(1, 3),
                                price=rng.choice(products).get("price", 9.99),
                            )
                    resp = await client.post("/_shoprank/events", json=batch)
                    if resp.status_code == 200:
                        # Accepted = the batch less the events it reported as invalid.
                        bad = {int(e["index"]) for e in resp.json()["errors"]}
                        accepted_ids.update(
                            e["event_id"] for k, e in enumerate(batch) if k not in bad
                        )
                status = str(resp.status_code)
            except client_errors as exc:
                status = type(exc).__name__
            ms = (time.perf_counter() - due) * 1000
            latencies[kind].append(ms)
            if kind == "search" and status == "200":
                latencies["accepted"].append(ms)
            if ms > 100:
                slow.append((round(due - start, 2), kind, round(ms, 1), took))
            statuses[kind][status] = statuses[kind].get(status, 0) + 1

        # Open the client's connections before the clock starts (not part of the load).
        warm = random.Random(7)
        await asyncio.gather(
            *(client.post("/demo/_search", json=search_body(warm, products)) for _ in range(20))
        )
        start = time.perf_counter()
        tasks = []
        stopped = restarted = False
        for i in range(total):
            due = start + i / args.rate
            if redis is not None:
                elapsed = due - start
                if not stopped and elapsed >= args.duration / 3:
                    await asyncio.to_thread(redis.stop)
                    stopped = True
                    fault_log.append({"t_s": round(elapsed, 2), "redis": "stopped"})
                if not restarted and elapsed >= 2 * args.duration / 3:
                    await asyncio.to_thread(redis.start)
                    restarted = True
                    fault_log.append({"t_s": round(elapsed, 2), "redis": "restarted"})
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, due)))
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - start

    out: dict[str, Any] = {
        "requests": total,
        "wall_s": round(wall, 2),
        "throughput_rps": round(total / wall, 1),
        "degraded_searches": degraded,
        "accepted_events": len(accepted_ids),
        "fault_timeline": fault_log,
        "requests_over_100ms": len(slow),
        "slow_requests": sorted(slow, key=lambda r: (r[0], r[1], r[2]))[:500],
    }
    for kind in ("search", "events"):
        out[kind] = {
            "count": len(latencies[kind]),
            "statuses": statuses[kind],
            "errors": sum(n for s, n in statuses[kind].items() if s != "200"),
            "p50_ms": pct(latencies[kind], 0.50),
            "p99_ms": pct(latencies[kind], 0.99),
            "p999_ms": pct(latencies[kind], 0.999),
            "max_ms": round(max(latencies[kind]), 3) if latencies[kind] else None,
        }
    out["search"]["goodput_rps"] = round(len(latencies["accepted"]) / wall, 1)
    out["search"]["by_worker"] = by_worker
    out["search"]["accepted_p50_ms"] = pct(latencies["accepted"], 0.50)
    out["search"]["accepted_p99_ms"] = pct(latencies["accepted"], 0.99)
    out["_accepted_ids"] = accepted_ids
    return out


def stream_ids(redis_url: str) -> set[str]:
    import redis

    client = redis.Redis.from_url(redis_url)
    return {orjson.loads(f[b"e"])["event_id"] for _, f in client.xrange("shoprank:events")}


def rss_tree_mb(pid: int) -> float:
    """RSS of a server and its worker processes."""
    total = rss_mb(pid)
    children = Path(f"/proc/{pid}/task/{pid}/children")
    for child in children.read_text().split() if children.exists() else []:
        total += rss_tree_mb(int(child))
    return total


def warm_up(url: str, products: list[dict[str, Any]], workers: int) -> None:
    warm = random.Random(99)
    for _ in range(20 * workers):  # new connections: every worker loads its encoder
        httpx.post(url + "/demo/_search", json=search_body(warm, products), timeout=120)


def load_step(
    args: argparse.Namespace, url: str, products: list[dict[str, Any]], rate: float
) -> dict[str, Any]:
    step = argparse.Namespace(**{**vars(args), "rate": rate, "event_share": 0.0})
    step.duration = args.step_duration
    result = asyncio.run(run_load(step, url, products, None))
    search = result["search"]
    return {
        "offered_rps": round(rate, 1),
        "answered_rps": round(search["count"] / result["wall_s"], 1),
        "goodput_rps": search["goodput_rps"],
        "p50_ms": search["p50_ms"],
        "p99_ms": search["p99_ms"],
        "accepted_p99_ms": search["accepted_p99_ms"],
        "statuses": search["statuses"],
        "by_worker": search["by_worker"],
    }


# --overload-* flags, the setting each sets per overload run, and its part of the result key.
OVERLOAD_KNOBS = (
    ("overload_inflight", "SHOPRANK_MAX_INFLIGHT", "_inflight_{}"),
    ("overload_threads", "SHOPRANK_SEARCH_THREADS", "_threads_{}"),
    ("overload_queue_ms", "SHOPRANK_MAX_QUEUE_MS", "_queue_{}ms"),
    ("overload_shed", "SHOPRANK_SHED_BUSY_CONNECTIONS", "_shed_{}"),
)


def capacity_run(
    args: argparse.Namespace, products: list[dict[str, Any]], env: dict[str, str]
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "step_duration_s": args.step_duration,
        "p99_target_ms": args.p99_ms,
        "load_average_at_start": Path("/proc/loadavg").read_text().split()[:3],
        "capacity": {},
    }
    capacities: dict[int, float] = {}
    for workers in (1, 2):
        proc, url = start_server(args.data_dir, env, workers)
        try:
            warm_up(url, products, workers)
            steps = []
            rate, best = args.start_rate, 0.0
            while rate <= args.max_rate:
                step = load_step(args, url, products, rate)
                steps.append(step)
                print(json.dumps({"workers": workers, **step}), flush=True)
                ok = step["statuses"].get("200", 0) == sum(step["statuses"].values())
                if not ok or (step["p99_ms"] or 0) > args.p99_ms:
                    break
                best = rate
                rate *= 1.25
                time.sleep(1)
            capacities[workers] = best
            out["capacity"][f"workers_{workers}"] = {
                "searches_per_s": round(best, 1),
                "rss_mb": round(rss_tree_mb(proc.pid), 1),
                "steps": steps,
            }
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    if capacities[1]:
        out["speedup"] = round(capacities[2] / capacities[1], 2)
    base = capacities[2] or capacities[1] or args.start_rate
    # Each --overload-* flag: (its values, the setting it sets, the result key's part).
    knobs = [
        (getattr(args, flag, "") or "", env_name, part) for flag, env_name, part in OVERLOAD_KNOBS
    ]
    value_lists = [[v for v in str(values).split(",") if v] or [None] for values, _, _ in knobs]
    for values in itertools.product(*value_lists):
        inflight, running, queue_ms, shed = values
        # A fresh server per admission setting, offered 1x, 2x and 4x the 2-worker capacity.
        run_env = dict(env)
        key = "overload"
        for value, (_, env_name, part) in zip(values, knobs, strict=True):
            if value is not None:
                run_env[env_name] = value
                key += part.format(value)
        proc, url = start_server(args.data_dir, run_env, 2)
        try:
            warm_up(url, products, 2)
            out[key] = {"workers": 2, "capacity_rps": round(base, 1), "runs": []}
            if inflight is not None:
                out[key]["max_inflight"] = int(inflight)
            for factor in (1, 2, 4):
                step = load_step(args, url, products, base * factor)
                step["factor"] = factor
                step["goodput_share_of_capacity"] = round(step["goodput_rps"] / base, 2)
                print(
                    json.dumps(
                        {
                            "max_inflight": inflight,
                            "search_threads": running,
                            "max_queue_ms": queue_ms,
                            "shed_busy_connections": shed,
                            **step,
                        }
                    ),
                    flush=True,
                )
                out[key]["runs"].append(step)
                time.sleep(2)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/shoprank-load"))
    parser.add_argument("--products", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=50.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds (max 600)")
    parser.add_argument("--event-share", type=float, default=0.2)
    parser.add_argument("--fault", action="store_true", help="stop and restart Redis mid-run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument("--capacity", action="store_true", help="capacity and overload run")
    parser.add_argument("--step-duration", type=float, default=10.0, help="--capacity steps")
    parser.add_argument("--start-rate", type=float, default=5.0)
    parser.add_argument("--p99-ms", type=float, default=100.0, help="--capacity p99 target")
    parser.add_argument("--max-rate", type=float, default=400.0)
    parser.add_argument(
        "--overload-inflight",
        default="",
        help="--capacity: comma-separated SHOPRANK_MAX_INFLIGHT values, one overload run each "
        "(default: the server's own setting)",
    )
    parser.add_argument(
        "--overload-threads",
        default="",
        help="--capacity: comma-separated SHOPRANK_SEARCH_THREADS values, one overload run "
        "each (with each --overload-inflight value)",
    )
    parser.add_argument(
        "--overload-queue-ms",
        default="",
        help="--capacity: comma-separated SHOPRANK_MAX_QUEUE_MS values, one overload run "
        "each (with each --overload-inflight and --overload-threads value)",
    )
    parser.add_argument(
        "--overload-shed",
        default="",
        help="--capacity: comma-separated SHOPRANK_SHED_BUSY_CONNECTIONS values (true,false),"
        " one overload run each (with each of the other --overload-* values)",
    )
    parser.add_argument(
        "--client",
        choices=["httpx", "raw"],
        default="httpx",
        help="load generator's HTTP client: httpx, or the lean raw-socket one (rawhttp.py), "
        "which leaves more of a shared machine to the server",
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    args.duration = min(args.duration, 600.0)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    products = build_demo(args.data_dir, args.products)
    if args.capacity:
        env = {"SHOPRANK_PRODUCT_INDEX": "demo"}
        result = capacity_run(args, products, env)
        text = json.dumps(result, indent=2)
        print(text)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text + "\n")
        return

    work = Path(tempfile.mkdtemp(prefix="shoprank-load-"))
    redis = Redis(work)
    redis.start()
    env = {"SHOPRANK_REDIS_URL": redis.url, "SHOPRANK_PRODUCT_INDEX": "demo"}
    spool = work / "spool"
    if args.fault:
        env["SHOPRANK_EVENT_SPOOL_DIR"] = str(spool)
    proc, url = start_server(args.data_dir, env, args.workers)
    try:
        warm = random.Random(99)
        for i in range(30):  # load the encoder and the event path (Celery import), fill caches
            httpx.post(url + "/demo/_search", json=search_body(warm, products), timeout=60)
            if i % 10 == 0:
                event = {"type": "view", "user_id": "warm", "product_id": products[i]["id"]}
                httpx.post(url + "/_shoprank/events", json=event, timeout=60)
        rss_before = rss_tree_mb(proc.pid)
        result = asyncio.run(run_load(args, url, products, redis if args.fault else None))
        rss_after = rss_tree_mb(proc.pid)
        accepted = result.pop("_accepted_ids")
        if args.fault:
            deadline = time.monotonic() + 120
            while list(spool.glob("*.jsonl")) and time.monotonic() < deadline:
                time.sleep(0.5)
            result["spool_left_files"] = len(list(spool.glob("*.jsonl")))
            stored = stream_ids(redis.url)
            result["lost_accepted_events"] = len(accepted - stored)
            result["failed_searches"] = result["search"]["errors"]
        result.update(
            {
                "rate_rps": args.rate,
                "duration_s": args.duration,
                "products": len(products),
                "event_share": args.event_share,
                "fault": args.fault,
                "workers": args.workers,
                "rss_mb_before": round(rss_before, 1),
                "rss_mb_after": round(rss_after, 1),
                "metrics_sample": [
                    line
                    for line in httpx.get(url + "/_shoprank/metrics", timeout=10).text.splitlines()
                    if line.startswith(("shoprank_events_total", "shoprank_degradations_total"))
                ],
            }
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        redis.stop()
        shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
