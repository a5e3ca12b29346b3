"""Search events written off the hot path: the search returns its `query_id` at once and a
single background thread appends the event (impressions for product statistics)."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

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

    def _service(self) -> Any:
        from shoprank.events.service import EventService

        return EventService(self.settings)

    def log(
        self,
        *,
        index: str,
        query: str | None,
        product_ids: Sequence[str],
        user_id: str | None,
        session_id: str | None,
    ) -> str | None:
        """The query id for the response (None without a user or session id)."""
        if not user_id and not session_id:
            return None
        query_id = uuid.uuid4().hex
        with self._lock:
            if self._pending >= MAX_PENDING:
                self.dropped += 1
                return query_id
            self._pending += 1
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="search-log")
                self._events = self._service()
        self._pool.submit(
            self._write, index, query, list(product_ids), user_id, session_id, query_id
        )
        return query_id

    def _write(
        self,
        index: str,
        query: str | None,
        product_ids: list[str],
        user_id: str | None,
        session_id: str | None,
        query_id: str,
    ) -> None:
        try:
            self._events.log_search(
                query=query,
                product_ids=product_ids,
                user_id=user_id,
                session_id=session_id,
                index=index,
                query_id=query_id,
            )
        except Exception as exc:  # logging a search must never hurt searching
            self.failed += 1
            log.warning("search event %s not logged: %s", query_id, type(exc).__name__)
        finally:
            with self._lock:
                self._pending -= 1

    def flush(self, timeout: float = 10.0) -> None:
        """Wait for pending search events (tests, shutdown)."""
        pool = self._pool
        if pool is not None:
            pool.submit(lambda: None).result(timeout=timeout)
