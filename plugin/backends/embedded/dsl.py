"""The embedded backend's interpreter of the Elasticsearch query DSL, onto tantivy queries.

Supported (anything else is an `UnsupportedQueryError`, i.e. HTTP 400, never ignored; so is
every option a query type does not implement): match_all, match_none, match, match_phrase,
match_phrase_prefix, match_bool_prefix, multi_match (best_fields, most_fields, phrase,
phrase_prefix, bool_prefix, cross_fields), term, terms, range (numbers and dates), exists,
ids, prefix, wildcard, fuzzy, query_string, simple_query_string, bool, constant_score,
dis_max, function_score (rescoring; `dsl_score`).
Scoring is tantivy's BM25 per field; `field^boost` and `boost` work as in ES. The prefix,
pattern and fuzzy queries live in `dsl_text`, the query-string syntax in `dsl_query_string`.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

import tantivy

from shoprank.errors import BadRequestError, UnsupportedQueryError
from shoprank.text import cjk_bigrams

from .dsl_expand import fuzziness_distance
from .dsl_query_string import QueryStringQueries
from .dsl_score import FUNCTION_SCORE_PLACES, unwrap_function_score
from .dsl_text import TextQueries, check_options
from .dsl_util import (
    MATCH_OPTIONS,
    MULTI_MATCH_OPTIONS,
    PHRASE_OPTIONS,
    combine,
    minimum_should_match,
)
from .dsl_util import boosted as _boosted
from .dsl_util import number as _number
from .dsl_util import single as _single
from .dsl_util import zero_terms as _zero_terms
from .schema import FieldInfo, IndexSchema, english_analyzer

__all__ = ["SUPPORTED_QUERIES", "QueryCompiler", "minimum_should_match"]

Q = tantivy.Query
Occur = tantivy.Occur
FIELD_NAMES = "_field_names"
SUPPORTED_QUERIES = (
    "match_all",
    "match_none",
    "match",
    "match_phrase",
    "match_phrase_prefix",
    "match_bool_prefix",
    "multi_match",
    "term",
    "terms",
    "range",
    "exists",
    "ids",
    "prefix",
    "wildcard",
    "fuzzy",
    "query_string",
    "simple_query_string",
    "bool",
    "constant_score",
    "dis_max",
    "function_score",
)
MULTI_MATCH_TYPES = (
    "best_fields",
    "most_fields",
    "phrase",
    "phrase_prefix",
    "bool_prefix",
    "cross_fields",
)
_SAFE_PATH = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


class QueryCompiler(TextQueries, QueryStringQueries):
    """Compiles one ES query body against one generation's schema."""

    def __init__(self, schema: IndexSchema, index: tantivy.Index) -> None:
        self.schema = schema
        self.ts = schema.tantivy_schema
        self.index = index
        self.analyzer = english_analyzer()

    def compile(self, query: Any) -> tantivy.Query:
        """The tantivy query of an ES query. A `function_score` as the query itself or
        directly in its top-level `bool.must` compiles to its `query` (its functions rescore
        the hits afterwards: `dsl_score.apply_function_score`)."""
        return self._compile(unwrap_function_score(query, self))

    def _compile(self, query: Any) -> tantivy.Query:
        if query is None:
            return Q.all_query()
        if not isinstance(query, dict) or len(query) != 1:
            raise BadRequestError(
                'a query must be an object with exactly one query type, e.g. {"match_all": {}}'
            )
        ((name, body),) = query.items()
        handler = getattr(self, f"_q_{name}", None)
        if handler is None:
            raise UnsupportedQueryError(
                f"query [{name}] is not supported by shoprank's embedded backend; supported: "
                + ", ".join(SUPPORTED_QUERIES),
                construct=name,
            )
        try:
            result: tantivy.Query = handler(body)
        except (TypeError, ValueError, AttributeError, KeyError) as exc:
            # Malformed values (a string boost, a list where an object belongs, ...) are the
            # client's error: answer 400 naming the query, never 500.
            raise BadRequestError(f"[{name}] query malformed: {exc}") from None
        return result

    # -- leaf helpers ----------------------------------------------------------------------

    def _tokens(self, text: str) -> list[str]:
        return [t for t in self.analyzer.analyze(cjk_bigrams(text)) if t]

    def _term(self, info: FieldInfo, value: Any) -> tantivy.Query:
        """Exact match of one value on any field kind."""
        if info.kind == "vector":
            raise BadRequestError(f"field [{info.path}] is a dense_vector; use knn")
        if info.kind == "stored":
            raise BadRequestError(f"field [{info.path}] is not indexed")
        if isinstance(value, dict | list) or value is None:
            raise BadRequestError(f"[term] on [{info.path}] expects a scalar, got {value!r}")
        if info.kind == "number":
            number = _number(value, f"term on {info.path}")
            return Q.range_query(self.ts, info.tantivy, tantivy.FieldType.Float, number, number)
        if info.kind == "boolean":
            flag = value if isinstance(value, bool) else str(value).lower() == "true"
            return Q.term_query(self.ts, info.tantivy, flag)
        if info.kind == "dynamic":
            return self._dynamic_term(info, value)
        return Q.term_query(self.ts, info.tantivy, str(value))

    def _dynamic_term(self, info: FieldInfo, value: Any) -> tantivy.Query:
        if isinstance(value, bool):
            return self._parse(f"{info.tantivy}:{str(value).lower()}")
        if isinstance(value, int | float):
            return self._dynamic_range(info, value, value, True, True)
        return Q.term_query(self.ts, info.tantivy, str(value))

    def _parse(self, text: str) -> tantivy.Query:
        try:
            return self.index.parse_query(text)
        except ValueError as exc:
            raise BadRequestError(f"cannot build query [{text}]: {exc}") from None

    def _dynamic_range(
        self, info: FieldInfo, lo: float | None, hi: float | None, inc_lo: bool, inc_hi: bool
    ) -> tantivy.Query:
        if not _SAFE_PATH.match(info.path):
            raise BadRequestError(f"field name [{info.path}] cannot be used in a range")

        # One-sided ranges only: tantivy's parser reads `3.0` as an integer and `4.5` as a
        # float, and a two-sided range with mixed bound types panics inside tantivy.
        sides = []
        if lo is not None:
            sides.append(self._parse(f"{info.tantivy}:{'>=' if inc_lo else '>'}{float(lo)!r}"))
        if hi is not None:
            sides.append(self._parse(f"{info.tantivy}:{'<=' if inc_hi else '<'}{float(hi)!r}"))
        if not sides:
            return Q.all_query()
        if len(sides) == 1:
            return sides[0]
        return Q.boolean_query([(Occur.Must, side) for side in sides])

    def _text_match(
        self,
        info: FieldInfo,
        text: Any,
        *,
        operator: str,
        msm: Any,
        fuzziness: Any,
        zero_terms: tantivy.Query | None = None,
    ) -> tantivy.Query:
        if text is None or isinstance(text, dict | list):
            raise BadRequestError(f"[match] on [{info.path}] expects text, got {text!r}")
        if info.kind != "text":
            return self._term(info, text)
        tokens = self._tokens(str(text))
        if not tokens:
            return zero_terms if zero_terms is not None else Q.empty_query()
        leaves = [self._token_query(info, t, fuzziness) for t in tokens]
        return combine(leaves, operator, msm)

    def _token_query(self, info: FieldInfo, token: str, fuzziness: Any) -> tantivy.Query:
        if fuzziness is None:
            return Q.term_query(self.ts, info.tantivy, token)
        distance = fuzziness_distance(fuzziness, token)
        if distance <= 0:
            return Q.term_query(self.ts, info.tantivy, token)
        return Q.fuzzy_term_query(self.ts, info.tantivy, token, distance=distance)

    # -- queries ---------------------------------------------------------------------------

    def _q_match_all(self, body: Any) -> tantivy.Query:
        check_options("match_all", body or {}, {"boost", "_name"})
        return _boosted(Q.all_query(), (body or {}).get("boost"))

    def _q_match_none(self, body: Any) -> tantivy.Query:
        check_options("match_none", body or {}, {"boost", "_name"})
        return Q.empty_query()

    def _q_match(self, body: Any) -> tantivy.Query:
        path, spec = _single(body, "match")
        if not isinstance(spec, dict):
            spec = {"query": spec}
        if "query" not in spec:
            raise BadRequestError("[match] requires a [query]")
        check_options("match", spec, MATCH_OPTIONS)
        info = self.schema.field(path)
        query = self._text_match(
            info,
            spec["query"],
            operator=spec.get("operator", "or"),
            msm=spec.get("minimum_should_match"),
            fuzziness=spec.get("fuzziness"),
            zero_terms=_zero_terms(spec),
        )
        return _boosted(query, spec.get("boost"))

    def _phrase(self, info: FieldInfo, text: Any, slop: int) -> tantivy.Query:
        if info.kind != "text":
            return self._term(info, text)
        tokens = self._tokens(str(text))
        if not tokens:
            return Q.empty_query()
        if len(tokens) == 1:
            return Q.term_query(self.ts, info.tantivy, tokens[0])
        words: list[str | tuple[int, str]] = list(tokens)
        return Q.phrase_query(self.ts, info.tantivy, words, slop)

    def _q_match_phrase(self, body: Any) -> tantivy.Query:
        path, spec = _single(body, "match_phrase")
        if not isinstance(spec, dict):
            spec = {"query": spec}
        check_options("match_phrase", spec, PHRASE_OPTIONS)
        info = self.schema.field(path)
        if info.kind == "text" and not self._tokens(str(spec.get("query", ""))):
            return _zero_terms(spec)
        query = self._phrase(info, spec.get("query", ""), int(spec.get("slop", 0)))
        return _boosted(query, spec.get("boost"))

    def expand_fields(self, fields: list[str] | None) -> list[tuple[FieldInfo, float]]:
        """`["title^3", "desc*"]` → mapped fields with boosts; default: every text field.

        A sub-field the mapping does not declare under a mapped field (`title._2gram`, as
        Searchkit sends) is unmapped: ES's multi_match ignores it, and so does this."""
        if isinstance(fields, str):
            fields = [fields]
        if not fields:
            return [(f, 1.0) for f in self.schema.fields.values() if f.kind == "text"]
        out: list[tuple[FieldInfo, float]] = []
        for item in fields:
            name, _, boost_text = str(item).partition("^")
            boost = _number(boost_text, f"boost of {item}") if boost_text else 1.0
            if any(c in name for c in "*?"):
                out += [
                    (f, boost)
                    for p, f in self.schema.fields.items()
                    if fnmatch.fnmatchcase(p, name) and f.kind in ("text", "keyword")
                ]
            elif name not in self.schema.fields and name.rpartition(".")[0] in self.schema.fields:
                continue
            else:
                out.append((self.schema.field(name), boost))
        return out

    def _q_multi_match(self, body: Any) -> tantivy.Query:
        if not isinstance(body, dict) or "query" not in body:
            raise BadRequestError("[multi_match] requires a [query]")
        check_options("multi_match", body, MULTI_MATCH_OPTIONS)
        mm_type = body.get("type", "best_fields")
        if mm_type not in MULTI_MATCH_TYPES:
            raise UnsupportedQueryError(
                f"[multi_match] type [{mm_type}] is not supported by the embedded backend; "
                f"use one of {', '.join(MULTI_MATCH_TYPES)}",
                construct=f"multi_match.{mm_type}",
            )
        fields = self.expand_fields(body.get("fields"))
        if not fields:
            return Q.empty_query()
        text = body["query"]
        tie = float(body.get("tie_breaker", 0.0))
        if mm_type == "cross_fields":
            query = self.cross_fields(
                fields,
                text,
                operator=body.get("operator", "or"),
                msm=body.get("minimum_should_match"),
                tie_breaker=tie,
            )
            return _boosted(query, body.get("boost"))
        expansions = int(body.get("max_expansions", 50))
        lenient = bool(body.get("lenient", False))
        per_field: list[tantivy.Query] = []
        for info, boost in fields:
            try:
                q = self._multi_match_field(info, body, mm_type, expansions)
            except BadRequestError:
                if lenient and info.kind in ("number", "boolean", "date"):
                    continue  # ES's lenient: a field the text cannot match is skipped
                raise
            per_field.append(_boosted(q, boost))
        if not per_field:
            return Q.empty_query()
        if mm_type in ("most_fields", "bool_prefix"):
            combined = Q.boolean_query([(Occur.Should, q) for q in per_field])
        else:
            combined = Q.disjunction_max_query(per_field, tie_breaker=tie)
        return _boosted(combined, body.get("boost"))

    def _multi_match_field(
        self, info: FieldInfo, body: dict[str, Any], mm_type: str, expansions: int
    ) -> tantivy.Query:
        text, slop = body["query"], int(body.get("slop", 0))
        if mm_type == "phrase":
            return self._phrase(info, text, slop)
        if mm_type == "phrase_prefix":
            return self.phrase_prefix_on(info, text, slop=slop, max_expansions=expansions)
        if mm_type == "bool_prefix":
            return self.bool_prefix_on(
                info,
                text,
                operator=body.get("operator", "or"),
                msm=body.get("minimum_should_match"),
                max_expansions=expansions,
                fuzziness=body.get("fuzziness"),
                prefix_length=int(body.get("prefix_length", 0)),
            )
        return self._text_match(
            info,
            text,
            operator=body.get("operator", "or"),
            msm=body.get("minimum_should_match"),
            fuzziness=body.get("fuzziness"),
            zero_terms=_zero_terms(body),
        )

    def _q_term(self, body: Any) -> tantivy.Query:
        path, spec = _single(body, "term")
        if isinstance(spec, dict):
            if "value" not in spec:
                raise BadRequestError("[term] requires a [value]")
            check_options("term", spec, {"value", "boost", "_name", "case_insensitive"})
            boost, value = spec.get("boost"), spec["value"]
            if spec.get("case_insensitive") and isinstance(value, str):
                info = self.schema.field(path)
                terms = self.wildcard_terms(
                    info,
                    value.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?"),
                    case_insensitive=True,
                )
                return Q.const_score_query(self._term_set(info, terms), float(boost or 1.0))
        else:
            boost, value = None, spec
        return _boosted(self._term(self.schema.field(path), value), boost)

    def _q_terms(self, body: Any) -> tantivy.Query:
        path, values = _single(body, "terms")
        if not isinstance(values, list):
            raise BadRequestError('[terms] expects a list of values, e.g. {"brand": ["HP"]}')
        info = self.schema.field(path)
        if not values:
            return Q.empty_query()
        if info.kind in ("keyword", "text"):
            query = Q.term_set_query(self.ts, info.tantivy, [str(v) for v in values])
        else:
            query = Q.boolean_query([(Occur.Should, self._term(info, v)) for v in values])
        return _boosted(Q.const_score_query(query, 1.0), body.get("boost"))

    def _q_range(self, body: Any) -> tantivy.Query:
        from .dsl_range import range_bounds

        path, spec = _single(body, "range")
        if not isinstance(spec, dict):
            raise BadRequestError("[range] expects {field: {gte|gt|lte|lt: value}}")
        info = self.schema.field(path)
        lo, hi, inc_lo, inc_hi = range_bounds(path, spec, str(info.kind))
        if lo is None and hi is None:
            query = self._q_exists({"field": path})
        elif info.kind == "number" or str(info.kind) == "date":
            query = Q.range_query(
                self.ts,
                info.tantivy,
                tantivy.FieldType.Float,
                lo,
                hi,
                include_lower=inc_lo,
                include_upper=inc_hi,
            )
        elif info.kind == "dynamic":
            query = self._dynamic_range(info, lo, hi, inc_lo, inc_hi)
        else:
            raise UnsupportedQueryError(
                f"[range] on a {info.kind} field [{path}] is not supported; use a numeric "
                "or date field",
                construct="range",
            )
        return Q.const_score_query(query, float(spec.get("boost", 1.0)))

    def _q_exists(self, body: Any) -> tantivy.Query:
        if not isinstance(body, dict) or not isinstance(body.get("field"), str):
            raise BadRequestError("[exists] requires a [field]")
        check_options("exists", body, {"field", "boost", "_name"})
        return Q.const_score_query(Q.term_query(self.ts, FIELD_NAMES, body["field"]), 1.0)

    def _q_ids(self, body: Any) -> tantivy.Query:
        values = (body or {}).get("values")
        if not isinstance(values, list):
            raise BadRequestError("[ids] requires a list of [values]")
        check_options("ids", body, {"values", "boost", "_name"})
        return Q.const_score_query(Q.term_set_query(self.ts, "_id", [str(v) for v in values]), 1.0)

    def _clauses(self, body: dict[str, Any], key: str) -> list[tantivy.Query]:
        value = body.get(key)
        if value is None:
            return []
        items = value if isinstance(value, list) else [value]
        return [self._compile(item) for item in items]

    def _q_bool(self, body: Any) -> tantivy.Query:
        if not isinstance(body, dict):
            raise BadRequestError("[bool] query malformed, expected an object")
        check_options(
            "bool",
            body,
            {"must", "should", "filter", "must_not", "minimum_should_match"}
            | {"boost", "_name", "adjust_pure_negative"},
        )
        must, should = self._clauses(body, "must"), self._clauses(body, "should")
        filters, must_not = self._clauses(body, "filter"), self._clauses(body, "must_not")
        clauses: list[tuple[tantivy.Occur, tantivy.Query]] = []
        clauses += [(Occur.Must, q) for q in must]
        clauses += [(Occur.Must, Q.const_score_query(q, 0.0)) for q in filters]
        clauses += [(Occur.MustNot, q) for q in must_not]
        if should:
            default = 0 if (must or filters) else 1
            msm = body.get("minimum_should_match")
            need = minimum_should_match(msm, len(should)) if msm is not None else default
            if need == 0:
                clauses += [(Occur.Should, q) for q in should]
            else:
                group = [(Occur.Should, q) for q in should]
                grouped = Q.boolean_query(group, need) if need > 1 else Q.boolean_query(group)
                clauses.append((Occur.Must, grouped))
        if not any(occ in (Occur.Must, Occur.Should) for occ, _ in clauses):
            clauses.append((Occur.Must, Q.const_score_query(Q.all_query(), 0.0)))
        return _boosted(Q.boolean_query(clauses), body.get("boost"))

    def _q_constant_score(self, body: Any) -> tantivy.Query:
        if not isinstance(body, dict) or "filter" not in body:
            raise BadRequestError("[constant_score] requires a [filter]")
        check_options("constant_score", body, {"filter", "boost", "_name"})
        return Q.const_score_query(self._compile(body["filter"]), float(body.get("boost", 1.0)))

    def _q_dis_max(self, body: Any) -> tantivy.Query:
        queries = (body or {}).get("queries")
        if not isinstance(queries, list) or not queries:
            raise BadRequestError("[dis_max] requires a non-empty list of [queries]")
        check_options("dis_max", body, {"queries", "tie_breaker", "boost", "_name"})
        return _boosted(
            Q.disjunction_max_query(
                [self._compile(q) for q in queries], tie_breaker=float(body.get("tie_breaker", 0.0))
            ),
            body.get("boost"),
        )

    def _q_function_score(self, body: Any) -> tantivy.Query:
        raise UnsupportedQueryError(
            f"[function_score] is supported {FUNCTION_SCORE_PLACES}, not nested elsewhere",
            construct="function_score",
        )
