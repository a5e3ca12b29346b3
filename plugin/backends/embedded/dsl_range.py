"""The bounds of an ES `range` query on the embedded backend: numbers, and dates as epoch
milliseconds (`dates.parse_date_ms`, ES's default date format and date math).

`format` is accepted on a date field when it names an ISO 8601 / epoch-millis format (the
values are then read as ES reads its default format); any other format, or a format on a
non-date field, is a 400, as is every option ES has and this does not (`relation`, the
legacy `from`/`to`).
"""

from __future__ import annotations

from typing import Any

from shoprank.errors import BadRequestError, UnsupportedQueryError

from .dsl_text import check_options
from .dsl_util import number

RANGE_OPTIONS = {"gte", "gt", "lte", "lt", "boost", "format", "_name", "time_zone"}
DATE_FORMATS = {
    "strict_date_optional_time",
    "date_optional_time",
    "strict_date_optional_time_nanos",
    "strict_date",
    "date",
    "strict_date_time",
    "date_time",
    "strict_date_time_no_millis",
    "date_time_no_millis",
    "strict_date_hour_minute_second",
    "date_hour_minute_second",
    "strict_year_month_day",
    "year_month_day",
    "epoch_millis",
    "yyyy-MM-dd",
    "uuuu-MM-dd",
    "yyyy-MM-dd'T'HH:mm:ss",
    "yyyy-MM-dd'T'HH:mm:ssZ",
    "yyyy-MM-dd'T'HH:mm:ss.SSSZ",
    "yyyy-MM-dd'T'HH:mm:ss.SSSXXX",
}
Bounds = tuple[float | None, float | None, bool, bool]


def range_bounds(path: str, spec: dict[str, Any], kind: str) -> Bounds:
    """(lower, upper, lower inclusive, upper inclusive) of a range on a field of `kind`."""
    check_options("range", spec, RANGE_OPTIONS)
    is_date = kind == "date"
    if "format" in spec:
        _check_format(path, spec["format"], is_date)
    if "time_zone" in spec and not is_date:
        raise BadRequestError(f"[range] time_zone needs a date field; [{path}] is {kind}")
    zone = None
    if is_date and "time_zone" in spec:
        from .dates import parse_time_zone

        zone = parse_time_zone(spec["time_zone"], what=f"range.{path}.time_zone")

    def read(key: str, round_up: bool) -> float | None:
        value = spec.get(key)
        if value is None:
            return None
        if is_date:
            from .dates import parse_date_ms

            return parse_date_ms(
                value, what=f"range.{path}.{key}", round_up=round_up, time_zone=zone
            )
        return number(value, f"range on {path}")

    lo = hi = None
    inc_lo = inc_hi = True
    if spec.get("gte") is not None:
        lo = read("gte", False)
    if spec.get("gt") is not None:
        lo, inc_lo = read("gt", True), False
    if spec.get("lte") is not None:
        hi = read("lte", True)
    if spec.get("lt") is not None:
        hi, inc_hi = read("lt", False), False
    return lo, hi, inc_lo, inc_hi


def _check_format(path: str, fmt: Any, is_date: bool) -> None:
    if not is_date:
        raise BadRequestError(
            f"[range] on [{path}]: a field that is not a date does not support [format]"
        )
    parts = str(fmt).split("||")
    unknown = [p for p in parts if p not in DATE_FORMATS]
    if unknown:
        raise UnsupportedQueryError(
            f"[range] date format {unknown[0]!r} is not supported by the embedded backend; "
            "it reads ISO 8601 dates and epoch milliseconds (e.g. strict_date_optional_time)",
            construct="range.format",
        )
