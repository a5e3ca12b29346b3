"""Query text normalisation shared by the matcher, the price parser and the classifier.

A query is split into tokens that remember where they came from (so matched words can be
cut out of the original text), and each token gets a *key*: lower-cased, accent-folded,
crudely singularised. Han/Kana/Hangul runs become overlapping bigrams, so "华为手机" and
"华为 手机" share keys. Folding and CJK detection come from `shoprank.text`, shared with
the embedded backend's analyser.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shoprank.text import CJK as _CJK
from shoprank.text import cjk_bigrams, fold

__all__ = [
    "MAX_QUERY_CHARS",
    "Token",
    "cjk_bigrams",
    "fold",
    "hashed_bag",
    "key",
    "remove_spans",
    "singular",
    "tokenize",
]

MAX_QUERY_CHARS = 512
_WORD = re.compile(r"[^\W_]+(?:[.'’][^\W_]+)*", re.UNICODE)


@dataclass(frozen=True, slots=True)
class Token:
    text: str
    key: str
    start: int
    end: int


def singular(word: str) -> str:
    """A crude English singular: "toners" → "toner", "batteries" → "battery", "glass" stays."""
    if len(word) <= 3 or not word.isalpha() or not word.isascii():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "sses", "zes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def key(word: str) -> str:
    return singular(fold(word))


def tokenize(text: str) -> list[Token]:
    """Tokens with their character spans; CJK runs become bigrams (one token if a single char)."""
    out: list[Token] = []
    for match in _WORD.finditer(text[:MAX_QUERY_CHARS]):
        word = match.group(0)
        if _CJK.search(word):
            out += _split_cjk(word, match.start())
            continue
        out.append(Token(word, key(word), match.start(), match.end()))
    return out


def _split_cjk(word: str, offset: int) -> list[Token]:
    out: list[Token] = []
    run: list[tuple[int, str]] = []

    def flush() -> None:
        if len(run) == 1:
            i, ch = run[0]
            out.append(Token(ch, ch, offset + i, offset + i + 1))
        for (i, a), (_, b) in zip(run, run[1:], strict=False):
            out.append(Token(a + b, a + b, offset + i, offset + i + 2))
        run.clear()

    latin_start: int | None = None
    for i, ch in enumerate(word):
        if _CJK.match(ch):
            if latin_start is not None:
                piece = word[latin_start:i]
                out.append(Token(piece, key(piece), offset + latin_start, offset + i))
                latin_start = None
            run.append((i, ch))
        else:
            flush()
            if latin_start is None:
                latin_start = i
    flush()
    if latin_start is not None:
        piece = word[latin_start:]
        out.append(Token(piece, key(piece), offset + latin_start, offset + len(word)))
    return out


def hashed_bag(keys: list[str], dims: int) -> npt.NDArray[np.float32]:
    """Unigrams + bigrams of token keys hashed into `dims` buckets, L2-normalised."""
    vec = np.zeros(dims, dtype=np.float32)
    feats = keys + [f"{a} {b}" for a, b in zip(keys, keys[1:], strict=False)]
    for feat in feats:
        vec[zlib.crc32(feat.encode("utf-8")) % dims] += 1.0
    norm = float(np.linalg.norm(vec))
    if norm > 0:
        vec /= norm
    return vec


def remove_spans(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` with the character spans cut out and whitespace tidied."""
    if not spans:
        return " ".join(text.split())
    out: list[str] = []
    last = 0
    for start, end in sorted(spans):
        if start < last:
            start = last
        out.append(text[last:start])
        last = max(last, end)
    out.append(text[last:])
    cleaned = " ".join("".join(out).split())
    return cleaned.strip(" ,;-/")
