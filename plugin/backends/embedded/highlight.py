"""ES `highlight` on the embedded backend: fragments of `_source` values with the query's
terms marked, the way Elasticsearch's highlighters answer (`hit["highlight"][field]`).

Per request the query is read once (`highlight_terms`) and compiled per highlighted field
into one matcher (a set of index terms, prefixes, one wildcard regex, fuzzy terms); each hit
then only splits its values into words (`tokens.words`) and looks their stems up. Text of
ASCII words is scanned by one regex for the words that may match, and a value that is one
fragment is marked in that same pass (`_marked_whole`).
"""

from __future__ import annotations

import fnmatch
import re
import string
from dataclasses import dataclass, field
from typing import Any

import tantivy

from shoprank.errors import BadRequestError
from shoprank.text import CJK

from .generation import Generation
from .highlight_fragments import Fragment, Match, pick_fragments, value_fragments
from .highlight_options import FieldOptions, HighlightRequest, parse_highlight
from .highlight_terms import ANY_FIELD, Clause, query_clauses
from .schema import IndexSchema
from .sort import Scored
from .tokens import WORD, analyse, edit_distance, fuzziness_of, stem, words
from .values import source_of

HIGHLIGHTABLE = ("text", "keyword", "dynamic")
_NOTHING = re.compile(r"(?!)")
_ALNUM = frozenset(string.ascii_lowercase + string.digits)
_PATTERN = re.compile(r"[*?\[]")  # what makes an fnmatch pattern more than a name
_WORDLY = re.compile(r"[^\W\x00-\x7f]")  # a letter or digit outside ASCII


@dataclass
class Matcher:
    """What marks a word (text fields) or a whole value (keyword fields) of one field."""

    whole_value: bool
    exact: dict[str, int] = field(default_factory=dict)
    prefixes: list[tuple[str, int]] = field(default_factory=list)
    wildcards: list[tuple[re.Pattern[str], int]] = field(default_factory=list)
    fuzzy: list[tuple[str, int, int, int]] = field(default_factory=list)  # term, edits, pfx, id
    folded: dict[str, int] = field(default_factory=dict)  # case-insensitive keyword values
    seen: dict[str, int] = field(default_factory=dict)
    surface: dict[str, int] = field(default_factory=dict)  # word as written → term id
    # Words that may stem to a term (text of ASCII words): begin with the term's first
    # letters. In lower case, case-sensitive: it scans the text's `ascii_words`.
    candidates: re.Pattern[str] | None = None
    # Whether `candidates` leaves out "not after a letter or digit" (checked by the caller):
    # heads of letters and digits only, so a match is a whole word or inside one.
    by_hand: bool = False
    phrases: list[tuple[int, ...]] = field(default_factory=list)  # term ids, in order
    phrase_only: set[int] = field(default_factory=set)

    def finish(self) -> Matcher:
        if self.whole_value or self.wildcards or self.fuzzy or self.folded:
            return self
        # A stem differs from its word in at most its last two letters ("happi" ← "happy",
        # "possibl" ← "possibility"), so the word begins with all but those.
        terms = list(self.exact) + [p for p, _ in self.prefixes]
        heads = {t[: max(1, len(t) - 2)] for t in terms}
        # A term outside ASCII cannot match ASCII text, whatever its head.
        heads = {h.lower() for h in heads if h.isascii()}
        alternatives = "|".join(re.escape(h) for h in sorted(heads, key=len, reverse=True))
        # On lower-cased ASCII text, ASCII classes say what `[^\W_]` says, and faster; a
        # lookbehind slows both the scan and the compiling, so it is left to the caller when
        # every head is letters and digits (a match inside a word then spans its rest).
        self.by_hand = bool(heads) and all(h.isalnum() for h in heads)
        if not heads:
            self.candidates = _NOTHING
        elif self.by_hand:
            self.candidates = re.compile(rf"(?:{alternatives})[a-z0-9]*")
        else:
            self.candidates = re.compile(rf"(?<![a-z0-9])(?:{alternatives})[a-z0-9]*")
        return self

    @property
    def empty(self) -> bool:
        return not (self.exact or self.prefixes or self.wildcards or self.fuzzy or self.folded)

    def term_id(self, term: str) -> int:
        """The id of the query term `term` matches, or -1."""
        found = self.seen.get(term)
        if found is not None:
            return found
        found = self.exact.get(term, -1)
        if found < 0 and self.folded:
            found = self.folded.get(term.lower(), -1)
        if found < 0:
            for prefix, tid in self.prefixes:
                if term.startswith(prefix):
                    found = tid
                    break
        if found < 0:
            for pattern, tid in self.wildcards:
                if pattern.fullmatch(term):
                    found = tid
                    break
        if found < 0:
            for target, edits, keep, tid in self.fuzzy:
                if term[:keep] == target[:keep] and edit_distance(term, target, edits) <= edits:
                    found = tid
                    break
        if len(self.seen) < 10_000:
            self.seen[term] = found
        return found


