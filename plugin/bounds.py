"""What one request may make the server do: index names as Elasticsearch accepts them,
numbers written in ASCII only, caps on the work a search body asks for (ranges per
aggregation, sort keys, `_msearch` items) and a time budget for the embedded backend's work.

The budget is a `Deadline` that the expensive loops (aggregation buckets, sorting, hit
fetching, `_msearch` items) check cooperatively; the request that set it (`bounded`) ends
with partial results and `timed_out: true`, as Elasticsearch answers a search timeout.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from shoprank.errors import BadRequestError, InvalidIndexNameError, SearchTimeoutError
from shoprank.settings import Settings

# Characters Elasticsearch refuses in an index or alias name (`Strings.INVALID_FILENAME_CHARS`,
# plus '#' and ':').
INVALID_NAME_CHARS = frozenset('\\/*?"<>| ,#:')
MAX_NAME_BYTES = 255
RANGE_AGGS = ("range", "date_range", "ip_range", "geo_distance")

_ALIAS_NAME = re.compile(r"[a-z0-9][a-z0-9_.\-]{0,200}")
_ASCII_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_TIME_VALUE = re.compile(r"([0-9]+(?:\.[0-9]+)?)(nanos|micros|ms|s|m|h|d)")
_TIME_UNITS_S = {
    "nanos": 1e-9,
    "micros": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}

# -- index names ------------------------------------------------------------------------------


def check_index_name(name: str) -> str:
    """`name` when Elasticsearch would accept it as an index or alias name, else the ES
    `invalid_index_name_exception` (400). Checked before a name reaches the disk."""
    if not name:
        raise InvalidIndexNameError(name, "must not be empty")
    bad = sorted(set(name) & INVALID_NAME_CHARS)
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        raise InvalidIndexNameError(name, f"must not contain the following characters [{shown}]")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise InvalidIndexNameError(name, "must not contain control characters")
    if name[0] in "_-+":
        raise InvalidIndexNameError(name, "must not start with '_', '-', or '+'")
    if name in (".", ".."):
        raise InvalidIndexNameError(name, "must not be '.' or '..'")
    if name.lower() != name:
        raise InvalidIndexNameError(name, "must be lowercase")
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > MAX_NAME_BYTES:
        raise InvalidIndexNameError(
            name[:64] + "…", f"index name is too long, ({size} > {MAX_NAME_BYTES})"
        )
    return name


def check_alias_name(name: str) -> str:
    """A name for an alias shoprank creates: ES's rules, then shoprank's narrower one (a
    generation adds `-NNNNNN` and a load lock `.lock` to it, both still valid file names)."""
    check_index_name(name)
    if not _ALIAS_NAME.fullmatch(name):
        raise InvalidIndexNameError(
            name,
            "an alias uses lowercase letters, digits, '-', '_' or '.', starts with a letter "
            "or a digit and has at most 201 characters",
        )
    return name


# -- numbers ----------------------------------------------------------------------------------


def is_ascii_number(text: str) -> bool:
    """Whether `text` is a decimal number in ASCII digits, as Elasticsearch parses one:
    Python's `float()` also takes `1_000`, full-width digits, `inf` and `nan`, ES does not."""
    return _ASCII_NUMBER.fullmatch(text.strip(" \t\r\n")) is not None


