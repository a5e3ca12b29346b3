"""ES aggregations on the embedded backend: translated to tantivy's (ES-modelled)
aggregation request, and the result reshaped to exactly what ES returns.

Supported: terms, range, histogram, stats, min, max, avg, sum, value_count, with nested
sub-aggregations under bucket aggregations.
"""

from __future__ import annotations

from typing import Any

import tantivy

from shoprank.errors import BadRequestError, UnsupportedQueryError

from .schema import IndexSchema

BUCKET = ("terms", "range", "histogram")
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
            request = {
                "field": field,
                "ranges": [
                    {
                        k: (float(v) if k in ("from", "to") else v)
                        for k, v in r.items()
                        if k in ("from", "to", "key") and v is not None
                    }
                    for r in ranges
                ],
            }
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
        self, searcher: tantivy.Searcher, query: tantivy.Query, aggs: dict[str, Any]
    ) -> dict[str, Any]:
        request = self.compile(aggs)
        try:
            raw = searcher.aggregate(query, request)
        except ValueError as exc:
            raise BadRequestError(f"aggregation failed: {exc}") from None
        return self.reshape(aggs, raw)

    def reshape(self, aggs: dict[str, Any], raw: dict[str, Any]) -> dict[str, Any]:
        """Turn tantivy's result into ES's response shape, recursively."""
        out: dict[str, Any] = {}
        for name, spec in aggs.items():
            kind, body = _agg_type(name, spec)
            result = raw.get(name, {})
            sub = _sub_aggs(spec) or {}
            if kind in METRIC:
                out[name] = self._metric(kind, result)
                continue
            buckets = []
            for bucket in result.get("buckets", []):
                shaped = self._bucket(kind, bucket)
                shaped.update(self.reshape(sub, bucket) if sub else {})
                buckets.append(shaped)
            if kind == "terms":
                out[name] = {
                    "doc_count_error_upper_bound": int(
                        result.get("doc_count_error_upper_bound", 0)
                    ),
                    "sum_other_doc_count": int(result.get("sum_other_doc_count", 0)),
                    "buckets": buckets,
                }
            elif kind == "range":
                # tantivy adds buckets for the gaps between requested ranges; ES does not.
                requested = [b for b in buckets if self._requested(b, body["ranges"])]
                out[name] = {"buckets": [self._range_key(b, body["ranges"]) for b in requested]}
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
    def _requested(bucket: dict[str, Any], ranges: list[dict[str, Any]]) -> bool:
        def same(a: Any, b: Any) -> bool:
            if a is None or b is None:
                return a is None and b is None
            return float(a) == float(b)

        return any(
            same(r.get("from"), bucket.get("from")) and same(r.get("to"), bucket.get("to"))
            for r in ranges
        )

    @staticmethod
    def _range_key(bucket: dict[str, Any], ranges: list[dict[str, Any]]) -> dict[str, Any]:
        """Label a bucket with the key of the requested range that has its bounds."""
        lo, hi = bucket.get("from"), bucket.get("to")

        def same(a: Any, b: Any) -> bool:
            return (a is None and b is None) or (
                a is not None and b is not None and float(a) == float(b)
            )

        spec = next((r for r in ranges if same(r.get("from"), lo) and same(r.get("to"), hi)), {})
        if spec.get("key") is not None:
            bucket["key"] = spec["key"]
        else:
            left = "*" if lo is None else repr(float(lo))
            right = "*" if hi is None else repr(float(hi))
            bucket["key"] = f"{left}-{right}"
        return bucket

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
