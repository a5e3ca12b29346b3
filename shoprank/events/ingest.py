"""The write path: pseudonymise valid events, append them to the log, then fold them.

Embedded (no Redis), ingest folds in-process before it answers, so profiles are fresh at
once; with Redis it pulls the fold trigger and a worker folds. Once the log has the events
the ingest succeeds: a fold (or trigger) that fails after the append is counted in
`shoprank_event_folds_deferred_total` and left to the next fold, never answered as an error
a client would retry (which would store the events twice).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import Counter

from shoprank.events.model import Event
from shoprank.events.privacy import Pseudonyms
from shoprank.events.protocol import EventLog
from shoprank.settings import Settings

logger = logging.getLogger("shoprank.events")
FOLD_DEFERRED = Counter(
    "shoprank_event_folds_deferred_total",
    "Ingests whose fold (or fold trigger) failed after the events were stored; they fold later",
)


class Ingest:
    """Appends events; `fold_now(now)` folds in-process, `trigger()` asks a worker to."""

    def __init__(
        self,
        settings: Settings,
        *,
        log: EventLog,
        pseudonyms: Pseudonyms,
        fold_now: Callable[[float], object],
        trigger: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.log = log
        self.pseudonyms = pseudonyms
        self.fold_now = fold_now
        self.trigger = trigger

    def ingest(
        self, events: Sequence[Event], *, fold: bool = True, now: float | None = None
    ) -> dict[str, Any]:
        """Pseudonymise and append valid events; fold them (embedded) or trigger the worker."""
        now = time.time() if now is None else now
        cutoff = now - self.settings.retention_days * 86_400
        keep: list[Event] = []
        errors: list[dict[str, Any]] = []
        of = self.pseudonyms.of
        for position, event in enumerate(events):
            if event.timestamp < cutoff:
                errors.append(
                    {"index": position, "reason": "[timestamp] is older than the retention period"}
                )
                continue
            keep.append(
                event.with_ids(
                    of(event.user_id) if event.user_id else None,
                    of(event.session_id) if event.session_id else None,
                )
            )
        appended = self.log.append(keep)
        if fold and (appended.offsets or appended.duplicates):
            # The events are stored: whatever fails now must not fail the request, or the
            # client would retry and store them twice. The next fold picks them up (a retry
            # answered as duplicates folds too, in case the first fold did not run).
            try:
                if self.settings.redis_url:
                    self.trigger()
                else:
                    self.fold_now(now)
            except Exception:  # noqa: BLE001 - counted and logged; the events are kept
                FOLD_DEFERRED.inc()
                logger.exception("fold after append failed; the events are stored and fold later")
        return {
            "accepted": len(appended.offsets),
            "duplicates": len(appended.duplicates),
            "errors": errors,
        }

    def log_search(
        self,
        *,
        query: str | None,
        product_ids: Sequence[str],
        user_id: str | None = None,
        session_id: str | None = None,
        index: str | None = None,
        query_id: str | None = None,
        window: Sequence[dict[str, Any]] = (),
        experiment: dict[str, Any] | None = None,
    ) -> str | None:
        """Record a search (its impressions, and the ranks and logged ranker features of
        its `window` for training); returns the `query_id` to hand to the client."""
        if not user_id and not session_id:
            return None
        query_id = query_id or uuid.uuid4().hex
        event = search_event(
            query=query,
            product_ids=product_ids,
            user_id=user_id,
            session_id=session_id,
            index=index,
            query_id=query_id,
            window=window,
            experiment=experiment,
        )
        self.ingest([event])
        return query_id


def search_event(
    *,
    query: str | None,
    product_ids: Sequence[str],
    user_id: str | None,
    session_id: str | None,
    index: str | None,
    query_id: str,
    window: Sequence[dict[str, Any]] = (),
    experiment: dict[str, Any] | None = None,
) -> Event:
    """A search as the behaviour log keeps it: its impressions, and the ranks and logged
    ranker features of its `window`, under its `query_id` (raw ids: `ingest` pseudonymises)."""
    return Event(
        type="search",
        timestamp=time.time(),
        event_id=query_id,
        user_id=user_id,
        session_id=session_id,
        query_id=query_id,
        query=query[:2048] if query else None,
        product_ids=tuple(product_ids),
        index=index,
        window=tuple(window),
        experiment=experiment,
    )
