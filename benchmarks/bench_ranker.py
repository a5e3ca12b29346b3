"""Ranker speed: rerank of a 100-product window (features + model) p50/p99, and the whole
`full` request vs the `hybrid` request on the embedded backend (added p99).

Prepare a data dir with traffic and a trained model first (see benchmarks/README.md):

    python benchmarks/bench_ranker.py --data-dir /tmp/sr6 --index demo
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np


def pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 3)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--index", default="demo")
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--out", default="benchmarks/results/ranker.json")
    args = ap.parse_args()
    os.environ["SHOPRANK_DATA_DIR"] = str(Path(args.data_dir).resolve())
    os.environ.setdefault("SHOPRANK_PRODUCT_INDEX", args.index)
    from shoprank.rerankers.protocol import Candidate, RerankContext
    from shoprank.settings import get_settings
    from shoprank.simulate import search_body
    from shoprank.wiring import make_service

    settings = get_settings()
    service = make_service(settings)
    service.search_logger = None
    service.warm_up()
    ranker = service.rerankers[0]
    queries = [
        "running shoes",
        "laptops",
        "headphones",
        "espresso machines",
        "tents",
        "kovo laptops",
        "black jeans",
        "toner cartridges",
        "office chairs",
        "phone cases",
    ]
    users = [f"sim-{i:04d}" for i in range(30)]
    # warm caches
    for q in queries:
        for mode in ("hybrid", "full"):
            service.search(args.index, search_body(q, mode=mode, user_id=users[0], session_id=None))

    rerank_ms: list[float] = []
    windows = {}
    for q in queries:
        body = search_body(q, mode="hybrid", user_id=None, session_id=None, size=100)
        body["ext"]["shoprank"]["explain"] = True
        hits = service.search(args.index, body)["hits"]["hits"]
        windows[q] = [
            Candidate(
                h["_id"],
                float(h["_score"]),
                legs={k: (v["rank"], v["score"]) for k, v in h["_shoprank"]["legs"].items()},
                retrieval_rank=i + 1,
            )
            for i, h in enumerate(hits)
        ]
    sizes = [len(w) for w in windows.values()]
    for i in range(args.rounds):
        q = queries[i % len(queries)]
        ctx = RerankContext(
            index=args.index, query_text=q, user_id=users[i % len(users)], body={"size": 10}
        )
        cands = [
            Candidate(c.id, c.score, legs=c.legs, retrieval_rank=c.retrieval_rank)
            for c in windows[q]
        ]
        t0 = time.perf_counter()
        ranker.rerank(ctx, cands)
        rerank_ms.append((time.perf_counter() - t0) * 1000)
        assert not ctx.info.get("degraded"), ctx.info

    request_ms: dict[str, list[float]] = {"hybrid": [], "full": []}
    for i in range(args.rounds):
        q = queries[i % len(queries)]
        for mode in ("hybrid", "full"):
            body = search_body(q, mode=mode, user_id=users[i % len(users)], session_id=None)
            t0 = time.perf_counter()
            service.search(args.index, body)
            request_ms[mode].append((time.perf_counter() - t0) * 1000)
    result = {
        "machine": f"{platform.machine()} {os.cpu_count()} cpus",
        "model_version": ranker.scorer().version,
        "window_sizes": sorted(set(sizes)),
        "rerank_window_ms": {"p50": pct(rerank_ms, 50), "p99": pct(rerank_ms, 99)},
        "request_ms": {m: {"p50": pct(v, 50), "p99": pct(v, 99)} for m, v in request_ms.items()},
        "full_added_p99_ms": round(pct(request_ms["full"], 99) - pct(request_ms["hybrid"], 99), 3),
        "rounds": args.rounds,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
