"""Spelling correction of the shopper's words against the index's own vocabulary.

Shoppers misspell ("toliet", "refrigirator", "sucktion"); a lexical leg then matches nothing
for that word, and the vector leg embeds a word the encoder half knows. Before query
understanding, `full` mode asks the backend for `term` suggestions of the query text on the
spelling fields (one `size: 0` search with a `suggest` section: the ES DSL, so every backend
answers it) and picks at most one correction per word:

- only a word the index does not know is corrected: the suggester runs in `missing` mode,
  and a word with candidates is confirmed unknown by counting its matches in every spelling
  field (an analysed `match`, so a plural or another form of a known word counts as known);
- never a SKU-like token, a word with digits, a word shorter than `min_word_length`, or a
  word of a brand the catalog sells;
- a candidate's cost is a keyboard-aware edit distance (`typo_cost`): a neighbouring key, a
  swapped pair of letters or a doubled letter costs half an edit; the cheapest candidate
  wins, the more frequent one on a tie, and only under a budget that grows with the word's
  length (`max_cost`).

The corrected words replace the misspelled ones in the body's full-text queries (not in
filters); the caller searches the corrected body and reports the correction.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .predictor import looks_like_sku
from .text import Token, fold, tokenize

if TYPE_CHECKING:
    from shoprank.plugin.backends.protocol import SearchBackend

# Full-text queries whose `query` text holds the shopper's words (the rewriter's set, plus
# `multi_match` and `combined_fields`, which are keyed by `query` itself).
TEXT_QUERIES = ("match", "match_phrase", "match_phrase_prefix", "match_bool_prefix")
KEYED_TEXT_QUERIES = ("multi_match", "combined_fields")
SUGGEST_NAME = "shoprank_spelling"
# Candidates of one word checked against the rest of the query.
CONTEXT_CANDIDATES = 3
# Distinct words one query may have corrected (bounds the counts a long text asks for).
MAX_CORRECTED = 8
_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_POSITIONS = {c: (r, i) for r, row in enumerate(_ROWS) for i, c in enumerate(row)}


def keyboard_neighbours(a: str, b: str) -> bool:
    """Whether `a` and `b` are adjacent keys on a QWERTY keyboard (same row or the row
    next to it, within one key)."""
    pa, pb = _POSITIONS.get(a), _POSITIONS.get(b)
    if pa is None or pb is None or a == b:
        return False
    # Each row starts about half a key to the right of the one above it.
    dr = pb[0] - pa[0]
    if dr == 0:
        return abs(pb[1] - pa[1]) == 1
    if abs(dr) == 1:
        offset = pb[1] - pa[1] if dr == 1 else pa[1] - pb[1]
        return offset in (-1, 0)
    return False


def typo_cost(word: str, candidate: str) -> float:
    """A keyboard-aware edit distance from `word` (typed) to `candidate` (meant).

    Optimal string alignment (Damerau-Levenshtein without repeated edits of one substring):
    substituting a neighbouring key, swapping two adjacent letters, or typing a letter
    twice / once instead of twice costs 0.5; any other edit costs 1."""
    a, b = word, candidate
    n, m = len(a), len(b)

    def doubled(s: str, k: int) -> bool:  # s[k] repeats the letter beside it
        return (k > 0 and s[k] == s[k - 1]) or (k + 1 < len(s) and s[k] == s[k + 1])

    d = [[0.0] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        d[i][0] = d[i - 1][0] + (0.5 if doubled(a, i - 1) else 1.0)
    for j in range(1, m + 1):
        d[0][j] = d[0][j - 1] + (0.5 if doubled(b, j - 1) else 1.0)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            if a[i - 1] == b[j - 1]:
                sub = 0.0
            elif keyboard_neighbours(a[i - 1], b[j - 1]):
                sub = 0.5
            else:
                sub = 1.0
            delete = 0.5 if doubled(a, i - 1) else 1.0
            insert = 0.5 if doubled(b, j - 1) else 1.0
            best = min(d[i - 1][j] + delete, d[i][j - 1] + insert, d[i - 1][j - 1] + sub)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                best = min(best, d[i - 2][j - 2] + 0.5)
            d[i][j] = best
    return d[n][m]


@dataclass(frozen=True)
class SpellingConfig:
    fields: tuple[str, ...] = ("title",)
    min_word_length: int = 4
    min_doc_freq: int = 2
    candidates: int = 8


# Sizes typed without spaces ("8x6", "2x4x8", "1/2x3/4"): catalogs write "8 ft. x 6 ft.".
_DIMENSIONS = re.compile(
    r"(?<![^\W_])\d+(?:[./]\d+)?(?:x\d+(?:[./]\d+)?)+(?![^\W_])", re.IGNORECASE
)


def split_dimensions(word: str) -> str:
    """ "8x6" → "8 x 6"."""
    return " x ".join(re.split(r"[xX]", word))


def max_cost(word: str) -> float:
    """The edit budget of a correction: short words allow only a slip (half an edit),
    longer ones one edit, long ones two."""
    if len(word) <= 4:
        return 0.5
    if len(word) <= 7:
        return 1.0
    return 2.0


def min_freq(cost: float, config: SpellingConfig) -> int:
    """How many products must use a candidate for it to replace a word `cost` away: a
    slip may point at a rare word, a full edit needs a common one (a rare word one edit
    away is as likely a different word the index lacks: "fluid" is not "fluke")."""
    if cost <= 0.5:
        return config.min_doc_freq
    if cost <= 1.0:
        return max(config.min_doc_freq, 5)
    return max(config.min_doc_freq, 20)


@dataclass(frozen=True)
class Correction:
    word: str  # as the shopper typed it
    correction: str
    cost: float
    freq: int
    start: int
    end: int
    kind: str = "typo"  # or "dimensions": "8x6" written as the catalog writes it, "8 x 6"

    def to_dict(self) -> dict[str, Any]:
        return {
            "word": self.word,
            "correction": self.correction,
            "kind": self.kind,
            "cost": self.cost,
            "doc_freq": self.freq,
        }


@dataclass(frozen=True)
class Spelling:
    """The outcome for one query: the corrected text and what was corrected."""

    original: str
    corrected: str
    corrections: tuple[Correction, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.corrections)

    def action(self) -> dict[str, Any]:
        """The rewrite action that records the correction (explain, search log)."""
        return {
            "action": "spelling",
            "before": self.original,
            "after": self.corrected,
            "corrections": [c.to_dict() for c in self.corrections],
        }

    def did_you_mean(self) -> dict[str, Any]:
        """What a frontend shows as "Showing results for …" (`_shoprank.spelling`)."""
        return {
            "original": self.original,
            "corrected": self.corrected,
            "corrections": [{"word": c.word, "correction": c.correction} for c in self.corrections],
        }


def protected(word: str, brands: frozenset[str]) -> bool:
    """Words never corrected: SKU-like tokens, anything with a digit, brand words."""
    return looks_like_sku(word) or any(ch.isdigit() for ch in word) or fold(word) in brands


def brand_words(values: Iterable[str]) -> frozenset[str]:
    """The folded words of the catalog's brand names ("Simpson Strong-Tie" → simpson, …)."""
    return frozenset(t.text.lower() for v in values for t in tokenize(fold(v)))


