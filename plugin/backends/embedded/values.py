"""Small readers shared by the embedded backend's modules: request values and stored docs."""

from __future__ import annotations

from typing import Any, cast

import orjson
import tantivy

from shoprank.errors import BadRequestError, ShoprankError
from shoprank.plugin.bounds import strict_float


def as_list(value: Any) -> list[Any]:
    """A request value that may be one item or a list of them, as a list."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def float_param(value: Any, what: str) -> float:
    """A number of the request: a JSON number or a numeric string in ASCII, as ES reads it."""
    try:
        return strict_float(value)
    except (ValueError, OverflowError):
        raise BadRequestError(f"[{what}] must be a number, got {value!r}") from None


def count_of(result: tantivy.SearchResult) -> int:
    """Matching documents of a search (the stub file lacks `count`)."""
    return int(result.count)  # type: ignore[attr-defined]


def doc_key(value: int | float | None) -> int:
    """A document's `_key` fast-field value (the row of its vectors)."""
    if value is None:
        raise ShoprankError("a document has no _key; rebuild the index generation")
    return int(value)


def source_of(doc: tantivy.Document) -> dict[str, Any]:
    raw = doc.get_first("_source")
    return cast(dict[str, Any], orjson.loads(raw)) if raw else {}
