"""The terms a highlighter marks: read from the ES query the backend received.

Scoring clauses only, as Elasticsearch does: `bool.filter`, `must_not`, `constant_score`
filters and `boosting.negative` contribute nothing (unless `highlight_filter` asks for the
filters), so words a shopper filtered on, or that an ids filter wraps, are not marked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

ClauseKind = Literal["match", "term", "prefix", "wildcard", "fuzzy"]
ANY_FIELD = "*"


@dataclass(frozen=True)
class Clause:
    """One leaf of the query: its fields (patterns allowed) and what it looks for."""

    fields: tuple[str, ...]
    kind: ClauseKind
    text: str
    last_prefix: bool = False
    phrase: bool = False  # marked only where the words stand together (slop 0)
    fuzziness: Any = None
    prefix_length: int = 0
    case_insensitive: bool = False


def _field_names(fields: Any) -> tuple[str, ...]:
    if isinstance(fields, str):
        fields = [fields]
    if not isinstance(fields, list) or not fields:
        return (ANY_FIELD,)
    return tuple(str(f).partition("^")[0] for f in fields)


def _single(body: Any) -> list[tuple[str, Any]]:
    if not isinstance(body, dict):
        return []
    return [(k, v) for k, v in body.items() if k not in ("boost", "_name")]


def _scalar(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def query_clauses(query: Any, *, include_filters: bool = False) -> list[Clause]:
    """Every term-bearing leaf of `query` that scores (and filters, if asked)."""
    out: list[Clause] = []
    _walk(query, out, include_filters)
    return out


def _walk(query: Any, out: list[Clause], filters: bool) -> None:  # noqa: C901 - one table
    if not isinstance(query, dict):
        return
    for name, body in query.items():
        if name == "bool" and isinstance(body, dict):
            keys = ["must", "should"] + (["filter"] if filters else [])
            for key in keys:
                items = body.get(key)
                for item in items if isinstance(items, list) else [items]:
                    _walk(item, out, filters)
        elif name == "constant_score" and isinstance(body, dict) and filters:
            _walk(body.get("filter"), out, filters)
        elif name == "dis_max" and isinstance(body, dict):
            for item in body.get("queries") or []:
                _walk(item, out, filters)
        elif name in ("function_score", "script_score") and isinstance(body, dict):
            _walk(body.get("query"), out, filters)
        elif name == "boosting" and isinstance(body, dict):
            _walk(body.get("positive"), out, filters)
        elif name in ("match", "match_phrase", "match_phrase_prefix", "match_bool_prefix"):
            for field, spec in _single(body):
                spec = spec if isinstance(spec, dict) else {"query": spec}
                text = _scalar(spec.get("query"))
                if text is not None:
                    out.append(
                        Clause(
                            (field,),
                            "match",
                            text,
                            last_prefix=name in ("match_phrase_prefix", "match_bool_prefix"),
                            phrase=name in ("match_phrase", "match_phrase_prefix")
                            and not spec.get("slop"),
                            fuzziness=spec.get("fuzziness"),
                        )
                    )
        elif name in ("multi_match", "combined_fields") and isinstance(body, dict):
            text = _scalar(body.get("query"))
            if text is not None:
                out.append(
                    Clause(
                        _field_names(body.get("fields")),
                        "match",
                        text,
                        last_prefix=body.get("type") in ("bool_prefix", "phrase_prefix"),
                        phrase=body.get("type") in ("phrase", "phrase_prefix")
                        and not body.get("slop"),
                        fuzziness=body.get("fuzziness"),
                    )
                )
        elif name in ("term", "prefix", "wildcard", "fuzzy"):
            for field, spec in _single(body):
                value_key = "wildcard" if name == "wildcard" and isinstance(spec, dict) else ""
                spec = spec if isinstance(spec, dict) else {"value": spec}
                text = _scalar(spec.get("value", spec.get(value_key)))
                if text is not None:
                    out.append(
                        Clause(
                            (field,),
                            name,
                            text,
                            fuzziness=spec.get("fuzziness", "AUTO" if name == "fuzzy" else None),
                            prefix_length=int(spec.get("prefix_length", 0) or 0),
                            case_insensitive=bool(spec.get("case_insensitive", False)),
                        )
                    )
        elif name == "terms":
            for field, values in _single(body):
                for value in values if isinstance(values, list) else []:
                    text = _scalar(value)
                    if text is not None:
                        out.append(Clause((field,), "term", text))
        elif name in ("query_string", "simple_query_string") and isinstance(body, dict):
            out += query_string_clauses(body)


# A word of a query string: an optional `field:`, then a quoted phrase or a bare word.
_QS_PART = re.compile(
    r'(?P<neg>(?:\bNOT\s+)|-|!)?(?:(?P<field>[\w.*]+):)?(?P<value>"[^"]*"|[^\s()"]+)(?P<slop>~\d*)?'
)
_OPERATORS = {"AND", "OR", "NOT", "&&", "||", "|", "+", "-", "!"}


def query_string_clauses(body: dict[str, Any]) -> list[Clause]:
    """The positive words, phrases, prefixes and wildcards of a (simple) query string."""
    text = _scalar(body.get("query")) or ""
    default = body.get("fields") or body.get("default_field")
    fields = _field_names(default)
    out: list[Clause] = []
    for part in _QS_PART.finditer(text):
        value = part.group("value")
        if part.group("neg") or value in _OPERATORS:
            continue
        value = value.lstrip("+|&")
        targets = (part.group("field"),) if part.group("field") else fields
        value = re.sub(r"(\^[\d.]*|~\d*)$", "", value)
        if value.startswith('"'):
            out.append(
                Clause(
                    targets, "match", value.strip('"'), phrase=(part.group("slop") or "~0") == "~0"
                )
            )
        elif not value or value in _OPERATORS:
            continue
        elif value.endswith("*") and not any(c in value[:-1] for c in "*?"):
            out.append(Clause(targets, "prefix", value[:-1].lower()))
        elif any(c in value for c in "*?"):
            out.append(Clause(targets, "wildcard", value.lower()))
        else:
            out.append(Clause(targets, "match", value))
    return out
