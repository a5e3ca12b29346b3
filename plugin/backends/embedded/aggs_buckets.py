"""Bucket aggregations evaluated over exact per-value counts: terms, filter, filters,
missing and composite. Each bucket's sub-aggregations run on the request's matches AND the
bucket's condition."""

from __future__ import annotations

import math
from operator import itemgetter
from typing import Any

import tantivy

from shoprank.errors import BadRequestError

from .aggs_context import AggContext
from .aggs_intervals import Interval
from .aggs_regex import term_matcher
from .dates import format_date_ms
from .dsl_range import range_bounds
from .schema import FieldInfo


def _shown(info: FieldInfo, key: Any) -> dict[str, Any]:
    if info.kind == "boolean" or isinstance(key, bool):
        return {"key": 1 if key else 0, "key_as_string": "true" if key else "false"}
    if info.kind == "date":
        return {"key": int(key), "key_as_string": format_date_ms(float(key))}
    return {"key": key}


def terms_agg(
    ctx: AggContext, name: str, body: dict[str, Any], sub: dict[str, Any], query: tantivy.Query
) -> dict[str, Any]:
    info = ctx.field("terms", name, body)
    size = _int(body.get("size", 10), "size", name)
    if size < 1:
        raise BadRequestError(f"[size] must be greater than 0. Found [{size}] in [{name}]")
    min_doc_count = _int(body.get("min_doc_count", 1), "min_doc_count", name)
    counts = dict(ctx.value_counts(info, query))
    if min_doc_count == 0:
        for key, _ in ctx.value_counts(info, tantivy.Query.all_query()):
            counts.setdefault(key, 0)
    if "include" in body:
        keep = term_matcher(body["include"], what="include")
        counts = {k: n for k, n in counts.items() if keep(k)}
    if "exclude" in body:
        drop = term_matcher(body["exclude"], what="exclude")
        counts = {k: n for k, n in counts.items() if not drop(k)}
    conditions: dict[Any, tantivy.Query] = {}
    if "missing" in body:
        missing = body["missing"]
        absent = ctx.minus(query, ctx.exists(info))
        counts[missing] = counts.get(missing, 0) + ctx.count(absent)
        conditions[missing] = ctx.any_of([ctx.minus(tantivy.Query.all_query(), ctx.exists(info))])
    eligible = list(counts.items())
    if min(counts.values(), default=min_doc_count) < min_doc_count:  # else every one counts
        eligible = [(k, n) for k, n in eligible if n >= min_doc_count]
    order = body.get("order")
    chosen: list[tuple[Any, int, dict[str, Any] | None]]
    if order is None or order == {"_count": "desc"} or order == [{"_count": "desc"}]:
        # A keyword field's values are strings (a `missing` key may not be).
        ranked = _by_count(eligible, strings=info.kind == "keyword" and "missing" not in body)
        chosen = [(k, n, None) for k, n in ranked[:size]]
        other = sum(map(itemgetter(1), ranked[size:]))
    else:
        ordered = _order_terms(ctx, name, order, eligible, sub, info, query, conditions)
        chosen = ordered[:size]
        other = sum(n for _, n, _ in ordered[size:])
    deadline = ctx.deadline
    shown = info.kind in ("boolean", "date")
    if not sub and deadline is None and not shown:  # the plain facet: its buckets at once
        return {
            "doc_count_error_upper_bound": 0,
            "sum_other_doc_count": other,
            "buckets": [
                {**_shown(info, k), "doc_count": n}
                if isinstance(k, bool)
                else {"key": k, "doc_count": n}
                for k, n, _ in chosen
            ],
        }
    buckets = []
    for key, count, subs in chosen:
        if deadline is not None and deadline.passed():
            break
        if shown or isinstance(key, bool):
            bucket = {**_shown(info, key), "doc_count": count}
        else:
            bucket = {"key": key, "doc_count": count}
        if sub:
            if subs is None:
                subs = ctx.evaluate(sub, ctx.both(query, _condition(ctx, info, key, conditions)))
            bucket.update(subs)
        buckets.append(bucket)
    return {
        "doc_count_error_upper_bound": 0,
        "sum_other_doc_count": other,
        "buckets": buckets,
    }


