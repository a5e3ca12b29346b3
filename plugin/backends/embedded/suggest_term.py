"""Did-you-mean for one word: the `term` suggester's candidates (and the phrase suggester's
`direct_generator`), as Lucene's direct spell checker picks them.

A candidate shares the word's first `prefix_length` characters, is within `max_edits`
(a transposition is one edit), and scores `1 - edits / min(len(word), len(candidate))`;
`suggest_mode` decides whether words already in the index get candidates at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from rapidfuzz import process
from rapidfuzz.distance import OSA

from shoprank.errors import BadRequestError, UnsupportedQueryError

from .vocabulary import Vocabulary

TERM_KEYS = {
    "field",
    "size",
    "suggest_mode",
    "max_edits",
    "prefix_length",
    "min_word_length",
    "sort",
    "accuracy",
    "min_doc_freq",
    "max_term_freq",
    "max_inspections",
    "string_distance",
    "lowercase_terms",
    "shard_size",
    "analyzer",
    "pre_filter",
    "post_filter",
}
REFUSED = {
    "analyzer": "the suggest text is split like the field's values",
    "pre_filter": "analyzer filters are not supported",
    "post_filter": "analyzer filters are not supported",
}
DISTANCES = ("internal", "damerau_levenshtein")


@dataclass(frozen=True)
class TermOptions:
    size: int = 5
    mode: Literal["missing", "popular", "always"] = "missing"
    max_edits: int = 2
    prefix_length: int = 1
    min_word_length: int = 4
    by_frequency: bool = False
    accuracy: float = 0.5
    min_doc_freq: float = 0.0
    max_term_freq: float = 0.01


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool):
        raise BadRequestError(f"[{what}] must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise BadRequestError(f"[{what}] must be a number, got {value!r}") from None


def term_options(spec: dict[str, Any], what: str, *, mode: str = "missing") -> TermOptions:
    """Checked options of a `term` suggester (or of one `direct_generator`)."""
    unknown = sorted(set(spec) - TERM_KEYS)
    if unknown:
        raise UnsupportedQueryError(
            f"[{what}] option(s) {unknown} are not supported by shoprank's embedded backend",
            construct=f"suggest.{what}.{unknown[0]}",
        )
    for key, why in REFUSED.items():
        if key in spec:
            raise UnsupportedQueryError(
                f"[{what}] option [{key}] is not supported: {why}",
                construct=f"suggest.{what}.{key}",
            )
    distance = spec.get("string_distance", "internal")
    if distance not in DISTANCES:
        raise UnsupportedQueryError(
            f"[{what}] string_distance [{distance}] is not supported; use one of {DISTANCES}",
            construct=f"suggest.{what}.string_distance",
        )
    suggest_mode = spec.get("suggest_mode", mode)
    if suggest_mode not in ("missing", "popular", "always"):
        raise BadRequestError(f"[{what}] unknown suggest_mode [{suggest_mode}]")
    sort = spec.get("sort", "score")
    if sort not in ("score", "frequency"):
        raise BadRequestError(f"[{what}] [sort] must be score or frequency, got {sort!r}")
    max_edits = int(_number(spec.get("max_edits", 2), f"{what}.max_edits"))
    if max_edits not in (1, 2):
        raise BadRequestError(f"[{what}] [max_edits] must be 1 or 2, got {max_edits}")
    size = int(_number(spec.get("size", 5), f"{what}.size"))
    if size < 1:
        raise BadRequestError(f"[{what}] [size] must be positive, got {size}")
    return TermOptions(
        size=size,
        mode=suggest_mode,
        max_edits=max_edits,
        prefix_length=max(0, int(_number(spec.get("prefix_length", 1), "prefix_length"))),
        min_word_length=max(0, int(_number(spec.get("min_word_length", 4), "min_word_length"))),
        by_frequency=sort == "frequency",
        accuracy=_number(spec.get("accuracy", 0.5), f"{what}.accuracy"),
        min_doc_freq=_number(spec.get("min_doc_freq", 0), f"{what}.min_doc_freq"),
        max_term_freq=_number(spec.get("max_term_freq", 0.01), f"{what}.max_term_freq"),
    )


def _threshold(value: float, docs: int) -> float:
    """A frequency option: a fraction of the documents below 1, a count from 1 up."""
    return value * docs if 0 < value < 1 else value


def corrections(vocab: Vocabulary, word: str, opts: TermOptions) -> list[tuple[str, float, int]]:
    """(candidate, score, document frequency) for `word`, best first."""
    if len(word) < opts.min_word_length:
        return []
    freq = vocab.df.get(word, 0)
    if opts.mode == "missing" and freq > 0:
        return []
    if freq and freq > _threshold(opts.max_term_freq, vocab.docs):
        return []
    min_freq = _threshold(opts.min_doc_freq, vocab.docs)
    pool = vocab.candidates(word[: opts.prefix_length], len(word), opts.max_edits)
    found: list[tuple[str, float, int]] = []
    # Distances of the whole pool in native code (the same optimal-string-alignment
    # distance as `edit_distance`); a pool is every word of the same initial within
    # `max_edits` letters of the length: thousands on a large catalog.
    within = process.extract(
        word, pool, scorer=OSA.distance, score_cutoff=opts.max_edits, limit=None
    )
    for cand, edits, _ in within:
        if cand == word:
            continue
        cand_freq = vocab.df[cand]
        if cand_freq < min_freq or (opts.mode == "popular" and cand_freq <= freq):
            continue
        score = 1.0 - int(edits) / min(len(word), len(cand))
        if score < opts.accuracy:
            continue
        found.append((cand, score, cand_freq))
    if opts.by_frequency:
        found.sort(key=lambda c: (-c[2], -c[1], c[0]))
    else:
        found.sort(key=lambda c: (-c[1], -c[2], c[0]))
    return found[: opts.size]
