"""Recommendations: quality on the simulator, latency per strategy, fold cost per event.

    SHOPRANK_ENCODER_BACKEND=numpy .venv/bin/python benchmarks/bench_recommend.py \
        --data-dir /tmp/bench-recs --out benchmarks/results/recommend.json [--skip-load]

The catalog is the Icecat sample (19,406 products) with categories derived from titles by
`bench_intent.ICECAT_RULES` (12,508 products get one; Icecat has no category field), loaded
with `shoprank index load` (numpy MiniLM text vectors) as index `icecat`. `--skip-load`
reuses a data dir that already holds it.

(a) Quality: `shoprank.simulate_recs` traffic for each seed (fixed clock), evaluated with
    `shoprank.evaluation.recommend_run.evaluate` (held-out last purchase / click of the final
    7 days; training events folded into a fresh store): every strategy beside popularity,
    content kNN and plain co-occurrence count.
(b) Latency: 100k simulated events ingested into the data dir (statistics built in the
    fold), then `RecommendService.strategy_ids` per strategy in-process, and
    `POST /_shoprank/recommend` over loopback HTTP to a `shoprank serve` subprocess
    (httpx client in this process), pinned to 2 cores.
(c) Fold cost: the ingest (append + fold) of those 100k events, and `profiles rebuild`
    (the fold alone) over them, per event.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from shoprank.evaluation.recommend_run import evaluate
from shoprank.settings import Settings
from shoprank.simulate_recs import RecCatalog, SimulatedTraffic, simulate, write_offline

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_intent import ICECAT_RULES  # noqa: E402

ICECAT = Path(__file__).resolve().parents[2] / "shared" / "data" / "icecat-products.jsonl.gz"
INDEX = "icecat"
START = 1_767_225_600.0  # 2026-01-01: the quality runs' fixed clock
STRATEGIES = ("similar", "bought_together", "for_you", "trending")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def write_catalog(out: Path) -> Path:
    """The Icecat rows with a category derived from the title (none when no rule matches)."""
    rules = [(name, re.compile(pattern)) for name, pattern in ICECAT_RULES]
    with gzip.open(ICECAT, "rt", encoding="utf-8") as src, out.open("w") as dst:
        for line in src:
            row = json.loads(line)
            title = str(row.get("title") or "")
            price = row.get("price")
            doc = {
                "id": row["id"],
                "title": title,
                "brand": row.get("supplier"),
                "description": row.get("short_description"),
                "price": price / 100 if isinstance(price, int | float) else None,
            }
            category = next((n for n, rx in rules if rx.search(title.lower())), None)
            if category:
                doc["category"] = category
            dst.write(json.dumps(doc) + "\n")
    return out


def load(data_dir: Path, catalog: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "shoprank.cli",
            "--data-dir",
            str(data_dir),
            "index",
            "load",
            "--no-train-intent",
            str(catalog),
            "--index",
            INDEX,
        ],
        check=True,
    )
    return time.perf_counter() - started


def quality(
    settings: Settings, catalog: RecCatalog, *, seeds: list[int], shoppers: int, sessions: int
) -> dict[str, Any]:
    from shoprank.wiring import make_backend, product_lookup

    backend = make_backend(settings)
    lookup = product_lookup(settings)
    per_seed: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for seed in seeds:
        started = time.perf_counter()
        traffic = simulate(catalog, shoppers=shoppers, sessions=sessions, seed=seed, start=START)
        report = evaluate(
            settings,
            index=INDEX,
            events=traffic.events,
            holdout_days=7.0,
            backend=backend,
            lookup=lookup,
        )
        took = time.perf_counter() - started
        print(
            f"quality seed {seed}: {len(traffic.events):,} events, held out "
            f"{report['held_out']}, {took:.1f} s; errors {report['errors']}",
            flush=True,
        )
        for row in report["rows"]:
            key = f"{row['protocol']}/{row['cases']}/{row['system']}"
            per_seed[key].append({"seed": seed, **row})
            print(
                f"  {key:<38} n {row['n']:>5} hit {row['hit_rate']:.4f} "
                f"ndcg {row['ndcg']:.4f} cov {row['coverage']:.4f} ild {row['ild']:.3f}",
                flush=True,
            )
    mean = {
        key: {
            m: round(statistics.fmean(r[m] for r in rows), 4)
            for m in ("n", "hit_rate", "ndcg", "coverage", "ild")
        }
        for key, rows in per_seed.items()
    }
    targets = {}
    for protocol in ("purchase", "click"):
        fy, pop = mean.get(f"{protocol}/user/for_you"), mean.get(f"{protocol}/user/popularity")
        if fy and pop and pop["hit_rate"] > 0:
            targets[f"{protocol}: for_you / popularity hit-rate"] = round(
                fy["hit_rate"] / pop["hit_rate"], 2
            )
    bt, co = mean.get("purchase/cart/bought_together"), mean.get("purchase/cart/cooccur_count")
    if bt and co:
        targets["bought_together - cooccur_count hit-rate"] = round(
            bt["hit_rate"] - co["hit_rate"], 4
        )
        targets["bought_together beats cooccur_count in every seed"] = all(
            b["hit_rate"] > c["hit_rate"]
            for b, c in zip(
                per_seed["purchase/cart/bought_together"],
                per_seed["purchase/cart/cooccur_count"],
                strict=True,
            )
        )
    return {
        "seeds": seeds,
        "shoppers": shoppers,
        "sessions": sessions,
        "mean": mean,
        "per_seed": per_seed,
        "targets": targets,
    }


def ingest(
    settings: Settings, catalog: RecCatalog, events: int
) -> tuple[SimulatedTraffic, dict[str, Any]]:
    from shoprank.wiring import event_service

    for part in ("events", "profiles"):
        subprocess.run(["rm", "-rf", str(settings.data_dir / part)], check=True)
    days = 28.0
    shoppers = max(1, events // 70)
    traffic = simulate(
        catalog,
        shoppers=shoppers,
        sessions=8,
        days=days,
        seed=99,
        start=time.time() - days * 86_400 - 3600,
    )
    traffic.events = traffic.events[:events]
    service = event_service(settings)
    started = time.perf_counter()
    accepted = write_offline(traffic, service)
    ingest_s = time.perf_counter() - started
    rebuilt = service.rebuild()
    out = {
        "events": accepted,
        "ingest_s": round(ingest_s, 1),
        "ingest_us_per_event": round(ingest_s / accepted * 1e6, 1),
        "rebuild_s": round(rebuilt["took_s"], 1),
        "fold_us_per_event": round(rebuilt["took_s"] / max(1, rebuilt["events"]) * 1e6, 1),
        "profiles": rebuilt["profiles"],
    }
    print(f"fold: {out}", flush=True)
    return traffic, out


def requests(traffic: SimulatedTraffic, n: int, seed: int = 5) -> dict[str, list[dict[str, Any]]]:
    rng = random.Random(seed)
    bought = sorted({e.product_id for e in traffic.events if e.type == "purchase" and e.product_id})
    seen = sorted({e.product_id for e in traffic.events if e.product_id})
    users = sorted({e.user_id for e in traffic.events if e.user_id})
    cats = sorted(traffic.world.catalog.by_category)
    return {
        "similar": [{"product_ids": [rng.choice(seen)]} for _ in range(n)],
        "bought_together": [{"product_ids": [rng.choice(bought)]} for _ in range(n)],
        "for_you": [{"user_id": rng.choice(users)} for _ in range(n)],
        "for_you (new user)": [{"user_id": f"new-{i}"} for i in range(n)],
        "trending": [{} for _ in range(n)],
        "trending (category)": [{"category": rng.choice(cats)} for _ in range(n)],
    }


def strategy_of(label: str) -> str:
    return label.split(" ")[0]


def latency(settings: Settings, traffic: SimulatedTraffic, n: int) -> dict[str, Any]:
    from shoprank.plugin.recommend import recommend_service
    from shoprank.wiring import make_service

    service = recommend_service(make_service(settings))
    asks = requests(traffic, n)
    out: dict[str, Any] = {}
    for label, calls in asks.items():
        for call in calls[:20]:  # warm-up
            service.strategy_ids(strategy_of(label), index=INDEX, **call)
        samples = []
        for call in calls:
            t0 = time.perf_counter()
            service.strategy_ids(strategy_of(label), index=INDEX, **call)
            samples.append((time.perf_counter() - t0) * 1000)
        out[label] = {
            "n": len(samples),
            "p50_ms": round(pct(samples, 0.5), 2),
            "p99_ms": round(pct(samples, 0.99), 2),
            "max_ms": round(max(samples), 2),
        }
        print(f"strategy_ids {label}: {out[label]}", flush=True)
    return out


def latency_http(settings: Settings, traffic: SimulatedTraffic, n: int) -> dict[str, Any]:
    """`POST /_shoprank/recommend` to a real `shoprank serve --workers 1` subprocess on
    loopback (its own interpreter, so the client does not share the server's GIL)."""
    import httpx
    from bench_scale import free_port, server

    port = free_port()
    out: dict[str, Any] = {}
    log = settings.data_dir / "bench-recommend-serve.log"
    with (
        server(settings.data_dir, port, log),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client,
    ):
        for label, calls in requests(traffic, n, seed=6).items():
            samples, took = [], []
            for i, call in enumerate(calls):
                body = {"strategy": strategy_of(label), "index": INDEX, "size": 10, **call}
                if "product_ids" in body and len(body["product_ids"]) == 1:
                    body["product_id"] = body.pop("product_ids")[0]
                t0 = time.perf_counter()
                r = client.post("/_shoprank/recommend", json=body)
                elapsed = (time.perf_counter() - t0) * 1000
                r.raise_for_status()
                if i >= 10:
                    samples.append(elapsed)
                    took.append(float(r.json()["took"]))
            out[f"http {label}"] = {
                "n": len(samples),
                "p50_ms": round(pct(samples, 0.5), 2),
                "p99_ms": round(pct(samples, 0.99), 2),
                "server_took_p50_ms": pct(took, 0.5),
                "server_took_p99_ms": pct(took, 0.99),
            }
            print(f"http {label}: {out[f'http {label}']}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--shoppers", type=int, default=1000)
    parser.add_argument("--sessions", type=int, default=6)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=300, help="per strategy")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("SHOPRANK_ENCODER_BACKEND", "numpy")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    cores = sorted(os.sched_getaffinity(0))[:2]
    os.sched_setaffinity(0, cores)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    catalog_path = args.data_dir / "icecat-categories.jsonl"
    results: dict[str, Any] = {"cores": cores, "index": INDEX}
    if not args.skip_load:
        write_catalog(catalog_path)
        results["load_s"] = round(load(args.data_dir, catalog_path), 1)
    elif not catalog_path.exists():
        write_catalog(catalog_path)
    settings = Settings(data_dir=args.data_dir, product_index=INDEX)
    rows = [json.loads(line) for line in catalog_path.read_text().splitlines()]
    catalog = RecCatalog.from_records(rows)
    results["catalog"] = {
        "products": len(rows),
        "with_category": len(catalog.items),
        "categories": len(catalog.by_category),
    }
    if not args.skip_quality:
        results["quality"] = quality(
            settings,
            catalog,
            seeds=[int(s) for s in args.seeds.split(",")],
            shoppers=args.shoppers,
            sessions=args.sessions,
        )
    if not args.skip_latency:
        traffic, results["fold"] = ingest(settings, catalog, args.events)
        gc.collect()
        gc.freeze()
        results["latency"] = latency(settings, traffic, args.requests)
        results["latency"].update(latency_http(settings, traffic, max(50, args.requests // 2)))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps({k: v for k, v in results.items() if k != "quality"}, indent=2))
    if "quality" in results:
        print(
            json.dumps(
                {"mean": results["quality"]["mean"], "targets": results["quality"]["targets"]},
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
