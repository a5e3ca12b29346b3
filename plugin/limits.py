"""Request limits: body size, pagination, query length and depth, aggregation buckets, and a
per-client token-bucket rate limit.

Each limit answers in the ES error shape with a documented status (README, "Security, limits
and operations"): 413 for bodies, 400 for search-body limits, 429 with `Retry-After` for the
rate limit.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from shoprank.errors import BadRequestError, TooManyRequestsError
from shoprank.plugin.bounds import check_work
from shoprank.plugin.security import refuse_scripts
from shoprank.settings import Settings

MAX_CLIENTS = 100_000
BUCKET_AGGS = ("terms", "range", "histogram", "date_histogram", "filters", "significant_terms")


class TokenBucketLimiter:
    """`rate` requests/s per client with bursts of `burst`; thread-safe, bounded memory
    (the least recently seen clients are forgotten past `max_clients`); `clock` tells the
    time in seconds (`time.monotonic` unless injected)."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_clients: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.clock = clock
        self.burst = float(max(1, burst or math.ceil(2 * rate)))
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def acquire(self, client: str, *, now: float | None = None) -> float:
        """Take a token: 0.0 when allowed, else the seconds until the next token."""
        now = self.clock() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[client] = (tokens - 1.0, now)
                wait = 0.0
            else:
                self._buckets[client] = (tokens, now)
                wait = (1.0 - tokens) / self.rate
            self._buckets.move_to_end(client)
            if len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        return wait

    def check(self, client: str) -> None:
        """Raise the 429 when `client` has no token left."""
        wait = self.acquire(client)
        if wait > 0:
            retry = max(1, math.ceil(wait))
            raise TooManyRequestsError(
                f"rate limit of {self.rate:g} requests/s (burst {self.burst:g}) exceeded for "
                f"this client; retry after {retry} s (SHOPRANK_RATE_LIMIT_PER_S)",
                retry_after_s=retry,
            )


def make_limiter(settings: Settings) -> TokenBucketLimiter | None:
    if settings.rate_limit_per_s <= 0:
        return None
    return TokenBucketLimiter(settings.rate_limit_per_s, settings.rate_limit_burst)


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None  # not a number: the search itself answers the 400
    return None


def check_search_body(body: dict[str, Any] | None, settings: Settings) -> None:
    """Every search-body limit (with the work caps of `shoprank.plugin.bounds`), plus the
    script refusal; 400 in the ES shape on a breach."""
    if not body:
        return
    _check_depth(body, settings.max_query_depth)
    refuse_scripts(body, settings)
    check_work(body, settings)
    size = _as_int(body.get("size"))
    start = _as_int(body.get("from"))
    if size is not None and size > settings.max_page_size:
        raise BadRequestError(
            f"[size] must be at most {settings.max_page_size}, got [{size}] "
            "(SHOPRANK_MAX_PAGE_SIZE); page through the results with [from]",
            es_type="illegal_argument_exception",
        )
    if (size or 0) + (start or 0) > settings.max_result_window:
        raise BadRequestError(
            "Result window is too large, from + size must be less than or equal to: "
            f"[{settings.max_result_window}] but was [{(size or 0) + (start or 0)}]. Deep "
            "pagination is refused (SHOPRANK_MAX_RESULT_WINDOW); narrow the query instead",
            es_type="illegal_argument_exception",
        )
    for where in ("query", "post_filter", "knn"):
        _check_strings(body.get(where), settings.max_query_chars, where)
    ext = body.get("ext")
    if isinstance(ext, dict) and isinstance(ext.get("shoprank"), dict):
        _check_strings(ext["shoprank"].get("query"), settings.max_query_chars, "ext.shoprank")
    aggs = body.get("aggs", body.get("aggregations"))
    if isinstance(aggs, dict):
        wanted = _requested_buckets(aggs)
        if wanted > settings.max_buckets:
            raise too_many_buckets(wanted, settings)


def too_many_buckets(count: int, settings: Settings) -> BadRequestError:
    return BadRequestError(
        "Trying to create too many buckets. Must be less than or equal to: "
        f"[{settings.max_buckets}] but this search would create [{count}] "
        "(SHOPRANK_MAX_BUCKETS); lower the aggregation [size]",
        es_type="too_many_buckets_exception",
    )


def check_response_buckets(response: dict[str, Any], settings: Settings) -> None:
    """Refuse a response whose aggregations grew past the bucket cap (e.g. a histogram)."""
    aggs = response.get("aggregations")
    if isinstance(aggs, dict):
        count = _count_buckets(aggs)
        if count > settings.max_buckets:
            raise too_many_buckets(count, settings)


def _check_depth(body: Any, limit: int) -> None:
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise BadRequestError(
                f"the search body is nested deeper than {limit} levels "
                "(SHOPRANK_MAX_QUERY_DEPTH); flatten the bool clauses",
                es_type="illegal_argument_exception",
            )
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)


def _check_strings(node: Any, limit: int, where: str) -> None:
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, str):
            if len(current) > limit:
                raise BadRequestError(
                    f"a query text in [{where}] is {len(current)} characters long; the "
                    f"maximum is {limit} (SHOPRANK_MAX_QUERY_CHARS)",
                    es_type="illegal_argument_exception",
                )
        elif isinstance(current, dict):
            stack.extend(current.values())
        elif isinstance(current, list):
            stack.extend(current)


def _requested_buckets(aggs: dict[str, Any]) -> int:
    """Buckets a request asks for: terms sizes and range counts, times their parents'."""
    total = 0
    for spec in aggs.values():
        if not isinstance(spec, dict):
            continue
        own = 1
        for kind in BUCKET_AGGS:
            body = spec.get(kind)
            if not isinstance(body, dict):
                continue
            if kind in ("terms", "significant_terms"):
                own = max(1, _as_int(body.get("size")) or 10)
            elif kind == "range" and isinstance(body.get("ranges"), list):
                own = max(1, len(body["ranges"]))
            elif kind == "filters" and isinstance(body.get("filters"), dict | list):
                own = max(1, len(body["filters"]))
        subs = spec.get("aggs", spec.get("aggregations"))
        below = _requested_buckets(subs) if isinstance(subs, dict) else 0
        total += own + own * below
    return total


def _count_buckets(aggs: dict[str, Any]) -> int:
    total = 0
    for result in aggs.values():
        if not isinstance(result, dict):
            continue
        buckets = result.get("buckets")
        items: list[Any] = (
            list(buckets.values())
            if isinstance(buckets, dict)
            else buckets
            if isinstance(buckets, list)
            else []
        )
        for bucket in items:
            total += 1
            if isinstance(bucket, dict):
                total += _count_buckets(bucket)
    return total
