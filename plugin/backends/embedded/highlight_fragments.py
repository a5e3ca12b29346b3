"""Fragments of one highlighted value: cut at word boundaries around the matches, marked
with the request's tags (HTML-escaped with `encoder: html`), ranked and picked.

A value no longer than `fragment_size` is one fragment (the usual product title); longer
ones get a window of about `fragment_size` characters per run of nearby matches.
"""

from __future__ import annotations

from .highlight_options import FieldOptions

Match = tuple[int, int, int]  # start, end, term id
Fragment = tuple[float, int, int, str]  # score, value index, start, rendered


def _escape(text: str) -> str:
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#x27;")
        .replace("/", "&#x2F;")
    )


def _render(
    text: str, matches: list[Match], start: int, end: int, opts: FieldOptions, html: bool
) -> str:
    pre, post = opts.pre_tags, opts.post_tags
    parts: list[str] = []
    at = start
    if html:
        for s, e, tid in matches:
            parts += (_escape(text[at:s]), pre[tid % len(pre)], _escape(text[s:e]))
            parts.append(post[tid % len(post)])
            at = e
        parts.append(_escape(text[at:end]))
    elif len(pre) == 1 and len(post) == 1:
        for s, e, _ in matches:
            parts += (text[at:s], pre[0], text[s:e], post[0])
            at = e
        parts.append(text[at:end])
    else:
        for s, e, tid in matches:
            parts += (text[at:s], pre[tid % len(pre)], text[s:e], post[tid % len(post)])
            at = e
        parts.append(text[at:end])
    return "".join(parts)


def _word_start(text: str, pos: int, limit: int) -> int:
    """`pos` moved forward to the start of a word, never past `limit`."""
    if pos <= 0:
        return 0
    while pos < limit and text[pos - 1].isalnum() and text[pos].isalnum():
        pos += 1
    while pos < limit and not text[pos].isalnum():
        pos += 1
    return pos


def _word_end(text: str, pos: int, floor: int) -> int:
    """`pos` moved back to the end of a word, never before `floor`."""
    if pos >= len(text):
        return len(text)
    while pos > floor and text[pos - 1].isalnum() and text[pos].isalnum():
        pos -= 1
    while pos > floor and not text[pos - 1].isalnum():
        pos -= 1
    return pos


def _windows(
    text: str, matches: list[Match], opts: FieldOptions, html: bool, value_index: int
) -> list[Fragment]:
    size = max(opts.fragment_size, 1)
    out: list[Fragment] = []
    counts: dict[int, int] = {}
    for _, _, tid in matches:
        counts[tid] = counts.get(tid, 0) + 1
    i = 0
    while i < len(matches):
        first_start, first_end, _ = matches[i]
        if len(text) <= size:
            start, end = 0, len(text)
        else:
            margin = max(0, (size - (first_end - first_start)) // 2)
            start = _word_start(text, max(0, first_start - margin), first_start)
            if start + size > len(text):
                start = _word_start(text, max(0, len(text) - size), first_start)
            end = _word_end(text, min(len(text), start + size), first_end)
        j = i
        while j < len(matches) and matches[j][1] <= end:
            j += 1
        inside = matches[i:j]
        rendered = _render(text, inside, start, end, opts, html)
        out.append((_score(inside, counts), value_index, start, rendered))
        i = j
    return out


def _score(inside: list[Match], counts: dict[int, int]) -> float:
    """Distinct terms first; among those, terms rarer in the value weigh more (like idf)."""
    distinct = {tid for _, _, tid in inside}
    return len(distinct) + sum(1.0 / counts[t] for t in distinct) / (len(distinct) + 1)


def value_fragments(
    value: str, text: str, matches: list[Match], opts: FieldOptions, html: bool, index: int
) -> list[Fragment]:
    """The fragments of one value (`text`: the part of it that was analysed)."""
    if opts.number_of_fragments == 0:
        return [(0.0, index, 0, _render(value, matches, 0, len(value), opts, html))]
    if len(text) <= opts.fragment_size:
        score = float(len({tid for _, _, tid in matches}))
        return [(score, index, 0, _render(text, matches, 0, len(text), opts, html))]
    return _windows(text, matches, opts, html, index)


def pick_fragments(
    frags: list[Fragment], values: list[str], opts: FieldOptions, html: bool
) -> list[str]:
    """The field's answer: the best `number_of_fragments` (in text order unless
    `order: score`), every matching value for 0, or `no_match_size` of the first value."""
    if not frags:
        if opts.no_match_size and values:
            first = values[0]
            cut = len(first)
            if cut > opts.no_match_size:
                cut = _word_end(first, opts.no_match_size, 0) or opts.no_match_size
            return [_render(first, [], 0, cut, opts, html)]
        return []
    if opts.number_of_fragments == 0 or len(frags) == 1:
        return [f[3] for f in frags]
    best = sorted(frags, key=lambda f: (-f[0], f[1], f[2]))[: opts.number_of_fragments]
    if not opts.order_by_score:
        best.sort(key=lambda f: (f[1], f[2]))
    return [f[3] for f in best]
