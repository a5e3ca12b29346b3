"""Prefix-style, pattern and fuzzy queries of the embedded DSL, mixed into `QueryCompiler`.

`prefix`, `wildcard` and `fuzzy` are term-level (their value is not analysed, as in ES) and
work on text and keyword fields; their expansions are bounded (`dsl_expand`). They score
like ES's default constant-score rewrite: every match scores the query's `boost`.
`match_bool_prefix` / multi_match `bool_prefix` analyse the text: every token but the last
is a term, the last a prefix (its `max_expansions`, default 50, most frequent completions);
`match_phrase_prefix` / multi_match `phrase_prefix` are a phrase whose last token is such a
prefix. multi_match `cross_fields` treats the fields as one: each term must appear in at
least one of them (under `operator: and`); ES blends each term's IDF across the fields, here
a term scores as its best field (a dis_max of the per-field BM25 scores with `tie_breaker`),
which ranks the same way when the fields hold similar vocabularies.
"""

from __future__ import annotations

from typing import Any

import tantivy

from shoprank.errors import BadRequestError, UnsupportedQueryError

from .dsl_expand import (
    DEFAULT_MAX_EXPANSIONS,
    edit_distance,
    expand,
    fuzziness_distance,
    literal_prefix,
    wildcard_matcher,
)
from .dsl_util import boosted, combine
from .schema import FieldInfo, IndexSchema

Q = tantivy.Query
Occur = tantivy.Occur

TERM_LEVEL_OPTIONS = {"value", "boost", "_name", "case_insensitive"}
FUZZY_OPTIONS = {"value", "boost", "_name", "fuzziness", "prefix_length", "max_expansions"}
FUZZY_OPTIONS |= {"transpositions"}
PREFIX_MATCH_OPTIONS = {"query", "boost", "_name", "analyzer", "max_expansions", "slop"}
PREFIX_MATCH_OPTIONS |= {"zero_terms_query"}
BOOL_PREFIX_OPTIONS = {"query", "boost", "_name", "analyzer", "max_expansions", "operator"}
BOOL_PREFIX_OPTIONS |= {"minimum_should_match", "fuzziness", "prefix_length"}
BOOL_PREFIX_OPTIONS |= {"fuzzy_transpositions"}


def check_options(query: str, spec: dict[str, Any], allowed: set[str]) -> None:
    """400 naming every option of `spec` that `query` does not support."""
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise UnsupportedQueryError(
            f"[{query}] option(s) {unknown} are not supported by shoprank's embedded backend; "
            f"supported: {', '.join(sorted(allowed))}",
            construct=f"{query}.{unknown[0]}",
        )


def single_spec(body: Any, name: str, short_key: str) -> tuple[str, dict[str, Any]]:
    """`{"field": value}` or `{"field": {short_key: value, ...}}` as (field, options)."""
    if not isinstance(body, dict):
        raise BadRequestError(f"[{name}] query malformed, expected an object")
    items = [(k, v) for k, v in body.items() if k not in ("boost", "_name")]
    if len(items) != 1:
        raise BadRequestError(f"[{name}] query doesn't support multiple fields, found {len(items)}")
    path, spec = items[0]
    if not isinstance(spec, dict):
        spec = {short_key: spec}
    if short_key not in spec:
        raise BadRequestError(f"[{name}] requires a [{short_key}] for field [{path}]")
    return path, dict(spec)


def _wildcard_alias(body: Any) -> Any:
    """ES accepts the pattern as `wildcard` as well as `value`."""
    if not isinstance(body, dict):
        return body
    out: dict[str, Any] = {}
    for key, spec in body.items():
        if isinstance(spec, dict) and "wildcard" in spec and "value" not in spec:
            spec = {("value" if k == "wildcard" else k): v for k, v in spec.items()}
        out[key] = spec
    return out


