"""Counting documents in numeric intervals with tantivy's range aggregation, which refuses
overlapping ranges while ES allows them (Search UI's range facets overlap at every inclusive
bound: `lte 10` and `gte 10`). Intervals are split into layers of disjoint ones; every layer
goes into the same native request, so any set of intervals costs one pass over the matches.
A document counts once per interval, whatever its values (tantivy counts documents)."""

from __future__ import annotations

import math
from typing import Any

Interval = tuple[float | None, float | None]  # [from, to), None: unbounded


def _opt(value: Any) -> float | None:
    return None if value is None else float(value)


def layers(intervals: list[Interval]) -> list[list[int]]:
    """Indices of the non-empty intervals grouped so each group is disjoint (sorted by start)."""
    lows = [-math.inf if lo is None else lo for lo, _ in intervals]
    order = sorted(
        (i for i, (lo, hi) in enumerate(intervals) if lo is None or hi is None or lo < hi),
        key=lambda i: lows[i],
    )
    out: list[list[int]] = []
    for i in order:
        for layer in out:
            end = intervals[layer[-1]][1]
            if end is not None and end <= lows[i]:
                layer.append(i)
                break
        else:
            out.append([i])
    return out


def requests(field: str, intervals: list[Interval], prefix: str) -> dict[str, Any]:
    """Native range aggregations, one per layer, named `{prefix}{n}`."""
    out = {}
    for n, layer in enumerate(layers(intervals)):
        ranges = []
        for i in layer:
            lo, hi = intervals[i]
            bounds = {} if lo is None else {"from": lo}
            ranges.append(bounds if hi is None else {**bounds, "to": hi})
        out[f"{prefix}{n}"] = {"range": {"field": field, "ranges": ranges}}
    return out


def counts(raw: dict[str, Any], intervals: list[Interval], prefix: str) -> list[int]:
    """Each interval's document count from the answer to `requests(..., prefix)`."""
    found: dict[Interval, int] = {}
    n = 0
    while f"{prefix}{n}" in raw:
        for bucket in raw[f"{prefix}{n}"].get("buckets", []):
            found[(_opt(bucket.get("from")), _opt(bucket.get("to")))] = int(bucket["doc_count"])
        n += 1
    return [found.get(interval, 0) for interval in intervals]
