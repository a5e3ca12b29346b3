"""ES `function_score` on the embedded backend, as a rescoring step after the query ran.

tantivy cannot run a per-document score function inside a query, so `QueryCompiler`
compiles a top-level function_score (the `query` itself, or one clause directly in the
top-level `bool.must`) to its inner query, and `apply_function_score` then rescores every
match: `field_value_factor` (factor, modifier, missing), `weight`, the decay functions
`gauss` / `exp` / `linear` on number and date fields (origin, scale, offset, decay), a
`filter` per function, `score_mode`, `boost_mode`, `max_boost`, `min_score` and `boost`.
Scripts and `random_score` are a 400. Differences from ES: inside `bool.must` the functions
rescale the whole bool's score (ES: that clause's share of it); `min_score` narrows the
hits and the total, not the aggregations; decay on a multi-valued field reads its first
value (`multi_value_mode` other than `min` is refused).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Protocol

import tantivy

from shoprank.errors import BadRequestError, UnsupportedQueryError

from .dsl_text import check_options
from .dsl_util import number
from .schema import FieldInfo, IndexSchema

Q = tantivy.Query
Scored = list[tuple[float, tantivy.DocAddress]]
FUNCTION_SCORE_PLACES = "only as the top-level query or directly in a top-level bool.must"
FS_OPTIONS = {"query", "functions", "score_mode", "boost_mode", "max_boost", "min_score"}
FS_OPTIONS |= {"boost", "_name", "weight", "field_value_factor", "gauss", "exp", "linear"}
FN_KINDS = ("field_value_factor", "gauss", "exp", "linear")
REFUSED_FNS = ("script_score", "random_score")
SCORE_MODES = ("multiply", "sum", "avg", "first", "max", "min")
BOOST_MODES = ("multiply", "replace", "sum", "avg", "max", "min")
MODIFIERS = {"none", "log", "log1p", "log2p", "ln", "ln1p", "ln2p", "square", "sqrt"}
MODIFIERS |= {"reciprocal"}
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d|w)")
_UNIT_MS = {"ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6, "d": 8.64e7, "w": 6.048e8}


class _Compiler(Protocol):
    schema: IndexSchema

    def compile(self, query: Any) -> tantivy.Query: ...


@dataclass
class Function:
    kind: str  # field_value_factor, gauss, exp, linear or weight
    weight: float
    filter: tantivy.Query | None
    field: FieldInfo | None = None
    options: dict[str, Any] | None = None


@dataclass
class FunctionScore:
    query: Any
    functions: list[Function]
    score_mode: str
    boost_mode: str
    max_boost: float
    min_score: float | None
    boost: float


def parse_function_score(body: Any, compiler: _Compiler) -> FunctionScore:
    """A function_score body, checked (every unknown option a 400 naming it)."""
    if not isinstance(body, dict):
        raise BadRequestError("[function_score] query malformed, expected an object")
    for refused in REFUSED_FNS:
        if refused in body or any(
            isinstance(f, dict) and refused in f for f in body.get("functions") or []
        ):
            raise UnsupportedQueryError(
                f"[function_score] [{refused}] is not supported by shoprank's embedded "
                "backend (no scripts or random scores); use field_value_factor, weight or a "
                "decay function",
                construct=f"function_score.{refused}",
            )
    check_options("function_score", body, FS_OPTIONS)
    inline = {k: body[k] for k in ("weight", *FN_KINDS) if k in body}
    specs = list(body.get("functions") or [])
    if inline:
        if specs:
            raise BadRequestError("[function_score] takes [functions] or one inline function")
        specs = [inline]
    functions = [_function(spec, compiler) for spec in specs]
    score_mode = str(body.get("score_mode", "multiply"))
    boost_mode = str(body.get("boost_mode", "multiply"))
    if score_mode not in SCORE_MODES:
        raise BadRequestError(f"[function_score] illegal score_mode [{score_mode}]")
    if boost_mode not in BOOST_MODES:
        raise BadRequestError(f"[function_score] illegal boost_mode [{boost_mode}]")
    min_score = body.get("min_score")
    return FunctionScore(
        query=body.get("query") or {"match_all": {}},
        functions=functions,
        score_mode=score_mode,
        boost_mode=boost_mode,
        max_boost=number(body.get("max_boost", 3.4028235e38), "function_score.max_boost"),
        min_score=None if min_score is None else number(min_score, "function_score.min_score"),
        boost=number(body.get("boost", 1.0), "function_score.boost"),
    )


def _function(spec: Any, compiler: _Compiler) -> Function:
    if not isinstance(spec, dict):
        raise BadRequestError("[function_score] each function must be an object")
    check_options("function_score.functions", spec, {"filter", "weight", *FN_KINDS})
    kinds = [k for k in FN_KINDS if k in spec]
    if len(kinds) > 1:
        raise BadRequestError(f"[function_score] one function per entry, got {kinds}")
    weight = number(spec.get("weight", 1.0), "function_score.weight")
    filt = compiler.compile(spec["filter"]) if spec.get("filter") is not None else None
    if not kinds:
        if "weight" not in spec:
            raise BadRequestError("[function_score] a function needs a kind or a [weight]")
        return Function("weight", weight, filt)
    kind = kinds[0]
    options = spec[kind]
    if not isinstance(options, dict):
        raise BadRequestError(f"[{kind}] expects an object")
    if kind == "field_value_factor":
        check_options(kind, options, {"field", "factor", "modifier", "missing"})
        if str(options.get("modifier", "none")) not in MODIFIERS:
            raise BadRequestError(f"[{kind}] unknown modifier [{options.get('modifier')}]")
        info = _numeric_field(compiler.schema, options.get("field"), kind)
        return Function(kind, weight, filt, info, options)
    mode = options.get("multi_value_mode", "min")
    if mode != "min":
        raise UnsupportedQueryError(
            f"[{kind}] multi_value_mode [{mode}] is not supported", construct=f"{kind}.mode"
        )
    fields = [k for k in options if k != "multi_value_mode"]
    if len(fields) != 1 or not isinstance(options[fields[0]], dict):
        raise BadRequestError(f"[{kind}] expects {{field: {{origin, scale, ...}}}}")
    info = _numeric_field(compiler.schema, fields[0], kind)
    params = options[fields[0]]
    check_options(kind, params, {"origin", "scale", "offset", "decay"})
    return Function(kind, weight, filt, info, _decay_params(kind, info, params))


def _numeric_field(schema: IndexSchema, path: Any, what: str) -> FieldInfo:
    if not isinstance(path, str) or path not in schema.fields:
        raise BadRequestError(f"[{what}] needs a mapped numeric or date [field], got {path!r}")
    info = schema.fields[path]
    if info.kind != "number" and str(info.kind) != "date":
        raise BadRequestError(f"[{what}] field [{path}] is {info.kind}, not a number or date")
    return info


def _decay_params(kind: str, info: FieldInfo, params: dict[str, Any]) -> dict[str, Any]:
    is_date = str(info.kind) == "date"

    def span(value: Any, what: str) -> float:
        if is_date and isinstance(value, str):
            match = _DURATION.fullmatch(value.strip())
            if match is None:
                raise BadRequestError(f"[{kind}] [{what}] must be a duration such as 10d")
            return float(match.group(1)) * _UNIT_MS[match.group(2)]
        return number(value, f"{kind}.{what}")

    if "scale" not in params:
        raise BadRequestError(f"[{kind}] requires a [scale]")
    if is_date:
        from .dates import parse_date_ms

        origin = parse_date_ms(params.get("origin", "now"), what=f"{kind}.origin")
    elif "origin" in params:
        origin = number(params["origin"], f"{kind}.origin")
    else:
        raise BadRequestError(f"[{kind}] requires an [origin] on a numeric field")
    scale = span(params["scale"], "scale")
    offset = span(params.get("offset", 0), "offset")
    decay = number(params.get("decay", 0.5), f"{kind}.decay")
    if scale <= 0 or not 0 < decay < 1:
        raise BadRequestError(f"[{kind}] needs scale > 0 and 0 < decay < 1")
    return {"origin": origin, "scale": scale, "offset": offset, "decay": decay}


def unwrap_function_score(query: Any, compiler: _Compiler) -> Any:
    """`query` with its top-level function_score (see `top_function_score`) replaced by
    that function_score's own query, its functions checked: what the hits match."""
    if not isinstance(query, dict) or len(query) != 1:
        return query
    ((name, body),) = query.items()
    if name == "function_score":
        return parse_function_score(body, compiler).query
    if name == "bool" and isinstance(body, dict) and body.get("must") is not None:
        must = body["must"] if isinstance(body["must"], list) else [body["must"]]
        unwrapped = [
            parse_function_score(c["function_score"], compiler).query
            if isinstance(c, dict) and list(c) == ["function_score"]
            else c
            for c in must
        ]
        return {"bool": {**body, "must": unwrapped}}
    return query