class TermIds:
    """One id per distinct query term of the request: which tag it gets, what a fragment
    with several distinct terms scores."""

    def __init__(self) -> None:
        self.ids: dict[tuple[str, str], int] = {}

    def of(self, kind: str, term: str) -> int:
        return self.ids.setdefault((kind, term), len(self.ids))


def _glob(pattern: str, *, fold: bool) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(pattern), re.IGNORECASE if fold else 0)


def compile_matcher(clauses: list[Clause], kind: str, ids: TermIds) -> Matcher:
    """The matcher of a field of `kind` for the clauses that apply to it."""
    whole = kind != "text"
    m = Matcher(whole_value=whole)
    free: set[int] = set()  # ids some clause marks anywhere (not only inside a phrase)
    in_phrases: set[int] = set()
    for c in clauses:
        if c.kind == "match" and not whole:
            terms = analyse(c.text)
            tids = []
            for i, term in enumerate(terms):
                tid = ids.of("t", term)
                tids.append(tid)
                if c.last_prefix and i == len(terms) - 1:
                    m.prefixes.append((term, tid))
                    continue
                edits = fuzziness_of(c.fuzziness, len(term), what="highlight")
                if edits:
                    m.fuzzy.append((term, edits, 0, tid))
                m.exact.setdefault(term, tid)
            if c.phrase and len(tids) > 1:
                m.phrases.append(tuple(tids))
                in_phrases.update(tids)
            else:
                free.update(tids)
            continue
        if c.kind == "match":  # on a keyword field: the whole text is the one term
            tid = ids.of("v", c.text)
            if c.last_prefix:
                m.prefixes.append((c.text, tid))
            else:
                m.exact.setdefault(c.text, tid)
        elif c.kind == "term":
            tid = ids.of("v", c.text)
            if whole and c.case_insensitive:
                m.folded.setdefault(c.text.lower(), tid)
            else:
                m.exact.setdefault(c.text, tid)
        elif c.kind == "prefix":
            text = c.text if whole and not c.case_insensitive else c.text.lower()
            tid = ids.of("p", text)
            if whole and c.case_insensitive:
                m.wildcards.append((re.compile(re.escape(text) + ".*", re.IGNORECASE | re.S), tid))
            else:
                m.prefixes.append((text, tid))
        elif c.kind == "wildcard":
            text = c.text if whole else c.text.lower()
            tid = ids.of("w", text)
            m.wildcards.append((_glob(text, fold=c.case_insensitive), tid))
        else:  # fuzzy
            text = c.text if whole else c.text.lower()
            edits = fuzziness_of(c.fuzziness, len(text), what="highlight fuzzy")
            tid = ids.of("f", text)
            m.exact.setdefault(text, tid)
            if edits:
                m.fuzzy.append((text, edits, c.prefix_length, tid))
        free.add(tid)
    m.phrase_only = in_phrases - free
    return m.finish()


def _phrase_filter(text: str, matches: list[Match], m: Matcher) -> list[Match]:
    """Drop words that only a phrase asks for where they do not stand in that phrase."""
    keep = [tid not in m.phrase_only for _, _, tid in matches]
    for seq in m.phrases:
        k = len(seq)
        for i in range(len(matches) - k + 1):
            if all(matches[i + j][2] == seq[j] for j in range(k)) and not any(
                WORD.search(text, matches[i + j][1], matches[i + j + 1][0]) for j in range(k - 1)
            ):
                for j in range(k):
                    keep[i + j] = True
    return [match for match, kept in zip(matches, keep, strict=True) if kept]


def _applies(clause: Clause, name: str, require_field_match: bool) -> bool:
    if not require_field_match:
        return True
    fields = clause.fields
    if name in fields or ANY_FIELD in fields:
        return True
    # A field name without pattern characters matches only itself.
    return any(fnmatch.fnmatchcase(name, p) for p in fields if _PATTERN.search(p))


def _source_values(source: dict[str, Any], path: str, schema: IndexSchema) -> list[str]:
    """The string values a (sub-)field is indexed from: `brand.text` reads `brand`."""
    node: Any = source
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        else:
            node = None
            break
    if node is None and "." in path and path in schema.fields:
        return _source_values(source, path.rsplit(".", 1)[0], schema)
    values = node if isinstance(node, list) else [node]
    return [
        v if isinstance(v, str) else str(v)
        for v in values
        if v is not None and not isinstance(v, dict | list | bool)
    ]


