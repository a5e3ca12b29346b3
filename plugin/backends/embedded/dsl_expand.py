"""Expanding prefix, wildcard and fuzzy terms against an index's term dictionary, with
cost limits (the embedded analogue of ES's `max_expansions` and
`indices.query.bool.max_clause_count`).

A pattern is expanded by walking the terms that start with its literal prefix (the text
before its first wildcard): a leading wildcard walks the field's whole dictionary. Both
the walk and the result are capped; past either cap the query is a 400 that says which
pattern and how to narrow it, never a silently truncated match set. The only truncation
is the documented one: `max_expansions` of `match_bool_prefix`, `match_phrase_prefix`,
`bool_prefix` / `phrase_prefix` multi_match keeps the most frequent completions, as ES
keeps at most that many.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable

import tantivy

from shoprank.errors import BadRequestError

from .schema import FieldInfo

MAX_EXPANDED_TERMS = 1024
"""Most terms one prefix / wildcard / fuzzy term may expand to (ES's max_clause_count)."""
MAX_SCANNED_TERMS = 100_000
"""Most dictionary terms one pattern may examine (caps a leading wildcard's cost)."""
DEFAULT_MAX_EXPANSIONS = 50
"""ES's default `max_expansions` of the prefix of match_bool_prefix / match_phrase_prefix."""
MAX_CASE_VARIANTS_CHARS = 3
"""Letters of a case-insensitive literal prefix walked in every case (2**3 walks at most)."""

WILDCARDS = "*?"


def literal_prefix(pattern: str) -> str:
    """The text of a wildcard pattern before its first unescaped `*` or `?`."""
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(pattern[i + 1])
            i += 2
            continue
        if ch in WILDCARDS:
            break
        out.append(ch)
        i += 1
    return "".join(out)


def wildcard_matcher(pattern: str, *, case_insensitive: bool) -> Callable[[str], bool]:
    """A predicate for ES wildcard syntax: `*` any run, `?` one character, `\\` escapes."""
    parts = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            parts.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        parts.append(".*" if ch == "*" else "." if ch == "?" else re.escape(ch))
        i += 1
    flags = re.DOTALL | (re.IGNORECASE if case_insensitive else 0)
    compiled = re.compile("".join(parts), flags)
    return lambda term: compiled.fullmatch(term) is not None


def _case_variants(prefix: str) -> list[str]:
    """The walks that find every case of `prefix`: its first letters in each case."""
    head, tail = prefix[:MAX_CASE_VARIANTS_CHARS], prefix[MAX_CASE_VARIANTS_CHARS:]
    del tail  # the rest is checked by the case-insensitive matcher
    choices = [sorted({c.lower(), c.upper()}) for c in head]
    return sorted({"".join(combo) for combo in itertools.product(*choices)})


def expand(
    searcher: tantivy.Searcher,
    info: FieldInfo,
    *,
    what: str,
    prefix: str,
    matcher: Callable[[str], bool] | None = None,
    case_insensitive: bool = False,
    top: int | None = None,
) -> list[str]:
    """The terms of `info`'s field that start with `prefix` and pass `matcher`.

    `top` keeps the most frequent `top` of them (max_expansions); without it every match is
    kept and more than `MAX_EXPANDED_TERMS` is a 400. `what` names the query in errors."""
    if info.kind not in ("text", "keyword"):
        raise BadRequestError(
            f"[{what}] needs a text or keyword field; [{info.path}] is {info.kind}"
            + (" (unmapped: map it as keyword to use it here)" if info.kind == "dynamic" else "")
        )
    walks = _case_variants(prefix) if case_insensitive else [prefix]
    if case_insensitive:
        lowered = prefix.lower()
        base = matcher
        matcher = (
            (lambda t: t.lower().startswith(lowered) and (base is None or base(t)))
            if base is not None or prefix
            else None
        )
    found: dict[str, int] = {}
    scanned = 0
    for walk in walks:
        rows = searcher.terms_with_prefix(info.tantivy, walk)
        scanned += len(rows)
        if scanned > MAX_SCANNED_TERMS:
            shown = prefix or "(none)"
            raise BadRequestError(
                f"[{what}] on [{info.path}] would examine more than {MAX_SCANNED_TERMS} terms "
                f"(literal prefix {shown!r}); start the pattern with more characters",
                es_type="illegal_argument_exception",
            )
        for term, count in rows:
            if matcher is None or matcher(term):
                found[term] = found.get(term, 0) + count
    ranked = sorted(found.items(), key=lambda item: (-item[1], item[0]))
    if top is not None:
        return [t for t, _ in ranked[: max(top, 0)]]
    if len(ranked) > MAX_EXPANDED_TERMS:
        raise BadRequestError(
            f"[{what}] on [{info.path}] matches {len(ranked)} terms; at most "
            f"{MAX_EXPANDED_TERMS} are allowed (ES's max_clause_count); use a longer prefix",
            es_type="too_many_clauses",
        )
    return [t for t, _ in ranked]


def edit_distance(a: str, b: str, *, limit: int, transpositions: bool = True) -> int:
    """Damerau-Levenshtein (optimal string alignment) distance, or `limit + 1` past it."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if transpositions and i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > limit:
            return limit + 1
        prev2, prev = prev, cur
    return prev[-1]


def fuzziness_distance(fuzziness: object, term: str) -> int:
    """ES `fuzziness` (0, 1, 2, `AUTO`, `AUTO:low,high`) for one term."""
    text = str(fuzziness).strip()
    if text.upper().startswith("AUTO"):
        low, high = 3, 6
        if ":" in text:
            bounds = text.split(":", 1)[1].split(",")
            try:
                low, high = int(bounds[0]), int(bounds[1])
            except (ValueError, IndexError):
                raise BadRequestError(f"failed to parse [fuzziness] {fuzziness!r}") from None
        return 0 if len(term) < low else 1 if len(term) < high else 2
    try:
        distance = int(float(text))
    except ValueError:
        raise BadRequestError(f"failed to parse [fuzziness] {fuzziness!r}") from None
    if distance < 0 or distance > 2:
        raise BadRequestError(f"[fuzziness] must be 0, 1, 2 or AUTO, got {fuzziness!r}")
    return distance