# -- rescoring -----------------------------------------------------------------------------


def top_function_score(
    query: Any, compiler: _Compiler, *, knn: bool = False
) -> FunctionScore | None:
    """The function_score of the ES query `query` when it is at a supported place."""
    found = _top_function_score(query, compiler)
    if found is not None and knn:
        raise UnsupportedQueryError(
            "[function_score] with [knn] is not supported by the embedded backend",
            construct="function_score",
        )
    return found


def _top_function_score(query: Any, compiler: _Compiler) -> FunctionScore | None:
    if not isinstance(query, dict) or len(query) != 1:
        return None
    ((name, body),) = query.items()
    if name == "function_score":
        return parse_function_score(body, compiler)
    if name != "bool" or not isinstance(body, dict) or body.get("must") is None:
        return None
    must = body["must"] if isinstance(body["must"], list) else [body["must"]]
    found = [c["function_score"] for c in must if isinstance(c, dict) and "function_score" in c]
    if len(found) > 1:
        raise UnsupportedQueryError(
            "[function_score] at most one per top-level bool.must", construct="function_score"
        )
    return parse_function_score(found[0], compiler) if found else None


def apply_function_score(
    searcher: tantivy.Searcher,
    scored: Scored,
    spec: FunctionScore,
    hits_query: tantivy.Query,
) -> Scored:
    """Every match of `hits_query` rescored by `spec`, best first (ties in index order);
    `scored` (tantivy's top hits) is replaced, since any match may rise to the top."""
    del scored
    result = searcher.search(hits_query, limit=max(int(searcher.num_docs), 1), count=False)
    hits = list(result.hits)
    addresses = [a for _, a in hits]
    values = [_function_values(searcher, fn, addresses) for fn in spec.functions]
    out: list[tuple[float, tantivy.DocAddress]] = []
    for row, (score, addr) in enumerate(hits):
        applied = [
            (fn, value)
            for fn, column in zip(spec.functions, values, strict=True)
            if (value := column[row]) is not None
        ]
        func = min(_combine(spec.score_mode, applied), spec.max_boost)
        final = _boost_mode(spec.boost_mode, float(score), func) * spec.boost
        if spec.min_score is not None and final < spec.min_score:
            continue
        out.append((final, addr))
    order = sorted(range(len(out)), key=lambda i: -out[i][0])
    return [out[i] for i in order]


