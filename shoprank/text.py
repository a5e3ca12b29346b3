"""Text analysis shared by the embedded backend (indexing and query analysis) and query
understanding: which characters are CJK, accent folding, and CJK runs as bigrams.

Neither side owns the other: the backend and `shoprank.rerankers.intent` both import from
here, so the lexical index and the intent matcher split Chinese/Japanese/Korean the same way.
"""

from __future__ import annotations

import re
import unicodedata

# Hiragana/Katakana, CJK ideographs (extension A, unified, compatibility) and Hangul.
CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
_CJK_RUN = re.compile(CJK.pattern + "+")


def fold(text: str) -> str:
    """Lower-case and strip accents ("Café" → "cafe")."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def cjk_bigrams(text: str) -> str:
    """Text with every CJK run rewritten as space-separated overlapping bigrams.

    Lets a whitespace/letter tokenizer index Chinese: "华为手机" → "华为 为手 手机".
    """
    if not CJK.search(text):
        return text
    pieces: list[str] = []
    last = 0
    for match in _CJK_RUN.finditer(text):
        run = match.group(0)
        pieces.append(text[last : match.start()])
        grams = [run[i : i + 2] for i in range(len(run) - 1)] if len(run) > 1 else [run]
        pieces.append(" " + " ".join(grams) + " ")
        last = match.end()
    pieces.append(text[last:])
    return "".join(pieces)
