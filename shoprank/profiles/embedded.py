"""The embedded profile store: one SQLite file (WAL) in `data_dir/profiles`, no server.

Each `apply` is one `BEGIN IMMEDIATE` transaction: it reads the watermark, folds the events
past it and writes profiles, statistics and the new watermark together, so a crash or a
repeated delivery never folds an event twice. Events the fold leaves out go to the
`quarantine` table in that same transaction (see `shoprank.profiles.quarantine`).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from shoprank.events.model import Event
from shoprank.events.protocol import offset_key
from shoprank.profiles import quarantine
from shoprank.profiles.cooccur import (
    BehaviourStats,
    check_kind,
    decay_factor,
    rescale,
    top,
)
from shoprank.profiles.folding import (
    FoldConfig,
    ProductLookup,
    Profile,
    fold_batch,
    smoothed_ctr,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS profiles (subject TEXT PRIMARY KEY, last REAL, data BLOB);
CREATE TABLE IF NOT EXISTS stats (product TEXT, field TEXT, n REAL, PRIMARY KEY (product, field));
CREATE TABLE IF NOT EXISTS qstats (
    query TEXT, product TEXT, field TEXT, n REAL, PRIMARY KEY (query, product, field));
CREATE TABLE IF NOT EXISTS queries (query_id TEXT PRIMARY KEY, query TEXT, t REAL);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT);
CREATE TABLE IF NOT EXISTS quarantine (
    offset TEXT PRIMARY KEY, subject TEXT, t REAL, data BLOB);
CREATE TABLE IF NOT EXISTS pairs (
    kind TEXT, a TEXT, b TEXT, n REAL, PRIMARY KEY (kind, a, b)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS item_sessions (
    kind TEXT, product TEXT, n REAL, PRIMARY KEY (kind, product)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS trending (product TEXT PRIMARY KEY, score REAL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS trending_score ON trending (score);
"""


