"""Does a slow search stall the server? Health latency while a 10,000-range aggregation runs.

Loads the Icecat sample lexical-only into a fresh data dir, starts the real `shoprank serve`
on a loopback port, sends one `range` aggregation with 10,000 ranges (the slowest request
within the default limits), and while it is in flight asks `/_shoprank/health` repeatedly.
Reports how long the slow search took and the health latencies seen during it (only those
answered before the slow search finished count).

    .venv/bin/python benchmarks/bench_event_loop.py --out benchmarks/results/event-loop.json
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
SHOPRANK = str(Path(sys.executable).with_name("shoprank"))
ICECAT = ROOT.parent / "shared" / "data" / "icecat-products.jsonl.gz"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--catalog", type=Path, default=ICECAT)
    parser.add_argument("--ranges", type=int, default=10_000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="bench-event-loop-"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SHOPRANK_SEARCH_LOG": "false"}
    subprocess.run(
        [SHOPRANK, "--data-dir", str(data), "index", "load", str(args.catalog)]
        + ["--index", "icecat", "--no-vectors"],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    port = free_port()
    server = subprocess.Popen(
        [SHOPRANK, "--data-dir", str(data), "serve", "--port", str(port), "--log-level", "warning"],
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=600) as client:
            for _ in range(600):
                try:
                    if client.get("/_shoprank/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
            ranges = [{"from": i, "to": i + 1} for i in range(args.ranges)]
            body = {
                "size": 0,
                "query": {"match_all": {}},
                "aggs": {"prices": {"range": {"field": "price", "ranges": ranges}}},
                "ext": {"shoprank": {"mode": "lexical"}},
            }
            done = threading.Event()
            result: dict[str, float | int] = {}

            def slow() -> None:
                started = time.perf_counter()
                response = client.post("/icecat/_search", json=body)
                result["status"] = response.status_code
                result["slow_search_s"] = time.perf_counter() - started
                done.set()

            thread = threading.Thread(target=slow)
            thread.start()
            time.sleep(0.5)  # let the slow request reach the server
            latencies: list[float] = []
            with httpx.Client(base_url=base, timeout=600) as probe:
                while not done.is_set():
                    started = time.perf_counter()
                    probe.get("/_shoprank/health")
                    elapsed = time.perf_counter() - started
                    if not done.is_set():
                        latencies.append(elapsed * 1000)
                    time.sleep(0.1)
            thread.join()
    finally:
        server.terminate()
        server.wait(30)
    report = {
        "catalog": str(args.catalog.name),
        "ranges": args.ranges,
        "slow_search_status": result.get("status"),
        "slow_search_s": round(float(result.get("slow_search_s", 0.0)), 2),
        "health_answered_during": len(latencies),
        "health_p50_ms": round(statistics.median(latencies), 2) if latencies else None,
        "health_max_ms": round(max(latencies), 2) if latencies else None,
    }
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
