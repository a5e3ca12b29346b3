"""Dates as the embedded backend stores them: epoch milliseconds, UTC.

A `date` field holds a float fast field of epoch ms; requests name dates the way
Elasticsearch reads them with its default format (`strict_date_optional_time||epoch_millis`):
ISO 8601 dates and datetimes with or without a zone, epoch-ms numbers, and date math
(`now-7d/d`, `2020-01-01||+1M/M`). `round_up` is what ES does for `lte`/`gt` bounds: a
rounding (`/M`) goes to the last millisecond of its period, and a plain date with missing
fields (`2020-01-01`) to the last millisecond it covers.

`clock` gives `now` in epoch ms; tests replace it (or pass `now_ms=`) so nothing depends on
wall time.
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shoprank.errors import BadRequestError

__all__ = [
    "clock",
    "format_date_ms",
    "is_iso_date",
    "parse_date_ms",
    "parse_time_zone",
]


def _wall_clock_ms() -> float:
    return time.time() * 1000.0


clock: Callable[[], float] = _wall_clock_ms
"""The source of `now` in epoch ms; replace it in tests."""

_ISO = re.compile(
    r"(?P<year>\d{4})"
    r"(?:-(?P<month>\d{2})"
    r"(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2})"
    r"(?::(?P<minute>\d{2})"
    r"(?::(?P<second>\d{2})"
    r"(?:[.,](?P<fraction>\d{1,9}))?"
    r")?)?"
    r"(?P<zone>Z|[+-]\d{2}(?::?\d{2})?)?"
    r")?)?)?"
)
_EPOCH = re.compile(r"-?\d+(?:\.\d+)?")
_MATH_OP = re.compile(r"([+-])(\d+)([yMwdhHms])|/([yMwdhHms])")
_FULL_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?:T\d{2}(?::\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?)?)?")
_ZONE_SUFFIX = re.compile(r"(?:Z|[+-]\d{2}(?::?\d{2})?)?")
_MS = timedelta(milliseconds=1)
_EPOCH_START = datetime(1970, 1, 1, tzinfo=UTC)


def parse_date_ms(
    value: Any,
    *,
    what: str,
    round_up: bool = False,
    time_zone: tzinfo | None = None,
    now_ms: float | None = None,
) -> float:
    """`value` (a date string, date math, or epoch-ms number) as epoch ms UTC.

    `what` names the request option in the error (`[range.date_released.gte]`);
    `time_zone` applies to dates without a zone and to rounding, as ES's `time_zone`.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise BadRequestError(
            f"[{what}] must be a date string or epoch milliseconds, got {value!r}"
        )
    if isinstance(value, int | float):
        if value != value or value in (float("inf"), float("-inf")):
            raise BadRequestError(f"[{what}] must be a finite number, got {value!r}")
        return float(value)
    zone = time_zone or UTC
    text = value.strip()
    if text.startswith("now"):
        base = clock() if now_ms is None else now_ms
        anchor = _EPOCH_START + timedelta(milliseconds=base)
        return _apply_math(anchor, text[3:], value, what=what, round_up=round_up, zone=zone)
    if "||" in text:
        head, _, math = text.partition("||")
        anchor = _parse_absolute(head, value, what=what, round_up=False, zone=zone)
        return _apply_math(anchor, math, value, what=what, round_up=round_up, zone=zone)
    return _to_ms(_parse_absolute(text, value, what=what, round_up=round_up, zone=zone))


def format_date_ms(ms: float) -> str:
    """Epoch ms as ES prints a date by default: `2020-01-01T00:00:00.000Z`."""
    moment = _EPOCH_START + timedelta(milliseconds=round(ms))
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def is_iso_date(value: Any) -> bool:
    """Whether a catalog value is a string ES's dynamic mapping would detect as a date.

    Only full dates (`yyyy-MM-dd`, optionally with a time and zone) count; a bare year or a
    number-like string stays a keyword, so `"2006"` is not a date.
    """
    if not isinstance(value, str) or len(value) < 10 or not value[:4].isdigit():
        return False
    head = _FULL_DATE.match(value)
    if head is None or _ZONE_SUFFIX.fullmatch(value, head.end()) is None:
        return False
    try:
        _parse_absolute(value, value, what="date", round_up=False, zone=UTC)
    except BadRequestError:
        return False
    return True


def parse_time_zone(value: Any, *, what: str) -> tzinfo:
    """An ES `time_zone` option (`+01:00`, `-0800`, `Z`, `UTC`, `Europe/Paris`)."""
    if not isinstance(value, str) or not value:
        raise BadRequestError(f"[{what}] must be a time zone id such as +01:00 or Europe/Paris")
    if value in ("Z", "UTC", "utc", "GMT"):
        return UTC
    offset = re.fullmatch(r"([+-])(\d{2}):?(\d{2})?", value)
    if offset:
        sign = -1 if offset.group(1) == "-" else 1
        delta = timedelta(hours=int(offset.group(2)), minutes=int(offset.group(3) or 0))
        if delta > timedelta(hours=18):
            raise BadRequestError(f"[{what}] offset {value!r} is out of range")
        return timezone(sign * delta)
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadRequestError(f"[{what}] unknown time zone {value!r}") from None