def suggest_body(text: str, config: SpellingConfig) -> dict[str, Any]:
    """One `size: 0` search asking the `term` suggester for each spelling field."""
    suggest: dict[str, Any] = {"text": text}
    for i, name in enumerate(config.fields):
        suggest[f"{SUGGEST_NAME}_{i}"] = {
            "term": {
                "field": name,
                "suggest_mode": "missing",
                "size": config.candidates,
                "min_word_length": config.min_word_length,
                "min_doc_freq": config.min_doc_freq,
                "max_edits": 2,
                "prefix_length": 1,
            }
        }
    return {"size": 0, "track_total_hits": False, "suggest": suggest}


@dataclass
class _Word:
    text: str
    start: int
    end: int
    options: dict[str, int] = field(default_factory=dict)  # candidate → highest doc freq


def candidates_of(text: str, response: Mapping[str, Any]) -> list[_Word]:
    """The query's words that got candidates, with the candidates of every field merged."""
    words: dict[tuple[int, int], _Word] = {}
    for name, entries in (response.get("suggest") or {}).items():
        if not str(name).startswith(SUGGEST_NAME):
            continue
        for entry in entries:
            options = entry.get("options") or []
            if not options:
                continue
            start = int(entry.get("offset", 0))
            end = start + int(entry.get("length", 0))
            typed = text[start:end]
            word = words.setdefault((start, end), _Word(typed, start, end))
            for option in options:
                cand = str(option.get("text", "")).lower()
                freq = int(option.get("freq", 0))
                if cand and freq > word.options.get(cand, -1):
                    word.options[cand] = freq
    return [words[k] for k in sorted(words)]