def _function_values(
    searcher: tantivy.Searcher, fn: Function, addresses: list[tantivy.DocAddress]
) -> list[float | None]:
    """Each row's weighted function value, None where the function's filter fails."""
    passing: set[tuple[int, int]] | None = None
    if fn.filter is not None:
        hits = searcher.search(fn.filter, limit=max(int(searcher.num_docs), 1), count=False)
        passing = {(a.segment_ord, a.doc) for _, a in hits.hits}
    raw: list[Any] = [None] * len(addresses)
    if fn.field is not None:
        raw = searcher.fast_field_values(fn.field.tantivy, addresses)
    out: list[float | None] = []
    for addr, value in zip(addresses, raw, strict=True):
        if passing is not None and (addr.segment_ord, addr.doc) not in passing:
            out.append(None)
            continue
        out.append(fn.weight * _value(fn, None if value is None else float(value)))
    return out


def _value(fn: Function, value: float | None) -> float:
    if fn.kind == "weight":
        return 1.0
    opts = fn.options or {}
    if fn.kind == "field_value_factor":
        if value is None:
            if opts.get("missing") is None:
                path = fn.field.path if fn.field else "?"
                raise BadRequestError(
                    f"[field_value_factor] missing value for field [{path}]; set [missing]"
                )
            value = number(opts["missing"], "field_value_factor.missing")
        return _modify(str(opts.get("modifier", "none")), value * float(opts.get("factor", 1.0)))
    if value is None:
        return 1.0  # ES: a document without the field is not decayed
    distance = max(0.0, abs(value - float(opts["origin"])) - float(opts["offset"]))
    scale, decay = float(opts["scale"]), float(opts["decay"])
    if fn.kind == "gauss":
        sigma2 = -(scale**2) / (2.0 * math.log(decay))
        return math.exp(-(distance**2) / (2.0 * sigma2))
    if fn.kind == "exp":
        return math.exp(math.log(decay) / scale * distance)
    s = scale / (1.0 - decay)
    return max(0.0, (s - distance) / s)


def _modify(modifier: str, v: float) -> float:
    try:
        if modifier == "none":
            result = v
        elif modifier in ("log", "log1p", "log2p"):
            result = math.log10(v + {"log": 0.0, "log1p": 1.0, "log2p": 2.0}[modifier])
        elif modifier in ("ln", "ln1p", "ln2p"):
            result = math.log(v + {"ln": 0.0, "ln1p": 1.0, "ln2p": 2.0}[modifier])
        elif modifier == "square":
            result = v * v
        elif modifier == "sqrt":
            result = math.sqrt(v)
        else:
            result = 1.0 / v
    except (ValueError, ZeroDivisionError):
        result = float("nan")
    if math.isnan(result) or math.isinf(result) or result < 0:
        raise BadRequestError(
            f"[field_value_factor] modifier [{modifier}] of {v} gives a negative or "
            "undefined score (ES refuses it too); use a modifier such as log1p or set missing"
        )
    return result


def _combine(mode: str, applied: list[tuple[Function, float]]) -> float:
    if not applied:
        return 1.0
    values = [v for _, v in applied]
    if mode == "multiply":
        return math.prod(values)
    if mode == "sum":
        return sum(values)
    if mode == "avg":
        return sum(values) / sum(fn.weight for fn, _ in applied)
    if mode == "first":
        return values[0]
    return max(values) if mode == "max" else min(values)


def _boost_mode(mode: str, query: float, func: float) -> float:
    if mode == "multiply":
        return query * func
    if mode == "replace":
        return func
    if mode == "sum":
        return query + func
    if mode == "avg":
        return (query + func) / 2.0
    return max(query, func) if mode == "max" else min(query, func)
