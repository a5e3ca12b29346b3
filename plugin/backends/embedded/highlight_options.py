"""The `highlight` section of an ES search body, validated: every option works or is a 400.

One highlighter implements `unified`, `plain` and `fvh` (fragments cut at word boundaries,
ranked by how many distinct query terms they hold); options whose meaning that implementation
cannot honour (`boundary_chars`, `matched_fields`, sentence boundaries, ...) are refused
by name rather than answered differently.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import orjson

from shoprank.errors import BadRequestError, UnsupportedQueryError

# Options valid both at the top level and per field.
FIELD_KEYS = {
    "type",
    "pre_tags",
    "post_tags",
    "number_of_fragments",
    "fragment_size",
    "no_match_size",
    "order",
    "require_field_match",
    "highlight_query",
    "fragmenter",
    "boundary_scanner",
    "boundary_scanner_locale",
    "boundary_chars",
    "boundary_max_scan",
    "max_analyzed_offset",
    "force_source",
    "highlight_filter",
    "phrase_limit",
    "fragment_offset",
    "matched_fields",
    "options",
}
TOP_KEYS = FIELD_KEYS | {"fields", "encoder", "tags_schema"}
REFUSED = {
    "boundary_chars": "fragments are cut at word boundaries (boundary_scanner: word)",
    "boundary_max_scan": "fragments are cut at word boundaries (boundary_scanner: word)",
    "fragment_offset": "fragments are placed around the matches",
    "matched_fields": "each field is highlighted from its own terms",
    "options": "highlighter-specific options are not supported",
}
STYLED = [f'<em class="hlt{i}">' for i in range(1, 11)]
ACCEPTED_LOCALES = {"root", "en", "en-us", "en-gb", "en_us", "en_gb"}


@dataclass(frozen=True)
class FieldOptions:
    """How one field is highlighted (the top-level options with the field's overrides)."""

    pre_tags: tuple[str, ...] = ("<em>",)
    post_tags: tuple[str, ...] = ("</em>",)
    number_of_fragments: int = 5
    fragment_size: int = 100
    no_match_size: int = 0
    order_by_score: bool = False
    require_field_match: bool = True
    highlight_query: Any = None
    highlight_filter: bool = False
    max_analyzed_offset: int | None = None


@dataclass(frozen=True)
class HighlightRequest:
    fields: tuple[tuple[str, FieldOptions], ...]
    html: bool


def _int(value: Any, what: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise BadRequestError(f"[highlight] [{what}] must be an integer, got {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise BadRequestError(f"[highlight] [{what}] must be an integer, got {value!r}") from None
    if number < minimum:
        raise BadRequestError(f"[highlight] [{what}] must be >= {minimum}, got {number}")
    return number


def _bool(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return bool(value == "true")
    raise BadRequestError(f"[highlight] [{what}] must be true or false, got {value!r}")


def _tags(value: Any, what: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(t, str) for t in items):
        raise BadRequestError(f"[highlight] [{what}] must be a non-empty list of strings")
    return tuple(items)


def _apply(base: FieldOptions, spec: dict[str, Any], where: str) -> FieldOptions:
    """`base` with the options of `spec` (the top level or one field's object)."""
    allowed = TOP_KEYS if where == "highlight" else FIELD_KEYS
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise UnsupportedQueryError(
            f"[{where}] option(s) {unknown} are not supported by shoprank's embedded backend",
            construct=f"highlight.{unknown[0]}",
        )
    for key, why in REFUSED.items():
        if key in spec:
            raise UnsupportedQueryError(
                f"[{where}] option [{key}] is not supported by shoprank's embedded backend: {why}",
                construct=f"highlight.{key}",
            )
    kind = spec.get("type", "unified")
    if kind not in ("unified", "plain", "fvh"):
        raise BadRequestError(f"[{where}] unknown highlighter type [{kind}]")
    fragmenter = spec.get("fragmenter", "span")
    if fragmenter != "span":
        raise UnsupportedQueryError(
            f"[{where}] fragmenter [{fragmenter}] is not supported; fragments are spans "
            "around the matches (fragmenter: span)",
            construct="highlight.fragmenter",
        )
    scanner = spec.get("boundary_scanner", "word")
    if scanner != "word":
        raise UnsupportedQueryError(
            f"[{where}] boundary_scanner [{scanner}] is not supported; fragments are cut at "
            "word boundaries (boundary_scanner: word)",
            construct="highlight.boundary_scanner",
        )
    locale = spec.get("boundary_scanner_locale")
    if locale is not None and str(locale).lower() not in ACCEPTED_LOCALES:
        raise UnsupportedQueryError(
            f"[{where}] boundary_scanner_locale [{locale}] is not supported (English only)",
            construct="highlight.boundary_scanner_locale",
        )
    changes: dict[str, Any] = {}
    if "tags_schema" in spec:
        if spec["tags_schema"] != "styled":
            raise BadRequestError(f"[{where}] unknown tags_schema [{spec['tags_schema']}]")
        changes["pre_tags"] = tuple(STYLED)
        changes["post_tags"] = ("</em>",)
    if "pre_tags" in spec:
        changes["pre_tags"] = _tags(spec["pre_tags"], "pre_tags")
    if "post_tags" in spec:
        changes["post_tags"] = _tags(spec["post_tags"], "post_tags")
    for key in ("number_of_fragments", "fragment_size", "no_match_size"):
        if key in spec:
            changes[key] = _int(spec[key], key)
    if "max_analyzed_offset" in spec:
        changes["max_analyzed_offset"] = _int(spec["max_analyzed_offset"], "max_analyzed_offset", 1)
    if "phrase_limit" in spec:
        _int(spec["phrase_limit"], "phrase_limit", 1)
    if "order" in spec:
        if spec["order"] not in ("score", "none"):
            raise BadRequestError(f"[{where}] [order] must be score or none, got {spec['order']!r}")
        changes["order_by_score"] = spec["order"] == "score"
    for key in ("require_field_match", "highlight_filter"):
        if key in spec:
            changes[key] = _bool(spec[key], key)
    if "force_source" in spec:
        _bool(spec["force_source"], "force_source")
    if "highlight_query" in spec:
        if not isinstance(spec["highlight_query"], dict):
            raise BadRequestError(f"[{where}] [highlight_query] must be a query object")
        changes["highlight_query"] = spec["highlight_query"]
    return replace(base, **changes)


# A frontend sends the same `highlight` object with every search: parsed once, reused.
_PARSED: dict[bytes, HighlightRequest] = {}
_PARSED_MAX = 256


def parse_highlight(spec: Any) -> HighlightRequest:
    """The request's `highlight` object, checked; its fields in the order they were given.
    Results are immutable and cached by the object's JSON (key order kept)."""
    try:
        key = orjson.dumps(spec)
    except TypeError:  # not JSON (a caller's own object): parse it, do not cache
        return _parse(spec)
    cached = _PARSED.get(key)
    if cached is not None:
        return cached
    parsed = _parse(spec)
    if len(_PARSED) >= _PARSED_MAX:  # many distinct objects: start over (safe across threads)
        _PARSED.clear()
    _PARSED[key] = parsed
    return parsed


def _parse(spec: Any) -> HighlightRequest:
    if not isinstance(spec, dict):
        raise BadRequestError("[highlight] must be an object")
    encoder = spec.get("encoder", "default")
    if encoder not in ("default", "html"):
        raise BadRequestError(f"[highlight] unknown encoder [{encoder}]; use default or html")
    top = _apply(FieldOptions(), spec, "highlight")
    raw = spec.get("fields")
    items: list[tuple[str, Any]] = []
    if isinstance(raw, dict):
        items = list(raw.items())
    elif isinstance(raw, list):
        for entry in raw:
            if not isinstance(entry, dict) or len(entry) != 1:
                raise BadRequestError(
                    "[highlight] [fields] as a list must hold objects of one field each"
                )
            items += list(entry.items())
    elif raw is not None:
        raise BadRequestError("[highlight] [fields] must be an object or a list of objects")
    if not items:
        raise BadRequestError("[highlight] requires [fields]")
    fields = []
    for name, field_spec in items:
        if field_spec is None:
            field_spec = {}
        if not isinstance(field_spec, dict):
            raise BadRequestError(f"[highlight] options of field [{name}] must be an object")
        fields.append((str(name), _apply(top, field_spec, f"highlight.fields.{name}")))
    return HighlightRequest(fields=tuple(fields), html=encoder == "html")