class EmbeddedProfileStore:
    """`ProfileStore` in SQLite; safe for several processes (SQLite's own locking)."""

    name = "embedded"

    def __init__(
        self,
        path: Path,
        cfg: FoldConfig,
        *,
        prior_clicks: float = 1.0,
        prior_impressions: float = 20.0,
    ) -> None:
        self.path = path
        self.cfg = cfg
        self.prior = (prior_clicks, prior_impressions)
        self._local = threading.local()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
            self._local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def watermark(self) -> str | None:
        row = self._conn().execute("SELECT v FROM meta WHERE k = 'watermark'").fetchone()
        return str(row[0]) if row else None

    def apply(
        self, batch: Sequence[tuple[str, Event]], *, lookup: ProductLookup | None = None
    ) -> int:
        if not batch:
            return 0
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            mark = self.watermark()
            todo = [(o, e) for o, e in batch if mark is None or offset_key(o) > offset_key(mark)]
            if not todo:
                conn.execute("ROLLBACK")
                return 0
            events = [e for _, e in todo]
            subjects = sorted({e.subject for e in events})
            qids = sorted({e.query_id for e in events if e.query_id and e.type != "search"})
            epoch = conn.execute("SELECT v FROM meta WHERE k = 'trend_epoch'").fetchone()
            result = fold_batch(
                events,
                profiles=self._load(conn, subjects),
                queries=self._queries(conn, qids),
                lookup=lookup,
                cfg=self.cfg,
                trending_epoch=int(epoch[0]) if epoch else None,
            )
            self._write_behaviour(conn, result.behaviour)
            conn.executemany(
                "INSERT OR REPLACE INTO profiles VALUES (?, ?, ?)",
                [(s, p["last"], orjson.dumps(p)) for s, p in result.profiles.items()],
            )
            conn.executemany(
                "INSERT INTO stats VALUES (?, ?, ?) ON CONFLICT (product, field) "
                "DO UPDATE SET n = n + excluded.n",
                [(p, f, n) for (p, f), n in sorted(result.stats.items())],
            )
            conn.executemany(
                "INSERT INTO qstats VALUES (?, ?, ?, ?) ON CONFLICT (query, product, field) "
                "DO UPDATE SET n = n + excluded.n",
                [(q, p, f, n) for (q, p, f), n in sorted(result.query_stats.items())],
            )
            last_t = {e.query_id: e.timestamp for e in events if e.query_id}
            conn.executemany(
                "INSERT OR REPLACE INTO queries VALUES (?, ?, ?)",
                [(qid, q, last_t.get(qid, 0.0)) for qid, q in result.queries.items()],
            )
            left_out = quarantine.entries(todo, result.quarantined)
            conn.executemany(
                "INSERT OR REPLACE INTO quarantine VALUES (?, ?, ?, ?)",
                [(q["offset"], q["subject"], q["t"], quarantine.encode(q)) for q in left_out],
            )
            conn.execute(
                "INSERT OR REPLACE INTO meta VALUES ('watermark', ?)",
                (max((o for o, _ in todo), key=offset_key),),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        quarantine.QUARANTINED.inc(len(left_out))
        return int(result.applied)

    def _write_behaviour(self, conn: sqlite3.Connection, stats: BehaviourStats) -> None:
        if stats.shift:
            conn.execute("UPDATE trending SET score = score * ?", (rescale(stats.shift),))
        if stats.epoch is not None:
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('trend_epoch', ?)", (stats.epoch,))
        conn.executemany(
            "INSERT INTO trending VALUES (?, ?) ON CONFLICT (product) "
            "DO UPDATE SET score = score + excluded.score",
            sorted(stats.trending.items()),
        )
        conn.executemany(
            "INSERT INTO pairs VALUES (?, ?, ?, ?) ON CONFLICT (kind, a, b) "
            "DO UPDATE SET n = n + excluded.n",
            [(k, a, b, n) for (k, a, b), n in sorted(stats.pairs.items())],
        )
        self._prune(conn, sorted({(k, a) for k, a, _ in stats.pairs}))
        conn.executemany(
            "INSERT INTO item_sessions VALUES (?, ?, ?) ON CONFLICT (kind, product) "
            "DO UPDATE SET n = n + excluded.n",
            [(k, p, n) for (k, p), n in sorted(stats.item_sessions.items())],
        )
        for kind, n in sorted(stats.sessions.items()):
            key = f"sessions:{kind}"
            row = conn.execute("SELECT v FROM meta WHERE k = ?", (key,)).fetchone()
            conn.execute(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, float(row[0] if row else 0) + n)
            )

    def _prune(self, conn: sqlite3.Connection, touched: Sequence[tuple[str, str]]) -> None:
        """Keep each touched product's strongest `max_neighbours` (ties: the greater id
        stays, as Redis's ZREMRANGEBYRANK decides)."""
        cap = self.cfg.max_neighbours
        full: list[tuple[str, str]] = []
        for start in range(0, len(touched), 400):  # only the products past the cap
            part = touched[start : start + 400]
            full += conn.execute(
                "SELECT kind, a FROM pairs WHERE (kind, a) IN "
                f"(VALUES {','.join(['(?, ?)'] * len(part))}) "
                "GROUP BY kind, a HAVING COUNT(*) > ?",
                [x for pair in part for x in pair] + [cap],
            ).fetchall()
        for kind, a in full:
            conn.execute(
                "DELETE FROM pairs WHERE kind = ? AND a = ? AND b NOT IN (SELECT b FROM pairs "
                "WHERE kind = ? AND a = ? ORDER BY n DESC, b DESC LIMIT ?)",
                (kind, a, kind, a, cap),
            )

    # -- behaviour statistics (recommendations) -------------------------------------------

    def neighbours(
        self, ids: Sequence[str], *, kind: str, limit: int = 200
    ) -> dict[str, dict[str, float]]:
        kind = check_kind(kind)
        conn = self._conn()
        out: dict[str, dict[str, float]] = {}
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), 500):  # one query for up to 500 ids
            part = unique[start : start + 500]
            rows = conn.execute(
                "SELECT a, b, n FROM pairs WHERE kind = ? AND a IN "
                f"({','.join('?' * len(part))}) ORDER BY a, n DESC, b",
                [kind, *part],
            )
            for a, b, n in rows:
                found = out.setdefault(a, {})
                if len(found) < limit:
                    found[b] = float(n)
        return {pid: out[pid] for pid in unique if out.get(pid)}

    def cooccur_totals(self, *, kind: str) -> dict[str, float]:
        kind = check_kind(kind)
        row = self._conn().execute("SELECT v FROM meta WHERE k = ?", (f"sessions:{kind}",))
        found = row.fetchone()
        return {"sessions": float(found[0]) if found else 0.0}

    def item_sessions(self, ids: Sequence[str], *, kind: str) -> dict[str, float]:
        kind = check_kind(kind)
        conn = self._conn()
        out: dict[str, float] = {}
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), 500):
            part = unique[start : start + 500]
            rows = conn.execute(
                "SELECT product, n FROM item_sessions WHERE kind = ? AND product IN "
                f"({','.join('?' * len(part))})",
                [kind, *part],
            )
            out.update({p: float(n) for p, n in rows})
        return out

    def trending(self, *, now: float, limit: int = 200) -> list[tuple[str, float]]:
        conn = self._conn()
        epoch = conn.execute("SELECT v FROM meta WHERE k = 'trend_epoch'").fetchone()
        if epoch is None:
            return []
        factor = decay_factor(now, int(epoch[0]), self.cfg.trending_half_life_s)
        rows = conn.execute(
            "SELECT product, score FROM trending ORDER BY score DESC, product DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return top([(p, float(score) * factor) for p, score in rows], limit)

    def quarantined(self) -> list[dict[str, Any]]:
        rows = self._conn().execute("SELECT data FROM quarantine").fetchall()
        entries = [orjson.loads(data) for (data,) in rows]
        return sorted(entries, key=lambda q: offset_key(q["offset"]))

    @staticmethod
    def _load(conn: sqlite3.Connection, subjects: Sequence[str]) -> dict[str, Profile | None]:
        out: dict[str, Profile | None] = {}
        for start in range(0, len(subjects), 500):
            part = list(subjects[start : start + 500])
            rows = conn.execute(
                "SELECT subject, data FROM profiles WHERE subject IN "
                f"({','.join('?' * len(part))})",
                part,
            )
            out.update({s: orjson.loads(d) for s, d in rows})
        return out

    @staticmethod
    def _queries(conn: sqlite3.Connection, qids: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for start in range(0, len(qids), 500):
            part = list(qids[start : start + 500])
            rows = conn.execute(
                f"SELECT query_id, query FROM queries WHERE query_id IN "
                f"({','.join('?' * len(part))})",
                part,
            )
            out.update(dict(rows))
        return out

    def get(self, subject: str) -> Profile | None:
        return self.get_many([subject]).get(subject)

    def get_many(self, subjects: Sequence[str]) -> dict[str, Profile]:
        loaded = self._load(self._conn(), list(subjects))
        return {s: p for s, p in loaded.items() if p is not None}

    def product_stats(
        self, ids: Sequence[str], *, query: str | None = None
    ) -> dict[str, dict[str, float]]:
        from shoprank.profiles.folding import normalise_query

        conn = self._conn()
        out: dict[str, dict[str, float]] = {}
        for start in range(0, len(ids), 500):
            part = list(ids[start : start + 500])
            marks = ",".join("?" * len(part))
            if query is None:
                rows = conn.execute(
                    f"SELECT product, field, n FROM stats WHERE product IN ({marks})", part
                )
            else:
                rows = conn.execute(
                    "SELECT product, field, n FROM qstats WHERE query = ? "
                    f"AND product IN ({marks})",
                    [normalise_query(query), *part],
                )
            for product, name, n in rows:
                out.setdefault(product, {})[name] = n
        for counts in out.values():
            counts["ctr"] = smoothed_ctr(
                counts.get("clicks", 0.0),
                counts.get("impressions", 0.0),
                prior_clicks=self.prior[0],
                prior_n=self.prior[1],
            )
        return out

    def profiles(self) -> Iterator[tuple[str, Profile]]:
        rows = self._conn().execute("SELECT subject, data FROM profiles ORDER BY subject")
        for subject, data in rows.fetchall():
            yield subject, orjson.loads(data)

    def stats_snapshot(self) -> dict[str, Any]:
        conn = self._conn()
        return {
            "stats": sorted(conn.execute("SELECT product, field, n FROM stats").fetchall()),
            "qstats": sorted(
                conn.execute("SELECT query, product, field, n FROM qstats").fetchall()
            ),
        }

    def forget(self, subjects: Iterable[str]) -> int:
        conn = self._conn()
        wanted = list(subjects)
        with conn:
            gone = 0
            for subject in wanted:
                gone += conn.execute("DELETE FROM profiles WHERE subject = ?", (subject,)).rowcount
                conn.execute("DELETE FROM quarantine WHERE subject = ?", (subject,))
        return gone

    def enforce_retention(self, now: float, *, retention_s: float) -> int:
        conn = self._conn()
        cutoff = now - retention_s
        with conn:
            gone = conn.execute("DELETE FROM profiles WHERE last < ?", (cutoff,)).rowcount
            conn.execute("DELETE FROM queries WHERE t < ?", (cutoff,))
            conn.execute("DELETE FROM quarantine WHERE t < ?", (cutoff,))
        return gone

    def clear(self) -> None:
        conn = self._conn()
        with conn:
            for table in (
                "profiles",
                "stats",
                "qstats",
                "queries",
                "meta",
                "quarantine",
                "pairs",
                "item_sessions",
                "trending",
            ):
                conn.execute(f"DELETE FROM {table}")
