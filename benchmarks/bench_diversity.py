"""Diversity: what it costs per search and what it does to relevance.

    python benchmarks/bench_diversity.py --micro-only
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_diversity.py --data-dir /tmp/hd --queries 300

1. Cost: `diversify` over a window of 100 and 200 random 384-d unit vectors (MiniLM's
   size), a page of 10, MMR and cap; µs per call (the search adds the vector fetch, cached).
2. Relevance: hybrid searches of the Home Depot dev queries (an index `bench_homedepot.py`
   loaded into `--data-dir`) with no diversity, MMR λ = 0.7 and a brand cap of 2; nDCG@10
   of the page of 10 and its intra-list diversity (mean pairwise 1 − cosine). The Home
   Depot catalog has no brand field, so the cap by `brand` leaves every page as it is (a
   product without the field is never capped); `cap title-brand 2` caps on the title's
   first word (mostly the brand) offline, through the same `diversify`, over each search's
   undiversified top 100.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from shoprank.evaluation import offline  # noqa: E402
from shoprank.evaluation.metrics import ndcg_at_k  # noqa: E402
from shoprank.rerankers.diversity import DiversitySpec, diversify  # noqa: E402

VARIANTS: dict[str, Any] = {
    "none": "none",
    "mmr 0.7": {"type": "mmr", "lambda": 0.7},
    "cap brand 2": {"type": "cap", "field": "brand", "max": 2},
}


def micro(repeats: int = 300) -> dict[str, float]:
    rng = np.random.default_rng(1)
    out: dict[str, float] = {}
    for window in (100, 200):
        ids = [f"p{i}" for i in range(window)]
        vectors = {}
        for pid in ids:
            v = rng.normal(size=384).astype(np.float32)
            vectors[pid] = v / np.linalg.norm(v)
        facts = {pid: {"brand": f"b{rng.integers(8)}"} for pid in ids}
        ranked = [(pid, float(window - i)) for i, pid in enumerate(ids)]
        for name, spec in (("mmr", DiversitySpec("mmr", 0.7)), ("cap", DiversitySpec("cap"))):
            took = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                diversify(ranked, spec, size=10, vectors=vectors, facts=facts)
                took.append((time.perf_counter() - t0) * 1e6)
            out[f"{name} window {window} (µs, median)"] = round(statistics.median(took), 1)
    return out


def relevance(data_dir: Path, index: str, judgments: Path, queries: int) -> dict[str, Any]:
    from bench_homedepot import prefill_query_vectors

    from shoprank.settings import Settings
    from shoprank.wiring import make_service, query_text_encoder

    settings = Settings(data_dir=data_dir, encoder_backend="numpy", search_log=False)
    cases = sorted(offline.cases_from_judgments(judgments), key=lambda c: c.query)
    cases = cases[:queries] if queries else cases
    service = make_service(settings)
    service.search_logger = None
    service.warm_up()
    prefill_query_vectors(service, query_text_encoder(settings), [c.query for c in cases])
    fields = list(offline.DEFAULT_FIELDS)
    scores: dict[str, list[float]] = {}
    ilds: dict[str, list[float]] = {}
    took: dict[str, list[float]] = {}

    def record(name: str, ranked: list[str], case: offline.Case) -> None:
        scores.setdefault(name, []).append(ndcg_at_k(ranked, case.grades, 10))
        ilds.setdefault(name, []).append(service.diversity.ild(index, ranked[:10]))

    for case in cases:
        query = {"multi_match": {"query": case.query, "fields": fields}}
        for name, spec in VARIANTS.items():
            body = {"query": query, "size": 10, "_source": False}
            body["ext"] = {"shoprank": {"mode": "hybrid", "diversity": spec}}
            t0 = time.perf_counter()
            hits = service.search(index, body)["hits"]["hits"]
            took.setdefault(name, []).append((time.perf_counter() - t0) * 1000)
            record(name, [h["_id"] for h in hits], case)
        body = {"query": query, "size": 100, "_source": False}
        body["ext"] = {"shoprank": {"mode": "hybrid"}}
        window = [
            (h["_id"], float(h["_score"])) for h in service.search(index, body)["hits"]["hits"]
        ]
        titles = service.backend.mget(index, [pid for pid, _ in window], source=["title"])
        facts = {
            pid: {"brand": (src.get("title") or "").split(" ")[0]} for pid, src in titles.items()
        }
        capped = diversify(
            window, DiversitySpec("cap", field="brand", max_per=2), size=10, facts=facts
        )
        record("cap title-brand 2", [pid for pid, _ in capped], case)
    n = max(len(cases), 1)
    return {
        "queries": len(cases),
        "ndcg@10": {k: round(sum(v) / n, 4) for k, v in scores.items()},
        "ild@10": {k: round(sum(v) / n, 4) for k, v in ilds.items()},
        "search p50 ms": {k: round(statistics.median(v), 2) for k, v in took.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/hd"))
    parser.add_argument("--index", default="homedepot")
    default = Path(__file__).resolve().parents[1].parent / "shared/data/homedepot/judgments-dev.csv"
    parser.add_argument("--judgments", type=Path, default=default)
    parser.add_argument("--queries", type=int, default=300, help="first N dev queries (0 = all)")
    parser.add_argument("--micro-only", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out: dict[str, Any] = {"cost": micro()}
    print(json.dumps(out["cost"], indent=2), flush=True)
    if not args.micro_only:
        out["homedepot hybrid"] = relevance(args.data_dir, args.index, args.judgments, args.queries)
        print(json.dumps(out["homedepot hybrid"], indent=2))
    if args.out:
        args.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