def _by_count(eligible: list[tuple[Any, int]], *, strings: bool = False) -> list[tuple[Any, int]]:
    """ES's default terms order: most documents first, ties by key ascending (two stable
    sorts on C keys: by key, then by count descending). `strings`: every key is a string."""
    if strings or all(isinstance(k, str) for k, _ in eligible):
        ranked = sorted(eligible, key=itemgetter(0))
    else:
        ranked = sorted(eligible, key=lambda r: _sortable(r[0]))
    ranked.sort(key=itemgetter(1), reverse=True)
    return ranked


def _condition(
    ctx: AggContext, info: FieldInfo, key: Any, conditions: dict[Any, tantivy.Query]
) -> tantivy.Query:
    exact = ctx.equals(info, key)
    extra = conditions.get(key)
    return exact if extra is None else ctx.any_of([exact, extra])


def _order_terms(
    ctx: AggContext,
    name: str,
    order: Any,
    eligible: list[tuple[Any, int]],
    sub: dict[str, Any],
    info: FieldInfo,
    query: tantivy.Query,
    conditions: dict[Any, tantivy.Query],
) -> list[tuple[Any, int, dict[str, Any] | None]]:
    keys = order if isinstance(order, list) else [order] if order is not None else []
    if not keys or keys == [{"_count": "desc"}]:
        return [(k, n, None) for k, n in _by_count(eligible)]
    rows: list[tuple[Any, int, dict[str, Any] | None]] = [(k, n, None) for k, n in eligible]
    rows.sort(key=lambda r: _sortable(r[0]))  # ties: key ascending
    for spec in reversed(keys):
        if not isinstance(spec, dict) or len(spec) != 1:
            raise BadRequestError(f"[order] of terms aggregation [{name}] is malformed")
        ((path, direction),) = spec.items()
        if direction not in ("asc", "desc"):
            raise BadRequestError(f"[order] direction of [{name}] must be asc or desc")
        reverse = direction == "desc"
        if path == "_count":
            rows.sort(key=lambda r: r[1], reverse=reverse)
        elif path in ("_key", "_term"):
            rows.sort(key=lambda r: _sortable(r[0]), reverse=reverse)
        else:
            agg, _, stat = str(path).partition(".")
            if agg not in sub:
                raise BadRequestError(
                    f"Invalid aggregation order path [{path}] of [{name}]: no sub-aggregation "
                    f"[{agg}]",
                    es_type="aggregation_execution_exception",
                )
            rows = [
                (
                    k,
                    n,
                    s
                    if s is not None
                    else ctx.evaluate(sub, ctx.both(query, _condition(ctx, info, k, conditions))),
                )
                for k, n, s in rows
            ]
            rows.sort(key=lambda r: _metric_of(r[2], agg, stat, path), reverse=reverse)
    return rows


def _metric_of(subs: dict[str, Any] | None, agg: str, stat: str, path: str) -> float:
    result = (subs or {}).get(agg, {})
    if "doc_count" in result and not stat:
        return float(result["doc_count"])
    value = result.get(stat or "value")
    if value is None and stat == "" and "value" not in result:
        raise BadRequestError(f"order path [{path}] does not name a single-value metric")
    return float("-inf") if value is None else float(value)


def _sortable(key: Any) -> tuple[int, Any]:
    return (0, float(key)) if isinstance(key, int | float) else (1, str(key))


def filter_agg(
    ctx: AggContext, name: str, body: dict[str, Any], sub: dict[str, Any], query: tantivy.Query
) -> dict[str, Any]:
    # Search UI wraps every facet in a `filter`, `{"bool": {"must": []}}` when no other facet
    # is selected: that one is the query itself (its count and values are shared).
    narrowed = query if matches_everything(body) else ctx.both(query, ctx.compile(body))
    return {"doc_count": ctx.count(narrowed), **(ctx.evaluate(sub, narrowed) if sub else {})}


