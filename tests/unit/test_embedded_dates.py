"""Date parsing for `date` fields: ISO strings, epoch ms, date math, and ES's rounding rules.

Expected values are epoch ms worked out with the standard library's calendar arithmetic
(`datetime(..., tzinfo=UTC).timestamp()`), never with the module under test.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shoprank.errors import BadRequestError
from shoprank.plugin.backends.embedded import dates
from shoprank.plugin.backends.embedded.dates import (
    format_date_ms,
    is_iso_date,
    parse_date_ms,
    parse_time_zone,
)


def ms(*parts: int) -> float:
    return datetime(*parts, tzinfo=UTC).timestamp() * 1000  # type: ignore[misc]


NOW = ms(2024, 3, 15, 13, 45, 30) + 250  # a Friday


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dates, "clock", lambda: NOW)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2006-07-01T00:00:00Z", ms(2006, 7, 1)),
        ("2006-07-01", ms(2006, 7, 1)),
        ("2006-07", ms(2006, 7, 1)),
        ("2006", ms(2006, 1, 1)),
        ("2006-07-01T10:20", ms(2006, 7, 1, 10, 20)),
        ("2006-07-01T10:20:30.5Z", ms(2006, 7, 1, 10, 20, 30) + 500),
        ("2006-07-01T10:20:30.123456Z", ms(2006, 7, 1, 10, 20, 30) + 123),
        ("2006-07-01T12:00:00+02:00", ms(2006, 7, 1, 10)),
        ("2006-07-01T12:00:00-0130", ms(2006, 7, 1, 13, 30)),
        ("1151712000000", ms(2006, 7, 1)),
    ],
)
def test_iso_and_epoch_strings(text: str, expected: float) -> None:
    assert parse_date_ms(text, what="gte") == expected


def test_numbers_are_epoch_millis() -> None:
    assert parse_date_ms(1151712000000, what="gte") == ms(2006, 7, 1)
    assert parse_date_ms(0.0, what="gte") == 0.0


@pytest.mark.parametrize(
    ("text", "round_up", "expected"),
    [
        ("now", False, NOW),
        ("now-7d", False, NOW - 7 * 86_400_000),
        ("now-7d/d", False, ms(2024, 3, 8)),
        ("now-7d/d", True, ms(2024, 3, 9) - 1),
        ("now/M", False, ms(2024, 3, 1)),
        ("now/M", True, ms(2024, 4, 1) - 1),
        ("now/y", True, ms(2025, 1, 1) - 1),
        ("now/w", False, ms(2024, 3, 11)),  # weeks start on Monday
        ("now+1h/h", False, ms(2024, 3, 15, 14)),
        ("now-90m", False, NOW - 90 * 60_000),
        ("now-30s/m", False, ms(2024, 3, 15, 13, 45)),
        ("now-1y", False, ms(2023, 3, 15, 13, 45, 30) + 250),
    ],
)
def test_now_with_date_math(text: str, round_up: bool, expected: float) -> None:
    assert parse_date_ms(text, what="lte", round_up=round_up) == expected


def test_now_ms_parameter_overrides_the_clock() -> None:
    assert parse_date_ms("now-1d", what="gte", now_ms=ms(2000, 1, 2)) == ms(2000, 1, 1)


@pytest.mark.parametrize(
    ("text", "round_up", "expected"),
    [
        ("2020-01-01||+1M/M", False, ms(2020, 2, 1)),
        ("2020-01-01||+1M/M", True, ms(2020, 3, 1) - 1),
        ("2020-01-31||+1M", False, ms(2020, 2, 29)),  # month math clamps to the month's end
        ("2014-11-18||/M", False, ms(2014, 11, 1)),
        ("2014-11-18||/M", True, ms(2014, 12, 1) - 1),
        ("2020-03-01T10:00:00Z||-1d-2h", False, ms(2020, 2, 29, 8)),
    ],
)
def test_anchored_date_math(text: str, round_up: bool, expected: float) -> None:
    assert parse_date_ms(text, what="gt", round_up=round_up) == expected


def test_round_up_fills_missing_fields_like_es() -> None:
    # `lte: 2020-01-01` includes the whole day; a full timestamp stays as given.
    assert parse_date_ms("2020-01-01", what="lte", round_up=True) == ms(2020, 1, 2) - 1
    assert parse_date_ms("2020-01", what="lte", round_up=True) == ms(2020, 2, 1) - 1
    assert (
        parse_date_ms("2020-01-01T10:00:00Z", what="lte", round_up=True)
        == ms(2020, 1, 1, 10, 0, 0) + 999
    )
    assert parse_date_ms("2020-01-01T10:00:00.000Z", what="lte", round_up=True) == ms(
        2020, 1, 1, 10
    )


def test_time_zone_applies_to_zoneless_dates_and_rounding() -> None:
    paris = parse_time_zone("+01:00", what="time_zone")
    assert parse_date_ms("2020-01-01", what="gte", time_zone=paris) == ms(2019, 12, 31, 23)
    assert parse_date_ms("2020-01-01T00:00:00Z", what="gte", time_zone=paris) == ms(2020, 1, 1)
    assert parse_date_ms("now/d", what="gte", time_zone=paris) == ms(2024, 3, 14, 23)
    assert parse_time_zone("Europe/Paris", what="time_zone") is not None


@pytest.mark.parametrize(
    "value",
    ["yesterday", "2020-13-01", "2020-02-30", "now-7x", "now+", "2020/01/01x", True, None, [1]],
)
def test_bad_dates_are_400s_naming_the_option(value: object) -> None:
    with pytest.raises(BadRequestError, match=r"\[range.date_released.gte\]"):
        parse_date_ms(value, what="range.date_released.gte")


def test_unknown_time_zone_is_a_400() -> None:
    with pytest.raises(BadRequestError, match="time_zone"):
        parse_time_zone("Mars/Olympus", what="time_zone")


def test_format_date_ms() -> None:
    assert format_date_ms(ms(2006, 7, 1)) == "2006-07-01T00:00:00.000Z"
    assert format_date_ms(ms(2024, 3, 15, 13, 45, 30) + 250) == "2024-03-15T13:45:30.250Z"
    assert format_date_ms(ms(1969, 12, 31, 23, 59, 59)) == "1969-12-31T23:59:59.000Z"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2006-07-01T00:00:00Z", True),
        ("2006-07-01", True),
        ("2006-07-01T10:00:00.000+02:00", True),
        ("2006", False),
        ("2006-07", False),
        ("2006-13-01", False),
        ("HP LaserJet 2006-07-01", False),
        ("1151712000000", False),
        (20060701, False),
    ],
)
def test_is_iso_date_detects_full_dates_only(value: object, expected: bool) -> None:
    assert is_iso_date(value) is expected
