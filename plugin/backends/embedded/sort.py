"""ES `sort` on the embedded backend: parsing the spec, ordering scored hits by it, and
`search_after`.

Sorting works on `_score`, `_doc` / `_shard_doc` (a stable per-generation document order:
the document's internal key), `_id`, keyword fields (by value, A–Z; `hit.sort` shows the
string), numbers, booleans and dates (epoch milliseconds, as ES shows them). Options:
`order`, `missing` (`_last`, `_first` or a value), `unmapped_type` (a field the mapping
lacks sorts as all-missing instead of a 400), `mode` (`min`/`max` for any field; `sum`,
`avg`, `median` for numbers) and `format` on dates. Ties keep the per-generation document
order. Past the request's deadline only the hits whose sort keys were computed are
ordered and returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import tantivy

from shoprank.errors import BadRequestError, UnsupportedQueryError
from shoprank.plugin.bounds import Deadline

from .generation import Generation
from .sort_columns import (
    Column,
    KeywordValues,
    keyword_values,
    numbers_from_source,
    reduce_numbers,
    source_values,
)
from .values import as_list, float_param, source_of

Scored = list[tuple[float, tantivy.DocAddress]]
CHECK_EVERY = 256  # rows between two looks at the deadline
SORT_OPTIONS = {"order", "missing", "unmapped_type", "mode", "format"}
DOC_ORDER = ("_doc", "_shard_doc")


@dataclass(frozen=True)
class SortKey:
    field: str
    order: str
    missing: Any = "_last"
    mode: str | None = None
    unmapped_type: str | None = None
    format: str | None = None

    @property
    def desc(self) -> bool:
        return self.order == "desc"


def parse_sort(spec: Any) -> list[SortKey]:
    """The sort keys of a `sort` value (a string, an object or a list of them)."""
    keys: list[SortKey] = []
    for item in as_list(spec):
        if isinstance(item, str):
            field, opts = item, cast(dict[str, Any], {})
            if ":" in field:  # the URL form `brand:asc`
                field, _, order = field.partition(":")
                opts = {"order": order}
        elif isinstance(item, dict) and len(item) == 1:
            ((field, opts),) = item.items()
            if isinstance(opts, str):
                opts = {"order": opts}
            if not isinstance(opts, dict):
                raise BadRequestError(f"malformed sort on [{field}]")
        else:
            raise BadRequestError(f"malformed [sort] entry {item!r}")
        if field in ("_geo_distance", "_script"):
            raise UnsupportedQueryError(
                f"[{field}] sort is not supported by shoprank's embedded backend",
                construct=field,
            )
        default = "desc" if field == "_score" else "asc"
        order = str(opts.get("order", default)).lower()
        if order not in ("asc", "desc"):
            raise BadRequestError(f"sort order must be asc or desc, got [{order}]")
        unknown = set(opts) - SORT_OPTIONS
        if unknown:
            raise UnsupportedQueryError(
                f"sort option(s) {sorted(unknown)} are not supported; supported: "
                f"{', '.join(sorted(SORT_OPTIONS))}",
                construct=sorted(unknown)[0],
            )
        mode = opts.get("mode")
        if mode is not None and mode not in ("min", "max", "sum", "avg", "median"):
            raise BadRequestError(f"unknown sort mode [{mode}]; use min, max, sum, avg or median")
        keys.append(
            SortKey(
                field,
                order,
                opts.get("missing", "_last"),
                mode,
                opts.get("unmapped_type"),
                opts.get("format"),
            )
        )
    return keys


def by_score_only(sort: list[SortKey]) -> bool:
    """Whether `sort` is the default order (score, best first)."""
    return not sort or (len(sort) == 1 and sort[0].field == "_score" and sort[0].desc)


def with_tiebreaker(sort: list[SortKey]) -> list[SortKey]:
    """`sort` ending in `_shard_doc` (what a point in time adds implicitly, as in ES)."""
    if any(k.field in DOC_ORDER for k in sort):
        return sort
    base = sort or [SortKey("_score", "desc")]
    return [*base, SortKey("_shard_doc", "asc")]


def _column(
    gen: Generation,
    searcher: tantivy.Searcher,
    scored: Scored,
    keys: list[int],
    key: SortKey,
) -> tuple[Column, Any]:
    """The column of one sort key, and how a `search_after` value of it ranks."""
    addresses = [a for _, a in scored]
    if key.field == "_score":
        scores = [float(s) for s, _ in scored]
        return Column(list(scores), scores), lambda v: float_param(v, "search_after")
    if key.field in DOC_ORDER:
        return Column([float(k) for k in keys], list(keys)), lambda v: float_param(
            v, "search_after"
        )
    if key.field == "_id":
        tantivy_field, kind = "_id", "keyword"
    elif key.field in gen.schema.fields:
        info = gen.schema.fields[key.field]
        tantivy_field, kind = info.tantivy, str(info.kind)
    elif key.unmapped_type is not None:
        empty: list[float | None] = [None] * len(scored)
        return Column(empty, [None] * len(scored)), lambda v: float_param(v, "search_after")
    elif _is_dynamic(searcher, key.field):
        return _dynamic_column(searcher, addresses, key)
    else:
        raise BadRequestError(
            f"No mapping found for [{key.field}] in order to sort on",
            es_type="query_shard_exception",
        )
    if kind == "keyword":
        values = keyword_values(gen, searcher, tantivy_field)
        pick = 1 if (key.mode == "max" or (key.mode is None and key.desc)) else 0
        if key.mode not in (None, "min", "max"):
            raise BadRequestError(
                f"sort mode [{key.mode}] needs a numeric field, not [{key.field}]"
            )
        ranks: list[float | None] = []
        shown: list[Any] = []
        for k in keys:
            pos = values.positions.get(k)
            ranks.append(None if pos is None else float(pos[pick]))
            shown.append(None if pos is None else values.terms[pos[pick]])
        return Column(ranks, shown), lambda v: values.rank_of(str(v))
    if kind == "date":
        return _date_column(searcher, addresses, tantivy_field, key)
    if kind in ("number", "boolean"):
        if key.mode is not None and kind == "number":
            numbers = numbers_from_source(searcher, addresses, key.field, key.mode)
        else:
            raw = searcher.fast_field_values(tantivy_field, addresses)
            numbers = [None if v is None else float(v) for v in raw]
        shown = [_number_shown(v, kind) for v in numbers]
        return Column(numbers, shown), lambda v: float_param(
            (1.0 if v else 0.0) if isinstance(v, bool) else v, "search_after"
        )
    raise BadRequestError(
        f"Text fields are not optimised for operations that require per-document field "
        f"data like aggregations and sorting, so these operations are disabled by default. "
        f"Sort on a keyword field instead of [{key.field}] ({kind})",
        es_type="illegal_argument_exception",
    )


def _is_dynamic(searcher: tantivy.Searcher, path: str) -> bool:
    """Whether some document has the unmapped `path` (or, for `x.keyword`, `x`)."""
    if path.startswith("_"):
        return False
    names = [path, path.removesuffix(".keyword")]
    return any(
        any(term == name for term, _ in searcher.terms_with_prefix("_field_names", name))
        for name in names
    )


def _dynamic_column(
    searcher: tantivy.Searcher, addresses: list[tantivy.DocAddress], key: SortKey
) -> tuple[Column, Any]:
    """An unmapped attribute (ES would have mapped it dynamically): its values read from
    `_source` — numbers as numbers, anything else as keyword strings."""
    path = key.field.removesuffix(".keyword")
    rows = [source_values(source_of(searcher.doc(a)), path) for a in addresses]
    numeric = all(
        isinstance(v, int | float) and not isinstance(v, bool) for row in rows for v in row
    )
    high = key.mode == "max" or (key.mode is None and key.desc)
    if numeric and not key.field.endswith(".keyword"):
        nums = [
            reduce_numbers([float(v) for v in row], key.mode or ("max" if high else "min"))
            if row
            else None
            for row in rows
        ]
        return Column(
            list(nums), [_number_shown(v, "number") for v in nums]
        ), lambda v: float_param(v, "search_after")
    picked = [(max if high else min)(str(v) for v in row) if row else None for row in rows]
    values = KeywordValues(sorted({p for p in picked if p is not None}), {})
    ranks = [None if p is None else values.rank_of(p) for p in picked]
    return Column(ranks, picked), lambda v: values.rank_of(str(v))


def _number_shown(value: float | None, kind: str) -> Any:
    if value is None:
        return None
    if kind == "boolean":
        return int(value)  # ES shows booleans' sort values as 0/1
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def _date_column(
    searcher: tantivy.Searcher,
    addresses: list[tantivy.DocAddress],
    tantivy_field: str,
    key: SortKey,
) -> tuple[Column, Any]:
    from .dates import format_date_ms, parse_date_ms

    if key.mode is not None:
        numbers = numbers_from_source(
            searcher,
            addresses,
            key.field,
            key.mode,
            convert=lambda v: parse_date_ms(v, what=f"sort on [{key.field}]"),
        )
    else:
        raw = searcher.fast_field_values(tantivy_field, addresses)
        numbers = [None if v is None else float(v) for v in raw]
    if key.format is not None:
        shown: list[Any] = [None if v is None else format_date_ms(v) for v in numbers]
    else:
        shown = [None if v is None else int(v) for v in numbers]
    return Column(numbers, shown), lambda v: parse_date_ms(v, what="search_after")


def sort_scored(
    gen: Generation,
    searcher: tantivy.Searcher,
    scored: Scored,
    sort: list[SortKey],
    *,
    search_after: list[Any] | None = None,
    deadline: Deadline | None = None,
) -> tuple[Scored, list[list[Any]]]:
    """`scored` in `sort` order, with each hit's sort values (the ES `sort` array); with
    `search_after`, only the rows that sort after it; past `deadline`, the hits reached so
    far in that order."""
    keys = [
        int(k) if k is not None else -1
        for k in searcher.fast_field_values("_key", [a for _, a in scored])
    ]
    columns = []
    parsers = []
    for key in sort:
        column, parse = _column(gen, searcher, scored, keys, key)
        if key.missing not in ("_last", "_first"):
            fill = parse(key.missing)
            shown_fill = key.missing
            column = Column(
                [fill if r is None else r for r in column.ranks],
                [
                    shown_fill if r is None else s
                    for r, s in zip(column.ranks, column.shown, strict=True)
                ],
            )
        columns.append(column)
        parsers.append(parse)

    def part(key: SortKey, rank: float | None) -> tuple[int, float]:
        missing_flag = 1 if key.missing != "_first" else -1
        if rank is None:
            return (missing_flag, 0.0)
        return (0, -rank if key.desc else rank)

    after: tuple[Any, ...] | None = None
    if search_after is not None:
        if not isinstance(search_after, list) or len(search_after) != len(sort):
            raise BadRequestError(
                f"search_after has {len(as_list(search_after))} value(s) but sort has {len(sort)}",
                es_type="illegal_argument_exception",
            )
        after = tuple(
            part(k, None if v is None else parser(v))
            for k, v, parser in zip(sort, search_after, parsers, strict=True)
        )

    # One (missing flag, signed rank) pair of columns per key, the document key last.
    n = len(scored)
    if deadline is not None and deadline.passed():
        n = min(n, CHECK_EVERY)  # past the deadline: order only what a first look reached
    parts: list[npt.NDArray[np.float64]] = []
    for key, column in zip(sort, columns, strict=True):
        ranks = column.ranks[:n]
        present = np.fromiter((r is not None for r in ranks), dtype=bool, count=n)
        values = np.fromiter((0.0 if r is None else r for r in ranks), dtype=np.float64, count=n)
        flag = np.where(present, 0.0, 1.0 if key.missing != "_first" else -1.0)
        parts += [flag, -values if key.desc else values]
    keep = np.ones(n, dtype=bool)
    if after is not None:
        greater = np.zeros(n, dtype=bool)
        equal = np.ones(n, dtype=bool)
        bound = [x for pair in after for x in pair]
        for column_values, limit in zip(parts, bound, strict=True):
            greater |= equal & (column_values > limit)
            equal &= column_values == limit
        keep = greater
    doc_keys = np.asarray(keys[:n], dtype=np.float64)
    order = np.lexsort([doc_keys, *reversed(parts)]) if parts else np.arange(n)
    ordered = [int(i) for i in order if keep[i]]
    values_out = [[c.shown[i] for c in columns] for i in ordered]
    return [scored[i] for i in ordered], values_out
