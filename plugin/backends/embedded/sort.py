"""ES `sort` on the embedded backend: parsing the spec and ordering scored hits by it.

Sorting works on `_score`, `_doc` and numeric or boolean fields (tantivy fast fields);
`missing` takes `_last`, `_first` or a number, as in Elasticsearch. Past the request's
deadline only the hits whose sort keys were computed are ordered and returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import tantivy

from shoprank.errors import BadRequestError, UnsupportedQueryError
from shoprank.plugin.bounds import Deadline

from .generation import Generation
from .values import as_list, float_param

Scored = list[tuple[float, tantivy.DocAddress]]
CHECK_EVERY = 256  # rows between two looks at the deadline


@dataclass(frozen=True)
class SortKey:
    field: str
    order: str
    missing: str


def parse_sort(spec: Any) -> list[SortKey]:
    """The sort keys of a `sort` value (a string, an object or a list of them)."""
    keys: list[SortKey] = []
    for item in as_list(spec):
        if isinstance(item, str):
            field, opts = item, cast(dict[str, Any], {})
        elif isinstance(item, dict) and len(item) == 1:
            ((field, opts),) = item.items()
            if isinstance(opts, str):
                opts = {"order": opts}
            if not isinstance(opts, dict):
                raise BadRequestError(f"malformed sort on [{field}]")
        else:
            raise BadRequestError(f"malformed [sort] entry {item!r}")
        default = "desc" if field == "_score" else "asc"
        order = str(opts.get("order", default)).lower()
        if order not in ("asc", "desc"):
            raise BadRequestError(f"sort order must be asc or desc, got [{order}]")
        unknown = set(opts) - {"order", "missing", "unmapped_type"}
        if unknown:
            raise UnsupportedQueryError(f"sort option(s) {sorted(unknown)} are not supported")
        keys.append(SortKey(field, order, str(opts.get("missing", "_last"))))
    return keys


def by_score_only(sort: list[SortKey]) -> bool:
    """Whether `sort` is the default order (score, best first)."""
    return not sort or (len(sort) == 1 and sort[0].field == "_score" and sort[0].order == "desc")


def sort_scored(
    gen: Generation,
    searcher: tantivy.Searcher,
    scored: Scored,
    sort: list[SortKey],
    *,
    deadline: Deadline | None = None,
) -> tuple[Scored, list[list[Any]]]:
    """`scored` in `sort` order, with each hit's sort values (the ES `sort` array); past
    `deadline`, the hits reached so far in that order."""
    columns: list[list[Any]] = []
    addresses = [a for _, a in scored]
    for key in sort:
        if key.field == "_score":
            columns.append([s for s, _ in scored])
            continue
        if key.field == "_doc":
            columns.append([(a.segment_ord, a.doc) for a in addresses])
            continue
        info = gen.schema.field(key.field)
        if info.kind not in ("number", "boolean"):
            raise UnsupportedQueryError(
                f"sorting on [{key.field}] ({info.kind}) is not supported by the embedded "
                "backend; sort on a numeric field or _score",
                construct="sort",
            )
        columns.append(searcher.fast_field_values(info.tantivy, addresses))

    def row_key(i: int) -> tuple[Any, ...]:
        parts: list[Any] = []
        for key, column in zip(sort, columns, strict=True):
            value = column[i]
            missing = value is None
            if isinstance(value, tuple):
                value = value[0] * 10**9 + value[1]
            if missing and key.missing not in ("_last", "_first"):
                value, missing = float_param(key.missing, "sort.missing"), False
            number = 0.0 if missing else float(value)
            if key.order == "desc":
                number = -number
            parts.append((missing if key.missing != "_first" else not missing, number))
        return tuple(parts)

    keys: list[tuple[Any, ...]] = []
    for i in range(len(scored)):
        if deadline is not None and i % CHECK_EVERY == 0 and deadline.passed():
            break
        keys.append(row_key(i))
    rows = sorted(range(len(keys)), key=keys.__getitem__)
    values = [[_plain(column[i]) for column in columns] for i in rows]
    return [scored[i] for i in rows], values


def _plain(value: Any) -> Any:
    """A sort value as ES shows it (`_doc` shows the document number)."""
    if isinstance(value, tuple):
        return value[1]
    return value
