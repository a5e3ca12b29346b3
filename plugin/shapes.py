"""Elasticsearch response shapes and body helpers shared by every backend and the endpoint."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from typing import Any

from shoprank.errors import BadRequestError

SHARDS = {"total": 1, "successful": 1, "skipped": 0, "failed": 0}
DEFAULT_TRACK_TOTAL = 10_000


def int_param(body: dict[str, Any], key: str, default: int, *, minimum: int = 0) -> int:
    """A non-negative integer body parameter, with ES's error when it is not one."""
    value = body.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise BadRequestError(f"[{key}] must be an integer, got {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise BadRequestError(f"[{key}] must be an integer, got {value!r}") from None
    if number < minimum:
        raise BadRequestError(f"[{key}] parameter cannot be negative, found [{number}]")
    return number


def total_hits(count: int, track: Any) -> dict[str, Any] | None:
    """`hits.total` as ES reports it for a given `track_total_hits`."""
    if track is False:
        return None
    if track is True:
        return {"value": count, "relation": "eq"}
    if track is None:
        limit = DEFAULT_TRACK_TOTAL
    elif isinstance(track, int):
        limit = track
    else:
        raise BadRequestError(
            f"[track_total_hits] must be true, false or an integer, got {track!r}"
        )
    if count > limit:
        return {"value": limit, "relation": "gte"}
    return {"value": count, "relation": "eq"}


def search_response(
    *,
    took_ms: float,
    hits: list[dict[str, Any]],
    total: dict[str, Any] | None,
    aggregations: dict[str, Any] | None = None,
) -> dict[str, Any]:
    scores = [h["_score"] for h in hits if h.get("_score") is not None]
    body: dict[str, Any] = {
        "took": int(took_ms),
        "timed_out": False,
        "_shards": dict(SHARDS),
        "hits": {"max_score": max(scores) if scores else None, "hits": hits},
    }
    if total is not None:
        body["hits"] = {"total": total, **body["hits"]}
    if aggregations is not None:
        body["aggregations"] = aggregations
    return body


def _source_patterns(spec: Any) -> tuple[list[str], list[str]] | None:
    """(includes, excludes) of a `_source` spec; None means no `_source` at all."""
    if spec is None or spec is True:
        return [], []
    if spec is False:
        return None
    if isinstance(spec, str):
        return [spec], []
    if isinstance(spec, list) and all(isinstance(s, str) for s in spec):
        return list(spec), []
    if isinstance(spec, dict):
        inc = spec.get("includes", spec.get("include", []))
        exc = spec.get("excludes", spec.get("exclude", []))
        inc = [inc] if isinstance(inc, str) else inc or []
        exc = [exc] if isinstance(exc, str) else exc or []
        for patterns in (inc, exc):
            if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
                raise BadRequestError(
                    f"[_source] includes/excludes must be field names, got {spec!r}"
                )
        if spec.get("enabled") is False:
            return None
        return inc, exc
    raise BadRequestError(
        f"[_source] must be a boolean, a field list or includes/excludes, got {spec!r}"
    )


def source_wanted(spec: Any) -> bool:
    return _source_patterns(spec) is not None


def filter_source(source: dict[str, Any], spec: Any) -> dict[str, Any] | None:
    """Apply ES `_source` filtering (wildcards, dotted paths) to one document."""
    return source_filter(spec)(source)


def source_filter(spec: Any) -> Callable[[dict[str, Any]], dict[str, Any] | None]:
    """`filter_source` for one spec, parsed and compiled once for a whole page of hits."""
    patterns = _source_patterns(spec)
    if patterns is None:
        return _no_source
    includes, excludes = patterns
    if not includes and not excludes:
        return _whole_source
    inc, exc = _compiled(includes), _compiled(excludes)
    return lambda source: _filter(source, "", inc, exc)


def _no_source(source: dict[str, Any]) -> None:
    return None


def _whole_source(source: dict[str, Any]) -> dict[str, Any]:
    return source


class _Patterns:
    """Field patterns compiled once: exact paths are set lookups, wildcards regexes."""

    def __init__(self, patterns: tuple[str, ...]) -> None:
        self.empty = not patterns
        self.exact = {p for p in patterns if not any(c in p for c in "*?[")}
        self.globs = [p for p in patterns if p not in self.exact]
        self.regexes = [re.compile(fnmatch.translate(p)) for p in self.globs]
        # Paths with an exact pattern somewhere below them ("attrs" for "attrs.colour").
        self.ancestors = {p[:i] for p in self.exact for i, c in enumerate(p) if c == "."}
        # What each glob fixes before its first wildcard: a path can only have matches
        # below it when that literal start agrees with the path's own start.
        self.glob_starts = [re.split(r"[*?\[]", p, maxsplit=1)[0] for p in self.globs]

    def matches(self, path: str) -> bool:
        """True when `path` or one of its ancestors matches a pattern (ES field semantics)."""
        if self.empty:
            return False
        if path in self.exact:
            return True
        at = path.find(".")
        while at >= 0:
            if path[:at] in self.exact:
                return True
            at = path.find(".", at + 1)
        if not self.regexes:
            return False
        parts = path.split(".")
        prefixes = [".".join(parts[: i + 1]) for i in range(len(parts))]
        return any(r.match(p) for p in prefixes for r in self.regexes)

    def could_match_below(self, path: str) -> bool:
        if path in self.ancestors:
            return True
        below = path + "."
        return any(s.startswith(below) or below.startswith(s) for s in self.glob_starts)


_COMPILED: dict[tuple[str, ...], _Patterns] = {}


def _compiled(patterns: list[str]) -> _Patterns:
    key = tuple(patterns)
    found = _COMPILED.get(key)
    if found is None:
        if len(_COMPILED) >= 256:
            _COMPILED.clear()
        found = _COMPILED[key] = _Patterns(key)
    return found


_NONE = _Patterns(())


def _filter(obj: dict[str, Any], prefix: str, inc: _Patterns, exc: _Patterns) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if exc.empty and not inc.empty and not inc.globs:
        # Named fields only (what frontends send): keep a matched path whole, descend only
        # towards a named field, skip the rest without looking inside.
        exact, ancestors = inc.exact, inc.ancestors
        for key, value in obj.items():
            path = f"{prefix}{key}" if prefix else key
            if path in exact or ("." in path and inc.matches(path)):
                out[key] = value
            elif path in ancestors and isinstance(value, dict | list):
                kept = _filter_value(value, path, inc, exc)
                if kept is not _DROP:
                    out[key] = kept
        return out
    for key, value in obj.items():
        kept = _filter_value(value, f"{prefix}{key}", inc, exc)
        if kept is not _DROP:
            out[key] = kept
    return out


_DROP = object()


def _filter_value(value: Any, path: str, inc: _Patterns, exc: _Patterns) -> Any:
    if exc.matches(path):
        return _DROP
    included = inc.empty or inc.matches(path)
    if isinstance(value, dict):
        if not included and not inc.could_match_below(path):
            return _DROP
        nested = _filter(value, path + ".", _NONE if included else inc, exc)
        return nested if nested or (included and not value) else _DROP
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        items = []
        for item in value:
            kept = (
                _filter_value(item, path, inc, exc)
                if isinstance(item, dict)
                else (item if included else _DROP)
            )
            if kept is not _DROP:
                items.append(kept)
        return items if items or included else _DROP
    return value if included else _DROP
