"""`date_histogram` on a date field (epoch ms): `calendar_interval` (minute … year, in the
request's `time_zone`) or `fixed_interval` (`90m`, `7d`), with `format`, `offset`,
`min_doc_count` (default 0: empty buckets between the first and last are shown) and
`extended_bounds`; keys are epoch ms with `key_as_string`."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import tantivy

from shoprank.errors import BadRequestError

from .aggs_context import AggContext
from .dates import format_date_ms, parse_date_ms, parse_time_zone

CALENDAR = {
    "minute": "m", "1m": "m", "hour": "h", "1h": "h", "day": "d", "1d": "d",
    "week": "w", "1w": "w", "month": "M", "1M": "M", "quarter": "q", "1q": "q",
    "year": "y", "1y": "y",
}  # fmt: skip
FIXED_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def date_histogram_agg(
    ctx: AggContext, name: str, body: dict[str, Any], sub: dict[str, Any], query: tantivy.Query
) -> dict[str, Any]:
    info = ctx.field("date_histogram", name, body)
    zone = parse_time_zone(body["time_zone"], what="time_zone") if "time_zone" in body else UTC
    calendar, fixed = body.get("calendar_interval"), body.get("fixed_interval")
    if (calendar is None) == (fixed is None):
        raise BadRequestError(
            f"[date_histogram] [{name}] needs exactly one of [calendar_interval] or "
            "[fixed_interval]"
        )
    if calendar is not None and calendar not in CALENDAR:
        raise BadRequestError(f"[calendar_interval] {calendar!r} of [{name}] is not supported")
    step = _fixed(fixed, name) if fixed is not None else 0
    unit = CALENDAR[calendar] if calendar is not None else ""
    offset = _offset(body.get("offset"), name)

    def floor(ms: float) -> float:
        if step:
            return ((ms - offset) // step) * step + offset
        return _calendar_floor(ms, unit, zone) + offset

    def following(key: float) -> float:
        return key + step if step else _calendar_next(key - offset, unit, zone) + offset

    hits = ctx.matches(query)
    values = ctx.searcher.fast_field_values(info.tantivy, [a for _, a in hits])
    counts = Counter(floor(float(v)) for v in values if v is not None and not isinstance(v, bool))
    min_doc_count = int(body.get("min_doc_count", 0))
    keys = sorted(counts)
    if min_doc_count == 0 and (keys or "extended_bounds" in body):
        bounds = body.get("extended_bounds") or {}
        low = (
            [floor(parse_date_ms(bounds["min"], what="extended_bounds.min"))]
            if "min" in bounds
            else []
        )
        high = (
            [floor(parse_date_ms(bounds["max"], what="extended_bounds.max"))]
            if "max" in bounds
            else []
        )
        first, last = min(keys + low), max(keys + high)
        keys, key = [], first
        while key <= last and len(keys) < 100_000:
            keys.append(key)
            key = following(key)
    pattern = body.get("format")
    buckets = []
    for key in keys:
        count = counts.get(key, 0)
        if count < min_doc_count or ctx.passed():
            continue
        bucket: dict[str, Any] = {
            "key_as_string": _format(key, pattern, zone),
            "key": int(key),
            "doc_count": count,
        }
        if sub:
            bucket.update(
                ctx.evaluate(sub, ctx.both(query, ctx.between(info, key, following(key))))
            )
        buckets.append(bucket)
    return {"buckets": buckets}


def _fixed(value: Any, name: str) -> int:
    match = re.fullmatch(r"(\d+)(ms|s|m|h|d)", str(value))
    if match is None or int(match.group(1)) == 0:
        raise BadRequestError(f"[fixed_interval] {value!r} of [{name}] must be like 90m or 7d")
    return int(match.group(1)) * FIXED_UNITS[match.group(2)]


def _offset(value: Any, name: str) -> float:
    if value is None:
        return 0.0
    match = re.fullmatch(r"([+-]?)(\d+)(ms|s|m|h|d)", str(value))
    if match is None:
        raise BadRequestError(f"[offset] {value!r} of [{name}] must be like +6h or -1d")
    sign = -1 if match.group(1) == "-" else 1
    return float(sign * int(match.group(2)) * FIXED_UNITS[match.group(3)])


def _local(ms: float, zone: tzinfo) -> datetime:
    return (_EPOCH + timedelta(milliseconds=ms)).astimezone(zone)


def _ms(moment: datetime) -> float:
    return (moment - _EPOCH) / timedelta(milliseconds=1)


def _calendar_floor(ms: float, unit: str, zone: tzinfo) -> float:
    local = _local(ms, zone).replace(tzinfo=None)
    if unit == "m":
        start = local.replace(second=0, microsecond=0)
    elif unit == "h":
        start = local.replace(minute=0, second=0, microsecond=0)
    elif unit == "d":
        start = datetime(local.year, local.month, local.day)
    elif unit == "w":
        start = datetime(local.year, local.month, local.day) - timedelta(days=local.weekday())
    elif unit == "M":
        start = datetime(local.year, local.month, 1)
    elif unit == "q":
        start = datetime(local.year, 3 * ((local.month - 1) // 3) + 1, 1)
    else:
        start = datetime(local.year, 1, 1)
    return _ms(start.replace(tzinfo=zone))


def _calendar_next(key: float, unit: str, zone: tzinfo) -> float:
    local = _local(key, zone).replace(tzinfo=None)
    if unit in ("M", "q", "y"):
        months = {"M": 1, "q": 3, "y": 12}[unit]
        index = local.year * 12 + local.month - 1 + months
        nxt = datetime(index // 12, index % 12 + 1, 1)
    else:
        nxt = local + {"m": timedelta(minutes=1), "h": timedelta(hours=1),
                       "d": timedelta(days=1), "w": timedelta(days=7)}[unit]  # fmt: skip
    return _calendar_floor(_ms(nxt.replace(tzinfo=zone)), unit, zone)


_JAVA = {"yyyy": "%Y", "yy": "%y", "MM": "%m", "dd": "%d", "HH": "%H", "mm": "%M", "ss": "%S"}


def _format(ms: float, pattern: Any, zone: tzinfo) -> str:
    """A key as ES prints it: the default ISO format, `epoch_millis`, or a Java pattern
    made of yyyy yy MM dd HH mm ss SSS, quoted literals and punctuation."""
    if pattern is None or pattern in ("strict_date_optional_time", "date_optional_time"):
        return (
            format_date_ms(ms)
            if zone is UTC
            else _local(ms, zone).isoformat(timespec="milliseconds")
        )
    pattern = str(pattern).split("||")[0]
    if pattern == "epoch_millis":
        return str(int(ms))
    pattern = {"date": "yyyy-MM-dd", "strict_date": "yyyy-MM-dd"}.get(pattern, pattern)
    moment = _local(ms, zone)
    out = []
    for token in re.findall(r"'[^']*'|yyyy|yy|MM|dd|HH|mm|ss|SSS|[A-Za-z]+|[^A-Za-z']+", pattern):
        if token.startswith("'"):
            out.append(token[1:-1])
        elif token == "SSS":
            out.append(f"{moment.microsecond // 1000:03d}")
        elif token in _JAVA:
            out.append(moment.strftime(_JAVA[token]))
        elif token[0].isalpha():
            raise BadRequestError(f"date [format] pattern letters [{token}] are not supported")
        else:
            out.append(token)
    return "".join(out)
