"""Events → log → profiles, wired from settings: what the HTTP API, the CLI and the worker call.

Embedded default (no `SHOPRANK_REDIS_URL`): the log is local JSONL, profiles live in SQLite,
and every ingest folds in-process before it answers (profiles are fresh at once).
Production: the log is a Redis Stream, profiles a Redis hash each, and ingest enqueues the
`shoprank.fold_events` Celery task (at most one pending trigger at a time).
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from itertools import islice
from typing import TYPE_CHECKING, Any

from shoprank.events.model import Event
from shoprank.events.privacy import pseudonymise, resolve_secret
from shoprank.events.protocol import EventLog
from shoprank.metrics import DEGRADATIONS
from shoprank.settings import Settings

if TYPE_CHECKING:
    from shoprank.rerankers.profiles.folding import FoldConfig, ProductLookup
    from shoprank.rerankers.profiles.protocol import ProfileStore

log = logging.getLogger("shoprank.events")
# Read-path health, counted in-process (exported by whoever serves metrics).
METRICS: Counter[str] = Counter()
FOLD_LOCK = "shoprank:fold:lock"
FOLD_PENDING = "shoprank:fold:pending"
RETENTION_LAST = "shoprank:retention:last"
BATCH = 1000
LOCK_LEASE_S = 10
# Retention runs from the fold path at most this often (a full log scan: not per fold).
RETENTION_EVERY_S = 3600.0
RETENTION_LEASE_S = 300


def redis_client(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)


def make_event_log(settings: Settings, *, client: Any = None) -> EventLog:
    if settings.redis_url:
        from shoprank.events.redis_log import RedisEventLog

        return RedisEventLog(
            client or redis_client(settings.redis_url),
            idempotency_ttl_s=int(settings.retention_days * 86_400),
        )
    from shoprank.events.embedded import EmbeddedEventLog

    return EmbeddedEventLog(settings.data_dir / "events")


def make_profile_store(settings: Settings, *, client: Any = None) -> ProfileStore:
    from shoprank.rerankers.profiles.folding import FoldConfig

    cfg = FoldConfig.from_settings(settings)
    prior = {
        "prior_clicks": settings.ctr_prior_clicks,
        "prior_impressions": settings.ctr_prior_impressions,
    }
    if settings.redis_url:
        from shoprank.rerankers.profiles.redis_store import RedisProfileStore

        return RedisProfileStore(
            client or redis_client(settings.redis_url),
            cfg,
            query_ttl_s=int(settings.retention_days * 86_400),
            **prior,
        )
    from shoprank.rerankers.profiles.embedded import EmbeddedProfileStore

    return EmbeddedProfileStore(settings.data_dir / "profiles" / "profiles.sqlite", cfg, **prior)


def default_product_lookup(settings: Settings) -> ProductLookup | None:
    """`shoprank.wiring.product_lookup(settings)` when the wiring module provides one."""
    from shoprank import wiring

    factory = getattr(wiring, "product_lookup", None)
    return factory(settings) if factory else None


def _chunks(items: Iterator[tuple[str, Event]], size: int) -> Iterator[list[tuple[str, Event]]]:
    while chunk := list(islice(items, size)):
        yield chunk


class EventService:
    """One place that ingests, folds, reads and forgets; cheap to build, connects on use."""

    def __init__(
        self,
        settings: Settings,
        *,
        log: EventLog | None = None,
        store: ProfileStore | None = None,
        product_lookup: ProductLookup | None | Callable[[], ProductLookup | None] = None,
        trigger: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self._log = log
        self._store = store
        self._lookup = product_lookup
        self._trigger = trigger

    # -- parts -------------------------------------------------------------------------

    @cached_property
    def client(self) -> Any:
        assert self.settings.redis_url
        return redis_client(self.settings.redis_url)

    @cached_property
    def log(self) -> EventLog:
        return self._log or make_event_log(
            self.settings, client=self.client if self.settings.redis_url else None
        )

    @cached_property
    def store(self) -> ProfileStore:
        return self._store or make_profile_store(
            self.settings, client=self.client if self.settings.redis_url else None
        )

    @cached_property
    def secret(self) -> str:
        return resolve_secret(self.settings)

    @cached_property
    def cfg(self) -> FoldConfig:
        from shoprank.rerankers.profiles.folding import FoldConfig

        return FoldConfig.from_settings(self.settings)

    @cached_property
    def lookup(self) -> ProductLookup | None:
        if self._lookup is None:
            return default_product_lookup(self.settings)
        return self._lookup

    def subject(self, *, user_id: str | None = None, session_id: str | None = None) -> str:
        """The profile key of a raw user id (else a raw session id)."""
        if user_id:
            return pseudonymise(user_id, self.secret)
        if session_id:
            return "s:" + pseudonymise(session_id, self.secret)
        raise ValueError("a user_id or a session_id is needed")

    # -- write path --------------------------------------------------------------------

    def ingest(
        self, events: Sequence[Event], *, fold: bool = True, now: float | None = None
    ) -> dict[str, Any]:
        """Pseudonymise and append valid events; fold them (embedded) or trigger the worker."""
        now = time.time() if now is None else now
        cutoff = now - self.settings.retention_days * 86_400
        keep: list[Event] = []
        errors: list[dict[str, Any]] = []
        for position, event in enumerate(events):
            if event.timestamp < cutoff:
                errors.append(
                    {"index": position, "reason": "[timestamp] is older than the retention period"}
                )
                continue
            keep.append(
                event.with_ids(
                    pseudonymise(event.user_id, self.secret) if event.user_id else None,
                    pseudonymise(event.session_id, self.secret) if event.session_id else None,
                )
            )
        appended = self.log.append(keep)
        if fold and appended.offsets:
            if self.settings.redis_url:
                self.trigger()
            else:
                self.fold(now=now)
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
    ) -> str | None:
        """Record a search (its impressions, and the ranks and logged ranker features of
        its `window` for training); returns the `query_id` to hand to the client."""
        if not user_id and not session_id:
            return None
        query_id = query_id or uuid.uuid4().hex
        event = Event(
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
        )
        self.ingest([event])
        return query_id

    def trigger(self) -> None:
        """Enqueue one fold task unless one is already waiting (production path)."""
        if self._trigger is not None:
            self._trigger()
            return
        if self.client.set(FOLD_PENDING, "1", nx=True, ex=5):
            from shoprank.workers.events import fold_events

            fold_events.delay()

    @contextmanager
    def fold_lock(self, *, wait_s: float = 30.0) -> Iterator[None]:
        """One folder at a time, so the log is folded in offset order."""
        if self.settings.redis_url:
            # Short lease, renewed per batch: a killed folder blocks others for seconds only.
            lock = self.client.lock(FOLD_LOCK, timeout=LOCK_LEASE_S, blocking_timeout=wait_s)
            if not lock.acquire():
                raise TimeoutError("another folder holds the fold lock")
            try:
                yield
            finally:
                try:
                    lock.release()
                except Exception:  # noqa: BLE001 - expired: another folder may have taken over
                    log.warning("fold lock expired before release")
            return
        path = self.settings.data_dir / "profiles" / ".fold.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _renew_lock(self) -> None:
        if self.settings.redis_url:
            self.client.expire(FOLD_LOCK, LOCK_LEASE_S)

    def fold(
        self, *, consumer: str | None = None, now: float | None = None, retention: bool = True
    ) -> int:
        """Drain the log into the profile store; returns how many events were folded.

        Then, at most once per `RETENTION_EVERY_S` (`now` is the clock), enforce retention,
        so expired events and profiles go without anyone running `profiles retention`."""
        consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        total = 0
        with self.fold_lock():
            if self.settings.redis_url:
                self.client.delete(FOLD_PENDING)
            while batch := self.log.consume(consumer, count=BATCH):
                total += self.store.apply(batch, lookup=self.lookup)
                self.log.ack([o for o, _ in batch])
                self._renew_lock()
            if retention:
                self._retention_if_due(time.time() if now is None else now)
        return total

    def _last_retention(self) -> float | None:
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

    def _retention_if_due(self, now: float) -> dict[str, int] | None:
        """Enforce retention when the last run (stored beside the log) is over an hour old,
        or in the future (a clock that went back). The caller holds the fold lock."""
        last = self._last_retention()
        if last is not None and 0 <= now - last < RETENTION_EVERY_S:
            return None
        if self.settings.redis_url:  # a full stream scan may outlast the per-batch lease
            self.client.expire(FOLD_LOCK, RETENTION_LEASE_S)
        result = self._enforce_retention(now)
        if self.settings.redis_url:
            self.client.set(RETENTION_LAST, repr(now))
            self._renew_lock()
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

    def _enforce_retention(self, now: float) -> dict[str, int]:
        retention_s = self.settings.retention_days * 86_400
        events = self.log.enforce_retention(now, retention_s=retention_s)
        profiles = self.store.enforce_retention(now, retention_s=retention_s)
        return {"events_deleted": events, "profiles_deleted": profiles}

    def rebuild(self) -> dict[str, Any]:
        """Clear every profile and statistic and fold the whole log again, in order."""
        started = time.perf_counter()
        events = 0
        with self.fold_lock():
            self.store.clear()
            for chunk in _chunks(self.log.read(), BATCH):
                events += self.store.apply(chunk, lookup=self.lookup)
                self._renew_lock()
        profiles = sum(1 for _ in self.store.profiles())
        return {"events": events, "profiles": profiles, "took_s": time.perf_counter() - started}

    # -- read path ---------------------------------------------------------------------

    def profile(self, user_id: str, *, now: float | None = None) -> dict[str, Any] | None:
        """The user's profile decayed to now (None when there is none)."""
        from shoprank.rerankers.profiles.folding import snapshot

        subject = self.subject(user_id=user_id)
        stored = self.store.get(subject)
        if stored is None:
            return None
        return {"user": subject, **snapshot(stored, time.time() if now is None else now, self.cfg)}

    def features(
        self, *, user_id: str | None = None, session_id: str | None = None
    ) -> dict[str, Any] | None:
        """The ranker's read: user and session profile in one round trip, or None on any
        failure (counted in `METRICS`), so ranking goes on unpersonalised."""
        try:
            subjects = []
            if user_id:
                subjects.append(self.subject(user_id=user_id))
            if session_id:
                subjects.append(self.subject(session_id=session_id))
            if not subjects:
                return None
            found = self.store.get_many(subjects)
        except Exception:  # noqa: BLE001 - the store is down: degrade, never fail a search
            METRICS["profile_store_errors"] += 1
            DEGRADATIONS.labels(stage="profile", reason="store unavailable").inc()
            log.warning("profile store unavailable; ranking unpersonalised", exc_info=True)
            return None
        if not found:
            METRICS["profile_missing"] += 1
            return None
        return dict(found)

    # -- privacy -----------------------------------------------------------------------

    def forget(self, user_id: str) -> dict[str, Any]:
        """Erase a user's events and profiles (and their sessions') from every store."""
        subject = self.subject(user_id=user_id)
        with self.fold_lock():
            erased = self.log.forget(subject)
            profiles = self.store.forget([subject, *("s:" + s for s in sorted(erased.sessions))])
        from shoprank.searchlog import search_log_store

        searches = search_log_store(self.settings).forget(subject, sessions=erased.sessions)
        log.info("forgot user %s: %d events, %d profiles", subject, erased.events, profiles)
        return {
            "user": subject,
            "events_deleted": erased.events,
            "profiles_deleted": profiles,
            "searches_deleted": searches,
        }

    def enforce_retention(self, *, now: float | None = None) -> dict[str, int]:
        """Delete events and profiles older than the retention period now (also run by
        `fold` once an hour; this is the on-demand form)."""
        with self.fold_lock():
            return self._enforce_retention(time.time() if now is None else now)