# -- parsing -------------------------------------------------------------------------------


def _parse_absolute(
    text: str, original: str, *, what: str, round_up: bool, zone: tzinfo
) -> datetime:
    match = _ISO.fullmatch(text)
    if match is None or (len(text) > 4 and text.isdigit()):
        if _EPOCH.fullmatch(text):
            return _EPOCH_START + timedelta(milliseconds=float(text))
        raise _bad(original, what)
    parts = match.groupdict()
    fields = [parts["month"], parts["day"], parts["hour"], parts["minute"], parts["second"]]
    given = sum(1 for part in fields if part is not None)
    try:
        moment = datetime(
            int(parts["year"]),
            int(parts["month"] or 1),
            int(parts["day"] or 1),
            int(parts["hour"] or 0),
            int(parts["minute"] or 0),
            int(parts["second"] or 0),
            int((parts["fraction"] or "0").ljust(6, "0")[:6]),
            tzinfo=_zone_of(parts["zone"], zone),
        )
    except (ValueError, OverflowError):
        raise _bad(original, what) from None
    if round_up and parts["fraction"] is None:
        # ES's round-up parser fills the fields a date leaves out with their maximum.
        unit = ("y", "M", "d", "h", "m", "s")[given]
        moment = _round(moment, unit, up=True)
    return moment


def _zone_of(text: str | None, default: tzinfo) -> tzinfo:
    if text is None:
        return default
    if text == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    minutes = int(digits[:2]) * 60 + int(digits[2:4] or 0)
    return timezone(sign * timedelta(minutes=minutes))


def _apply_math(
    anchor: datetime, math: str, original: str, *, what: str, round_up: bool, zone: tzinfo
) -> float:
    moment = anchor.astimezone(zone)
    position = 0
    while position < len(math):
        op = _MATH_OP.match(math, position)
        if op is None:
            raise _bad(original, what)
        position = op.end()
        if op.group(4):
            moment = _round(moment, op.group(4), up=round_up)
            continue
        amount = int(op.group(2)) * (-1 if op.group(1) == "-" else 1)
        moment = _shift(moment, op.group(3), amount, original, what)
    return _to_ms(moment)


def _shift(moment: datetime, unit: str, amount: int, original: str, what: str) -> datetime:
    try:
        if unit in ("y", "M"):
            return _add_months(moment, amount * (12 if unit == "y" else 1))
        seconds = {"w": 604800, "d": 86400, "h": 3600, "H": 3600, "m": 60, "s": 1}[unit]
        if unit in ("w", "d"):
            # Calendar days keep the wall-clock time across a DST change, as Java's plusDays.
            naive = moment.replace(tzinfo=None) + timedelta(seconds=seconds * amount)
            return _localize(naive, moment.tzinfo)
        return moment + timedelta(seconds=seconds * amount)
    except (OverflowError, ValueError):
        raise _bad(original, what) from None


def _add_months(moment: datetime, months: int) -> datetime:
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    naive = moment.replace(tzinfo=None, year=year, month=month + 1, day=day)
    return _localize(naive, moment.tzinfo)


def _round(moment: datetime, unit: str, *, up: bool) -> datetime:
    """`moment` rounded down to the start of its `unit`; with `up`, to the unit's last ms."""
    tz = moment.tzinfo
    local = moment.replace(tzinfo=None)
    if unit == "y":
        start = datetime(local.year, 1, 1)
        nxt = datetime(local.year + 1, 1, 1) if up else start
    elif unit == "M":
        start = datetime(local.year, local.month, 1)
        nxt = _add_months(start.replace(tzinfo=UTC), 1).replace(tzinfo=None) if up else start
    elif unit == "w":
        start = datetime(local.year, local.month, local.day) - timedelta(days=local.weekday())
        nxt = start + timedelta(days=7)
    elif unit == "d":
        start = datetime(local.year, local.month, local.day)
        nxt = start + timedelta(days=1)
    elif unit in ("h", "H"):
        start = local.replace(minute=0, second=0, microsecond=0)
        nxt = start + timedelta(hours=1)
    elif unit == "m":
        start = local.replace(second=0, microsecond=0)
        nxt = start + timedelta(minutes=1)
    else:
        start = local.replace(microsecond=0)
        nxt = start + timedelta(seconds=1)
    if not up:
        return _localize(start, tz)
    return _localize(nxt, tz) - _MS


def _localize(naive: datetime, tz: tzinfo | None) -> datetime:
    return naive.replace(tzinfo=tz or UTC)


def _to_ms(moment: datetime) -> float:
    delta = moment - _EPOCH_START
    return float((delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000)


def _bad(value: str, what: str) -> BadRequestError:
    return BadRequestError(
        f"[{what}] failed to parse date field [{value}]: expected an ISO 8601 date such as "
        "2020-01-31 or 2020-01-31T10:00:00Z, epoch milliseconds, or date math such as now-7d/d",
        es_type="parse_exception",
    )
