"""Folding the event log into the profile store, and the trigger that asks a worker to.

`Folder.fold` drains what the log has not yet delivered (in offset order, under the fold
lock) and then runs retention when it is due; `Folder.rebuild` clears the store and folds
the whole log again. In production, ingest calls a `FoldTrigger`, which enqueues one fold
task (the `enqueue` callable the wiring supplies) unless one is already waiting.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any

from shoprank.events.locking import FoldLock
from shoprank.events.model import Event
from shoprank.events.protocol import EventLog
from shoprank.events.retention import Retention
from shoprank.profiles.folding import ProductLookup
from shoprank.profiles.protocol import ProfileStore

FOLD_PENDING = "shoprank:fold:pending"
BATCH = 1000
PENDING_TTL_S = 5


class FoldTrigger:
    """Enqueues one fold task unless one is already waiting (the folder clears the flag
    before it drains, so events appended meanwhile are seen by it or by the next task).

    Without `enqueue` nothing is enqueued: events wait for the next fold (a worker folds
    whatever is pending when it starts)."""

    def __init__(self, client: Any, enqueue: Callable[[], None] | None) -> None:
        self.client = client
        self.enqueue = enqueue

    def __call__(self) -> None:
        if self.enqueue is None:
            return
        if self.client.set(FOLD_PENDING, "1", nx=True, ex=PENDING_TTL_S):
            self.enqueue()

    def clear(self) -> None:
        self.client.delete(FOLD_PENDING)


def _chunks(items: Iterator[tuple[str, Event]], size: int) -> Iterator[list[tuple[str, Event]]]:
    while chunk := list(islice(items, size)):
        yield chunk


class Folder:
    """Drains the log into the store; `lookup` supplies product facts (None: counts only)."""

    def __init__(
        self,
        *,
        log: EventLog,
        store: ProfileStore,
        lock: FoldLock,
        retention: Retention,
        lookup: ProductLookup | None,
        trigger: FoldTrigger | None = None,
    ) -> None:
        self.log = log
        self.store = store
        self.lock = lock
        self.retention = retention
        self.lookup = lookup
        self.trigger = trigger  # its pending flag is cleared when a fold starts (Redis)

    def fold(
        self, *, consumer: str | None = None, now: float | None = None, retention: bool = True
    ) -> int:
        """Drain the log into the profile store; returns how many events were folded.

        Then, when due (`now` is the clock), enforce retention, so expired events and
        profiles go without anyone running `profiles retention`."""
        consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        total = 0
        with self.lock.hold():
            if self.trigger is not None:
                self.trigger.clear()
            while batch := self.log.consume(consumer, count=BATCH):
                total += self.store.apply(batch, lookup=self.lookup)
                self.log.ack([o for o, _ in batch])
                self.lock.renew()
            if retention:
                self.retention.if_due(time.time() if now is None else now)
        return total

    def rebuild(self) -> dict[str, Any]:
        """Clear every profile and statistic and fold the whole log again, in order."""
        started = time.perf_counter()
        events = 0
        with self.lock.hold():
            self.store.clear()
            for chunk in _chunks(self.log.read(), BATCH):
                events += self.store.apply(chunk, lookup=self.lookup)
                self.lock.renew()
        profiles = sum(1 for _ in self.store.profiles())
        return {
            "events": events,
            "profiles": profiles,
            "quarantined": len(self.store.quarantined()),
            "took_s": time.perf_counter() - started,
        }
