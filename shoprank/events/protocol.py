"""`EventLog`: the durable, ordered, append-only record of accepted events.

Every accepted event gets an offset (`"<major>-<minor>"`, ordered like a Redis Stream id).
Profiles are a fold of the log in offset order, so replaying it rebuilds them exactly.
Consumers `consume` unacknowledged events and `ack` them after folding; delivery is
at-least-once, made exactly-once by the profile store's applied-offset watermark.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from shoprank.events.model import Event


def offset_key(offset: str) -> tuple[int, int]:
    """Sort key of an offset (`"12-0"` → `(12, 0)`)."""
    major, _, minor = offset.partition("-")
    return int(major), int(minor or 0)


@dataclass
class AppendResult:
    offsets: list[str] = field(default_factory=list)
    """Offsets of the appended events, in input order."""
    duplicates: list[int] = field(default_factory=list)
    """Positions (in the input) of events already in the log: a repeated `event_id`, or
    every position when an identical batch was stored within the dedupe window."""


@dataclass
class ForgetResult:
    events: int = 0
    sessions: set[str] = field(default_factory=set)
    """Session pseudonyms seen on the user's events (their session profiles go too)."""


@runtime_checkable
class EventLog(Protocol):
    name: str

    def append(self, events: Sequence[Event], *, keep_generated_ids: bool = False) -> AppendResult:
        """Durably append pseudonymised events, all or nothing; a repeated client `event_id`
        is skipped, and a batch identical to one stored within the dedupe window
        (`shoprank.events.batches`) is answered as duplicates. `keep_generated_ids` also
        makes shoprank-generated ids idempotency keys (a spool replay), leaving the batch's
        hash as it was."""
        ...

    def read(
        self, after: str | None = None, *, limit: int | None = None
    ) -> Iterator[tuple[str, Event]]:
        """Events in offset order, starting after offset `after` (from the start if None)."""
        ...

    def consume(self, consumer: str, *, count: int = 1000) -> list[tuple[str, Event]]:
        """Unacknowledged events (oldest first), including ones a dead consumer left."""
        ...

    def ack(self, offsets: Sequence[str]) -> None:
        """Mark events as folded: `consume` will not return them again."""
        ...

    def count(self) -> int: ...

    def forget(self, user: str) -> ForgetResult:
        """Erase every event of pseudonym `user` (with its idempotency keys and the records
        of the batches that held them)."""
        ...

    def enforce_retention(self, now: float, *, retention_s: float) -> int:
        """Drop events older than `now - retention_s`; returns how many went."""
        ...

    def clear(self) -> None: ...
