"""Offline validation of the experiments core on simulated traffic (issue 18, item 5).

    python benchmarks/bench_experiments.py --out benchmarks/results/experiments.json

(a) searches until `decide` promotes a truly better challenger, interleaving vs A/B, over
    several seeds (median and quartiles); (b) A/A false-positive rate with a look after
    every batch: the sequential tests vs the naive fixed test re-run at every look;
(c) a deliberately worse challenger is rolled back; (d) per-call cost of assignment and of
    a team-draft page. Synthetic click model (`shoprank.experiments.simulate`), no server.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from shoprank.experiments.assign import Assigner
from shoprank.experiments.interleave import seed, team_draft
from shoprank.experiments.model import Experiment
from shoprank.experiments.simulate import Ranker, aa_false_positive_rate, run_experiment

CONTROL, BETTER, WORSE = Ranker(1.0), Ranker(0.8), Ranker(1.3)
MDE = {"ab": 0.02, "interleave": 0.05}


def _exp(method: str, **options: Any) -> Experiment:
    exp = Experiment.new(
        f"bench-{method}",
        control={"ranker": "control"},
        challenger={"ranker": "challenger"},
        method=method,
        mde=MDE[method],
        now=0.0,
        salt="bench",
        **options,
    )
    return replace(exp, status="running")


def _quartiles(values: list[int]) -> dict[str, float]:
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return {
        "median": statistics.median(values),
        "q1": q[0],
        "q3": q[2],
        "min": min(values),
        "max": max(values),
    }


def searches_to_significance(seeds: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for method in ("interleave", "ab"):
        runs = [
            run_experiment(
                _exp(method, max_searches=500_000),
                control=CONTROL,
                challenger=BETTER,
                seed=s,
                batch=100,
            )
            for s in range(seeds)
        ]
        promoted = [r.searches for r in runs if r.decision.action == "promote"]
        out[method] = {
            "seeds": seeds,
            "promoted": len(promoted),
            "wrong_or_inconclusive": seeds - len(promoted),
            "searches": _quartiles(promoted or [0]),
            "all": [r.searches for r in runs],
        }
    ratio = out["ab"]["searches"]["median"] / max(1.0, out["interleave"]["searches"]["median"])
    out["ab_over_interleave_median"] = ratio
    return out


def rollbacks(seeds: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for method in ("interleave", "ab"):
        runs = [
            run_experiment(
                _exp(method, max_searches=500_000),
                control=CONTROL,
                challenger=WORSE,
                seed=100 + s,
                batch=100,
            )
            for s in range(seeds)
        ]
        out[method] = {
            "decisions": sorted({f"{r.decision.action}/{r.decision.reason}" for r in runs}),
            "rolled_back": sum(r.decision.action == "rollback" for r in runs),
            "seeds": seeds,
            "searches": _quartiles([r.searches for r in runs]),
        }
    return out


def _per_call_us(fn: Any, args: list[Any]) -> dict[str, float]:
    times = []
    for a in args:
        t0 = time.perf_counter_ns()
        fn(a)
        times.append(time.perf_counter_ns() - t0)
    times.sort()
    return {
        "p50_us": times[len(times) // 2] / 1000,
        "p99_us": times[int(len(times) * 0.99)] / 1000,
        "calls": len(times),
    }


def costs(calls: int) -> dict[str, Any]:
    assigner = Assigner(_exp("ab"))
    units = [f"{i:032x}" for i in range(calls)]  # pseudonym-shaped: 32 hex chars
    a = [f"a{i}" for i in range(100)]
    b = [f"b{i}" for i in range(50)] + [f"a{i}" for i in range(50)]
    return {
        "assign": _per_call_us(assigner.assign, units),
        "team_draft_10": _per_call_us(
            lambda q: team_draft(a, b, seed=seed("bench", q), size=10), units[: calls // 10]
        ),
        "team_draft_100": _per_call_us(
            lambda q: team_draft(a, b, seed=seed("bench", q), size=100), units[: calls // 10]
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--aa-tests", type=int, default=200)
    ap.add_argument("--calls", type=int, default=200_000)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    t0 = time.perf_counter()
    result: dict[str, Any] = {"machine": platform.platform(), "python": platform.python_version()}
    result["costs"] = costs(args.calls)
    print("costs", json.dumps(result["costs"]), flush=True)
    result["searches_to_significance"] = searches_to_significance(args.seeds)
    print("to significance", json.dumps(result["searches_to_significance"]), flush=True)
    result["aa"] = {
        "ab": aa_false_positive_rate(
            method="ab", tests=args.aa_tests, searches=20_000, batch=200, mde=MDE["ab"], seed=1
        ),
        "interleave": aa_false_positive_rate(
            method="interleave",
            tests=args.aa_tests,
            searches=2_000,
            batch=20,
            mde=MDE["interleave"],
            seed=2,
        ),
    }
    print("A/A", json.dumps(result["aa"]), flush=True)
    result["worse_challenger"] = rollbacks(max(3, args.seeds // 2))
    print("worse challenger", json.dumps(result["worse_challenger"]), flush=True)
    result["wall_s"] = time.perf_counter() - t0
    print(f"done in {result['wall_s']:.0f} s")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
