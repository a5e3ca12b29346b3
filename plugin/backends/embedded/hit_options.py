"""Per-hit options of an embedded `_search`: `fields`, `docvalue_fields`, `explain`,
`version`, `seq_no_primary_term`, `stored_fields`, and the `profile` section.

`fields` reads `_source` as ES's fields API does (values as lists, dates formatted);
`docvalue_fields` answers for aggregatable fields only (keyword values sorted and unique,
as doc values are). `explain` gives each hit an honest one-level `_explanation`: its value
is the hit's score and its description names the query; shoprank does not break the score
down per clause as Lucene does. `profile` reports shoprank's own stage timings (query and
sort, fetch, aggregations) in ES's response shape, not Lucene's per-clause breakdown.
"""

from __future__ import annotations

import fnmatch
from typing import Any

import orjson

from shoprank.errors import BadRequestError, UnsupportedQueryError

from .generation import Generation
from .sort_columns import source_values

DATE_FORMATS = {"strict_date_optional_time", "date_optional_time", "strict_date_time", "date_time"}
AGGREGATABLE = ("keyword", "number", "boolean", "date")
INTEGER_TYPES = ("long", "integer", "short", "byte", "unsigned_long")


def _specs(value: Any, what: str) -> list[tuple[str, str | None]]:
    if not isinstance(value, list):
        value = [value]
    out: list[tuple[str, str | None]] = []
    for item in value:
        if isinstance(item, str):
            out.append((item, None))
        elif isinstance(item, dict) and isinstance(item.get("field"), str):
            unknown = set(item) - {"field", "format"}
            if unknown:
                raise UnsupportedQueryError(
                    f"[{what}] option(s) {sorted(unknown)} are not supported",
                    construct=sorted(unknown)[0],
                )
            out.append((item["field"], item.get("format")))
        else:
            raise BadRequestError(f"[{what}] entries must be field names or {{field, format}}")
    return out


def _leaf_paths(source: Any, prefix: str = "") -> list[str]:
    if not isinstance(source, dict):
        return [prefix] if prefix else []
    out: list[str] = []
    for key, value in source.items():
        path = f"{prefix}.{key}" if prefix else key
        out += _leaf_paths(value, path) if isinstance(value, dict) else [path]
    return out


def _es_type(gen: Generation, path: str) -> str | None:
    node: Any = gen.schema.mapping.get("properties", {})
    parts = path.split(".")
    spec: Any = None
    for i, part in enumerate(parts):
        spec = node.get(part) if isinstance(node, dict) else None
        if spec is None:
            return None
        if i < len(parts) - 1:
            node = spec.get("properties") or spec.get("fields") or {}
    return str(spec.get("type", "object")) if isinstance(spec, dict) else None


