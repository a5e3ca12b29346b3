"""Batch dedupe, shared by the event logs: an identical batch sent again is not stored twice.

A client that loses the response to a batch sends it again; events without `event_id` are
then recognisable only as a whole batch. Both logs remember the hash of each batch they
stored for `SHOPRANK_EVENT_DEDUPE_WINDOW_S` and answer a batch with a remembered hash as
duplicates. The hash is over the events as the log stores them (pseudonymised, in order),
leaving out an `event_id` shoprank generated (a retry gets new ones) and keeping a
client's, so a batch replayed from the spool hashes like the request it came from.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Final

import orjson

from shoprank.events.model import Event

DEFAULT_DEDUPE_WINDOW_S: Final = 3600
"""`SHOPRANK_EVENT_DEDUPE_WINDOW_S`'s default: how long a stored batch is remembered."""


def batch_key(events: Sequence[Event]) -> str:
    """The dedupe key of a batch: 32 hex characters of a SHA-256 over its events, in order.
    An `event_id` shoprank generated is left out, a client's is kept."""
    records = []
    for event in events:
        record = event.to_record()
        record.pop("idempotent", None)
        if not event.idempotent:
            record.pop("event_id", None)
        records.append(record)
    return hashlib.sha256(orjson.dumps(records, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


# -- the embedded log's batch records (in its `ids.sqlite`, written in the same SQLite
# transaction as the event ids; `first`/`last` are the offsets the batch got) ------------


def create_table(conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS batches "
        "(hash TEXT PRIMARY KEY, t REAL NOT NULL, first INTEGER NOT NULL, last INTEGER NOT NULL)"
    )
    conn.execute("CREATE INDEX IF NOT EXISTS batches_t ON batches (t)")


def seen(conn: sqlite3.Connection, key: str, *, since: float) -> bool:
    """Whether a batch with `key` was stored after `since` (inside the window)."""
    row = conn.execute("SELECT 1 FROM batches WHERE hash = ? AND t > ?", (key, since)).fetchone()
    return row is not None


def remember(conn: sqlite3.Connection, key: str, *, at: float, first: int, last: int) -> None:
    """Record a stored batch (uncommitted: the caller commits it with the events' ids)."""
    conn.execute("INSERT OR REPLACE INTO batches VALUES (?, ?, ?, ?)", (key, at, first, last))


def prune(conn: sqlite3.Connection, *, before: float) -> int:
    """Drop the records of batches stored at or before `before` (out of the window)."""
    return conn.execute("DELETE FROM batches WHERE t <= ?", (before,)).rowcount


def forget_offsets(conn: sqlite3.Connection, offsets: Iterable[int]) -> int:
    """Drop the records of batches holding any of `offsets` (events being erased), so
    nothing derived from them is left; returns how many went."""
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS gone (o INTEGER PRIMARY KEY)")
    conn.execute("DELETE FROM gone")
    conn.executemany("INSERT OR IGNORE INTO gone VALUES (?)", ((o,) for o in offsets))
    dropped = conn.execute(
        "DELETE FROM batches WHERE EXISTS "
        "(SELECT 1 FROM gone WHERE gone.o BETWEEN batches.first AND batches.last)"
    ).rowcount
    conn.execute("DELETE FROM gone")
    return dropped
