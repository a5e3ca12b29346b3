"""Small readers the embedded DSL's modules share: `minimum_should_match`, boosts, numbers,
and the single-field query form."""

from __future__ import annotations

import math
from typing import Any

import tantivy

from shoprank.errors import BadRequestError
from shoprank.plugin.bounds import strict_float

Q = tantivy.Query

MULTI_MATCH_OPTIONS = {
    "query",
    "fields",
    "type",
    "operator",
    "minimum_should_match",
    "fuzziness",
    "prefix_length",
    "max_expansions",
    "fuzzy_transpositions",
    "tie_breaker",
    "slop",
    "boost",
    "_name",
    "analyzer",
    "zero_terms_query",
    "lenient",
    "auto_generate_synonyms_phrase_query",
}
MATCH_OPTIONS = {"query", "operator", "minimum_should_match", "boost", "fuzziness", "_name"}
MATCH_OPTIONS |= {"analyzer", "zero_terms_query", "prefix_length", "max_expansions"}
MATCH_OPTIONS |= {"fuzzy_transpositions", "lenient", "auto_generate_synonyms_phrase_query"}
PHRASE_OPTIONS = {"query", "slop", "boost", "_name", "analyzer", "zero_terms_query"}


def single(query: Any, name: str) -> tuple[str, Any]:
    """Split `{"field": spec}` (ES's single-field query form)."""
    if not isinstance(query, dict):
        raise BadRequestError(f"[{name}] query malformed, expected an object")
    items = [(k, v) for k, v in query.items() if k not in ("boost", "_name")]
    if len(items) != 1:
        raise BadRequestError(f"[{name}] query doesn't support multiple fields, found {len(items)}")
    return items[0]


def minimum_should_match(spec: Any, clauses: int) -> int:
    """ES `minimum_should_match`: 2, -1, "75%", "-25%"."""
    if spec is None:
        return 0
    text = str(spec).strip()
    try:
        if text.endswith("%"):
            pct = float(text[:-1])
            n = math.floor(clauses * abs(pct) / 100.0)
            value = n if pct >= 0 else clauses - n
        else:
            n = int(text)
            value = n if n >= 0 else clauses + n
    except ValueError:
        raise BadRequestError(f"cannot parse minimum_should_match [{spec}]") from None
    return max(0, min(clauses, value))


def boosted(query: tantivy.Query, boost: Any) -> tantivy.Query:
    """`query` scaled by an ES `boost` (1 and None leave it alone; negative is a 400)."""
    if boost is None or float(boost) == 1.0:
        return query
    if float(boost) < 0:
        raise BadRequestError(f"negative [boost] are not allowed, got {boost}")
    return Q.boost_query(query, float(boost))


def number(value: Any, what: str) -> float:
    """A query's numeric value, read as ES reads one (ASCII only, no NaN)."""
    if isinstance(value, bool):
        raise BadRequestError(f"[{what}] expects a number, got {value!r}")
    try:
        result = strict_float(value)  # not `1_000` or full-width digits, as in ES
    except (ValueError, OverflowError):
        raise BadRequestError(f"[{what}] expects a number, got {value!r}") from None
    if math.isnan(result):
        raise BadRequestError(f"[{what}] expects a number, got NaN")
    return result


def combine(leaves: list[tantivy.Query], operator: Any, msm: Any) -> tantivy.Query:
    """Leaves joined as `match` joins its terms: `and`, or `or` with minimum_should_match."""
    if not leaves:
        return Q.empty_query()
    if len(leaves) == 1:
        return leaves[0]
    op = str(operator).lower()
    if op == "and":
        return Q.boolean_query([(tantivy.Occur.Must, q) for q in leaves])
    if op != "or":
        raise BadRequestError(f"[operator] must be 'or' or 'and', got {operator!r}")
    need = minimum_should_match(msm, len(leaves))
    clauses = [(tantivy.Occur.Should, q) for q in leaves]
    return Q.boolean_query(clauses, need) if need > 1 else Q.boolean_query(clauses)


def zero_terms(spec: dict[str, Any]) -> tantivy.Query:
    """What an analysed query with no tokens matches (ES `zero_terms_query`)."""
    mode = str(spec.get("zero_terms_query", "none")).lower()
    if mode not in ("none", "all"):
        raise BadRequestError(f"[zero_terms_query] must be none or all, got {mode!r}")
    return Q.all_query() if mode == "all" else Q.empty_query()
