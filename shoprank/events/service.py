"""Events → log → profiles, behind one facade: what the HTTP API, the CLI and the worker call.

Embedded default (no `SHOPRANK_REDIS_URL`): the log is local JSONL, profiles live in SQLite,
and every ingest folds in-process before it answers (profiles are fresh at once).
Production: the log is a Redis Stream, profiles a Redis hash each, and ingest enqueues a
fold task (at most one pending trigger at a time).

The work is done by focused parts: `stores` (log and profile store from settings),
`ingest` (the write path), `fold` and `retention` (draining the log, under `locking`'s
lock), `reads` (profiles for the API and the ranker). What comes from outside, the product
facts for folding and the task queue, is injected: `shoprank.wiring.event_service` builds
the service as it runs in production.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from typing import Any

from shoprank.events.fold import Folder, FoldTrigger
from shoprank.events.ingest import Ingest
from shoprank.events.locking import FoldLock
from shoprank.events.model import Event
from shoprank.events.privacy import Pseudonyms
from shoprank.events.protocol import EventLog
from shoprank.events.reads import METRICS, ProfileReads
from shoprank.events.retention import RETENTION_LAST, Retention
from shoprank.events.stores import make_event_log, make_profile_store, redis_client
from shoprank.profiles.folding import FoldConfig, ProductLookup, Profile
from shoprank.profiles.protocol import ProfileStore
from shoprank.settings import Settings

__all__ = [
    "METRICS",
    "RETENTION_LAST",
    "EventService",
    "make_event_log",
    "make_profile_store",
    "redis_client",
]

log = logging.getLogger("shoprank.events")


class EventService:
    """One place that ingests, folds, reads and forgets; cheap to build, connects on use.

    `product_lookup` gives folding the product facts (category, brand, price, vector);
    `fold_trigger` enqueues one fold task (production). Both come from the wiring; without
    them folding keeps counts only and, with Redis, nothing is enqueued."""

    def __init__(
        self,
        settings: Settings,
        *,
        log: EventLog | None = None,
        store: ProfileStore | None = None,
        product_lookup: ProductLookup | None = None,
        fold_trigger: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self._log = log
        self._store = store
        self.lookup = product_lookup
        self._enqueue_fold = fold_trigger
        self.pseudonyms = Pseudonyms(settings)

    # -- parts -------------------------------------------------------------------------

    @cached_property
    def client(self) -> Any:
        assert self.settings.redis_url
        return redis_client(self.settings.redis_url)

    def _redis(self) -> Any:
        """The Redis client when the settings use Redis, else None."""
        return self.client if self.settings.redis_url else None

    @cached_property
    def log(self) -> EventLog:
        return self._log or make_event_log(self.settings, client=self._redis())

    @cached_property
    def store(self) -> ProfileStore:
        return self._store or make_profile_store(self.settings, client=self._redis())

    @property
    def secret(self) -> str:
        return self.pseudonyms.secret

    @cached_property
    def cfg(self) -> FoldConfig:
        return FoldConfig.from_settings(self.settings)

    @cached_property
    def lock(self) -> FoldLock:
        return FoldLock(self.settings, client=self._redis())

    @cached_property
    def retention(self) -> Retention:
        return Retention(
            self.settings, log=self.log, store=self.store, lock=self.lock, client=self._redis()
        )

    @cached_property
    def fold_trigger(self) -> FoldTrigger | None:
        if not self.settings.redis_url:
            return None
        return FoldTrigger(self.client, self._enqueue_fold)

    @cached_property
    def folder(self) -> Folder:
        return Folder(
            log=self.log,
            store=self.store,
            lock=self.lock,
            retention=self.retention,
            lookup=self.lookup,
            trigger=self.fold_trigger,
        )

    @cached_property
    def ingestor(self) -> Ingest:
        return Ingest(
            self.settings,
            log=self.log,
            pseudonyms=self.pseudonyms,
            fold_now=lambda now: self.fold(now=now),
            trigger=self.trigger,
        )

    @cached_property
    def reads(self) -> ProfileReads:
        """The profile reads; also the ranker's `ProfileReader`."""
        return ProfileReads(store=self.store, pseudonyms=self.pseudonyms, cfg=self.cfg)

    def subject(self, *, user_id: str | None = None, session_id: str | None = None) -> str:
        """The profile key of a raw user id (else a raw session id)."""
        return self.pseudonyms.subject(user_id=user_id, session_id=session_id)

    # -- write path --------------------------------------------------------------------

    def ingest(
        self, events: Sequence[Event], *, fold: bool = True, now: float | None = None
    ) -> dict[str, Any]:
        """Pseudonymise and append valid events; fold them (embedded) or trigger the worker."""
        return self.ingestor.ingest(events, fold=fold, now=now)

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
        """Record a search in the behaviour log; returns the `query_id` for the client."""
        return self.ingestor.log_search(
            query=query,
            product_ids=product_ids,
            user_id=user_id,
            session_id=session_id,
            index=index,
            query_id=query_id,
            window=window,
            experiment=experiment,
        )

    def trigger(self) -> None:
        """Enqueue one fold task unless one is already waiting (production path)."""
        if self.fold_trigger is not None:
            self.fold_trigger()

    @contextmanager
    def fold_lock(self, *, wait_s: float = 30.0) -> Iterator[None]:
        """One folder at a time, so the log is folded in offset order."""
        with self.lock.hold(wait_s=wait_s):
            yield

    def fold(
        self, *, consumer: str | None = None, now: float | None = None, retention: bool = True
    ) -> int:
        """Drain the log into the profile store; returns how many events were folded (and
        enforce retention when the last pass is over an hour old)."""
        return self.folder.fold(consumer=consumer, now=now, retention=retention)

    def rebuild(self) -> dict[str, Any]:
        """Clear every profile and statistic and fold the whole log again, in order."""
        return self.folder.rebuild()

    def enforce_retention(self, *, now: float | None = None) -> dict[str, int]:
        """Delete events and profiles older than the retention period now (also run by
        `fold` once an hour; this is the on-demand form)."""
        with self.lock.hold():
            return self.retention.enforce(time.time() if now is None else now)

    # -- read path ---------------------------------------------------------------------

    def profile(self, user_id: str, *, now: float | None = None) -> dict[str, Any] | None:
        """The user's profile decayed to now (None when there is none)."""
        return self.reads.profile(user_id, now=now)

    def features(
        self, *, user_id: str | None = None, session_id: str | None = None
    ) -> dict[str, Profile] | None:
        """The ranker's read: user and session profile in one round trip, or None on any
        failure (counted in `METRICS`), so ranking goes on unpersonalised."""
        return self.reads.features(user_id=user_id, session_id=session_id)

    # -- privacy -----------------------------------------------------------------------

    def forget(self, user_id: str) -> dict[str, Any]:
        """Erase a user's events and profiles (and their sessions'), and their logged
        searches, from every store."""
        from shoprank.searchlog.store import search_log_store

        subject = self.subject(user_id=user_id)
        with self.lock.hold():
            erased = self.log.forget(subject)
            profiles = self.store.forget([subject, *("s:" + s for s in sorted(erased.sessions))])
        searches = search_log_store(self.settings).forget(subject, sessions=erased.sessions)
        log.info("forgot user %s: %d events, %d profiles", subject, erased.events, profiles)
        return {
            "user": subject,
            "events_deleted": erased.events,
            "profiles_deleted": profiles,
            "searches_deleted": searches,
        }
