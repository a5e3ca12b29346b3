"""Per-search cost of the experiment step in the search path (issue 18: target <= 0.2 ms
p99): `ExperimentArms.enrol` on a parsed request — the running experiments (a `stat` of
the store directory now and then), both arms' configurations applied, whether they would
search differently, and the unit's keyed-hash assignment — with one running ranker
experiment, beside the same call with no experiment running. No index or model is touched:
this is the step's own cost, which every search pays.

    python benchmarks/bench_experiment_enrol.py [--calls 200000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from shoprank.experiments.model import Experiment
from shoprank.experiments.stats import percentile
from shoprank.experiments.store import ExperimentStore, RunningAssigners
from shoprank.plugin.pipeline.experiment import ExperimentArms
from shoprank.plugin.pipeline.request import parse_request
from shoprank.settings import Settings


def measure(arms: ExperimentArms, settings: Settings, calls: int) -> dict[str, float]:
    body = {"query": {"match": {"title": "wireless headphones"}}, "size": 10}
    requests = [
        parse_request("demo", body, settings=settings, user_id=f"user-{n % 5000}")
        for n in range(1000)
    ]
    times: list[float] = []
    enrolled = 0
    clock = time.perf_counter
    for n in range(calls):
        request = requests[n % len(requests)]
        t0 = clock()
        found = arms.enrol(request)
        times.append((clock() - t0) * 1e6)
        enrolled += found is not None
    return {
        "p50_us": round(percentile(times, 50), 3),
        "p99_us": round(percentile(times, 99), 3),
        "enrolled_share": round(enrolled / calls, 3),
        "calls": calls,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp))
        empty = ExperimentStore(Path(tmp) / "none")
        store = ExperimentStore(Path(tmp) / "experiments")
        exp = Experiment.new(
            "bench", control={"ranker": "live"}, challenger={"ranker": "v2"}, now=0.0
        )
        store.create(exp)
        store.start(exp.id, now=0.0)
        out = {
            "no_experiment": measure(
                ExperimentArms(RunningAssigners(empty, clock=time.monotonic), settings),
                settings,
                args.calls,
            ),
            "one_running": measure(
                ExperimentArms(RunningAssigners(store, clock=time.monotonic), settings),
                settings,
                args.calls,
            ),
        }
    text = json.dumps(out, indent=1)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
