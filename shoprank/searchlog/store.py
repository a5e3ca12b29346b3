"""The embedded search log: query documents in SQLite under `data_dir/searchlog`, with the
shoppers' click / add_to_cart / purchase events joined in by `query_id`.

    searchlog/searches.sqlite
        searches  one row per search: query_id, time, index, pseudonymous client, query,
                  mode, total hits, model version, and the whole query document (JSON)
        events    behaviour events that name a query_id (copied from the event log)
        state     the event-log offset copied up to

Events live in the behaviour log (`shoprank.events`); `sync_events` copies the new ones
incrementally (from the last offset), so reading the inspector's recent searches costs
only the events that arrived since the last read. Several processes (the workers of one
`shoprank serve`, the CLI) may write at once: WAL, a 30 s busy timeout, and an event-offset
update that never moves back when two of them copy events at the same time.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson

from shoprank.events.protocol import EventLog
from shoprank.settings import Settings

JOINED_EVENTS = ("click", "add_to_cart", "purchase", "view")
PRUNE_EVERY_S = 3600.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS searches (
    query_id TEXT PRIMARY KEY, ts REAL NOT NULL, idx TEXT, client TEXT, session TEXT,
    query TEXT, mode TEXT, total_hits INTEGER, model_version TEXT, doc BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS searches_ts ON searches (ts);
CREATE INDEX IF NOT EXISTS searches_client ON searches (client);
CREATE TABLE IF NOT EXISTS events (
    offset TEXT PRIMARY KEY, query_id TEXT NOT NULL, type TEXT NOT NULL, product_id TEXT,
    position INTEGER, ts REAL NOT NULL, quantity INTEGER, price REAL, client TEXT);
CREATE INDEX IF NOT EXISTS events_query ON events (query_id);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT);
"""


