"""Offline evaluation: run judged queries through each mode of the search pipeline and
score the rankings (nDCG@k, MRR, recall@k), side by side, as a table and a PNG plot.

Cases come from a judgments file (`query,product_id,grade`: the same for every shopper)
or from a sessions file (JSONL `{"user_id", "query", "grades": {id: grade}}`, e.g. the
simulator's held-out sessions: personalised judgments).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoprank.errors import BadRequestError
from shoprank.evaluation.metrics import load_judgments, mrr, ndcg_at_k, recall_at_k
from shoprank.types import MODES


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


def evaluate(
    service: Any,
    index: str,
    cases: Sequence[Case],
    *,
    modes: Iterable[str] = MODES,
    k: int = 10,
    fields: str = "title^3,brand.text^2,category.text^1.5,description",
) -> dict[str, dict[str, float]]:
    """Mean nDCG@k, MRR and recall@k of each mode over `cases` (a `SearchService`)."""
    out: dict[str, dict[str, float]] = {}
    for mode in modes:
        ndcg, rr, rec = [], [], []
        for case in cases:
            opts: dict[str, Any] = {"mode": mode}
            if case.user_id:
                opts["user_id"] = case.user_id
            body = {
                "query": {"multi_match": {"query": case.query, "fields": fields.split(",")}},
                "size": k,
                "_source": False,
                "ext": {"shoprank": opts},
            }
            ranked = [h["_id"] for h in service.search(index, body)["hits"]["hits"]]
            ndcg.append(ndcg_at_k(ranked, case.grades, k))
            rr.append(mrr(ranked, case.grades, k))
            rec.append(recall_at_k(ranked, case.grades, k))
        n = max(len(cases), 1)
        out[mode] = {
            f"ndcg@{k}": sum(ndcg) / n,
            "mrr": sum(rr) / n,
            f"recall@{k}": sum(rec) / n,
        }
    return out


def table(results: dict[str, dict[str, float]]) -> str:
    metrics = list(next(iter(results.values())).keys()) if results else []
    lines = ["mode      " + "".join(f"{m:>12}" for m in metrics)]
    for mode, values in results.items():
        lines.append(f"{mode:<10}" + "".join(f"{values[m]:>12.4f}" for m in metrics))
    return "\n".join(lines)


def plot(results: dict[str, dict[str, float]], path: Path, *, title: str) -> Path:
    """A grouped bar chart of every metric per mode (needs matplotlib, the [ml] extra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = list(results)
    metrics = list(results[modes[0]].keys())
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