def value_matches(text: str, matcher: Matcher) -> list[Match]:
    """Where `matcher` marks `text`."""
    if matcher.whole_value:
        tid = matcher.term_id(text)
        return [(0, len(text), tid)] if tid >= 0 and text else []
    out = []
    ascii_text = text.isascii()  # CJK is never ASCII: skip the scan for it
    if not ascii_text and CJK.search(text):
        for start, end, word in words(text):
            term = stem(word)
            tid = matcher.term_id(term) if term else -1
            if tid >= 0:
                out.append((start, end, tid))
        if matcher.phrase_only and out:
            out = _phrase_filter(text, out, matcher)
        return _merge_overlaps(out)
    # The common case, kept tight: one regex pass, one dict lookup per word.
    surface = matcher.surface
    scanned, pattern, by_hand = text, WORD, False
    if matcher.candidates is not None:
        lowered = ascii_words(text)
        if lowered is not None:
            scanned, pattern, by_hand = lowered, matcher.candidates, matcher.by_hand
    for found in pattern.finditer(scanned):
        start, end = found.span()
        if by_hand and start and scanned[start - 1] in _ALNUM:
            continue
        word = text[start:end]
        mark = surface.get(word)
        if mark is None:
            mark = _word_id(word, matcher)
        if mark >= 0:
            out.append((start, end, mark))
    return _phrase_filter(text, out, matcher) if matcher.phrase_only and out else out


def _word_id(word: str, matcher: Matcher) -> int:
    """The term id of a word not yet in `matcher.surface` (then remembered there)."""
    term = stem(word)
    tid = matcher.term_id(term) if term else -1
    if len(matcher.surface) < 50_000:
        matcher.surface[word] = tid
    return tid


def ascii_words(text: str) -> str | None:
    """`text` lower-cased with every character outside ASCII as `?`, offsets unchanged, when
    all its words are ASCII (nothing outside ASCII is a letter or a digit: `®`, `–`, `”`);
    else None. Words and their boundaries are the same in both: `Matcher.candidates` scans
    this one."""
    if text.isascii():
        return text.lower()
    if _WORDLY.search(text):
        return None
    return text.encode("ascii", "replace").decode("ascii").lower()


def _marked_whole(text: str, lowered: str, matcher: Matcher, pre: str, post: str) -> str | None:
    """`text` whole with its words marked, or None when none is: what `value_matches`,
    `value_fragments` and `pick_fragments` answer for one value of ASCII words
    (`lowered`: its `ascii_words`) that is one fragment, with one tag pair, no phrase-only
    terms and no HTML encoding, in one pass."""
    assert matcher.candidates is not None
    surface = matcher.surface
    by_hand = matcher.by_hand
    parts: list[str] = []
    at = 0
    for found in matcher.candidates.finditer(lowered):
        start, end = found.span()
        if by_hand and start and lowered[start - 1] in _ALNUM:
            continue
        word = text[start:end]
        tid = surface.get(word)
        if tid is None:
            tid = _word_id(word, matcher)
        if tid >= 0:
            parts += (text[at:start], pre, word, post)
            at = end
    if not parts:
        return None
    parts.append(text[at:])
    return "".join(parts)


def _merge_overlaps(matches: list[Match]) -> list[Match]:
    """CJK bigrams overlap ("华为", "为手"): marked runs become one span."""
    merged: list[Match] = []
    for start, end, tid in matches:
        if merged and start < merged[-1][1]:
            last = merged[-1]
            merged[-1] = (last[0], max(last[1], end), last[2])
        else:
            merged.append((start, end, tid))
    return merged


def field_highlight(
    values: list[str], matcher: Matcher, opts: FieldOptions, html: bool
) -> list[str]:
    """The fragments of one field (all its values), best first or in text order."""
    frags: list[Fragment] = []
    for index, value in enumerate(values):
        text = value if opts.max_analyzed_offset is None else value[: opts.max_analyzed_offset]
        matches = value_matches(text, matcher)
        if matches:
            frags += value_fragments(value, text, matches, opts, html, index)
    return pick_fragments(frags, values, opts, html)


