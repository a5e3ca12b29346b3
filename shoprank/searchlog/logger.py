"""Searches logged off the hot path: the search returns its `query_id` at once and a single
background thread writes the record to the behaviour log (impressions for product
statistics, the logged ranker window for training) and to the search-log sinks.

The search itself only appends the record to a queue; the background thread wakes at most
every `BATCH_DELAY_S`, takes everything queued, writes the behaviour-log events of the
whole batch in one append and one fold, then lets the sinks write their batch. So a busy
server pays one wake-up, one fsync and one fold per batch, not per search, and the logging
work does not interleave with every search for the GIL.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from shoprank.events.ingest import search_event
from shoprank.events.model import Event
from shoprank.searchlog.protocol import EventIngest, SearchEventWriter, SearchLogSink
from shoprank.searchlog.record import SearchRecord
from shoprank.settings import Settings

log = logging.getLogger("shoprank.events")
MAX_PENDING = 10_000
BATCH_DELAY_S = 0.02


def default_event_writer(settings: Settings) -> SearchEventWriter:
    """The behaviour log of `settings`, for a logger built without one (folding then keeps
    counts only: `shoprank.wiring` injects the service with product facts)."""
    from shoprank.events.service import EventService

    return EventService(settings)


class SearchLogger:
    """Assigns query ids and logs searches asynchronously; never fails a search.

    `events` takes the searches that have a user or session id (built from `settings` on
    the first one when not given); `sinks` take every search."""

    def __init__(
        self,
        settings: Settings,
        *,
        events: SearchEventWriter | None = None,
        sinks: list[SearchLogSink] | None = None,
    ) -> None:
        self.settings = settings
        self._pool: ThreadPoolExecutor | None = None
        self._pending = 0
        self._queue: list[tuple[SearchRecord, bool]] = []
        self._scheduled = False
        self._lock = threading.Lock()
        self._events = events
        self.dropped = 0
        self.failed = 0
        # Search-log destinations, e.g. the inspector's store and the Kibana index.
        self.sinks: list[SearchLogSink] = sinks if sinks is not None else []

    @property
    def pending(self) -> int:
        """Searches queued or being written (the `search_log` queue depth)."""
        return self._pending

    def log(self, record: SearchRecord) -> str | None:
        """Assign the search its query id and write it in the background.

        Searches with a user or session id go to the behaviour log (impressions, logged
        features for training) and get a query id to return to the client; every search goes
        to the configured search-log sinks. Never raises and never blocks on I/O.
        """
        has_actor = bool(record.user_id or record.session_id)
        if not has_actor and not self.sinks:
            return None
        # A recommendation comes with its `rec_id` already (its response carries it).
        record.query_id = record.query_id or uuid.uuid4().hex
        with self._lock:
            if self._pending >= MAX_PENDING:
                self.dropped += 1
                return record.query_id if has_actor else None
            self._pending += 1
            self._queue.append((record, has_actor))
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="search-log")
                if self._events is None:
                    self._events = default_event_writer(self.settings)
            schedule = not self._scheduled
            self._scheduled = True
        if schedule:
            self._pool.submit(self._drain)
        return record.query_id if has_actor else None

    def _drain(self) -> None:
        time.sleep(BATCH_DELAY_S)  # searches arriving meanwhile join this batch
        with self._lock:
            batch, self._queue = self._queue, []
            self._scheduled = False
        events: list[Event] = []
        for record, has_actor in batch:
            event = self._event(record) if has_actor else None
            if event is not None:
                events.append(event)
            else:
                self._write(record, has_actor)
            for sink in self.sinks:
                self._guard(sink, sink.write, record)
        if events and isinstance(self._events, EventIngest):
            # One append and one fold for the whole batch, not one per search.
            try:
                self._events.ingest(events)
            except Exception as exc:  # logging a search must never hurt searching
                self.failed += len(events)
                log.warning("%d searches not logged: %s", len(events), type(exc).__name__)
        with self._lock:
            self._pending -= len(batch)
        # The batch is written: sinks send what they buffered, as one request. (An object
        # that only has `write`, not a whole `SearchLogSink`, buffers nothing to send.)
        for sink in self.sinks:
            if isinstance(sink, SearchLogSink):
                self._guard(sink, sink.flush)

    def _event(self, record: SearchRecord) -> Event | None:
        """The behaviour-log event of a search or recommendation, when the log takes whole
        events (else `_write` hands the search to `log_search`)."""
        if not isinstance(self._events, EventIngest):
            return None
        if record.surface != "search":
            return recommendation_event(record, self.settings)
        return search_event(
            query=record.query,
            product_ids=record.product_ids,
            user_id=record.user_id,
            session_id=record.session_id,
            index=record.index,
            query_id=record.query_id or uuid.uuid4().hex,
            window=logged_window(record, self.settings.feature_log_rate),
            experiment=record.experiment,
        )

    def _write(self, record: SearchRecord, has_actor: bool) -> None:
        try:
            if has_actor and self._events is not None:
                self._events.log_search(
                    query=record.query,
                    product_ids=record.product_ids,
                    user_id=record.user_id,
                    session_id=record.session_id,
                    index=record.index,
                    query_id=record.query_id,
                    window=logged_window(record, self.settings.feature_log_rate),
                    experiment=record.experiment,
                )
        except Exception as exc:  # logging a search must never hurt searching
            self.failed += 1
            log.warning("search %s not logged: %s", record.query_id, type(exc).__name__)

    def _guard(self, sink: object, fn: Callable[..., object], *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:  # a sink that fails must never hurt searching
            self.failed += 1
            log.warning("search log sink %s failed: %s", type(sink).__name__, exc)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait for pending search events (tests, shutdown)."""
        pool = self._pool
        if pool is not None:
            pool.submit(lambda: None).result(timeout=timeout)


def logged_window(record: SearchRecord, rate: float) -> list[dict[str, Any]]:
    """The window as the behaviour log stores it: ranks before/after, and the features the
    ranker computed (for a `rate` share of searches; training uses only those)."""
    keep = rate >= 1.0 or (rate > 0.0 and random.random() < rate)
    out: list[dict[str, Any]] = []
    for item in record.window:
        entry: dict[str, Any] = {
            "id": item.product_id,
            "before": item.rank_before,
            "after": item.rank_after,
        }
        if keep and item.features:
            entry["features"] = {k: float(v) for k, v in item.features.items()}
        out.append(entry)
    return out


def recommendation_event(record: SearchRecord, settings: Settings) -> Event:
    """A logged recommendation list as the behaviour log keeps it: a `search` event (its
    impressions) whose `query_id` is the list's `rec_id`, with the strategy, so clicks that
    cite the `rec_id` join it."""
    return Event(
        type="search",
        timestamp=time.time(),
        event_id=record.query_id or uuid.uuid4().hex,
        user_id=record.user_id,
        session_id=record.session_id,
        query_id=record.query_id,
        product_ids=tuple(record.product_ids),
        index=record.index,
        window=tuple(logged_window(record, settings.feature_log_rate)),
        rec_id=record.query_id,
        strategy=record.strategy,
    )
