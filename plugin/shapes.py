"""Elasticsearch response shapes and body helpers shared by every backend and the endpoint."""

from __future__ import annotations

import fnmatch
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
    patterns = _source_patterns(spec)
    if patterns is None:
        return None
    includes, excludes = patterns
    if not includes and not excludes:
        return source
    return _filter(source, "", includes, excludes)


def _matches(path: str, patterns: list[str]) -> bool:
    """True when `path` or one of its ancestors matches a pattern (ES field semantics)."""
    parts = path.split(".")
    prefixes = [".".join(parts[: i + 1]) for i in range(len(parts))]
    return any(fnmatch.fnmatchcase(p, pat) for p in prefixes for pat in patterns)


def _could_match_below(path: str, patterns: list[str]) -> bool:
    return any(
        pat.startswith(path + ".") or pat.startswith("*") or "*" in pat.split(".")[0]
        for pat in patterns
    )


def _filter(obj: dict[str, Any], prefix: str, inc: list[str], exc: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in obj.items():
        kept = _filter_value(value, f"{prefix}{key}", inc, exc)
        if kept is not _DROP:
            out[key] = kept
    return out


_DROP = object()


def _filter_value(value: Any, path: str, inc: list[str], exc: list[str]) -> Any:
    if _matches(path, exc):
        return _DROP
    included = not inc or _matches(path, inc)
    if isinstance(value, dict):
        if not included and not _could_match_below(path, inc):
            return _DROP
        nested = _filter(value, path + ".", [] if included else inc, exc)
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