class SearchLogStore:
    """Query documents and their joined events; one connection per thread."""

    def __init__(self, root: Path, *, retention_days: float | None = None) -> None:
        self.root = root
        self.path = root / "searches.sqlite"
        self.retention_days = retention_days
        self._local = threading.local()
        self._sync_lock = threading.Lock()
        self._last_prune = 0.0

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            self.root.mkdir(parents=True, exist_ok=True)
            conn = _open(self.path)
            self._local.conn = conn
        return conn

    # -- writes ------------------------------------------------------------------------

    def write_many(self, docs: Sequence[tuple[float, dict[str, Any]]]) -> int:
        """Store `(epoch seconds, query document)` pairs (`documents.query_document`) in one
        transaction."""
        if not docs:
            return 0
        rows = [
            (
                d["query_id"],
                ts,
                d.get("index"),
                d.get("client_id"),
                d.get("session_id"),
                d.get("user_query"),
                d.get("mode"),
                int(d.get("total_hits") or 0),
                d.get("model_version"),
                orjson.dumps(d),
            )
            for ts, d in docs
        ]
        conn = self._conn()
        with conn:
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT OR REPLACE INTO searches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
            )
        self._prune_if_due()
        return len(rows)

    def _prune_if_due(self) -> None:
        now = time.time()
        if self.retention_days is None or now - self._last_prune < PRUNE_EVERY_S:
            return
        self._last_prune = now
        self.prune(now - self.retention_days * 86_400)

    def prune(self, before: float) -> int:
        """Delete searches (and their events) older than `before` (epoch seconds)."""
        conn = self._conn()
        with conn:
            conn.execute("BEGIN")
            conn.execute(
                "DELETE FROM events WHERE query_id IN (SELECT query_id FROM searches WHERE ts < ?)",
                (before,),
            )
            return conn.execute("DELETE FROM searches WHERE ts < ?", (before,)).rowcount

    def forget(self, client_id: str, *, sessions: Iterable[str] = ()) -> int:
        """Delete every search and event of one pseudonymous user (and of their sessions)."""
        if not self.path.exists():
            return 0
        ids = [client_id, *sessions]
        marks = ",".join("?" * len(ids))
        conn = self._conn()
        with conn:
            conn.execute("BEGIN")
            conn.execute(f"DELETE FROM events WHERE client IN ({marks})", ids)
            return conn.execute(
                f"DELETE FROM searches WHERE client IN ({marks}) OR session IN ({marks})",
                ids + ids,
            ).rowcount

    def sync_events(self, log: EventLog, *, limit: int = 200_000) -> int:
        """Copy the event log's new events that name a query id; returns how many."""
        with self._sync_lock:
            conn = self._conn()
            row = conn.execute("SELECT value FROM state WHERE key = 'events_offset'").fetchone()
            after = row[0] if row else None
            rows = []
            last = after
            for offset, event in log.read(after, limit=limit):
                last = offset
                if event.type in JOINED_EVENTS and event.query_id:
                    rows.append(
                        (
                            offset,
                            event.query_id,
                            event.type,
                            event.product_id,
                            event.position,
                            event.timestamp,
                            event.quantity,
                            event.price,
                            event.user_id or event.session_id,
                        )
                    )
            if last == after:
                return 0
            with conn:
                # Another worker process may have copied past `after` meanwhile: the rows
                # are idempotent (keyed by offset), the offset only moves from where this
                # copy started, so it never goes back.
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(
                    "INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
                )
                now = conn.execute("SELECT value FROM state WHERE key = 'events_offset'")
                current = now.fetchone()
                if (current[0] if current else None) == after:
                    conn.execute(
                        "INSERT OR REPLACE INTO state VALUES ('events_offset', ?)", (last,)
                    )
            return len(rows)

    # -- reads -------------------------------------------------------------------------

    def count(self) -> int:
        return int(self._conn().execute("SELECT count(*) FROM searches").fetchone()[0])

    def recent(
        self,
        *,
        limit: int = 50,
        index: str | None = None,
        query: str | None = None,
        zero_results: bool | None = None,
    ) -> list[dict[str, Any]]:
        """The newest searches first, each with its joined `events` and `summary`."""
        where: list[str] = []
        args: list[Any] = []
        if index:
            where.append("idx = ?")
            args.append(index)
        if query:
            where.append("query LIKE ? ESCAPE '\\'")
            escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            args.append(f"%{escaped}%")
        if zero_results is not None:
            where.append("total_hits = 0" if zero_results else "total_hits > 0")
        sql = "SELECT doc FROM searches"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY ts DESC LIMIT ?"
        args.append(int(limit))
        docs = [orjson.loads(r[0]) for r in self._conn().execute(sql, args)]
        return self._join(docs)

    def get(self, query_id: str) -> dict[str, Any] | None:
        row = (
            self._conn()
            .execute("SELECT doc FROM searches WHERE query_id = ?", (query_id,))
            .fetchone()
        )
        return self._join([orjson.loads(row[0])])[0] if row else None

    def _join(self, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not docs:
            return docs
        ids = [d["query_id"] for d in docs]
        events: dict[str, list[dict[str, Any]]] = {}
        for chunk in _chunks(ids, 500):
            marks = ",".join("?" * len(chunk))
            for qid, etype, pid, pos, ts, qty, price in self._conn().execute(
                "SELECT query_id, type, product_id, position, ts, quantity, price FROM events "
                f"WHERE query_id IN ({marks}) ORDER BY ts",
                chunk,
            ):
                events.setdefault(qid, []).append(
                    {
                        "type": etype,
                        "product_id": pid,
                        "position": pos,
                        "timestamp": ts,
                        "quantity": qty,
                        "price": price,
                    }
                )
        for doc in docs:
            joined = events.get(doc["query_id"], [])
            before = {w["object_id"]: w["rank_before"] for w in doc.get("window", [])}
            after = {w["object_id"]: w["rank_after"] for w in doc.get("window", [])}
            for ev in joined:
                pid = ev["product_id"]
                ev["rank_before"] = before.get(pid)
                if ev["position"] is None:
                    ev["position"] = after.get(pid)
            doc["events"] = joined
            doc["summary"] = {t: sum(1 for e in joined if e["type"] == t) for t in JOINED_EVENTS}
        return docs


def _open(path: Path, attempts: int = 50) -> sqlite3.Connection:
    """A connection in WAL mode with the schema. Worker processes starting together race
    to create the database; switching the journal mode does not wait on the busy timeout,
    so a locked database is retried (a short sleep between tries)."""
    for attempt in range(attempts):
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
            return conn
        except sqlite3.OperationalError as exc:
            conn.close()
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.02 * (attempt + 1))
    raise AssertionError("unreachable")


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def search_log_store(settings: Settings) -> SearchLogStore:
    """The embedded search log of `settings` (`data_dir/searchlog`)."""
    return SearchLogStore(settings.data_dir / "searchlog", retention_days=settings.retention_days)