def viable(word: _Word, config: SpellingConfig) -> list[Correction]:
    """The word's candidates within its budget, cheapest first (the most frequent first on
    a tie), at most `CONTEXT_CANDIDATES` of them."""
    typed = fold(word.text.lower())
    budget = max_cost(typed)
    ranked: list[tuple[float, float, str]] = []
    for cand, freq in word.options.items():
        if cand == typed:
            continue
        cost = typo_cost(typed, fold(cand))
        if cost <= budget and freq >= min_freq(cost, config):
            ranked.append((cost, -math.log1p(freq), cand))
    ranked.sort()
    return [
        Correction(word.text, cand, cost, word.options[cand], word.start, word.end)
        for cost, _, cand in ranked[:CONTEXT_CANDIDATES]
    ]


def choose(word: _Word, config: SpellingConfig) -> Correction | None:
    """The cheapest candidate within the word's budget (the most frequent on a tie)."""
    found = viable(word, config)
    return found[0] if found else None


def _count(query: dict[str, Any]) -> dict[str, Any]:
    return {"size": 0, "track_total_hits": True, "query": query}


def _total(response: Mapping[str, Any] | Exception) -> int | None:
    """The count of one msearch answer; None for an error (no evidence either way)."""
    if isinstance(response, Exception) or "error" in response:
        return None
    total = (response.get("hits") or {}).get("total")
    value = total.get("value", 0) if isinstance(total, dict) else total
    return int(value or 0)


def apply(text: str, corrections: Sequence[Correction]) -> str:
    """`text` with every occurrence of each corrected word replaced (as in the body)."""
    return _replace_words(text, corrections)


def _correctable(word: str, config: SpellingConfig, brands: frozenset[str]) -> bool:
    """Whether a correction may touch `word` (long enough, not protected)."""
    return len(word) >= config.min_word_length and not protected(word, brands)


def _checkable(text: str, config: SpellingConfig, brands: frozenset[str]) -> list[Token]:
    """The words of `text` a correction could touch."""
    return [t for t in tokenize(text) if _correctable(t.text, config, brands)]