def _flag(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return bool(value == "true")
    raise BadRequestError(f"[{what}] must be true or false, got {value!r}")


def _count(value: Any, what: str, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise BadRequestError(f"[{what}] must be a non-negative integer, got {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise BadRequestError(f"[{what}] must be a non-negative integer, got {value!r}") from None
    if number < 0:
        raise BadRequestError(f"[{what}] must be a non-negative integer, got {value!r}")
    return number


class TextQueries:
    """The handlers; `QueryCompiler` provides the schema, the index and the analyser."""

    schema: IndexSchema
    ts: tantivy.Schema
    index: tantivy.Index

    def _tokens(self, text: str) -> list[str]:
        raise NotImplementedError

    def _term(self, info: FieldInfo, value: Any) -> tantivy.Query:
        raise NotImplementedError

    # -- term sets -------------------------------------------------------------------------

    def _term_set(self, info: FieldInfo, terms: list[str]) -> tantivy.Query:
        if not terms:
            return Q.empty_query()
        return Q.term_set_query(self.ts, info.tantivy, terms)

    def prefix_terms(
        self,
        info: FieldInfo,
        prefix: str,
        *,
        what: str,
        top: int | None = None,
        case_insensitive: bool = False,
    ) -> list[str]:
        """The indexed terms of `info` starting with `prefix` (bounded, see dsl_expand)."""
        return expand(
            self.index.searcher(),
            info,
            what=what,
            prefix=prefix,
            case_insensitive=case_insensitive,
            top=top,
        )

    # -- term-level pattern queries --------------------------------------------------------

    def _q_prefix(self, body: Any) -> tantivy.Query:
        path, spec = single_spec(body, "prefix", "value")
        check_options("prefix", spec, TERM_LEVEL_OPTIONS)
        value = spec["value"]
        if not isinstance(value, str):
            raise BadRequestError(f"[prefix] on [{path}] expects a string, got {value!r}")
        insensitive = _flag(spec.get("case_insensitive", False), "prefix.case_insensitive")
        info = self.schema.field(path)
        terms = self.prefix_terms(info, value, what="prefix", case_insensitive=insensitive)
        return Q.const_score_query(self._term_set(info, terms), float(spec.get("boost", 1.0)))

    def _q_wildcard(self, body: Any) -> tantivy.Query:
        path, spec = single_spec(_wildcard_alias(body), "wildcard", "value")
        check_options("wildcard", spec, TERM_LEVEL_OPTIONS)
        pattern = spec["value"]
        if not isinstance(pattern, str):
            raise BadRequestError(f"[wildcard] on [{path}] expects a string, got {pattern!r}")
        insensitive = _flag(spec.get("case_insensitive", False), "wildcard.case_insensitive")
        info = self.schema.field(path)
        terms = self.wildcard_terms(info, pattern, case_insensitive=insensitive)
        return Q.const_score_query(self._term_set(info, terms), float(spec.get("boost", 1.0)))

    def wildcard_terms(
        self, info: FieldInfo, pattern: str, *, case_insensitive: bool = False
    ) -> list[str]:
        return expand(
            self.index.searcher(),
            info,
            what="wildcard",
            prefix=literal_prefix(pattern),
            matcher=wildcard_matcher(pattern, case_insensitive=case_insensitive),
            case_insensitive=case_insensitive,
        )

    def _q_fuzzy(self, body: Any) -> tantivy.Query:
        path, spec = single_spec(body, "fuzzy", "value")
        check_options("fuzzy", spec, FUZZY_OPTIONS)
        value = spec["value"]
        if isinstance(value, dict | list) or value is None:
            raise BadRequestError(f"[fuzzy] on [{path}] expects a scalar, got {value!r}")
        text = str(value)
        info = self.schema.field(path)
        distance = fuzziness_distance(spec.get("fuzziness", "AUTO"), text)
        transpositions = _flag(spec.get("transpositions", True), "fuzzy.transpositions")
        prefix_length = _count(spec.get("prefix_length"), "fuzzy.prefix_length", 0)
        max_expansions = _count(
            spec.get("max_expansions"), "fuzzy.max_expansions", DEFAULT_MAX_EXPANSIONS
        )
        terms = self.fuzzy_terms(
            info, text, distance, prefix_length, max_expansions, transpositions=transpositions
        )
        return boosted(self._term_set(info, terms), spec.get("boost"))

    def fuzzy_terms(
        self,
        info: FieldInfo,
        text: str,
        distance: int,
        prefix_length: int,
        max_expansions: int,
        *,
        transpositions: bool = True,
    ) -> list[str]:
        """The terms within `distance` edits of `text` sharing its first `prefix_length`
        characters: the closest first, then the most frequent, `max_expansions` of them."""
        if distance == 0:
            return [text]
        head = text[:prefix_length]
        candidates = expand(self.index.searcher(), info, what="fuzzy", prefix=head, top=None)
        near = []
        for term in candidates:
            d = edit_distance(term, text, limit=distance, transpositions=transpositions)
            if d <= distance:
                near.append((d, term))
        near.sort(key=lambda pair: pair[0])  # stable: frequency order within a distance
        return [t for _, t in near[:max_expansions]]

    # -- analysed prefix queries -----------------------------------------------------------

    def bool_prefix_on(
        self,
        info: FieldInfo,
        text: Any,
        *,
        operator: Any = "or",
        msm: Any = None,
        max_expansions: int = DEFAULT_MAX_EXPANSIONS,
        fuzziness: Any = None,
        prefix_length: int = 0,
    ) -> tantivy.Query:
        """match_bool_prefix of `text` on one field (a keyword field: a prefix of the value)."""
        done, tokens = self._prefix_tokens(info, text, "bool_prefix", max_expansions)
        if done is not None:
            return done
        leaves = [
            self._fuzzy_leaf(info, t, fuzziness, prefix_length, max_expansions) for t in tokens[:-1]
        ]
        last = self.prefix_terms(info, tokens[-1], what="bool_prefix", top=max_expansions)
        leaves.append(Q.const_score_query(self._term_set(info, last), 1.0))
        return combine(leaves, operator, msm)

    def _prefix_tokens(
        self, info: FieldInfo, text: Any, what: str, top: int
    ) -> tuple[tantivy.Query | None, list[str]]:
        """What a prefix query on one field starts from: the analysed words of a text
        field, or the whole answer where there are none to complete (a keyword field's
        value prefix, a term on other kinds, nothing for empty text)."""
        if text is None or isinstance(text, dict | list):
            raise BadRequestError(f"[match_{what}] on [{info.path}] expects text")
        if info.kind == "keyword":
            terms = self.prefix_terms(info, str(text), what=what, top=top)
            return Q.const_score_query(self._term_set(info, terms), 1.0), []
        if info.kind != "text":
            return self._term(info, text), []
        tokens = self._tokens(str(text))
        return (None, tokens) if tokens else (Q.empty_query(), [])

    def _fuzzy_leaf(
        self, info: FieldInfo, token: str, fuzziness: Any, prefix_length: int, top: int
    ) -> tantivy.Query:
        if fuzziness is None:
            return Q.term_query(self.ts, info.tantivy, token)
        distance = fuzziness_distance(fuzziness, token)
        if distance == 0:
            return Q.term_query(self.ts, info.tantivy, token)
        if prefix_length == 0:
            return Q.fuzzy_term_query(self.ts, info.tantivy, token, distance=distance)
        return self._term_set(info, self.fuzzy_terms(info, token, distance, prefix_length, top))

    def phrase_prefix_on(
        self, info: FieldInfo, text: Any, *, slop: int = 0, max_expansions: int = 50
    ) -> tantivy.Query:
        """match_phrase_prefix of `text` on one field: a phrase whose last word is a prefix."""
        done, tokens = self._prefix_tokens(info, text, "phrase_prefix", max_expansions)
        if done is not None:
            return done
        last = self.prefix_terms(info, tokens[-1], what="phrase_prefix", top=max_expansions)
        if not last:
            return Q.empty_query()
        if len(tokens) == 1:
            return Q.boolean_query(
                [(Occur.Should, Q.term_query(self.ts, info.tantivy, t)) for t in last]
            )
        phrases = []
        for completion in last:
            words: list[str | tuple[int, str]] = [*tokens[:-1], completion]
            phrases.append((Occur.Should, Q.phrase_query(self.ts, info.tantivy, words, slop)))
        return Q.boolean_query(phrases)

    def _q_match_bool_prefix(self, body: Any) -> tantivy.Query:
        path, spec = single_spec(body, "match_bool_prefix", "query")
        check_options("match_bool_prefix", spec, BOOL_PREFIX_OPTIONS)
        query = self.bool_prefix_on(
            self.schema.field(path),
            spec["query"],
            operator=spec.get("operator", "or"),
            msm=spec.get("minimum_should_match"),
            max_expansions=_count(spec.get("max_expansions"), "max_expansions", 50),
            fuzziness=spec.get("fuzziness"),
            prefix_length=_count(spec.get("prefix_length"), "prefix_length", 0),
        )
        return boosted(query, spec.get("boost"))

    def _q_match_phrase_prefix(self, body: Any) -> tantivy.Query:
        path, spec = single_spec(body, "match_phrase_prefix", "query")
        check_options("match_phrase_prefix", spec, PREFIX_MATCH_OPTIONS)
        query = self.phrase_prefix_on(
            self.schema.field(path),
            spec["query"],
            slop=_count(spec.get("slop"), "slop", 0),
            max_expansions=_count(spec.get("max_expansions"), "max_expansions", 50),
        )
        return boosted(query, spec.get("boost"))

    # -- cross_fields ----------------------------------------------------------------------

    def cross_fields(
        self,
        fields: list[tuple[FieldInfo, float]],
        text: Any,
        *,
        operator: Any,
        msm: Any,
        tie_breaker: float,
    ) -> tantivy.Query:
        """Term-centric multi_match: every token scored by its best field (see module doc);
        non-text fields take the whole text as one term, as a group of their own."""
        if text is None or isinstance(text, dict | list):
            raise BadRequestError("[multi_match] expects text in [query]")
        texts = [(f, b) for f, b in fields if f.kind == "text"]
        others = [(f, b) for f, b in fields if f.kind != "text"]
        groups: list[tantivy.Query] = []
        tokens = self._tokens(str(text))
        if texts and tokens:
            per_token = []
            for token in tokens:
                alternatives = [
                    boosted(Q.term_query(self.ts, f.tantivy, token), b) for f, b in texts
                ]
                per_token.append(Q.disjunction_max_query(alternatives, tie_breaker=tie_breaker))
            groups.append(combine(per_token, operator, msm))
        for info, boost in others:
            groups.append(boosted(self._term(info, text), boost))
        if not groups:
            return Q.empty_query()
        return groups[0] if len(groups) == 1 else Q.disjunction_max_query(groups)
