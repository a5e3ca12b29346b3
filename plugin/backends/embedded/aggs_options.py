"""What each aggregation type accepts on the embedded backend; anything else is a 400 naming
the option (never silently ignored), checked for the whole tree before anything runs."""

from __future__ import annotations

from typing import Any

from shoprank.errors import BadRequestError, UnsupportedQueryError

METRIC = ("stats", "min", "max", "avg", "sum", "value_count", "cardinality", "top_hits")
BUCKET = (
    "terms",
    "range",
    "histogram",
    "date_histogram",
    "filter",
    "filters",
    "missing",
    "composite",
)
SUPPORTED = BUCKET + METRIC

# Options that change nothing on one node (execution hints, shard-level tuning).
_HINTS = {"execution_hint", "collect_mode", "shard_size", "shard_min_doc_count"}
OPTIONS: dict[str, set[str]] = {
    "terms": {"field", "size", "min_doc_count", "order", "include", "exclude", "missing"} | _HINTS,
    "range": {"field", "ranges", "keyed"},
    "histogram": {"field", "interval", "offset", "min_doc_count", "extended_bounds"},
    "date_histogram": {
        "field",
        "calendar_interval",
        "fixed_interval",
        "format",
        "min_doc_count",
        "extended_bounds",
        "offset",
        "time_zone",
    },
    "missing": {"field"},
    "filters": {"filters", "other_bucket", "other_bucket_key"},
    "composite": {"size", "sources", "after"},
    "cardinality": {"field", "precision_threshold"},
    "top_hits": {"size", "from", "sort", "_source"},
    **{kind: {"field"} for kind in ("stats", "min", "max", "avg", "sum", "value_count")},
}
COMPOSITE_SOURCES: dict[str, set[str]] = {
    "terms": {"field", "order", "missing_bucket"},
    "histogram": {"field", "interval", "order", "missing_bucket"},
}


_NOT_TYPES = frozenset(("aggs", "aggregations", "meta"))


def sub_aggs(spec: dict[str, Any]) -> dict[str, Any]:
    sub = spec.get("aggs", spec.get("aggregations"))
    if sub is not None and not isinstance(sub, dict):
        raise BadRequestError("[aggs] must be an object of named aggregations")
    return sub or {}


def agg_type(name: str, spec: Any) -> tuple[str, dict[str, Any]]:
    """The one type of aggregation `name` and its body."""
    if not isinstance(spec, dict):
        raise BadRequestError(f"aggregation [{name}] must be an object")
    kinds = [k for k in spec if k not in _NOT_TYPES]
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


def check_tree(aggs: Any) -> None:
    """400 for an unknown type or option anywhere in the tree, or sub-aggregations under a
    metric."""
    if not isinstance(aggs, dict):
        raise BadRequestError("[aggs] must be an object of named aggregations")
    for name, spec in aggs.items():
        kind, body = agg_type(name, spec)
        if kind != "filter":
            check_options(kind, name, body)
        if kind == "composite":
            _check_sources(name, body.get("sources"))
        sub = sub_aggs(spec)
        if sub and kind in METRIC:
            raise BadRequestError(
                f"Aggregator [{name}] of type [{kind}] cannot accept sub-aggregations",
                es_type="aggregation_initialization_exception",
            )
        check_tree(sub)


def check_options(kind: str, name: str, body: dict[str, Any]) -> None:
    unknown = sorted(set(body) - OPTIONS[kind])
    if unknown:
        raise UnsupportedQueryError(
            f"[{kind}] aggregation [{name}] option [{unknown[0]}] is not supported by "
            f"shoprank's embedded backend; supported: {', '.join(sorted(OPTIONS[kind]))}",
            construct=f"{kind}.{unknown[0]}",
        )


def _check_sources(name: str, sources: Any) -> None:
    if not isinstance(sources, list) or not sources:
        raise BadRequestError(f"[composite] aggregation [{name}] requires a list of [sources]")
    for source in sources:
        if not isinstance(source, dict) or len(source) != 1:
            raise BadRequestError(f"each source of composite [{name}] is one named object")
        ((label, spec),) = source.items()
        if not isinstance(spec, dict) or len(spec) != 1:
            raise BadRequestError(f"source [{label}] of composite [{name}] has one type")
        ((kind, body),) = spec.items()
        if kind not in COMPOSITE_SOURCES:
            raise UnsupportedQueryError(
                f"composite source type [{kind}] (in [{name}]) is not supported; "
                "supported: terms, histogram",
                construct=f"composite.{kind}",
            )
        if not isinstance(body, dict):
            raise BadRequestError(f"source [{label}] of composite [{name}] must be an object")
        unknown = sorted(set(body) - COMPOSITE_SOURCES[kind])
        if unknown:
            raise UnsupportedQueryError(
                f"composite [{name}] source [{label}] option [{unknown[0]}] is not supported",
                construct=f"composite.{kind}.{unknown[0]}",
            )
