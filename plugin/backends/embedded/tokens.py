"""Words of stored text with their character offsets, analysed the way the index analyses them.

The highlighter and the suggesters read `_source` strings, not the index: they split a value
the way tantivy's simple tokenizer does (runs of letters and digits; CJK runs as overlapping
bigrams, like `shoprank.text.cjk_bigrams`) and analyse each word with the index's English
analyzer, through a bounded cache so a word is analysed once per process, not once per hit.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Any

import tantivy
from rapidfuzz.distance import OSA

from shoprank.errors import BadRequestError
from shoprank.text import CJK, fold

from .schema import english_analyzer

WORD = re.compile(r"[^\W_]+")
_CJK_RUN = re.compile(CJK.pattern + "+")
_CACHE_LIMIT = 200_000
_stems: dict[str, str] = {}


@functools.cache
def _analyzer() -> tantivy.TextAnalyzer:
    return english_analyzer()


def words(text: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, surface) of every word of `text`, offsets in characters."""
    for match in WORD.finditer(text):
        word = match.group(0)
        if not CJK.search(word):
            yield match.start(), match.end(), word
            continue
        base = match.start()
        last = 0
        for run in _CJK_RUN.finditer(word):
            if run.start() > last:
                yield base + last, base + run.start(), word[last : run.start()]
            chars = run.group(0)
            if len(chars) == 1:
                yield base + run.start(), base + run.end(), chars
            for i in range(len(chars) - 1):
                at = base + run.start() + i
                yield at, at + 2, chars[i : i + 2]
            last = run.end()
        if last < len(word):
            yield base + last, match.end(), word[last:]


def stem(word: str) -> str:
    """The index term of one word ("Cartridges" → "cartridg"); "" when the index drops it."""
    found = _stems.get(word)
    if found is None:
        out = _analyzer().analyze(word)
        found = out[0] if out else ""
        if len(_stems) >= _CACHE_LIMIT:
            _stems.clear()
        _stems[word] = found
    return found


def analyse(text: str) -> list[str]:
    """The index terms of a query text, in order (what the query compiler searches for)."""
    return [t for t in (stem(w) for _, _, w in words(text)) if t]


def plain(word: str) -> str:
    """A word lower-cased and accent-folded but not stemmed (the suggesters' vocabulary)."""
    return word.lower() if word.isascii() else fold(word)


def edit_distance(a: str, b: str, limit: int, *, prefix: bool = False) -> int:
    """Damerau (optimal string alignment) distance of `a` and `b`, or `limit + 1` once above.

    `prefix=True`: the fewest edits turning `a` into some prefix of `b` (fuzzy completion)."""
    over = limit + 1
    if not prefix and abs(len(a) - len(b)) > limit:
        return over
    if a == b or (prefix and b.startswith(a)):
        return 0
    if not prefix:  # the same distance in native code
        return int(OSA.distance(a, b, score_cutoff=limit))
    b = b[: len(a) + limit]
    n = len(b)
    prev2: list[int] = []
    prev = list(range(n + 1))
    for i in range(1, len(a) + 1):
        ca = a[i - 1]
        cur = [i] * (n + 1)
        best = i
        for j in range(1, n + 1):
            cb = b[j - 1]
            value = prev[j - 1] if ca == cb else prev[j - 1] + 1
            up = prev[j] + 1
            if up < value:
                value = up
            left = cur[j - 1] + 1
            if left < value:
                value = left
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb and prev2[j - 2] + 1 < value:
                value = prev2[j - 2] + 1
            cur[j] = value
            if value < best:
                best = value
        if best > limit:
            return over
        prev2, prev = prev, cur
    final = min(prev)
    return final if final <= limit else over


def fuzziness_of(spec: Any, length: int, *, what: str) -> int:
    """ES `fuzziness` (0, 1, 2, "AUTO", "AUTO:3,6") as an edit count for a term of `length`."""
    if spec is None:
        return 0
    text = str(spec).strip().upper()
    if text.startswith("AUTO"):
        low, high = 3, 6
        if ":" in text:
            try:
                low_text, high_text = text[5:].split(",")
                low, high = int(low_text), int(high_text)
            except ValueError:
                raise BadRequestError(f"[{what}] cannot parse fuzziness [{spec}]") from None
        return 0 if length < low else 1 if length < high else 2
    try:
        value = int(float(text))
    except ValueError:
        raise BadRequestError(f"[{what}] cannot parse fuzziness [{spec}]") from None
    if value < 0 or value > 2:
        raise BadRequestError(f"[{what}] fuzziness must be 0, 1, 2 or AUTO, got [{spec}]")
    return value
