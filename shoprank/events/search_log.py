"""Search events written off the hot path: the search returns its `query_id` at once and a
single background thread appends the event (impressions for product statistics)."""

from __future__ import annotations

import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from shoprank.events.search_record import SearchRecord
from shoprank.settings import Settings

log = logging.getLogger("shoprank.events")
MAX_PENDING = 10_000


class SearchLogger:
    """Assigns query ids and logs searches asynchronously; never fails a search."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pool: ThreadPoolExecutor | None = None
        self._pending = 0
        self._lock = threading.Lock()
        self.dropped = 0
        self.failed = 0
        # Search-log destinations (objects with `write(record)`), e.g. the Kibana index.
        self.sinks: list[Any] = []

    def _service(self) -> Any:
        from shoprank.events.service import EventService

        return EventService(self.settings)

    def log(self, record: SearchRecord) -> str | None:
        """Assign the search its query id and write it in the background.

        Searches with a user or session id go to the behaviour log (impressions, logged
        features for training) and get a query id to return to the client; every search goes
        to the configured search-log sinks. Never raises and never blocks on I/O.
        """
        has_actor = bool(record.user_id or record.session_id)
        if not has_actor and not self.sinks:
            return None
        record.query_id = uuid.uuid4().hex
        with self._lock:
            if self._pending >= MAX_PENDING:
                self.dropped += 1
                return record.query_id if has_actor else None
            self._pending += 1
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="search-log")
                self._events = self._service()
        self._pool.submit(self._write, record, has_actor)
        return record.query_id if has_actor else None

    def _write(self, record: SearchRecord, has_actor: bool) -> None:
        try:
            if has_actor:
                self._events.log_search(
                    query=record.query,
                    product_ids=record.product_ids,
                    user_id=record.user_id,
                    session_id=record.session_id,
                    index=record.index,
                    query_id=record.query_id,
                )
        except Exception as exc:  # logging a search must never hurt searching
            self.failed += 1
            log.warning("search %s not logged: %s", record.query_id, type(exc).__name__)
        for sink in self.sinks:
            self._guard(sink.write, record)
        with self._lock:
            self._pending -= 1
            idle = self._pending == 0
        if idle:  # the queue ran empty: sinks write what they buffered, as one batch
            for sink in self.sinks:
                if hasattr(sink, "flush"):
                    self._guard(sink.flush)

    def _guard(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:  # a sink that fails must never hurt searching
            self.failed += 1
            log.warning("search log sink %s failed: %s", type(fn.__self__).__name__, exc)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait for pending search events (tests, shutdown)."""
        pool = self._pool
        if pool is not None:
            pool.submit(lambda: None).result(timeout=timeout)
