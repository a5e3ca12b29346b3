"""Content-hash embedding cache: a product whose embedded content did not change is not
embedded again. Keys are (encoder model id, sha256 of the exact content embedded).

`SqliteEmbeddingCache` lives in the data directory (the embedded default, safe across
worker processes); `RedisEmbeddingCache` is the production store.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float32]
OPEN_ATTEMPTS = 50


def content_hash(content: str | bytes) -> str:
    data = content.encode("utf-8") if isinstance(content, str) else content
    return hashlib.sha256(data).hexdigest()


class EmbeddingCache(Protocol):
    def get_many(self, model_id: str, hashes: list[str]) -> dict[str, Vector]:
        """The cached vectors of those hashes that are present."""
        ...

    def put_many(self, model_id: str, items: Iterable[tuple[str, Vector]]) -> None: ...

    def count(self, model_id: str | None = None) -> int: ...


class SqliteEmbeddingCache:
    """One SQLite file (WAL mode) shared by every process on the machine."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = self._open()
            self._local.conn = conn
        return conn

    def _open(self) -> sqlite3.Connection:
        """A connection with the table in place. Processes opening a new file at the same
        moment race to switch it to WAL, and SQLite answers the losers "database is
        locked" at once, without waiting its busy timeout: they try again."""
        for attempt in range(OPEN_ATTEMPTS):
            conn = sqlite3.connect(self.path, timeout=30)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS embeddings ("
                    " model TEXT NOT NULL, hash TEXT NOT NULL, vector BLOB NOT NULL,"
                    " PRIMARY KEY (model, hash)) WITHOUT ROWID"
                )
                return conn
            except sqlite3.OperationalError as exc:
                conn.close()
                if "locked" not in str(exc) or attempt + 1 == OPEN_ATTEMPTS:
                    raise
                time.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    def get_many(self, model_id: str, hashes: list[str]) -> dict[str, Vector]:
        out: dict[str, Vector] = {}
        conn = self._conn()
        for start in range(0, len(hashes), 500):
            part = hashes[start : start + 500]
            marks = ",".join("?" * len(part))
            rows = conn.execute(
                f"SELECT hash, vector FROM embeddings WHERE model = ? AND hash IN ({marks})",
                [model_id, *part],
            ).fetchall()
            for h, blob in rows:
                out[h] = np.frombuffer(blob, dtype=np.float32).copy()
        return out

    def put_many(self, model_id: str, items: Iterable[tuple[str, Vector]]) -> None:
        rows = [(model_id, h, np.asarray(v, dtype=np.float32).tobytes()) for h, v in items]
        if not rows:
            return
        conn = self._conn()
        with conn:
            conn.executemany(
                "INSERT OR REPLACE INTO embeddings (model, hash, vector) VALUES (?, ?, ?)", rows
            )

    def count(self, model_id: str | None = None) -> int:
        conn = self._conn()
        if model_id is None:
            return int(conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0])
        query = "SELECT COUNT(*) FROM embeddings WHERE model = ?"
        return int(conn.execute(query, (model_id,)).fetchone()[0])


class RedisEmbeddingCache:
    """One Redis hash per model: field = content hash, value = float32 bytes."""

    def __init__(self, client: Any, *, prefix: str = "shoprank:emb:") -> None:
        self.client = client
        self.prefix = prefix

    def get_many(self, model_id: str, hashes: list[str]) -> dict[str, Vector]:
        if not hashes:
            return {}
        values = self.client.hmget(self.prefix + model_id, hashes)
        return {
            h: np.frombuffer(v, dtype=np.float32).copy()
            for h, v in zip(hashes, values, strict=True)
            if v is not None
        }

    def put_many(self, model_id: str, items: Iterable[tuple[str, Vector]]) -> None:
        mapping = {h: np.asarray(v, dtype=np.float32).tobytes() for h, v in items}
        if mapping:
            self.client.hset(self.prefix + model_id, mapping=mapping)

    def count(self, model_id: str | None = None) -> int:
        if model_id is not None:
            return int(self.client.hlen(self.prefix + model_id))
        return sum(int(self.client.hlen(k)) for k in self.client.scan_iter(self.prefix + "*"))


def encode_with_cache(
    encoder: Any,
    texts: list[str],
    cache: EmbeddingCache | None,
    *,
    key_suffix: str = "",
) -> tuple[Vector, int]:
    """Embed `texts`, reusing cached vectors; returns (matrix, how many were embedded)."""
    if cache is None:
        return np.asarray(encoder.encode(texts), dtype=np.float32), len(texts)
    model_key = f"{encoder.model_id}{key_suffix}"
    hashes = [content_hash(t) for t in texts]
    found = cache.get_many(model_key, list(dict.fromkeys(hashes)))
    missing = [i for i, h in enumerate(hashes) if h not in found]
    if missing:
        fresh = np.asarray(encoder.encode([texts[i] for i in missing]), dtype=np.float32)
        new = {hashes[i]: fresh[row] for row, i in enumerate(missing)}
        cache.put_many(model_key, new.items())
        found.update(new)
    matrix = np.vstack([found[h] for h in hashes]) if texts else np.empty((0, encoder.dims))
    return matrix.astype(np.float32), len({hashes[i] for i in missing})
