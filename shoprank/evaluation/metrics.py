"""Ranking metrics over graded judgments (grade 0 = not relevant).

nDCG uses the exponential gain (2^grade − 1) / log2(rank + 1), normalised by the ideal
ordering of every judged product for the query (not only the retrieved ones).

With sparse judgments (a few judged products per query, most results never judged) plain
nDCG mostly measures how many judged products a system happens to surface; the *condensed*
variant (TREC "condensed lists") drops unjudged results from the ranked list first, so it
compares systems on the products people actually graded.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from shoprank.errors import BadRequestError

Judgments = dict[str, dict[str, float]]  # query → product id → grade


def dcg_of_gains(gains: Sequence[float]) -> float:
    """Σ gain / log2(rank + 1) over gains already computed (e.g. propensity-weighted)."""
    return float(sum(g / math.log2(i + 2) for i, g in enumerate(gains)))


def dcg(grades: Sequence[float]) -> float:
    return dcg_of_gains([math.pow(2.0, g) - 1.0 for g in grades])


def ndcg_at_k(ranked: Sequence[str], grades: Mapping[str, float], k: int = 10) -> float:
    ideal = dcg(sorted(grades.values(), reverse=True)[:k])
    if ideal <= 0:
        return 0.0
    return dcg([grades.get(pid, 0.0) for pid in ranked[:k]]) / ideal


def condensed_ndcg_at_k(ranked: Sequence[str], grades: Mapping[str, float], k: int = 10) -> float:
    """nDCG@k of `ranked` with every unjudged product removed first (judged-only list)."""
    return ndcg_at_k([pid for pid in ranked if pid in grades], grades, k)


def mrr(ranked: Sequence[str], grades: Mapping[str, float], k: int | None = None) -> float:
    for i, pid in enumerate(ranked[:k] if k else ranked):
        if grades.get(pid, 0.0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def recall_at_k(ranked: Sequence[str], grades: Mapping[str, float], k: int = 10) -> float:
    relevant = {pid for pid, g in grades.items() if g > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranked[:k])) / len(relevant)


def load_judgments(path: str | Path) -> Judgments:
    """A CSV/TSV with columns `query,product_id,grade` (header optional)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8-sig")
    first = text.splitlines()[0] if text else ""
    dialect = "excel-tab" if "\t" in first else "excel"
    out: Judgments = {}
    for line_no, row in enumerate(csv.reader(text.splitlines(), dialect=dialect), start=1):
        if not row or all(not cell.strip() for cell in row):
            continue
        if line_no == 1 and row[-1].strip().lower() == "grade":
            continue
        if len(row) != 3:
            raise BadRequestError(f"{path}:{line_no}: expected query,product_id,grade, got {row}")
        query, pid, grade = (cell.strip() for cell in row)
        try:
            value = float(grade)
        except ValueError:
            raise BadRequestError(f"{path}:{line_no}: grade {grade!r} is not a number") from None
        if not query or not pid or value < 0:
            raise BadRequestError(f"{path}:{line_no}: empty query/product id or negative grade")
        out.setdefault(query, {})[pid] = value
    return out
