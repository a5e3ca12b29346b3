"""The embedded backend's interpreter of the Elasticsearch query DSL, onto tantivy queries.

Supported (anything else is an `UnsupportedQueryError`, i.e. HTTP 400, never ignored):
match_all, match_none, match, match_phrase, multi_match (best_fields, most_fields, phrase),
term, terms, range, exists, ids, bool, constant_score, dis_max.
Scoring is tantivy's BM25 per field; `field^boost` and `boost` work as in ES.
"""

from __future__ import annotations

import fnmatch
import math
import re
from typing import Any

import tantivy

from shoprank.errors import BadRequestError, UnsupportedQueryError
from shoprank.plugin.bounds import strict_float
from shoprank.text import cjk_bigrams

from .schema import FieldInfo, IndexSchema, english_analyzer

Q = tantivy.Query
Occur = tantivy.Occur
FIELD_NAMES = "_field_names"
SUPPORTED_QUERIES = (
    "match_all",
    "match_none",
    "match",
    "match_phrase",
    "multi_match",
    "term",
    "terms",
    "range",
    "exists",
    "ids",
    "bool",
    "constant_score",
    "dis_max",
)
_SAFE_PATH = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


def _single(query: Any, name: str) -> tuple[str, Any]:
    """Split `{"field": spec}` (ES's single-field query form)."""
    if not isinstance(query, dict):
        raise BadRequestError(f"[{name}] query malformed, expected an object")
    items = [(k, v) for k, v in query.items() if k not in ("boost", "_name")]
    if len(items) != 1:
        raise BadRequestError(f"[{name}] query doesn't support multiple fields, found {len(items)}")
    return items[0]


def minimum_should_match(spec: Any, clauses: int) -> int:
    """ES `minimum_should_match`: 2, -1, "75%", "-25%"."""
    if spec is None:
        return 0
    text = str(spec).strip()
    try:
        if text.endswith("%"):
            pct = float(text[:-1])
            n = math.floor(clauses * abs(pct) / 100.0)
            value = n if pct >= 0 else clauses - n
        else:
            n = int(text)
            value = n if n >= 0 else clauses + n
    except ValueError:
        raise BadRequestError(f"cannot parse minimum_should_match [{spec}]") from None
    return max(0, min(clauses, value))


def _boosted(query: tantivy.Query, boost: Any) -> tantivy.Query:
    if boost is None or float(boost) == 1.0:
        return query
    if float(boost) < 0:
        raise BadRequestError(f"negative [boost] are not allowed, got {boost}")
    return Q.boost_query(query, float(boost))


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool):
        raise BadRequestError(f"[{what}] expects a number, got {value!r}")
    try:
        number = strict_float(value)  # not `1_000` or full-width digits, as in ES
    except (ValueError, OverflowError):
        raise BadRequestError(
            f"[{what}] expects a number, got {value!r} (date and string ranges are not "
            "supported by the embedded backend)"
        ) from None
    if math.isnan(number):
        raise BadRequestError(f"[{what}] expects a number, got NaN")
    return number


