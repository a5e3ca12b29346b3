"""Find catalog attribute values (brand, colour, …) in a query.

Matching is on token keys (case-, accent- and plural-insensitive), longest value first, so
"tripp lite" wins over "lite"; a single-word value of 5+ letters also matches with one typo
(insertion, deletion, substitution or transposition) through a deletion index. A list
value ("Black,Silver") is also found by each of its parts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .text import Token, key, tokenize

FUZZY_MIN_LETTERS = 5
EXACT_CONFIDENCE = 1.0
FUZZY_CONFIDENCE = 0.7
MAX_VALUE_TOKENS = 5
# Words too common in queries to be taken for an attribute value on their own.
_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "the",
        "for",
        "with",
        "of",
        "in",
        "on",
        "to",
        "by",
        "or",
        "at",
        "from",
        "new",
        "best",
        "top",
        "set",
        "pack",
        "kit",
        "under",
        "over",
        "below",
        "above",
        "less",
        "more",
        "than",
        "cheap",
        "price",
    ]
)


@dataclass(frozen=True, slots=True)
class AttributeMatch:
    field: str
    value: str
    start: int
    end: int
    confidence: float
    token_span: tuple[int, int]


def _deletes(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


def within_one_edit(a: str, b: str) -> bool:
    """Damerau–Levenshtein distance ≤ 1."""
    if a == b:
        return True
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la == lb:
        diff = [i for i in range(la) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return (
            len(diff) == 2
            and diff[1] == diff[0] + 1
            and a[diff[0]] == b[diff[1]]
            and a[diff[1]] == b[diff[0]]
        )
    if la > lb:
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    return a[i:] == b[i + 1 :]


class AttributeMatcher:
    """Built once from {field: catalog values}; `match(tokens)` is a few dict lookups."""

    def __init__(self, values: Mapping[str, Sequence[str]]) -> None:
        self.exact: dict[tuple[str, ...], list[tuple[str, str]]] = {}
        self.fuzzy: dict[str, list[tuple[str, str, str]]] = {}
        self.longest = 1
        for field, items in values.items():
            for value in items:
                # A list value ("Black,Silver") is also found by each of its parts: "silver"
                # means every value that holds Silver.
                parts = [p for p in str(value).split(",") if p.strip()]
                if len(parts) > 1:
                    for part in parts:
                        self._add_exact(tuple(t.key for t in tokenize(part)), field, str(value))
                keys = tuple(t.key for t in tokenize(str(value)))
                if not self._add_exact(keys, field, str(value)):
                    continue
                word = keys[0]
                if len(keys) == 1 and len(word) >= FUZZY_MIN_LETTERS and word.isalpha():
                    for variant in _deletes(word) | {word}:
                        self.fuzzy.setdefault(variant, []).append((word, field, str(value)))

    def _add_exact(self, keys: tuple[str, ...], field: str, value: str) -> bool:
        """Index `value` under the word keys `keys`; False when they cannot name a value."""
        if not keys or len(keys) > MAX_VALUE_TOKENS:
            return False
        if len(keys) == 1 and (keys[0] in _STOP or keys[0].isdigit() or len(keys[0]) < 2):
            return False
        bucket = self.exact.setdefault(keys, [])
        if (field, value) not in bucket:
            bucket.append((field, value))
        self.longest = max(self.longest, len(keys))
        return True

    @property
    def size(self) -> int:
        return len(self.exact)

    def match(
        self, tokens: Sequence[Token], *, skip: set[int] | None = None
    ) -> list[AttributeMatch]:
        """Non-overlapping matches, longest first at each position; `skip` = token indexes
        already claimed (by a price expression)."""
        skip = skip or set()
        out: list[AttributeMatch] = []
        keys = [t.key for t in tokens]
        i = 0
        while i < len(tokens):
            if i in skip:
                i += 1
                continue
            found = False
            for n in range(min(self.longest, len(tokens) - i), 0, -1):
                span = range(i, i + n)
                if any(j in skip for j in span):
                    continue
                hits = self.exact.get(tuple(keys[i : i + n]))
                if hits:
                    for field, value in hits:
                        out.append(
                            AttributeMatch(
                                field,
                                value,
                                tokens[i].start,
                                tokens[i + n - 1].end,
                                EXACT_CONFIDENCE,
                                (i, i + n),
                            )
                        )
                    i += n
                    found = True
                    break
            if found:
                continue
            word = keys[i]
            if len(word) >= FUZZY_MIN_LETTERS and word.isalpha() and word not in _STOP:
                for field, value in self._fuzzy(word):
                    out.append(
                        AttributeMatch(
                            field,
                            value,
                            tokens[i].start,
                            tokens[i].end,
                            FUZZY_CONFIDENCE,
                            (i, i + 1),
                        )
                    )
            i += 1
        return out

    def _fuzzy(self, word: str) -> list[tuple[str, str]]:
        seen: list[tuple[str, str]] = []
        for variant in _deletes(word) | {word}:
            for target, field, value in self.fuzzy.get(variant, ()):
                if within_one_edit(word, target) and (field, value) not in seen:
                    seen.append((field, value))
        return seen


def normalised(value: str) -> str:
    """The matching key of a whole value ("Tripp Lite" → "tripp lite")."""
    return " ".join(key(t.text) for t in tokenize(value))
