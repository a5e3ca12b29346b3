"""ES aggregations on the embedded backend, in exactly the shape ES returns.

Supported: terms, range, histogram, date_histogram, filter, filters, missing, composite
(bucket aggregations, each taking any sub-aggregation), and stats, min, max, avg, sum,
value_count, cardinality, top_hits. Every option outside `aggs_options.OPTIONS` is a 400
naming it. Counts are exact: each bucket is evaluated as the request's matches AND the
bucket's own condition (`aggs_context`), with tantivy's aggregations doing the counting over
every term (never a shard-size cut). Past the request's deadline the remaining buckets are
left out (the response says `timed_out`).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import tantivy

from shoprank.errors import BadRequestError
from shoprank.plugin.bounds import Deadline, strict_float

from .aggs_buckets import (
    composite_agg,
    filter_agg,
    filters_agg,
    matches_everything,
    missing_agg,
    range_filters,
    terms_agg,
)
from .aggs_context import AggContext
from .aggs_dates import date_histogram_agg
from .aggs_metrics import NATIVE_METRICS, cardinality_agg, metric_result, top_hits_agg
from .aggs_options import SUPPORTED, agg_type, check_tree, sub_aggs
from .dsl import QueryCompiler
from .generation import Generation
from .schema import IndexSchema

__all__ = ["SUPPORTED", "AggRun", "AggregationCompiler"]

Bounds = tuple[float | None, float | None]
Evaluator = Callable[[AggContext, str, dict[str, Any], dict[str, Any], tantivy.Query], Any]


class AggregationCompiler:
    """Aggregations of one generation; `queries` compiles `filter`/`filters` and bucket
    conditions, `gen` names `top_hits` hits and sorts them."""

    def __init__(
        self,
        schema: IndexSchema,
        *,
        queries: QueryCompiler | None = None,
        gen: Generation | None = None,
    ) -> None:
        self.schema = schema
        self.queries = queries
        # Weak: the backend caches compilers per generation, keyed weakly by the generation.
        self._gen = weakref.ref(gen) if gen is not None else None

    def run(
        self,
        searcher: tantivy.Searcher,
        query: tantivy.Query,
        aggs: dict[str, Any],
        *,
        deadline: Deadline | None = None,
        known_count: int | None = None,
    ) -> dict[str, Any]:
        """`known_count`: the number of `query`'s matches, when the caller already has it."""
        check_tree(aggs)
        gen = self._gen() if self._gen is not None else None
        run = AggRun(self.schema, searcher, self.queries, gen, deadline)
        if known_count is not None:
            run.known_count(query, known_count)
        try:
            return run.evaluate(aggs, query)
        except (TypeError, ValueError, AttributeError, KeyError) as exc:
            raise BadRequestError(f"an aggregation is malformed: {exc}") from None


class AggRun(AggContext):
    def evaluate(self, aggs: dict[str, Any], query: tantivy.Query) -> dict[str, Any]:
        out: dict[str, Any] = {}
        typed = [(name, spec, *agg_type(name, spec)) for name, spec in aggs.items()]
        metrics = {name: spec for name, spec, kind, _ in typed if kind in NATIVE_METRICS}
        if metrics:
            out.update(self._metrics(metrics, query))
        self._prefetch_terms(aggs, query)
        for name, spec, kind, body in typed:
            if name not in out:
                out[name] = EVALUATORS[kind](self, name, body, sub_aggs(spec), query)
            if "meta" in spec:
                out[name] = {"meta": spec["meta"], **out[name]}
        return out if not metrics else {name: out[name] for name in aggs}

    def _prefetch_terms(self, aggs: dict[str, Any], query: tantivy.Query) -> None:
        """The `terms` fields this level (and the match-everything `filter`s under it, which
        evaluate the same query) will count, fetched in one tantivy request."""
        walked = self._walked
        if walked.get((id(aggs), id(query))) is query:
            return  # a match-everything `filter`'s level: its parent fetched it
        fields = []
        ranged = []
        pending = [aggs]
        while pending:
            level = pending.pop()
            if level:
                walked[(id(level), id(query))] = query
            for name, spec in level.items():
                kind, body = agg_type(name, spec)
                if kind == "terms" and isinstance(body.get("field"), str):
                    fields.append(self.field("terms", name, body))
                elif kind == "filter" and matches_everything(body):
                    pending.append(sub_aggs(spec) or {})
                elif kind == "filters" and isinstance(body.get("filters"), dict | list):
                    if sub_aggs(spec) or body.get("other_bucket") or "other_bucket_key" in body:
                        continue
                    filters = body["filters"]
                    listed = list(filters.values()) if isinstance(filters, dict) else filters
                    found = range_filters(self, listed)
                    if found is not None:
                        ranged.append(found)
        self.prefetch(fields, ranged, query)

    def _metrics(self, aggs: dict[str, Any], query: tantivy.Query) -> dict[str, Any]:
        """All plain metrics of one level in one tantivy request."""
        request = {}
        kinds = {}
        for name, spec in aggs.items():
            kind, body = agg_type(name, spec)
            info = self.field(kind, name, body)
            kinds[name] = (kind, info)
            request[name] = {kind: {"field": info.tantivy}}
        raw = self.native(query, request)
        return {
            name: metric_result(kind, raw.get(name, {}), info)
            for name, (kind, info) in kinds.items()
        }


