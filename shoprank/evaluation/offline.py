"""Offline evaluation: run judged queries through each mode of the search pipeline and
score the rankings side by side, as a table and a PNG plot: nDCG@k, condensed nDCG@k over
the top-`window` hits (`cndcg@k`: unjudged hits dropped, the fair measure for sparse
judgments), nDCG@k of each mode's ranking of only the judged products (`jndcg@k`), MRR,
recall@k, and p50 / p99 search latency.

Cases come from a judgments file (`query,product_id,grade`: the same for every shopper)
or from a sessions file (JSONL `{"user_id", "query", "grades": {id: grade}}`, e.g. the
simulator's held-out sessions: personalised judgments).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoprank.errors import BadRequestError
from shoprank.evaluation.metrics import (
    condensed_ndcg_at_k,
    load_judgments,
    mrr,
    ndcg_at_k,
    recall_at_k,
)
from shoprank.types import MODES

DEFAULT_FIELDS = ("title^3", "brand.text^2", "category.text^1.5", "description")


@dataclass
class Case:
    query: str
    grades: dict[str, float]
    user_id: str | None = None


def cases_from_judgments(path: Path) -> list[Case]:
    return [Case(q, dict(g)) for q, g in load_judgments(path).items()]


def cases_from_sessions(path: Path) -> list[Case]:
    out = []
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            out.append(
                Case(
                    str(row["query"]),
                    {str(k): float(v) for k, v in row["grades"].items()},
                    str(row["user_id"]) if row.get("user_id") else None,
                )
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BadRequestError(
                f'{path}:{line_no}: expected {{"query", "grades", "user_id"?}}: {exc}'
            ) from exc
    return out


@dataclass
class QueryRun:
    """One judged query through one mode: the top-`window` ids in the mode's order, the
    mode's order of the query's judged products (see `rank_judged`), and the main search's
    latency. The id lists are tuples: the collector stops walking a tuple of strings, so
    thousands of kept runs add nothing to the pauses of the searches timed after them."""

    case: Case
    ranked: Sequence[str]
    judged: Sequence[str]
    took_ms: float


Clock = Callable[[], float]


def _body(case: Case, mode: str, query: dict[str, Any], size: int) -> dict[str, Any]:
    opts: dict[str, Any] = {"mode": mode}
    if case.user_id:
        opts["user_id"] = case.user_id
    return {"query": query, "size": size, "_source": False, "ext": {"shoprank": opts}}


def fixed_order(case: Case, ids: Iterable[str]) -> list[str]:
    # An order that knows nothing of the grades, the same in every mode and every run.
    def key(pid: str) -> str:
        return hashlib.sha1(f"{case.query}\x00{pid}".encode()).hexdigest()

    return sorted(ids, key=key)


def run_mode(
    service: Any,
    index: str,
    cases: Sequence[Case],
    *,
    mode: str,
    window: int = 100,
    rank_judged: bool = True,
    fields: Sequence[str] = DEFAULT_FIELDS,
    clock: Clock = time.perf_counter,
    progress: Callable[[], None] | None = None,
) -> list[QueryRun]:
    """Every case searched in `mode` (a `SearchService`): the top `window` hits and, with
    `rank_judged`, a second search restricted to the case's judged products (an `ids`
    filter, which every leg applies) — how the mode orders exactly the graded products,
    recall aside. Judged products that search does not return follow in a fixed order."""
    runs: list[QueryRun] = []
    for case in cases:
        text = {"multi_match": {"query": case.query, "fields": list(fields)}}
        t0 = clock()
        hits = service.search(index, _body(case, mode, text, window))["hits"]["hits"]
        took = (clock() - t0) * 1000
        ranked = [str(h["_id"]) for h in hits]
        judged: list[str] = []
        if rank_judged and case.grades:
            ids = sorted(case.grades)
            query = {"bool": {"must": [text], "filter": [{"ids": {"values": ids}}]}}
            found = service.search(index, _body(case, mode, query, len(ids)))["hits"]["hits"]
            judged = [str(h["_id"]) for h in found if str(h["_id"]) in case.grades]
            seen = set(judged)
            judged += fixed_order(case, (pid for pid in ids if pid not in seen))
        runs.append(QueryRun(case, tuple(ranked), tuple(judged), took))
        if progress is not None:
            progress()
    return runs


def score(runs: Sequence[QueryRun], *, k: int = 10) -> dict[str, float]:
    """Means over the runs: nDCG@k of the first k hits, condensed nDCG@k (unjudged hits
    dropped from the whole window first), nDCG@k of the judged-products ranking, MRR,
    recall@k; and the p50 / p99 latency of the main search in milliseconds."""
    n = max(len(runs), 1)
    out = {
        f"ndcg@{k}": sum(ndcg_at_k(r.ranked, r.case.grades, k) for r in runs) / n,
        f"cndcg@{k}": sum(condensed_ndcg_at_k(r.ranked, r.case.grades, k) for r in runs) / n,
        f"jndcg@{k}": sum(ndcg_at_k(r.judged, r.case.grades, k) for r in runs) / n,
        "mrr": sum(mrr(r.ranked, r.case.grades, k) for r in runs) / n,
        f"recall@{k}": sum(recall_at_k(r.ranked, r.case.grades, k) for r in runs) / n,
    }
    if not any(r.judged for r in runs):
        del out[f"jndcg@{k}"]
    took = [r.took_ms for r in runs]
    out["p50_ms"] = percentile(took, 50)
    out["p99_ms"] = percentile(took, 99)
    return out


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return float(ordered[min(rank, len(ordered)) - 1])


def evaluate(
    service: Any,
    index: str,
    cases: Sequence[Case],
    *,
    modes: Iterable[str] = MODES,
    k: int = 10,
    window: int = 100,
    rank_judged: bool = True,
    fields: str = ",".join(DEFAULT_FIELDS),
    clock: Clock = time.perf_counter,
    progress: Callable[[int, int, str], None] | None = None,
) -> dict[str, dict[str, float]]:
    """`score` of each mode over `cases`, side by side (a `SearchService`); `window` hits
    per search (at least k). `progress(cases_done, cases_total, mode)` follows every case."""
    modes = list(modes)
    done, total = [0], len(modes) * len(cases)

    def step(mode: str) -> Callable[[], None] | None:
        if progress is None:
            return None

        def report() -> None:
            done[0] += 1
            progress(done[0], total, mode)

        return report

    return {
        mode: score(
            run_mode(
                service,
                index,
                cases,
                mode=mode,
                window=max(window, k),
                rank_judged=rank_judged,
                fields=fields.split(","),
                clock=clock,
                progress=step(mode),
            ),
            k=k,
        )
        for mode in modes
    }


def table(results: dict[str, dict[str, float]]) -> str:
    metrics = list(next(iter(results.values())).keys()) if results else []
    lines = ["mode      " + "".join(f"{m:>12}" for m in metrics)]
    for mode, values in results.items():
        cells = (
            f"{values[m]:>12.2f}" if m.endswith("_ms") else f"{values[m]:>12.4f}" for m in metrics
        )
        lines.append(f"{mode:<10}" + "".join(cells))
    return "\n".join(lines)


def plot(results: dict[str, dict[str, float]], path: Path, *, title: str) -> Path:
    """A grouped bar chart of every metric per mode (needs matplotlib, the [ml] extra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = list(results)
    metrics = [m for m in results[modes[0]] if not m.endswith("_ms")]
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / max(len(modes), 1)
    for i, mode in enumerate(modes):
        xs = [j + i * width for j in range(len(metrics))]
        ax.bar(xs, [results[mode][m] for m in metrics], width=width, label=mode)
    ax.set_xticks([j + width * (len(modes) - 1) / 2 for j in range(len(metrics))])
    ax.set_xticklabels(metrics)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