def strict_float(value: Any) -> float:
    """`value` (a JSON number or an ASCII numeric string) as a float; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    if isinstance(value, int | float):
        return float(value)  # OverflowError (a ValueError's sibling) past 1e308 is the caller's
    if isinstance(value, str) and is_ascii_number(value):
        return float(value)
    raise ValueError(f"not a number: {value!r}")


# -- work limits ------------------------------------------------------------------------------


def check_work(body: dict[str, Any], settings: Settings) -> None:
    """400 for a body asking for more ranges per aggregation or more sort keys than allowed:
    each is cheap to write and expensive to answer."""
    sort = body.get("sort")
    keys = len(sort) if isinstance(sort, list) else 1 if sort else 0
    if keys > settings.max_sort_keys:
        raise BadRequestError(
            f"[sort] has {keys} keys; at most {settings.max_sort_keys} are allowed "
            "(SHOPRANK_MAX_SORT_KEYS)",
            es_type="illegal_argument_exception",
        )
    aggs = body.get("aggs", body.get("aggregations"))
    if isinstance(aggs, dict):
        _check_ranges(aggs, settings.max_agg_ranges)


def _check_ranges(aggs: dict[str, Any], limit: int) -> None:
    stack = [aggs]
    while stack:
        for name, spec in stack.pop().items():
            if not isinstance(spec, dict):
                continue
            for kind in RANGE_AGGS:
                body = spec.get(kind)
                ranges = body.get("ranges") if isinstance(body, dict) else None
                if isinstance(ranges, list) and len(ranges) > limit:
                    raise BadRequestError(
                        f"[{kind}] aggregation [{name}] has {len(ranges)} ranges; at most "
                        f"{limit} are allowed per aggregation (SHOPRANK_MAX_AGG_RANGES)",
                        es_type="illegal_argument_exception",
                    )
            subs = spec.get("aggs", spec.get("aggregations"))
            if isinstance(subs, dict):
                stack.append(subs)


def check_msearch_items(count: int, settings: Settings) -> None:
    if count > settings.max_msearch_items:
        raise BadRequestError(
            f"the _msearch request has {count} searches; at most "
            f"{settings.max_msearch_items} are allowed per request "
            "(SHOPRANK_MAX_MSEARCH_ITEMS); split it",
            es_type="illegal_argument_exception",
        )


# -- time budget ------------------------------------------------------------------------------


def monotonic() -> float:
    """The clock deadlines use unless one is injected."""
    return time.monotonic()


class Deadline:
    """A point in time after which the work of a request stops at its next check.

    `passed()` is the cooperative check; once it has answered True it keeps doing so and
    `expired` tells the response it is partial. `clock` tells the time in seconds."""

    def __init__(self, budget_s: float, *, clock: Callable[[], float] | None = None) -> None:
        self.clock = clock if clock is not None else monotonic
        self.at = self.clock() + budget_s
        self.expired = False

    def passed(self) -> bool:
        if not self.expired and self.clock() >= self.at:
            self.expired = True
        return self.expired

    def narrowed(self, budget_s: float | None) -> Deadline:
        """This deadline, or an earlier one `budget_s` from now (same clock) when that
        comes first; the narrower one is separate, so its expiry ends only its own work."""
        if budget_s is None:
            return self
        inner = Deadline(budget_s, clock=self.clock)
        if inner.at >= self.at:
            return self
        return inner


def request_deadline(settings: Settings) -> Deadline | None:
    """The budget `SHOPRANK_REQUEST_TIMEOUT_MS` gives one request (None when 0)."""
    if settings.request_timeout_ms <= 0:
        return None
    return Deadline(settings.request_timeout_ms / 1000.0)


_CURRENT: ContextVar[Deadline | None] = ContextVar("shoprank_deadline", default=None)


@contextmanager
def bounded(deadline: Deadline | None) -> Iterator[Deadline | None]:
    """Run the block under `deadline`: the backend's loops below it check it."""
    token = _CURRENT.set(deadline)
    try:
        yield deadline
    finally:
        _CURRENT.reset(token)


def current_deadline() -> Deadline | None:
    return _CURRENT.get()


def timeout_error() -> SearchTimeoutError:
    """What a search not started before the request's deadline answers (504)."""
    return SearchTimeoutError(
        "the request's time budget ran out before this search started "
        "(SHOPRANK_REQUEST_TIMEOUT_MS); send fewer or cheaper searches per request"
    )


def search_timeout_s(value: Any) -> float | None:
    """A search body's `timeout` (`"500ms"`, `"2s"`, …) in seconds; None for none (`-1`)."""
    if value is None:
        return None
    text = str(value).strip() if isinstance(value, str | int) else None
    if text == "-1":
        return None
    if text == "0":
        return 0.0
    match = _TIME_VALUE.fullmatch(text or "")
    if match is None:
        raise BadRequestError(
            f"failed to parse setting [timeout] with value [{value}] as a time value: unit is "
            "missing or unrecognized (use e.g. 500ms, 2s)",
            es_type="parse_exception",
        )
    return float(match.group(1)) * _TIME_UNITS_S[match.group(2)]


def effective_deadline(body_timeout: Any) -> Deadline | None:
    """The request's deadline, narrowed by the search body's own `timeout`."""
    outer = current_deadline()
    budget = search_timeout_s(body_timeout)
    if outer is None:
        return None if budget is None else Deadline(budget)
    return outer.narrowed(budget)