def range_agg(
    ctx: AggContext, name: str, body: dict[str, Any], sub: dict[str, Any], query: tantivy.Query
) -> dict[str, Any]:
    info = ctx.field("range", name, body)
    ranges = body.get("ranges")
    if not isinstance(ranges, list) or not ranges:
        raise BadRequestError(f"[range] aggregation [{name}] requires [ranges]")
    wanted = [_range_request(name, r) for r in ranges]
    counts = ctx.interval_counts(
        info, [(_opt_float(r.get("from")), _opt_float(r.get("to"))) for r in wanted], query
    )
    buckets = []
    for spec, count in zip(wanted, counts, strict=True):
        if ctx.passed():
            break
        low, high = spec.get("from"), spec.get("to")
        bucket: dict[str, Any] = {"key": _range_key(spec)}
        if low is not None:
            bucket["from"] = low
        if high is not None:
            bucket["to"] = high
        bucket["doc_count"] = count
        if sub:
            bucket.update(ctx.evaluate(sub, ctx.both(query, ctx.between(info, low, high))))
        buckets.append(bucket)
    if body.get("keyed"):
        return {"buckets": {b.pop("key"): b for b in buckets}}
    return {"buckets": buckets}


def histogram_agg(
    ctx: AggContext, name: str, body: dict[str, Any], sub: dict[str, Any], query: tantivy.Query
) -> dict[str, Any]:
    info = ctx.field("histogram", name, body)
    interval = body.get("interval")
    if isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0:
        raise BadRequestError(f"[histogram] aggregation [{name}] requires a positive [interval]")
    request: dict[str, Any] = {
        "field": info.tantivy,
        "interval": float(interval),
        "min_doc_count": int(body.get("min_doc_count", 0)),
    }
    if "offset" in body:
        request["offset"] = float(body["offset"])
    if "extended_bounds" in body:
        bounds = body["extended_bounds"]
        request["extended_bounds"] = {"min": float(bounds["min"]), "max": float(bounds["max"])}
    raw = ctx.native(query, {"h": {"histogram": request}})
    buckets = []
    for raw_bucket in raw.get("h", {}).get("buckets", []):
        if ctx.passed():
            break
        key = float(raw_bucket["key"])
        bucket: dict[str, Any] = {"key": key, "doc_count": int(raw_bucket["doc_count"])}
        if sub:
            narrowed = ctx.both(query, ctx.between(info, key, key + float(interval)))
            bucket.update(ctx.evaluate(sub, narrowed))
        buckets.append(bucket)
    return {"buckets": buckets}


EVALUATORS: dict[str, Evaluator] = {
    "terms": terms_agg,
    "range": range_agg,
    "histogram": histogram_agg,
    "date_histogram": date_histogram_agg,
    "filter": filter_agg,
    "filters": filters_agg,
    "missing": missing_agg,
    "composite": composite_agg,
    "cardinality": cardinality_agg,
    "top_hits": top_hits_agg,
}


def _range_request(name: str, spec: Any) -> dict[str, Any]:
    """One requested range; bounds are numbers or ASCII numeric strings."""
    if not isinstance(spec, dict):
        raise BadRequestError(f"each range of [range] aggregation [{name}] must be an object")
    unknown = sorted(set(spec) - {"from", "to", "key"})
    if unknown:
        raise BadRequestError(f"range option [{unknown[0]}] of [{name}] is not supported")
    out: dict[str, Any] = {}
    for key in ("from", "to", "key"):
        value = spec.get(key)
        if value is None:
            continue
        if key == "key":
            out[key] = str(value)
            continue
        try:
            out[key] = strict_float(value)
        except (ValueError, OverflowError):
            raise BadRequestError(
                f"[{key}] of a range in [range] aggregation [{name}] must be a number, "
                f"got {value!r}"
            ) from None
    return out


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _range_key(spec: dict[str, Any]) -> str:
    """A range's own `key`, or ES's `from-to` label."""
    if spec.get("key") is not None:
        return str(spec["key"])
    lo, hi = spec.get("from"), spec.get("to")
    left = "*" if lo is None else repr(float(lo))
    right = "*" if hi is None else repr(float(hi))
    return f"{left}-{right}"