class PageHighlighter:
    """One request's highlighter: fields resolved and matchers built once, then per hit."""

    def __init__(self, schema: IndexSchema, request: HighlightRequest, query: Any) -> None:
        self.schema = schema
        self.html = request.html
        self.ids = TermIds()
        self._clauses: dict[tuple[int, bool], list[Clause]] = {}
        self.query = query
        self.fields: list[tuple[str, FieldOptions, Matcher]] = []
        matchers: dict[tuple[bool, tuple[int, ...]], Matcher] = {}
        for name, opts in request.fields:
            for path, kind in self._expand(name, opts):
                clauses = [
                    c
                    for c in self._query_clauses(opts)
                    if _applies(c, path, opts.require_field_match)
                ]
                # Fields queried alike share one matcher (and its word cache).
                key = (kind != "text", tuple(map(id, clauses)))
                matcher = matchers.get(key) or compile_matcher(clauses, kind, self.ids)
                matchers[key] = matcher
                if not matcher.empty or opts.no_match_size:
                    self.fields.append((path, opts, matcher))
        # Per field: whether a top-level value is read directly, and whether a value that is
        # one fragment can be marked in one pass (`_marked_whole`).
        self._plan = [
            (
                path,
                opts,
                matcher,
                "." not in path,
                not self.html
                and len(opts.pre_tags) == 1
                and len(opts.post_tags) == 1
                and matcher.candidates is not None
                and not matcher.whole_value
                and not matcher.phrase_only
                and opts.max_analyzed_offset is None,
            )
            for path, opts, matcher in self.fields
        ]

    def _query_clauses(self, opts: FieldOptions) -> list[Clause]:
        query = opts.highlight_query if opts.highlight_query is not None else self.query
        key = (id(query), opts.highlight_filter)
        if key not in self._clauses:
            self._clauses[key] = query_clauses(query, include_filters=opts.highlight_filter)
        return self._clauses[key]

    def _expand(self, name: str, opts: FieldOptions) -> list[tuple[str, str]]:
        """Concrete highlightable fields of a field name or pattern, with their kinds."""
        if "*" not in name and "?" not in name:
            try:
                info = self.schema.field(name)
            except BadRequestError:  # `_id` and the like: nothing to highlight
                return []
            return [(name, info.kind)] if info.kind in HIGHLIGHTABLE else []
        found: list[tuple[str, str]] = [
            (path, info.kind)
            for path, info in self.schema.fields.items()
            if info.kind in HIGHLIGHTABLE and fnmatch.fnmatchcase(path, name)
        ]
        # Unmapped fields a query names explicitly are keywords (dynamic mapping).
        known = {p for p, _ in found}
        for clause in self._query_clauses(opts):
            for path in clause.fields:
                if (
                    path not in known
                    and not any(c in path for c in "*?")
                    and fnmatch.fnmatchcase(path, name)
                    and path not in self.schema.fields
                    and not path.startswith("_")
                ):
                    known.add(path)
                    found.append((path, "dynamic"))
        return found

    def hit(self, source: dict[str, Any]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        html = self.html
        for path, opts, matcher, top_level, quick in self._plan:
            value = source.get(path) if top_level else None
            if type(value) is not str:  # a list, a number, a nested path: the general way
                values = _source_values(source, path, self.schema)
                if not values:
                    continue
                fragments = field_highlight(values, matcher, opts, html)
            else:
                lowered = None  # the value's `ascii_words` when it is one fragment to mark
                if quick and (opts.number_of_fragments == 0 or len(value) <= opts.fragment_size):
                    lowered = value.lower() if value.isascii() else ascii_words(value)
                if lowered is None:
                    fragments = field_highlight([value], matcher, opts, html)
                else:
                    pre, post = opts.pre_tags[0], opts.post_tags[0]
                    marked = _marked_whole(value, lowered, matcher, pre, post)
                    if marked is not None:
                        out[path] = [marked]
                        continue
                    fragments = pick_fragments([], [value], opts, html)
            if fragments:
                out[path] = fragments
        return out


def highlight_hits(
    gen: Generation,
    searcher: tantivy.Searcher,
    page: Scored,
    hits: list[dict[str, Any]],
    body: dict[str, Any],
    *,
    sources: list[dict[str, Any]] | None = None,
) -> None:
    """Add `highlight` to each hit of the page that has a matching field (in place).
    `sources`: the hits' whole `_source`s, in order, when the caller already read them."""
    request = parse_highlight(body["highlight"])
    highlighter = PageHighlighter(gen.schema, request, body.get("query"))
    if not highlighter.fields:
        return
    full_source = body.get("_source") in (None, True)
    known = sources if sources is not None and len(sources) == len(hits) else None
    for i, (hit, (_, addr)) in enumerate(zip(hits, page, strict=False)):
        if known is not None:
            source = known[i]
        elif full_source and isinstance(hit.get("_source"), dict):
            source = hit["_source"]
        else:
            doc = searcher.doc(addr)
            if doc.get_first("_id") != hit.get("_id"):
                continue  # the page was reshaped after the fact; nothing safe to mark
            source = source_of(doc)
        marks = highlighter.hit(source)
        if marks:
            hit["highlight"] = marks