class QueryCompiler:
    """Compiles one ES query body against one generation's schema."""

    def __init__(self, schema: IndexSchema, index: tantivy.Index) -> None:
        self.schema = schema
        self.ts = schema.tantivy_schema
        self.index = index
        self.analyzer = english_analyzer()

    def compile(self, query: Any) -> tantivy.Query:
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
        self, info: FieldInfo, text: Any, *, operator: str, msm: Any, fuzziness: Any
    ) -> tantivy.Query:
        if text is None or isinstance(text, dict | list):
            raise BadRequestError(f"[match] on [{info.path}] expects text, got {text!r}")
        if info.kind != "text":
            return self._term(info, text)
        tokens = self._tokens(str(text))
        if not tokens:
            return Q.empty_query()
        leaves = [self._token_query(info, t, fuzziness) for t in tokens]
        if len(leaves) == 1:
            return leaves[0]
        if str(operator).lower() == "and":
            return Q.boolean_query([(Occur.Must, q) for q in leaves])
        if str(operator).lower() != "or":
            raise BadRequestError(f"[match] operator must be 'or' or 'and', got {operator!r}")
        need = minimum_should_match(msm, len(leaves))
        clauses = [(Occur.Should, q) for q in leaves]
        return Q.boolean_query(clauses, need) if need > 1 else Q.boolean_query(clauses)

    def _token_query(self, info: FieldInfo, token: str, fuzziness: Any) -> tantivy.Query:
        if fuzziness is None:
            return Q.term_query(self.ts, info.tantivy, token)
        if str(fuzziness).upper().startswith("AUTO"):
            distance = 0 if len(token) <= 2 else 1 if len(token) <= 5 else 2
        else:
            try:
                distance = int(fuzziness)
            except ValueError:
                raise BadRequestError(f"unsupported fuzziness [{fuzziness}]") from None
        if distance <= 0:
            return Q.term_query(self.ts, info.tantivy, token)
        return Q.fuzzy_term_query(self.ts, info.tantivy, token, distance=min(distance, 2))

    # -- queries ---------------------------------------------------------------------------

    def _q_match_all(self, body: Any) -> tantivy.Query:
        return _boosted(Q.all_query(), (body or {}).get("boost"))

    def _q_match_none(self, body: Any) -> tantivy.Query:
        return Q.empty_query()

    def _q_match(self, body: Any) -> tantivy.Query:
        path, spec = _single(body, "match")
        if not isinstance(spec, dict):
            spec = {"query": spec}
        if "query" not in spec:
            raise BadRequestError("[match] requires a [query]")
        unknown = set(spec) - {
            "query",
            "operator",
            "minimum_should_match",
            "boost",
            "fuzziness",
            "_name",
            "analyzer",
            "zero_terms_query",
        }
        if unknown:
            raise UnsupportedQueryError(f"[match] option(s) {sorted(unknown)} are not supported")
        info = self.schema.field(path)
        query = self._text_match(
            info,
            spec["query"],
            operator=spec.get("operator", "or"),
            msm=spec.get("minimum_should_match"),
            fuzziness=spec.get("fuzziness"),
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
        query = self._phrase(
            self.schema.field(path), spec.get("query", ""), int(spec.get("slop", 0))
        )
        return _boosted(query, spec.get("boost"))

    def expand_fields(self, fields: list[str] | None) -> list[tuple[FieldInfo, float]]:
        """`["title^3", "desc*"]` → mapped fields with boosts; default: every text field."""
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
            else:
                out.append((self.schema.field(name), boost))
        return out

    def _q_multi_match(self, body: Any) -> tantivy.Query:
        if not isinstance(body, dict) or "query" not in body:
            raise BadRequestError("[multi_match] requires a [query]")
        mm_type = body.get("type", "best_fields")
        fields = self.expand_fields(body.get("fields"))
        if not fields:
            return Q.empty_query()
        per_field: list[tantivy.Query] = []
        for info, boost in fields:
            if mm_type == "phrase":
                q = self._phrase(info, body["query"], int(body.get("slop", 0)))
            elif mm_type in ("best_fields", "most_fields"):
                q = self._text_match(
                    info,
                    body["query"],
                    operator=body.get("operator", "or"),
                    msm=body.get("minimum_should_match"),
                    fuzziness=body.get("fuzziness"),
                )
            else:
                raise UnsupportedQueryError(
                    f"[multi_match] type [{mm_type}] is not supported by the embedded backend; "
                    "use best_fields, most_fields or phrase",
                    construct=f"multi_match.{mm_type}",
                )
            per_field.append(_boosted(q, boost))
        if mm_type == "most_fields":
            combined = Q.boolean_query([(Occur.Should, q) for q in per_field])
        else:
            tie = float(body.get("tie_breaker", 0.0))
            combined = Q.disjunction_max_query(per_field, tie_breaker=tie)
        return _boosted(combined, body.get("boost"))

    def _q_term(self, body: Any) -> tantivy.Query:
        path, spec = _single(body, "term")
        if isinstance(spec, dict):
            if "value" not in spec:
                raise BadRequestError("[term] requires a [value]")
            if spec.get("case_insensitive"):
                raise UnsupportedQueryError(
                    "[term] case_insensitive is not supported by the embedded backend; "
                    "use a match query on a text field",
                    construct="term.case_insensitive",
                )
            boost, value = spec.get("boost"), spec["value"]
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
        path, spec = _single(body, "range")
        if not isinstance(spec, dict):
            raise BadRequestError("[range] expects {field: {gte|gt|lte|lt: value}}")
        unknown = set(spec) - {"gte", "gt", "lte", "lt", "boost", "format", "_name"}
        if unknown:
            raise UnsupportedQueryError(f"[range] option(s) {sorted(unknown)} are not supported")
        lo = hi = None
        inc_lo = inc_hi = True
        if "gte" in spec and spec["gte"] is not None:
            lo = _number(spec["gte"], f"range on {path}")
        if "gt" in spec and spec["gt"] is not None:
            lo, inc_lo = _number(spec["gt"], f"range on {path}"), False
        if "lte" in spec and spec["lte"] is not None:
            hi = _number(spec["lte"], f"range on {path}")
        if "lt" in spec and spec["lt"] is not None:
            hi, inc_hi = _number(spec["lt"], f"range on {path}"), False
        info = self.schema.field(path)
        if lo is None and hi is None:
            query = self._q_exists({"field": path})
        elif info.kind == "number":
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
                f"[range] on a {info.kind} field [{path}] is not supported; use a numeric field"
            )
        return Q.const_score_query(query, float(spec.get("boost", 1.0)))

    def _q_exists(self, body: Any) -> tantivy.Query:
        if not isinstance(body, dict) or not isinstance(body.get("field"), str):
            raise BadRequestError("[exists] requires a [field]")
        return Q.const_score_query(Q.term_query(self.ts, FIELD_NAMES, body["field"]), 1.0)

    def _q_ids(self, body: Any) -> tantivy.Query:
        values = (body or {}).get("values")
        if not isinstance(values, list):
            raise BadRequestError("[ids] requires a list of [values]")
        return Q.const_score_query(Q.term_set_query(self.ts, "_id", [str(v) for v in values]), 1.0)

    def _clauses(self, body: dict[str, Any], key: str) -> list[tantivy.Query]:
        value = body.get(key)
        if value is None:
            return []
        items = value if isinstance(value, list) else [value]
        return [self.compile(item) for item in items]

    def _q_bool(self, body: Any) -> tantivy.Query:
        if not isinstance(body, dict):
            raise BadRequestError("[bool] query malformed, expected an object")
        unknown = set(body) - {
            "must",
            "should",
            "filter",
            "must_not",
            "minimum_should_match",
            "boost",
            "_name",
        }
        if unknown:
            raise BadRequestError(f"[bool] query does not support {sorted(unknown)}")
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
        return Q.const_score_query(self.compile(body["filter"]), float(body.get("boost", 1.0)))

    def _q_dis_max(self, body: Any) -> tantivy.Query:
        queries = (body or {}).get("queries")
        if not isinstance(queries, list) or not queries:
            raise BadRequestError("[dis_max] requires a non-empty list of [queries]")
        return _boosted(
            Q.disjunction_max_query(
                [self.compile(q) for q in queries], tie_breaker=float(body.get("tie_breaker", 0.0))
            ),
            body.get("boost"),
        )
