"""What `full`'s optional stages cost on a stage thread vs on the search's own thread.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_stage_handoff.py --data-dir /tmp/hd

Over an index loaded by `bench_homedepot.py` (Home Depot titles), the dev queries' texts are
searched in process, each three times in turn: `hybrid`, `full` with every optional stage
handed to a stage thread (`StageRunner(inline=frozenset())`, how it was before), and `full`
with query understanding and the learned ranker on the search's thread (the default,
`shoprank.plugin.stages.INLINE_STAGES`). Interleaving query by query puts the three under
the same machine state, so their ratio is stable where back-to-back runs drift. Every
search embeds its query (no prefilled vectors), so the absolute times are higher than
`bench_homedepot.py`'s.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from shoprank import heap  # noqa: E402
from shoprank.plugin.stages import INLINE_STAGES, StageRunner  # noqa: E402
from shoprank.settings import Settings  # noqa: E402
from shoprank.wiring import make_service  # noqa: E402

JUDGMENTS = Path(__file__).resolve().parents[2] / "shared/data/homedepot/judgments-dev.csv"


def body(text: str, mode: str) -> dict[str, Any]:
    return {
        "query": {"multi_match": {"query": text, "fields": ["title"]}},
        "size": 100,
        "_source": False,
        "ext": {"shoprank": {"mode": mode}},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/hd"))
    parser.add_argument("--index", default="homedepot")
    parser.add_argument("--judgments", type=Path, default=JUDGMENTS)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    with args.judgments.open() as f:
        texts = sorted({row["query"] for row in csv.DictReader(f)})[: args.queries]
    service = make_service(
        Settings(data_dir=args.data_dir, encoder_backend="auto", search_log=False)
    )
    service.search_logger = None
    service.warm_up()
    threaded = StageRunner(inline=frozenset())
    inline = StageRunner(inline=INLINE_STAGES)
    for text in texts:  # warm every cache the timed searches use (vocabulary, vectors)
        service.search(args.index, body(text, "full"))
    heap.settle()
    runs: dict[str, list[float]] = {"hybrid": [], "full, stage threads": [], "full, inline": []}
    for i, text in enumerate(texts):
        order = list(runs) if i % 2 else list(reversed(runs))
        for name in order:
            service.stages = inline if name == "full, inline" else threaded
            started = time.perf_counter()
            service.search(args.index, body(text, name.split(",")[0]))
            runs[name].append((time.perf_counter() - started) * 1000)
    service.stages = inline
    out = {
        name: {q: round(float(np.percentile(ms, q)), 2) for q in (50, 90, 99)}
        for name, ms in runs.items()
    }
    out["queries"] = len(texts)  # type: ignore[assignment]
    print(json.dumps(out, indent=2))
    if args.out:
        args.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
