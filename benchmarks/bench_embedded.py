"""Embedded backend benchmark: index-load throughput (where the time goes) and search
latency per mode on the Icecat sample.

    python benchmarks/bench_embedded.py                       # full 19,406 products
    python benchmarks/bench_embedded.py --rows 2000           # quicker
    python benchmarks/bench_embedded.py --data-dir /tmp/x --skip-load   # reuse an index

Latency is measured in-process through SearchService (what the HTTP handler calls) and, for
`full`, also over HTTP on loopback. The query-embedding cache is off so every vector leg pays
for its embedding.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from shoprank.indexing.catalog import FieldRoles  # noqa: E402
from shoprank.indexing.loader import load_catalog  # noqa: E402
from shoprank.settings import Settings  # noqa: E402
from shoprank.wiring import make_backend, make_service, text_encoder  # noqa: E402

ICECAT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "icecat-products.jsonl.gz"
QUERIES = [
    "toner cartridge black",
    "hp laserjet toner",
    "usb c cable",
    "hdmi cable 2m",
    "ups 1500va",
    "27 inch monitor",
    "wireless mouse",
    "notebook 15.6",
    "external hard drive",
    "cat6 patch cable",
    "ink cartridge cyan",
    "network switch 24 port",
    "laptop bag",
    "epson ink",
    "canon toner magenta",
    "power strip",
    "rack mount",
    "ethernet adapter",
    "fibre optic cable",
    "keyboard",
    "memory module 8gb ddr4",
    "intel xeon processor",
    "philips monitor",
    "projector lamp",
    "displayport to hdmi adapter",
    "surge protector",
    "battery replacement",
    "sata cable",
    "docking station usb c",
    "wifi access point",
    "printer paper a4",
    "xerox drum",
    "kvm switch",
    "vga cable",
    "server rack shelf",
    "headset with microphone",
    "tablet case",
    "ssd 1tb",
    "optical drive",
    "label printer",
]
MODES = ["lexical", "vector", "hybrid", "full"]


def write_subset(rows: int, out: Path) -> Path:
    with gzip.open(ICECAT, "rt", encoding="utf-8") as src, open(out, "w") as dst:
        for i, line in enumerate(src):
            if rows and i >= rows:
                break
            dst.write(line)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def bench_load(settings: Settings, catalog: Path) -> dict[str, Any]:
    roles = FieldRoles.parse("brand=supplier,description=short_description")
    results = {}
    for label, encoder in (("with vectors", text_encoder(settings)), ("lexical only", None)):
        alias = "icecat" if encoder else "icecat-lexical"
        report = load_catalog(
            catalog,
            index=alias,
            backend=make_backend(settings),
            encoder=encoder,
            lock_dir=settings.data_dir / "locks",
            roles=roles,
            price_multiplier=0.01,
            batch_size=256,
        )
        results[label] = report.as_dict()
        print(
            f"load {label}: {json.dumps(report.as_dict()['seconds'])} "
            f"{report.products_per_s:.1f} products/s",
            flush=True,
        )
    return results


def body_for(query: str, mode: str, variant: str) -> dict[str, Any]:
    match = {"multi_match": {"query": query, "fields": ["title^3", "brand.text^2", "description"]}}
    body: dict[str, Any] = {"query": match, "size": 10, "ext": {"shoprank": {"mode": mode}}}
    if variant == "filter+aggs":
        body["query"] = {"bool": {"must": match, "filter": [{"range": {"price": {"lte": 500}}}]}}
        body["aggs"] = {
            "brands": {"terms": {"field": "brand", "size": 10}},
            "price": {"stats": {"field": "price"}},
        }
    return body


def bench_search(settings: Settings, repeats: int) -> dict[str, Any]:
    service = make_service(settings)
    service.vector_cache_size = 0
    service.warm_up()
    for q in QUERIES[:5]:
        service.search("icecat", body_for(q, "full", "plain"))
    out: dict[str, Any] = {}
    for variant in ("plain", "filter+aggs"):
        for mode in MODES:
            samples = []
            for _ in range(repeats):
                for q in QUERIES:
                    t0 = time.perf_counter()
                    service.search("icecat", body_for(q, mode, variant))
                    samples.append((time.perf_counter() - t0) * 1000)
            key = f"{mode} ({variant})"
            out[key] = {
                "n": len(samples),
                "p50_ms": round(pct(samples, 0.5), 2),
                "p99_ms": round(pct(samples, 0.99), 2),
                "mean_ms": round(statistics.fmean(samples), 2),
            }
            print(f"search {key}: {out[key]}", flush=True)
    return out


def bench_http(settings: Settings, repeats: int) -> dict[str, Any]:
    import httpx
    import uvicorn

    from shoprank.plugin.app import create_app

    service = make_service(settings)
    service.vector_cache_size = 0
    service.warm_up()
    config = uvicorn.Config(create_app(service), host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    out = {}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        for mode in ("lexical", "full"):
            samples = []
            for _ in range(repeats):
                for q in QUERIES:
                    t0 = time.perf_counter()
                    r = client.post("/icecat/_search", json=body_for(q, mode, "plain"))
                    r.raise_for_status()
                    samples.append((time.perf_counter() - t0) * 1000)
            out[f"http {mode}"] = {
                "n": len(samples),
                "p50_ms": round(pct(samples, 0.5), 2),
                "p99_ms": round(pct(samples, 0.99), 2),
            }
            print(f"search http {mode}: {out[f'http {mode}']}", flush=True)
    server.should_exit = True
    thread.join(timeout=10)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=0, help="Icecat rows (0 = all)")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--repeats", type=int, default=5, help="passes over the query set")
    parser.add_argument("--out", type=Path, default=None, help="write results as JSON here")
    args = parser.parse_args()
    if not ICECAT.exists():
        sys.exit(f"Icecat sample not found at {ICECAT}")
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="shoprank-bench-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings(data_dir=data_dir)
    results: dict[str, Any] = {"rows": args.rows or "all", "cpu_count": os.cpu_count()}
    if not args.skip_load:
        catalog = write_subset(args.rows, data_dir / "icecat.jsonl")
        results["load"] = bench_load(settings, catalog)
    results["search"] = bench_search(settings, args.repeats)
    results["search"].update(bench_http(settings, max(1, args.repeats // 2)))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
