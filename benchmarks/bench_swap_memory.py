"""Does the server's memory grow with every re-index? RSS of `shoprank serve` over alias swaps.

Loads a catalog (the Icecat sample, or its first `--rows`) into a fresh data dir, starts the
real `shoprank serve` on a loopback port, then re-indexes the same catalog `--swaps` times
from a separate CLI process (`shoprank index load --full`, so every swap builds a new
generation and the loader prunes the old ones beyond `SHOPRANK_KEEP_GENERATIONS`). After
each swap it waits until the server answers from the new generation, sends a few searches
with a filter and facets, and reads VmRSS from /proc/<pid>/status of the server and of each
of its worker processes (`--workers`, default 1: every search then lands on one worker).

    .venv/bin/python benchmarks/bench_swap_memory.py --out benchmarks/results/swap-memory.json
    .venv/bin/python benchmarks/bench_swap_memory.py --rows 2000 --vectors   # with HNSW files
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
SHOPRANK = str(Path(sys.executable).with_name("shoprank"))
ICECAT = ROOT.parent / "shared" / "data" / "icecat-products.jsonl.gz"
ALIAS = "swapbench"
QUERIES = ["laptop", "ink cartridge", "monitor 27", "usb cable", "keyboard", "printer"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0  # a kernel thread or a process without memory of its own


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out += [int(c) for c in text]
    return out


def tree_rss(pid: int) -> tuple[float, list[float]]:
    """(RSS of the server and all its descendants, RSS of each direct child), in MB."""
    total, stack, direct = 0.0, [pid], [round(rss_mb(c), 1) for c in children(pid)]
    while stack:
        current = stack.pop()
        try:
            total += rss_mb(current)
            stack += children(current)
        except FileNotFoundError:
            continue
    return round(total, 1), direct


def write_catalog(source: Path, dst: Path, rows: int) -> None:
    with gzip.open(source, "rt", encoding="utf-8") as src, open(dst, "w") as out:
        for i, line in enumerate(src):
            if rows and i >= rows:
                break
            out.write(line)


def load(data: Path, catalog: Path, env: dict[str, str], *, vectors: bool) -> str:
    cmd = [SHOPRANK, "--data-dir", str(data), "index", "load", str(catalog)]
    cmd += ["--index", ALIAS, "--full", "--json"] + ([] if vectors else ["--no-vectors"])
    done = subprocess.run(cmd, check=True, env=env, capture_output=True, text=True, timeout=900)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return str(report["job"])


def searches(client: httpx.Client, base: str, *, mode: str) -> str:
    """A few searches with a filter and facets; returns the generation that answered."""
    index = ""
    for text in QUERIES:
        body: dict[str, Any] = {
            "query": {
                "bool": {
                    "must": {"multi_match": {"query": text, "fields": ["title", "description"]}},
                    "filter": {"range": {"price": {"gte": 1}}},
                }
            },
            "aggs": {"brands": {"terms": {"field": "brand", "size": 10}}},
            "size": 10,
            "ext": {"shoprank": {"mode": mode}},
        }
        resp = client.post(f"{base}/{ALIAS}/_search", json=body)
        resp.raise_for_status()
        hits = resp.json()["hits"]["hits"]
        if hits:
            index = str(hits[0]["_index"])
    return index


def sample(swap: int, generation: str, pid: int) -> dict[str, Any]:
    total, workers = tree_rss(pid)
    print(f"swap {swap:2d}  {generation:<24} RSS {total:7.1f} MB  workers {workers}", flush=True)
    return {"swap": swap, "generation": generation, "rss_mb": total, "worker_rss_mb": workers}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--catalog", type=Path, default=ICECAT)
    parser.add_argument("--rows", type=int, default=0, help="first N products (0 = all)")
    parser.add_argument("--swaps", type=int, default=10)
    parser.add_argument("--vectors", action="store_true", help="embed text (HNSW files too)")
    parser.add_argument("--workers", type=int, default=1, help="`shoprank serve --workers`")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="bench-swap-memory-"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SHOPRANK_SEARCH_LOG": "false"}
    catalog = data / "catalog.jsonl"
    write_catalog(args.catalog, catalog, args.rows)
    mode = "hybrid" if args.vectors else "lexical"
    first = load(data, catalog, env, vectors=args.vectors)
    port = free_port()
    server = subprocess.Popen(
        [SHOPRANK, "--data-dir", str(data), "serve", "--port", str(port), "--log-level", "warning"]
        + ["--workers", str(args.workers)],
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    samples: list[dict[str, Any]] = []
    try:
        with httpx.Client(timeout=60) as client:
            for _ in range(600):
                try:
                    if client.get(f"{base}/_shoprank/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            answered = searches(client, base, mode=mode)
            samples.append(sample(0, answered or first, server.pid))
            for swap in range(1, args.swaps + 1):
                generation = load(data, catalog, env, vectors=args.vectors)
                # The server notices the swap on its own (alias cache); wait, bounded.
                for _ in range(200):
                    answered = searches(client, base, mode=mode)
                    if answered == generation:
                        break
                    time.sleep(0.05)
                searches(client, base, mode=mode)
                samples.append(sample(swap, answered, server.pid))
    finally:
        server.terminate()
        server.wait(timeout=30)
    rss = [s["rss_mb"] for s in samples]
    result = {
        "catalog": str(args.catalog.name),
        "rows": args.rows or "all",
        "vectors": args.vectors,
        "swaps": args.swaps,
        "workers": args.workers,
        "samples": samples,
        "rss_first_mb": rss[0],
        "rss_after_first_swap_mb": rss[1] if len(rss) > 1 else rss[0],
        "rss_last_mb": rss[-1],
        "growth_after_first_swap_mb": round(rss[-1] - (rss[1] if len(rss) > 1 else rss[0]), 1),
    }
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
