"""`collapse` on the embedded backend: the first hit per value of a keyword or numeric
field, in sort order, with `inner_hits` (each a search of the query within one group).
`hits.total` keeps counting every match, as in ES."""

from __future__ import annotations

from typing import Any

import tantivy

from shoprank.errors import BadRequestError, UnsupportedQueryError

from .generation import Generation
from .sort import Scored
from .sort_columns import keyword_values

COLLAPSE_KEYS = {"field", "inner_hits", "max_concurrent_group_searches"}
INNER_KEYS = {"name", "size", "from", "sort", "_source", "fields", "docvalue_fields", "version"}


def parse_collapse(spec: Any, gen: Generation) -> tuple[str, list[dict[str, Any]]]:
    """The collapse field and its `inner_hits` specs (each with a name)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("field"), str):
        raise BadRequestError("[collapse] requires a [field]")
    unknown = set(spec) - COLLAPSE_KEYS
    if unknown:
        raise UnsupportedQueryError(
            f"[collapse] option(s) {sorted(unknown)} are not supported",
            construct=sorted(unknown)[0],
        )
    field = spec["field"]
    info = gen.schema.fields.get(field)
    if info is None or str(info.kind) not in ("keyword", "number", "date"):
        raise BadRequestError(
            f"collapse field [{field}] must be a mapped keyword or numeric field",
            es_type="illegal_argument_exception",
        )
    inner = spec.get("inner_hits")
    inners = inner if isinstance(inner, list) else ([inner] if inner is not None else [])
    out = []
    for item in inners:
        if not isinstance(item, dict):
            raise BadRequestError("[inner_hits] must be an object")
        bad = set(item) - INNER_KEYS
        if bad:
            raise UnsupportedQueryError(
                f"[inner_hits] option(s) {sorted(bad)} are not supported",
                construct=sorted(bad)[0],
            )
        if "name" not in item and len(inners) > 1:
            raise BadRequestError("[inner_hits] need a [name] each when there are several")
        out.append({**item, "name": str(item.get("name", field))})
    return field, out


def group_values(
    gen: Generation, searcher: tantivy.Searcher, scored: Scored, field: str
) -> list[Any]:
    """Each row's collapse value (None when the document has none)."""
    info = gen.schema.fields[field]
    addresses = [a for _, a in scored]
    if info.kind == "keyword":
        values = keyword_values(gen, searcher, info.tantivy)
        keys = searcher.fast_field_values("_key", addresses)
        out: list[Any] = []
        for key in keys:
            pos = values.positions.get(int(key)) if key is not None else None
            if pos is not None and pos[0] != pos[1]:
                raise BadRequestError(
                    f"failed to collapse, the collapse field [{field}] must be single valued",
                    es_type="illegal_state_exception",
                )
            out.append(None if pos is None else values.terms[pos[0]])
        return out
    raw = searcher.fast_field_values(info.tantivy, addresses)
    return [None if v is None else (int(v) if float(v).is_integer() else v) for v in raw]


def first_per_group(rows: list[int], values: list[Any]) -> list[int]:
    """The first row of each group, in order."""
    seen: set[Any] = set()
    out = []
    for i in rows:
        value = values[i]
        if value in seen:
            continue
        seen.add(value)
        out.append(i)
    return out


def group_filter(field: str, value: Any) -> dict[str, Any]:
    """The query clause selecting one group (documents without the field for None)."""
    if value is None:
        return {"bool": {"must_not": [{"exists": {"field": field}}]}}
    return {"term": {field: value}}
