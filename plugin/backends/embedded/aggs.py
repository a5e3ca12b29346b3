"""ES aggregations on the embedded backend: translated to tantivy's (ES-modelled)
aggregation request, and the result reshaped to exactly what ES returns.

Supported: terms, range, histogram, stats, min, max, avg, sum, value_count, with nested
sub-aggregations under bucket aggregations. Reshaping is one pass over the buckets (a range
bucket finds its requested range by its bounds) and stops at the request's deadline, leaving
the buckets reshaped so far.
"""

from __future__ import annotations

from typing import Any

import tantivy

from shoprank.errors import BadRequestError, UnsupportedQueryError
from shoprank.plugin.bounds import Deadline, strict_float

from .schema import IndexSchema

BUCKET = ("terms", "range", "histogram")
Bounds = tuple[float | None, float | None]
METRIC = ("stats", "min", "max", "avg", "sum", "value_count")
SUPPORTED = BUCKET + METRIC


def _sub_aggs(spec: dict[str, Any]) -> dict[str, Any] | None:
    sub = spec.get("aggs", spec.get("aggregations"))
    if sub is not None and not isinstance(sub, dict):
        raise BadRequestError("[aggs] must be an object of named aggregations")
    return sub


def _agg_type(name: str, spec: Any) -> tuple[str, dict[str, Any]]:
    if not isinstance(spec, dict):
        raise BadRequestError(f"aggregation [{name}] must be an object")
    kinds = [k for k in spec if k not in ("aggs", "aggregations", "meta")]
    if len(kinds) != 1:
        raise BadRequestError(
            f"aggregation [{name}] must have exactly one type, found {kinds or 'none'}"
        )
    kind = kinds[0]
    if kind not in SUPPORTED:
        raise UnsupportedQueryError(
            f"aggregation type [{kind}] (in [{name}]) is not supported by shoprank's embedded "
            "backend; supported: " + ", ".join(SUPPORTED),
            construct=kind,
        )
    body = spec[kind]
    if not isinstance(body, dict):
        raise BadRequestError(f"[{kind}] aggregation [{name}] must be an object")
    return kind, body


