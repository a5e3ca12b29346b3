"""Does machine load change what `full` returns? The same searches idle and at load ≈ 4.

    python benchmarks/bench_rerank_load.py --data-dir /tmp/hd          # Home Depot, loaded
    python benchmarks/bench_rerank_load.py --data-dir /tmp/hd --queries 300 --hogs 2

`full` runs optional stages (query understanding, the ranker) under budgets; a stage past
its budget is skipped and the search answers in the order it had, so a budget measured on
the wall clock makes the result depend on how busy the machine is. This runs the judged
queries' texts (the Home Depot dev set by default) through `SearchService` in `full` mode,
with the ranker's budget counted in CPU time (`SHOPRANK_RERANK_TIMEOUT_MS` on the ranker's
thread, the default) and in wall time (the wall-clock bound set to the same 25 ms: how it
was before), side by side in one run:

1. idle: one search at a time;
2. loaded: `--threads` searching threads at once while `--hogs` processes spin on the
   cores (load ≈ threads + hogs).

Reported per run: searches with a degraded stage (by stage and reason) and, loaded, the
queries whose top 10 differs from the idle run's.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from shoprank.evaluation import offline  # noqa: E402
from shoprank.settings import Settings  # noqa: E402
from shoprank.wiring import make_service  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "homedepot"
FIELDS = list(offline.DEFAULT_FIELDS)


def spin() -> None:  # a process that keeps one core busy
    while True:
        pass


def one(service: Any, index: str, text: str) -> tuple[list[str], list[str]]:
    body = {
        "query": {"multi_match": {"query": text, "fields": FIELDS}},
        "size": 10,
        "_source": False,
        "ext": {"shoprank": {"mode": "full"}},
    }
    response = service.search(index, body)
    ids = [str(h["_id"]) for h in response["hits"]["hits"]]
    return ids, list(response.get("_shoprank", {}).get("degraded", []))


def run(
    service: Any, index: str, texts: Sequence[str], threads: int
) -> tuple[dict[str, list[str]], Counter[str], int, float]:
    tops: dict[str, list[str]] = {}
    reasons: Counter[str] = Counter()
    degraded = 0
    lock = threading.Lock()
    queue = list(texts)

    def work() -> None:
        nonlocal degraded
        while True:
            with lock:
                if not queue:
                    return
                text = queue.pop()
            ids, notes = one(service, index, text)
            with lock:
                tops[text] = ids
                degraded += bool(notes)
                reasons.update(note.split(" (")[0] for note in notes)

    t0 = time.perf_counter()
    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return tops, reasons, degraded, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/hd"))
    parser.add_argument("--index", default="homedepot")
    parser.add_argument("--judgments", type=Path, default=DATA / "judgments-dev.csv")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--hogs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    cases = sorted(offline.cases_from_judgments(args.judgments), key=lambda c: c.query)
    texts = [c.query for c in cases[: args.queries]]
    base_settings = Settings(data_dir=args.data_dir, search_log=False)
    # The ranker's budget as CPU time (now), and as wall time (before: the wall-clock bound
    # at the budget itself), side by side on the same machine in one run.
    variants = {
        "cpu budget": base_settings,
        "wall budget": base_settings.model_copy(
            update={"rerank_wall_timeout_ms": base_settings.rerank_timeout_ms}
        ),
    }
    services = {}
    for name, settings in variants.items():
        service = make_service(settings)
        service.search_logger = None
        service.warm_up()
        for text in texts:  # warm: the query-vector cache and the spelling vocabulary
            one(service, args.index, text)
        services[name] = service

    out: dict[str, Any] = {"queries": len(texts), "threads": args.threads, "hogs": args.hogs}
    base: dict[str, dict[str, list[str]]] = {}
    for name, service in services.items():
        tops, reasons, degraded, wall = run(service, args.index, texts, 1)
        base[name] = tops
        out[f"{name}, idle"] = {"degraded": degraded, "reasons": dict(reasons)}
        print(f"{name}, idle: {out[f'{name}, idle']}", flush=True)
    hogs = [multiprocessing.Process(target=spin, daemon=True) for _ in range(args.hogs)]
    for hog in hogs:
        hog.start()
    try:
        time.sleep(1.0)
        for name, service in services.items():
            tops, reasons, degraded, wall = run(service, args.index, texts, args.threads)
            out[f"{name}, loaded"] = {
                "degraded": degraded,
                "reasons": dict(reasons),
                "top10_changed": sum(tops[t] != base[name][t] for t in texts),
                "load_average": Path("/proc/loadavg").read_text().split()[:3],
                "wall_s": round(wall, 1),
            }
            print(f"{name}, loaded: {out[f'{name}, loaded']}", flush=True)
    finally:
        for hog in hogs:
            hog.terminate()
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
