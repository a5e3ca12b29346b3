"""Per-document sort values of one field on an embedded generation, as ES doc values.

A `Column` holds, for the rows being sorted, a comparable rank (a float; None when the
document has no value) and the value ES shows in `hit.sort`. Keyword fields (and `_id`)
rank by the position of their value among the field's distinct values, found by one
tantivy search ordered by the field and cached per generation revision; a multi-valued
keyword sorts on its smallest value (`mode: min`, ES's default ascending) or its largest
(`mode: max`, the default descending). Numbers, booleans and dates (epoch milliseconds)
rank by their fast-field value; an explicit `mode` on them reads every value of the row
from `_source`.
"""

from __future__ import annotations

import bisect
import threading
import weakref
from dataclasses import dataclass
from typing import Any

import tantivy

from shoprank.errors import BadRequestError

from .generation import Generation
from .values import float_param, source_of

Q = tantivy.Query


@dataclass
class KeywordValues:
    """The distinct values of a keyword field in order, and each document's (min, max)
    position among them, keyed by `_key`."""

    terms: list[str]
    positions: dict[int, tuple[int, int]]

    def rank_of(self, value: str) -> float:
        """Where a value (perhaps absent from the index) falls among the terms."""
        i = bisect.bisect_left(self.terms, value)
        return float(i) if i < len(self.terms) and self.terms[i] == value else i - 0.5


_cache: weakref.WeakKeyDictionary[Generation, dict[tuple[str, Any, int], KeywordValues]] = (
    weakref.WeakKeyDictionary()
)
_cache_lock = threading.Lock()


def keyword_values(
    gen: Generation, searcher: tantivy.Searcher, tantivy_field: str
) -> KeywordValues:
    """The field's `KeywordValues` for what `searcher` sees (cached per revision)."""
    stamp = (tantivy_field, gen.meta.get("revision"), int(searcher.num_docs))
    with _cache_lock:
        cached = _cache.get(gen, {}).get(stamp)
    if cached is not None:
        return cached
    limit = max(int(searcher.num_docs), 1)
    result = searcher.search(
        Q.all_query(), limit=limit, order_by_field=tantivy_field, order=tantivy.Order.Asc
    )
    present = [(v, a) for v, a in result.hits if v is not None]
    keys = searcher.fast_field_values("_key", [a for _, a in present])
    terms: list[str] = []
    positions: dict[int, tuple[int, int]] = {}
    for (value, _), key in zip(present, keys, strict=True):
        if key is None:
            continue
        if not terms or terms[-1] != value:
            terms.append(str(value))
        positions[int(key)] = (len(terms) - 1, len(terms) - 1)
    # The search ranks a multi-valued document by its first value; when the field has more
    # values than documents, every document's true (min, max) is found term by term.
    counted = sum(n for _, n in searcher.terms_with_prefix(tantivy_field, ""))
    if counted > len(positions):
        terms = sorted(t for t, _ in searcher.terms_with_prefix(tantivy_field, ""))
        positions = {}
        schema = gen.schema.tantivy_schema
        for ordinal, term in enumerate(terms):
            hits = searcher.search(Q.term_query(schema, tantivy_field, term), limit=limit).hits
            for key in searcher.fast_field_values("_key", [a for _, a in hits]):
                if key is None:
                    continue
                low, high = positions.get(int(key), (ordinal, ordinal))
                positions[int(key)] = (min(low, ordinal), max(high, ordinal))
    values = KeywordValues(terms, positions)
    with _cache_lock:
        per_gen = _cache.setdefault(gen, {})
        for old in [s for s in per_gen if s[1:] != stamp[1:]]:
            del per_gen[old]  # one revision at a time
        per_gen[stamp] = values
    return values


@dataclass
class Column:
    """Ranks (None: missing) and the values `hit.sort` shows, one per sorted row."""

    ranks: list[float | None]
    shown: list[Any]


def source_values(source: dict[str, Any], path: str) -> list[Any]:
    """The values at a dotted path of `_source` (a multi-field such as `title.keyword`
    reads its parent's value)."""
    node: Any = source
    parts = path.split(".")
    for i, part in enumerate(parts):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif i > 0 and not isinstance(node, dict):
            break  # `title.keyword`: the parent's value
        else:
            return []
    items = node if isinstance(node, list) else [node]
    return [v for v in items if v is not None and not isinstance(v, dict | list)]


def reduce_numbers(values: list[float], mode: str) -> float:
    """One number for a multi-valued row, as ES's sort `mode` reduces them."""
    if mode == "min":
        return min(values)
    if mode == "max":
        return max(values)
    if mode == "sum":
        return sum(values)
    if mode == "avg":
        return sum(values) / len(values)
    if mode == "median":
        ordered = sorted(values)
        mid = len(ordered) // 2
        return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    raise BadRequestError(f"unknown sort mode [{mode}]; use min, max, sum, avg or median")


def numbers_from_source(
    searcher: tantivy.Searcher,
    addresses: list[tantivy.DocAddress],
    path: str,
    mode: str,
    convert: Any = None,
) -> list[float | None]:
    """Each row's values of `path` read from `_source`, reduced by `mode`."""
    out: list[float | None] = []
    for addr in addresses:
        raw = source_values(source_of(searcher.doc(addr)), path)
        numbers: list[float] = []
        for value in raw:
            try:
                numbers.append(
                    float(convert(value)) if convert is not None else float_param(value, path)
                )
            except BadRequestError:
                continue
        out.append(reduce_numbers(numbers, mode) if numbers else None)
    return out