class AggregationCompiler:
    def __init__(self, schema: IndexSchema) -> None:
        self.schema = schema

    def _field(self, kind: str, name: str, body: dict[str, Any]) -> str:
        path = body.get("field")
        if not isinstance(path, str):
            raise BadRequestError(f"[{kind}] aggregation [{name}] requires a [field]")
        info = self.schema.field(path)
        if info.kind == "text":
            raise BadRequestError(
                f"field [{path}] is a text field and cannot be aggregated; "
                "aggregate on a keyword field instead",
                es_type="illegal_argument_exception",
            )
        if info.kind in ("vector", "stored"):
            raise BadRequestError(f"field [{path}] cannot be aggregated")
        if kind in ("range", "histogram", "stats", "min", "max", "avg", "sum") and info.kind in (
            "keyword",
        ):
            raise BadRequestError(
                f"field [{path}] of type [keyword] is not supported for aggregation [{kind}]",
            )
        return info.tantivy

    def compile(self, aggs: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(aggs, dict):
            raise BadRequestError("[aggs] must be an object of named aggregations")
        out: dict[str, Any] = {}
        for name, spec in aggs.items():
            try:
                out[name] = self._compile_one(name, spec)
            except (TypeError, ValueError, AttributeError, KeyError) as exc:
                raise BadRequestError(f"aggregation [{name}] is malformed: {exc}") from None
        return out

    def _compile_one(self, name: str, spec: Any) -> dict[str, Any]:
        kind, body = _agg_type(name, spec)
        field = self._field(kind, name, body)
        request: dict[str, Any]
        if kind == "terms":
            size = int(body.get("size", 10))
            if size < 1:
                raise BadRequestError(f"[size] must be greater than 0. Found [{size}] in [{name}]")
            request = {
                "field": field,
                "size": size,
                "min_doc_count": int(body.get("min_doc_count", 1)),
            }
            order = body.get("order")
            if order is not None:
                request["order"] = self._order(name, order)
        elif kind == "range":
            ranges = body.get("ranges")
            if not isinstance(ranges, list) or not ranges:
                raise BadRequestError(f"[range] aggregation [{name}] requires [ranges]")
            request = {"field": field, "ranges": [_range_request(name, r) for r in ranges]}
        elif kind == "histogram":
            interval = body.get("interval")
            if not isinstance(interval, int | float) or interval <= 0:
                raise BadRequestError(
                    f"[histogram] aggregation [{name}] requires a positive [interval]"
                )
            request = {
                "field": field,
                "interval": float(interval),
                "min_doc_count": int(body.get("min_doc_count", 0)),
            }
            for key in ("offset",):
                if key in body:
                    request[key] = float(body[key])
            if "extended_bounds" in body:
                eb = body["extended_bounds"]
                request["extended_bounds"] = {"min": float(eb["min"]), "max": float(eb["max"])}
        else:
            request = {"field": field}
        entry: dict[str, Any] = {kind: request}
        sub = _sub_aggs(spec)
        if sub:
            if kind not in BUCKET:
                raise BadRequestError(
                    f"aggregator [{name}] of type [{kind}] cannot accept sub-aggregations"
                )
            entry["aggs"] = self.compile(sub)
        return entry

    @staticmethod
    def _order(name: str, order: Any) -> dict[str, str]:
        if isinstance(order, list) and len(order) == 1:
            order = order[0]
        if not isinstance(order, dict) or len(order) != 1:
            raise BadRequestError(f"[order] of terms aggregation [{name}] is malformed")
        ((key, direction),) = order.items()
        if key not in ("_count", "_key") or direction not in ("asc", "desc"):
            raise UnsupportedQueryError(
                f"terms [order] {order} is not supported; use _count or _key, asc or desc"
            )
        return {key: direction}

    def run(
        self,
        searcher: tantivy.Searcher,
        query: tantivy.Query,
        aggs: dict[str, Any],
        *,
        deadline: Deadline | None = None,
    ) -> dict[str, Any]:
        request = self.compile(aggs)
        try:
            raw = searcher.aggregate(query, request)
        except ValueError as exc:
            raise BadRequestError(f"aggregation failed: {exc}") from None
        return self.reshape(aggs, raw, deadline=deadline)

    def reshape(
        self, aggs: dict[str, Any], raw: dict[str, Any], *, deadline: Deadline | None = None
    ) -> dict[str, Any]:
        """Turn tantivy's result into ES's response shape, recursively; past `deadline` the
        remaining buckets are left out (the response says `timed_out`)."""
        out: dict[str, Any] = {}
        for name, spec in aggs.items():
            kind, body = _agg_type(name, spec)
            result = raw.get(name, {})
            sub = _sub_aggs(spec) or {}
            if kind in METRIC:
                out[name] = self._metric(kind, result)
                continue
            # tantivy adds range buckets for the gaps between requested ranges; ES does not.
            requested = _requested_ranges(body["ranges"]) if kind == "range" else None
            buckets = []
            for bucket in result.get("buckets", []):
                if deadline is not None and deadline.passed():
                    break
                shaped = self._bucket(kind, bucket)
                if requested is not None:
                    spec_of = requested.get((shaped.get("from"), shaped.get("to")))
                    if spec_of is None:
                        continue
                    _label_range(shaped, spec_of)
                shaped.update(self.reshape(sub, bucket, deadline=deadline) if sub else {})
                buckets.append(shaped)
            if kind == "terms":
                out[name] = {
                    "doc_count_error_upper_bound": int(
                        result.get("doc_count_error_upper_bound", 0)
                    ),
                    "sum_other_doc_count": int(result.get("sum_other_doc_count", 0)),
                    "buckets": buckets,
                }
            else:
                out[name] = {"buckets": buckets}
        return out

    @staticmethod
    def _bucket(kind: str, bucket: dict[str, Any]) -> dict[str, Any]:
        shaped: dict[str, Any] = {"key": bucket.get("key"), "doc_count": int(bucket["doc_count"])}
        if kind == "terms" and isinstance(shaped["key"], float) and shaped["key"].is_integer():
            shaped["key"] = int(shaped["key"])
        if kind == "range":
            for bound in ("from", "to"):
                if bucket.get(bound) is not None:
                    shaped[bound] = float(bucket[bound])
        if kind == "histogram":
            shaped["key"] = float(shaped["key"])
        return shaped

    @staticmethod
    def _metric(kind: str, result: dict[str, Any]) -> dict[str, Any]:
        if kind == "stats":
            count = int(result.get("count", 0))
            return {
                "count": count,
                "min": result.get("min") if count else None,
                "max": result.get("max") if count else None,
                "avg": result.get("avg") if count else None,
                "sum": float(result.get("sum") or 0.0),
            }
        value = result.get("value")
        if kind == "value_count":
            return {"value": int(value or 0)}
        if kind == "sum":
            return {"value": float(value or 0.0)}
        return {"value": value}


def _range_request(name: str, spec: Any) -> dict[str, Any]:
    """One requested range as tantivy takes it; bounds are numbers or ASCII numeric strings."""
    if not isinstance(spec, dict):
        raise BadRequestError(f"each range of [range] aggregation [{name}] must be an object")
    out: dict[str, Any] = {}
    for key in ("from", "to", "key"):
        value = spec.get(key)
        if value is None:
            continue
        if key == "key":
            out[key] = value
            continue
        try:
            out[key] = strict_float(value)
        except (ValueError, OverflowError):
            raise BadRequestError(
                f"[{key}] of a range in [range] aggregation [{name}] must be a number, "
                f"got {value!r}"
            ) from None
    return out


def _bound(value: Any) -> float | None:
    return None if value is None else strict_float(value)


def _requested_ranges(ranges: list[dict[str, Any]]) -> dict[Bounds, dict[str, Any]]:
    """Each requested range by its (from, to) bounds; the first one wins a tie, as before."""
    table: dict[Bounds, dict[str, Any]] = {}
    for spec in ranges:
        table.setdefault((_bound(spec.get("from")), _bound(spec.get("to"))), spec)
    return table


def _label_range(bucket: dict[str, Any], spec: dict[str, Any]) -> None:
    """Label a bucket with its requested range's key, or ES's `from-to` key."""
    if spec.get("key") is not None:
        bucket["key"] = spec["key"]
        return
    lo, hi = bucket.get("from"), bucket.get("to")
    left = "*" if lo is None else repr(float(lo))
    right = "*" if hi is None else repr(float(hi))
    bucket["key"] = f"{left}-{right}"
