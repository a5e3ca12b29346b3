"""Retention: events and profiles older than `SHOPRANK_RETENTION_DAYS` are deleted.

The fold path runs it at most once per `RETENTION_EVERY_S` (it scans the whole log, so not
per fold); the time of the last pass is kept beside the log (a Redis key, or
`data_dir/events/retention-last`). `shoprank profiles retention` runs it on demand.
"""

from __future__ import annotations

import logging
from typing import Any

from shoprank.events.locking import FoldLock
from shoprank.events.protocol import EventLog
from shoprank.profiles.protocol import ProfileStore
from shoprank.settings import Settings

log = logging.getLogger("shoprank.events")
RETENTION_LAST = "shoprank:retention:last"
RETENTION_EVERY_S = 3600.0
RETENTION_LEASE_S = 300


class Retention:
    """Deletes what is past the retention period; every method expects the fold lock held."""

    def __init__(
        self,
        settings: Settings,
        *,
        log: EventLog,
        store: ProfileStore,
        lock: FoldLock,
        client: Any = None,
    ) -> None:
        self.settings = settings
        self.log = log
        self.store = store
        self.lock = lock
        self.client = client

    def enforce(self, now: float) -> dict[str, int]:
        retention_s = self.settings.retention_days * 86_400
        events = self.log.enforce_retention(now, retention_s=retention_s)
        profiles = self.store.enforce_retention(now, retention_s=retention_s)
        return {"events_deleted": events, "profiles_deleted": profiles}

    def last(self) -> float | None:
        """When the last pass ran (None when never, or unreadable)."""
        if self.settings.redis_url:
            raw = self.client.get(RETENTION_LAST)
        else:
            try:
                raw = (self.settings.data_dir / "events" / "retention-last").read_text()
            except FileNotFoundError:
                raw = None
        try:
            return float(raw) if raw else None
        except ValueError:
            return None

    def if_due(self, now: float) -> dict[str, int] | None:
        """Enforce retention when the last pass is over `RETENTION_EVERY_S` old, or in the
        future (a clock that went back); None when it was not due."""
        last = self.last()
        if last is not None and 0 <= now - last < RETENTION_EVERY_S:
            return None
        if self.settings.redis_url:  # a full stream scan may outlast the per-batch lease
            self.lock.renew(RETENTION_LEASE_S)
        result = self.enforce(now)
        if self.settings.redis_url:
            self.client.set(RETENTION_LAST, repr(now))
            self.lock.renew()
        else:
            path = self.settings.data_dir / "events" / "retention-last"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(repr(now))
        if any(result.values()):
            log.info(
                "retention: deleted %d events and %d profiles",
                result["events_deleted"],
                result["profiles_deleted"],
            )
        return result
