"""Helpers of the cluster backends: error translation, body shapes, index names.

The exception raised for refused bulk items lives here too (`BulkWriteError`).
"""

from __future__ import annotations

import re
from typing import Any

from shoprank.errors import (
    BackendUnavailableError,
    BadRequestError,
    IndexNotFoundError,
    ShoprankError,
)
from shoprank.indexing.mapping import IMAGE_VECTOR_FIELD, TEXT_VECTOR_FIELD

VECTOR_FIELDS = frozenset({TEXT_VECTOR_FIELD, IMAGE_VECTOR_FIELD})
_INDEX_NAME = re.compile(r"^[a-z0-9][a-z0-9_.\-]{0,200}$")


class BulkWriteError(ShoprankError):
    """Some items of a bulk write were refused by the cluster; the rest were written."""

    status = 400
    es_type = "bulk_write_exception"


def check_index_name(name: str) -> str:
    if not _INDEX_NAME.match(name):
        raise BadRequestError(
            f"invalid index name [{name}]: use lowercase letters, digits, '-', '_' or '.'"
        )
    return name


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def unavailable(url: str, exc: Exception) -> BackendUnavailableError:
    return BackendUnavailableError(
        f"the search cluster at {url} cannot be reached ({type(exc).__name__}); "
        "check SHOPRANK_BACKEND_URL and that the cluster is up"
    )


def without_vectors(source: Any) -> Any:
    """A `_source` filter leaving out shoprank's vector fields unless asked for by name:
    the embedded backend never returns them, and 384 floats per hit is not what a shop
    frontend wants (Elasticsearch 9.2+ leaves them out by default too)."""
    excluded = sorted(VECTOR_FIELDS)
    if source is True or source is None:
        return {"excludes": excluded}
    if isinstance(source, dict) and "includes" not in source and "include" not in source:
        current = source.get("excludes", [])
        current = [current] if isinstance(current, str) else list(current)
        return {**source, "excludes": current + [f for f in excluded if f not in current]}
    return source  # False, or an explicit list of fields


def long_agg_names(aggs: Any) -> Any:
    """Sub-aggregations under `aggregations` (the engines read `aggs` as the same thing)."""
    if not isinstance(aggs, dict):
        return aggs
    out: dict[str, Any] = {}
    for name, spec in aggs.items():
        if isinstance(spec, dict) and ("aggs" in spec or "aggregations" in spec):
            sub = spec.get("aggregations", spec.get("aggs"))
            spec = {k: v for k, v in spec.items() if k not in ("aggs", "aggregations")}
            spec["aggregations"] = long_agg_names(sub)
        out[name] = spec
    return out


def walk_properties(props: dict[str, Any]) -> list[dict[str, Any]]:
    """Every field spec of a mapping's `properties`, sub-objects included (mutable)."""
    out = []
    for spec in props.values():
        if isinstance(spec, dict):
            out.append(spec)
            out += walk_properties(spec.get("properties", {}))
    return out


def cluster_error(status: int, body: Any) -> ShoprankError:
    """A cluster's error response as shoprank's error, keeping its type and reason."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        es_type = str(error.get("type", "exception"))
        reason = str(error.get("reason", error))
    else:
        es_type, reason = "exception", str(error or body)
    if es_type == "index_not_found_exception":
        return IndexNotFoundError(str(error.get("index", "?") if isinstance(error, dict) else "?"))
    if status in (401, 403):
        return BackendUnavailableError(
            f"the search cluster refused shoprank's credentials ({status}: {reason}); "
            "check SHOPRANK_BACKEND_API_KEY or SHOPRANK_BACKEND_USERNAME/PASSWORD"
        )
    if status == 429 or status >= 500:
        return BackendUnavailableError(f"the search cluster is overloaded or failing ({reason})")
    exc = (BadRequestError if status == 400 else ShoprankError)(
        f"the search cluster refused the request: {reason}", es_type=es_type
    )
    exc.status = status
    return exc


def knn_specs(body: dict[str, Any]) -> list[dict[str, Any]]:
    specs = _as_list(body.get("knn"))
    for spec in specs:
        if not isinstance(spec, dict):
            raise BadRequestError("[knn] must be an object or a list of objects")
    return specs