def correct(
    backend: SearchBackend,
    index: str,
    text: str,
    config: SpellingConfig,
    *,
    brands: frozenset[str] = frozenset(),
    settled: set[str] | None = None,
) -> Spelling:
    """The spelling of `text` checked against the index (raises `ShoprankError` when the
    backend cannot answer; the caller degrades).

    After the suggestions, one msearch of counts decides: a word some product matches
    in a spelling field is known and stays; of an unknown word's candidates, the cheapest
    one that shares a product with another word of the query wins (a query of one word
    has no context: its cheapest candidate wins). A candidate no product holds together
    with the rest of the query ("baroque grill") is a different word, not the meant one.

    `settled` (the caller's, one per index generation) holds the folded words found to
    need nothing — no candidate at all, or known to the index — whatever the rest of the
    query: a text whose every checkable word is settled, and that types no size, is
    answered without asking the backend (most searches, once the usual words were seen)."""
    checkable = _checkable(text, config, brands)
    if (
        settled is not None
        and all(fold(t.text.lower()) in settled for t in checkable)
        and not _DIMENSIONS.search(text)
    ):
        return Spelling(text, text)
    response = backend.search(index, suggest_body(text, config))
    proposals: list[list[Correction]] = []
    seen: set[str] = set()
    suggested = candidates_of(text, response)
    for word in suggested:
        folded = fold(word.text.lower())
        if not _correctable(word.text, config, brands):
            continue
        if folded in seen or len(seen) >= MAX_CORRECTED:
            continue  # a repeated word is corrected everywhere by its first occurrence
        seen.add(folded)
        found = viable(word, config)
        if found:
            proposals.append(found)
        elif settled is not None:  # candidates, none within the budget: nothing to do
            settled.add(folded)
    dimensions = [
        Correction(
            m.group(0), split_dimensions(m.group(0)), 0.0, 0, m.start(), m.end(), "dimensions"
        )
        for m in _DIMENSIONS.finditer(text)
    ][:MAX_CORRECTED]
    if settled is not None:
        settled.update(
            fold(t.text.lower())
            for t in checkable
            if not any(t.start < w.end and w.start < t.end for w in suggested)
        )
    if not proposals and not dimensions:
        return Spelling(text, text)
    fields = list(config.fields)
    typed = {(c[0].start, c[0].end) for c in proposals}
    context = [t.text for t in tokenize(text) if (t.start, t.end) not in typed and len(t.text) > 1]
    searches: list[dict[str, Any]] = []
    for options in proposals:
        searches.append(_count({"multi_match": {"query": options[0].word, "fields": fields}}))
        if context:
            for option in options:
                searches.append(
                    _count(
                        {
                            "bool": {
                                "must": [
                                    {"multi_match": {"query": option.correction, "fields": fields}}
                                ],
                                "should": [
                                    {"multi_match": {"query": w, "fields": fields}} for w in context
                                ],
                                "minimum_should_match": 1,
                            }
                        }
                    )
                )
    for dims in dimensions:
        searches.append(
            _count({"multi_match": {"query": dims.word, "fields": fields, "operator": "and"}})
        )
    totals = iter([_total(r) for r in backend.msearch(index, searches)])
    chosen: list[Correction] = []
    for options in proposals:
        known = next(totals)
        together = [next(totals) for _ in options] if context else [1 for _ in options]
        if known is None or known > 0:
            if known and settled is not None:
                settled.add(fold(options[0].word.lower()))
            continue  # a word the index knows (or could not be checked) stays as typed
        for option, shared in zip(options, together, strict=True):
            if shared:
                chosen.append(option)
                break
    for dims in dimensions:
        if next(totals) == 0:  # no product writes it as typed: search the numbers
            chosen.append(dims)
    corrections = tuple(sorted(chosen, key=lambda c: c.start))
    return Spelling(text, apply(text, corrections), corrections)


def _literal(text: str) -> Callable[[re.Match[str]], str]:
    return lambda _: text


def _replace_words(text: str, corrections: Sequence[Correction]) -> str:
    out = text
    for c in corrections:
        pattern = re.compile(rf"(?<![^\W_]){re.escape(c.word)}(?![^\W_])", re.IGNORECASE)
        # The correction is put in literally (as a template a backslash would be an escape).
        out = pattern.sub(_literal(c.correction), out)
    return out


def correct_body(body: dict[str, Any], spelling: Spelling) -> dict[str, Any]:
    """A copy of `body` whose full-text query texts have the corrections (filters,
    `must_not`, aggregations and everything outside `query` stay as they are)."""
    new_body = copy.deepcopy(body)
    if spelling.changed and "query" in new_body:
        new_body["query"] = _correct_node(new_body["query"], spelling.corrections)
    return new_body


def _correct_node(node: Any, corrections: Sequence[Correction]) -> Any:
    if isinstance(node, list):
        return [_correct_node(item, corrections) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for name, body in node.items():
        if name in ("filter", "must_not"):
            out[name] = body
        elif name in KEYED_TEXT_QUERIES and isinstance(body, dict):
            query = body.get("query")
            out[name] = (
                {**body, "query": _replace_words(query, corrections)}
                if isinstance(query, str)
                else body
            )
        elif name in TEXT_QUERIES and isinstance(body, dict) and len(body) == 1:
            ((fname, spec),) = body.items()
            if isinstance(spec, str):
                out[name] = {fname: _replace_words(spec, corrections)}
            elif isinstance(spec, dict) and isinstance(spec.get("query"), str):
                out[name] = {fname: {**spec, "query": _replace_words(spec["query"], corrections)}}
            else:
                out[name] = body
        else:
            out[name] = _correct_node(body, corrections)
    return out


__all__ = [
    "Correction",
    "Spelling",
    "SpellingConfig",
    "brand_words",
    "choose",
    "correct",
    "correct_body",
    "keyboard_neighbours",
    "max_cost",
    "typo_cost",
]