def _format(gen: Generation, path: str, value: Any, fmt: str | None) -> Any:
    es_type = _es_type(gen, path)
    if es_type == "date":
        from .dates import format_date_ms, parse_date_ms

        ms = parse_date_ms(value, what=f"[{path}]")
        if fmt in ("epoch_millis",):
            return str(int(ms))
        if fmt in ("epoch_second",):
            return str(int(ms // 1000))
        if fmt is None or fmt in DATE_FORMATS:
            return format_date_ms(ms)
        raise UnsupportedQueryError(
            f"date format [{fmt}] is not supported; use epoch_millis, epoch_second or "
            "strict_date_optional_time",
            construct="format",
        )
    if fmt is not None:
        raise UnsupportedQueryError(f"[format] on [{path}] ({es_type}) is not supported")
    if es_type in INTEGER_TYPES and isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    return value


def _matching(
    gen: Generation, source: dict[str, Any], pattern: str, *, docvalues: bool
) -> list[str]:
    mapped = [p for p, f in gen.schema.fields.items() if f.kind != "vector"]
    if not any(c in pattern for c in "*?"):
        return [pattern]
    names = set(mapped) | set(_leaf_paths(source))
    return sorted(n for n in names if fnmatch.fnmatchcase(n, pattern))


def add_fields(
    gen: Generation, hit: dict[str, Any], source: dict[str, Any], body: dict[str, Any]
) -> None:
    """`hit["fields"]` for the body's `fields` and `docvalue_fields`."""
    out: dict[str, list[Any]] = dict(hit.get("fields", {}))
    for pattern, fmt in _specs(body.get("fields", []), "fields"):
        for path in _matching(gen, source, pattern, docvalues=False):
            info = gen.schema.fields.get(path)
            if info is not None and info.kind == "vector":
                continue
            values = [_format(gen, path, v, fmt) for v in source_values(source, path)]
            if values:
                out[path] = values
    for pattern, fmt in _specs(body.get("docvalue_fields", []), "docvalue_fields"):
        for path in _matching(gen, source, pattern, docvalues=True):
            info = gen.schema.fields.get(path)
            kind = info.kind if info is not None else None
            if kind is not None and str(kind) not in AGGREGATABLE:
                if "*" in pattern or "?" in pattern:
                    continue
                raise BadRequestError(
                    f"Can't load fielddata on [{path}] because fielddata is unsupported on "
                    f"fields of type [{_es_type(gen, path)}]. Use doc values instead.",
                    es_type="illegal_argument_exception",
                )
            raw = source_values(source, path)
            if str(kind) == "date":  # doc values are sorted
                from .dates import parse_date_ms

                raw = sorted(raw, key=lambda v: parse_date_ms(v, what=f"[{path}]"))
            values = [_format(gen, path, v, fmt) for v in raw]
            if str(kind) == "keyword":
                values = sorted({str(v) for v in values})
            elif values and all(isinstance(v, int | float) for v in values):
                values = sorted(values)
            if values:
                out[path] = values
    if out:
        hit["fields"] = out


def add_meta(gen: Generation, hit: dict[str, Any], body: dict[str, Any]) -> None:
    """`_version`, `_seq_no`/`_primary_term` and `_explanation`, as the body asks."""
    if body.get("version"):
        hit["_version"] = 1
    if body.get("seq_no_primary_term"):
        hit["_seq_no"], hit["_primary_term"] = 0, 1
    if body.get("explain"):
        hit["_shard"] = f"[{gen.name}][0]"
        hit["_node"] = "shoprank"
        query = body.get("query", {"match_all": {}})
        text = orjson.dumps(query).decode()
        hit["_explanation"] = {
            "value": hit.get("_score") or 0.0,
            "description": f"shoprank score of {text[:500]}",
            "details": [],
        }


def wants_source(body: dict[str, Any]) -> Any:
    """The `_source` spec, after `stored_fields` (which leaves `_source` out unless asked)."""
    stored = body.get("stored_fields")
    if stored is not None and "_source" not in body:
        names = stored if isinstance(stored, list) else [stored]
        return "_source" in names
    return body.get("_source")


def profile_section(
    gen: Generation, body: dict[str, Any], timings: dict[str, float]
) -> dict[str, Any]:
    """ES's `profile` shape with shoprank's stage timings (nanoseconds)."""

    def ns(name: str) -> int:
        return int(timings.get(name, 0.0) * 1e6)

    query = body.get("query", {"match_all": {}})
    qtype = next(iter(query)) if isinstance(query, dict) and query else "match_all"
    shard: dict[str, Any] = {
        "id": f"[shoprank][{gen.name}][0]",
        "node_id": "shoprank",
        "shard_id": 0,
        "index": gen.name,
        "cluster": "(local)",
        "searches": [
            {
                "query": [
                    {
                        "type": str(qtype),
                        "description": orjson.dumps(query).decode()[:1000],
                        "time_in_nanos": ns("query"),
                        "breakdown": {},
                    }
                ],
                "rewrite_time": 0,
                "collector": [
                    {
                        "name": "shoprank_sort",
                        "reason": "search_top_hits",
                        "time_in_nanos": ns("query"),
                    }
                ],
            }
        ],
        "aggregations": [],
        "fetch": {
            "type": "fetch",
            "description": "",
            "time_in_nanos": ns("fetch"),
            "breakdown": {},
        },
    }
    if "aggs" in timings:
        shard["aggregations"] = [
            {
                "type": "shoprank",
                "description": "aggregations",
                "time_in_nanos": ns("aggs"),
                "breakdown": {},
            }
        ]
    return {"shards": [shard]}