def matches_everything(dsl: Any) -> bool:
    """Whether an ES query matches every document as written (`match_all` without a boost,
    a `bool` whose clauses all do, with no `must_not` and no `should` to satisfy)."""
    if not isinstance(dsl, dict) or len(dsl) != 1:
        return False
    ((kind, body),) = dsl.items()
    if kind == "match_all":
        return isinstance(body, dict) and body.keys() <= {"_name"}
    if kind != "bool" or not isinstance(body, dict) or not body.keys() <= _SCORELESS_BOOL:
        return False
    return all(matches_everything(c) for key in ("must", "filter") for c in _as_list(body.get(key)))


_SCORELESS_BOOL = frozenset(("must", "filter", "_name"))


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def filters_agg(
    ctx: AggContext, name: str, body: dict[str, Any], sub: dict[str, Any], query: tantivy.Query
) -> dict[str, Any]:
    filters = body.get("filters")
    other_key = body.get("other_bucket_key")
    other = bool(body.get("other_bucket", other_key is not None))
    if isinstance(filters, dict):
        named = list(filters.items())
    elif isinstance(filters, list):
        named = [(str(i), f) for i, f in enumerate(filters)]
    else:
        raise BadRequestError(f"[filters] aggregation [{name}] requires [filters]")
    ranged = None if sub or other else range_filters(ctx, [f for _, f in named])
    if ranged is not None:  # Search UI's range facets: counted in one or two native passes
        info, intervals = ranged
        counts = ctx.interval_counts(info, intervals, query)
        shaped_counts = [
            (label, {"doc_count": n}) for (label, _), n in zip(named, counts, strict=True)
        ]
        if isinstance(filters, dict):
            return {"buckets": dict(shaped_counts)}
        return {"buckets": [b for _, b in shaped_counts]}
    compiled = [(label, ctx.compile(f)) for label, f in named]
    if other:
        rest = ctx.minus(query, ctx.any_of([q for _, q in compiled]))
        compiled.append((str(other_key or "_other_"), rest))
    shaped = []
    for label, condition in compiled:
        narrowed = condition if other and label == compiled[-1][0] else ctx.both(query, condition)
        bucket = {"doc_count": ctx.count(narrowed)}
        if sub:
            bucket.update(ctx.evaluate(sub, narrowed))
        shaped.append((label, bucket))
    if isinstance(filters, dict):
        return {"buckets": dict(shaped)}
    return {"buckets": [b for _, b in shaped]}


def range_filters(ctx: AggContext, filters: list[Any]) -> tuple[FieldInfo, list[Interval]] | None:
    """When every filter is a `range` on one numeric or date field: that field and each
    filter as a half-open interval [from, to) (None: unbounded); else None."""
    paths = set()
    specs = []
    for f in filters:
        if not isinstance(f, dict) or set(f) != {"range"} or not isinstance(f["range"], dict):
            return None
        if len(f["range"]) != 1:
            return None
        ((path, spec),) = f["range"].items()
        if not isinstance(spec, dict) or "relation" in spec:
            return None
        paths.add(path)
        specs.append(spec)
    if len(paths) != 1:
        return None
    (path,) = paths
    info = ctx.schema.field(path)
    if info.kind not in ("number", "date"):
        return None
    intervals: list[Interval] = []
    for spec in specs:
        lo, hi, inc_lo, inc_hi = range_bounds(path, spec, str(info.kind))
        start = lo if lo is None or inc_lo else math.nextafter(lo, math.inf)
        end = hi if hi is None or not inc_hi else math.nextafter(hi, math.inf)
        intervals.append((start, end))
    return info, intervals


def missing_agg(
    ctx: AggContext, name: str, body: dict[str, Any], sub: dict[str, Any], query: tantivy.Query
) -> dict[str, Any]:
    info = ctx.field("missing", name, body)
    narrowed = ctx.minus(query, ctx.exists(info))
    return {"doc_count": ctx.count(narrowed), **(ctx.evaluate(sub, narrowed) if sub else {})}


