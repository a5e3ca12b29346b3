"""Metric aggregations: tantivy's stats family reshaped to ES, exact `cardinality`, and
`top_hits` (the best hits of a bucket, scored or sorted, with `_source` filtering)."""

from __future__ import annotations

from typing import Any

import tantivy

from shoprank.errors import BadRequestError
from shoprank.plugin.shapes import filter_source

from .aggs_context import AggContext
from .dates import format_date_ms
from .schema import FieldInfo
from .sort import parse_sort, sort_scored
from .values import source_of

NATIVE_METRICS = ("stats", "min", "max", "avg", "sum", "value_count")


def metric_result(kind: str, result: dict[str, Any], info: FieldInfo) -> dict[str, Any]:
    """A tantivy metric result as ES shows it (`value_as_string` on date fields)."""
    dated = info.kind == "date"
    if kind == "stats":
        count = int(result.get("count", 0))
        out: dict[str, Any] = {
            "count": count,
            "min": result.get("min") if count else None,
            "max": result.get("max") if count else None,
            "avg": result.get("avg") if count else None,
            "sum": float(result.get("sum") or 0.0),
        }
        if dated and count:
            for key in ("min", "max", "avg"):
                out[f"{key}_as_string"] = format_date_ms(float(out[key]))
        return out
    value = result.get("value")
    if kind == "value_count":
        return {"value": int(value or 0)}
    if kind == "sum":
        return {"value": float(value or 0.0)}
    shaped: dict[str, Any] = {"value": value}
    if dated and value is not None:
        shaped["value_as_string"] = format_date_ms(float(value))
    return shaped


def cardinality_agg(
    ctx: AggContext, name: str, body: dict[str, Any], sub: dict[str, Any], query: tantivy.Query
) -> dict[str, Any]:
    """The exact number of distinct values (`precision_threshold` is accepted: on one node
    every count is exact)."""
    threshold = body.get("precision_threshold")
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0
    ):
        raise BadRequestError(f"[precision_threshold] of [{name}] must be a positive integer")
    info = ctx.field("cardinality", name, body)
    return {"value": len(ctx.value_counts(info, query))}


def top_hits_agg(
    ctx: AggContext, name: str, body: dict[str, Any], sub: dict[str, Any], query: tantivy.Query
) -> dict[str, Any]:
    size = _non_negative(body.get("size", 3), "size", name)
    start = _non_negative(body.get("from", 0), "from", name)
    if ctx.gen is None:
        raise BadRequestError(f"[top_hits] aggregation [{name}] needs an index generation")
    sort = parse_sort(body.get("sort"))
    result = ctx.searcher.search(query, limit=max(int(ctx.searcher.num_docs), 1), count=True)
    scored = list(result.hits)
    total = len(scored)
    sort_values: list[list[Any]] | None = None
    if sort:
        scored, sort_values = sort_scored(ctx.gen, ctx.searcher, scored, sort)
    page = scored[start : start + size]
    shown = sort_values[start : start + size] if sort_values is not None else None
    keep_scores = not sort or any(key.field == "_score" for key in sort)
    source_spec = body.get("_source", True)
    hits = []
    for i, (score, addr) in enumerate(page):
        doc = ctx.searcher.doc(addr)
        hit: dict[str, Any] = {
            "_index": ctx.gen.name,
            "_id": doc.get_first("_id"),
            "_score": float(score) if keep_scores else None,
        }
        source = filter_source(source_of(doc), source_spec)
        if source is not None:
            hit["_source"] = source
        if shown is not None:
            hit["sort"] = shown[i]
        hits.append(hit)
    scores = [float(s) for s, _ in scored] if keep_scores else []
    return {
        "hits": {
            "total": {"value": total, "relation": "eq"},
            "max_score": max(scores) if scores else None,
            "hits": hits,
        }
    }


def _non_negative(value: Any, what: str, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRequestError(f"[{what}] of [top_hits] aggregation [{name}] must be >= 0")
    return value