def composite_agg(
    ctx: AggContext, name: str, body: dict[str, Any], sub: dict[str, Any], query: tantivy.Query
) -> dict[str, Any]:
    size = _int(body.get("size", 10), "size", name)
    sources = []
    for source in body["sources"]:
        ((label, spec),) = source.items()
        ((kind, options),) = spec.items()
        info = ctx.field(kind, name, options)
        if options.get("order", "asc") not in ("asc", "desc"):
            raise BadRequestError(f"[order] of composite source [{label}] must be asc or desc")
        sources.append((label, kind, options, info))
    after = body.get("after")
    if after is not None and (
        not isinstance(after, dict) or set(after) != {label for label, *_ in sources}
    ):
        raise BadRequestError(f"[after] of composite [{name}] must name every source")
    buckets: list[dict[str, Any]] = []

    def walk(level: int, narrowed: tantivy.Query, prefix: list[Any], past: bool) -> None:
        if len(buckets) >= size or ctx.passed():
            return
        label, kind, options, info = sources[level]
        values = _source_values(ctx, kind, options, info, narrowed)
        for value, count in values:
            if len(buckets) >= size:
                return
            here = past
            if after is not None and not past:
                cmp = _compare(value, after[label], options.get("order", "asc"))
                if cmp < 0 or (cmp == 0 and level == len(sources) - 1):
                    continue
                here = cmp > 0
            condition = _source_condition(ctx, kind, options, info, value)
            deeper = ctx.both(narrowed, condition)
            if level + 1 < len(sources):
                walk(level + 1, deeper, [*prefix, value], here)
                continue
            key = dict(zip([s[0] for s in sources], [*prefix, value], strict=True))
            bucket: dict[str, Any] = {"key": key, "doc_count": count}
            if sub:
                bucket.update(ctx.evaluate(sub, deeper))
            buckets.append(bucket)

    walk(0, query, [], False)
    out: dict[str, Any] = {"buckets": buckets}
    if buckets:
        out = {"after_key": dict(buckets[-1]["key"]), **out}
    return out


def _source_values(
    ctx: AggContext, kind: str, options: dict[str, Any], info: FieldInfo, query: tantivy.Query
) -> list[tuple[Any, int]]:
    if kind == "terms":
        values = ctx.value_counts(info, query)
        if info.kind == "boolean":
            values = [(1 if k else 0, n) for k, n in values]
    else:
        interval = float(options.get("interval", 0))
        if interval <= 0:
            raise BadRequestError("histogram source requires a positive [interval]")
        raw = ctx.native(query, {"h": {"histogram": {"field": info.tantivy, "interval": interval}}})
        values = [
            (float(b["key"]), int(b["doc_count"]))
            for b in raw.get("h", {}).get("buckets", [])
            if int(b["doc_count"]) > 0
        ]
    values.sort(key=lambda v: _sortable(v[0]), reverse=options.get("order", "asc") == "desc")
    if options.get("missing_bucket"):
        absent = ctx.count(ctx.minus(query, ctx.exists(info)))
        if absent:
            values.insert(0, (None, absent))
    return values


def _source_condition(
    ctx: AggContext, kind: str, options: dict[str, Any], info: FieldInfo, value: Any
) -> tantivy.Query:
    if value is None or kind == "terms":
        return ctx.equals(info, value)
    return ctx.between(info, value, value + float(options["interval"]))


def _compare(value: Any, after: Any, order: str) -> int:
    if value is None or after is None:
        raw = (value is not None) - (after is not None)
    else:
        left, right = _sortable(value), _sortable(after)
        raw = (left > right) - (left < right)
    return raw if order == "asc" else -raw


def _int(value: Any, what: str, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise BadRequestError(f"[{what}] of aggregation [{name}] must be an integer")
    return int(value)


__all__ = [
    "composite_agg",
    "filter_agg",
    "filters_agg",
    "missing_agg",
    "terms_agg",
]
