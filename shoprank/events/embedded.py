"""The embedded event log: append-only JSONL segments in `data_dir/events`, no server.

    events/segments/000000000000.jsonl   one event per line: {"o": offset, ...record}
    events/head                          next offset + size of the last segment (committed)
    events/acked                         highest folded offset (the consumer position)
    events/ids.sqlite                    idempotency index: client event_id → user, time;
                                         batch records: batch hash → time, offsets

Appends hold an exclusive `fcntl` lock on `events/.lock` (safe across processes), fsync the
segment, then index the event ids and the batch's hash (one SQLite transaction) and move
`head`. A crash between the two is repaired by the next append (lines past `head` are
re-indexed, the batch hash too: a batch's first line carries it; a torn last line is cut),
so an acknowledged event is never lost and a retried one is never stored twice.

A batch identical to one stored within the dedupe window (`shoprank.events.batches`: same
events, same timestamps, by hash) is answered as duplicates and not stored again, so a
client's retry after a lost response never doubles events without `event_id`. The window
is measured on `clock` (injectable), and records past it are pruned as appends go.

A write that fails (a full disk, most often) is undone before the error is raised: the
segment is cut back to its size before the append and the ids are rolled back, so nothing
is stored that was not acknowledged. A full disk raises `InsufficientStorageError` (507).
Once the segment and the ids are durable the events are stored: a failure to move `head`
after that is left to the next append's repair, and the append still succeeds.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from shoprank.errors import InsufficientStorageError, is_disk_full
from shoprank.events import batches
from shoprank.events.batches import DEFAULT_DEDUPE_WINDOW_S, batch_key
from shoprank.events.model import Event
from shoprank.events.protocol import AppendResult, ForgetResult, offset_key

SEGMENT_BYTES = 64 * 1024 * 1024
log = logging.getLogger("shoprank.events")


def disk_full() -> InsufficientStorageError:
    """The 507 for a full disk; it names the disk, never a path."""
    return InsufficientStorageError(
        "no space left on the disk of the data directory (SHOPRANK_DATA_DIR): the events "
        "were not stored; free disk space, then send them again"
    )


def _offset(n: int) -> str:
    return f"{n}-0"


CHUNK = 4096


def _next_line(fd: int, pos: int, size: int) -> int:
    """The start of the first line after byte `pos` (past its newline), 0 when none."""
    while pos < size:
        chunk = os.pread(fd, CHUNK, pos)
        if not chunk:
            break
        at = chunk.find(b"\n")
        if at >= 0:
            return pos + at + 1
        pos += len(chunk)
    return 0


def line_offset(fd: int, pos: int) -> int:
    """The event offset of the line that starts at byte `pos` of a segment: read from the
    `{"o":N,` prefix every line is written with (the whole line parsed otherwise)."""
    head = os.pread(fd, 32, pos)
    if head.startswith(b'{"o":'):
        digits = head[5:].split(b",", 1)[0].split(b"}", 1)[0]
        if digits.isdigit():
            return int(digits)
    line = b""
    while not line.endswith(b"\n"):
        chunk = os.pread(fd, CHUNK, pos + len(line))
        if not chunk:
            break
        at = chunk.find(b"\n")
        line += chunk if at < 0 else chunk[: at + 1]
    return int(orjson.loads(line)["o"])


def first_line_at(fd: int, start: int) -> int:
    """Byte position of the first line of a segment whose offset is `start` or more (the
    size when there is none). Offsets only grow along a segment, so this is a binary search
    over line starts: a fold reading the newest events reads a few KB to find them, never
    the whole segment before them."""
    size = os.fstat(fd).st_size
    if size == 0 or line_offset(fd, 0) >= start:
        return 0
    lo, hi = 0, size  # lo: a line start before `start`; hi: one at/after it (or the end)
    while True:
        s = _next_line(fd, (lo + hi) // 2, hi)
        if s == 0 or s >= hi:  # no line starts in (mid, hi): try the one after lo
            s = _next_line(fd, lo, hi)
            if s == 0 or s >= hi:
                return hi
        try:
            before = line_offset(fd, s) < start
        except orjson.JSONDecodeError:  # a line being written right now ends the segment
            return s
        if before:
            lo = s
        else:
            hi = s


class EmbeddedEventLog:
    """`EventLog` on local files; several processes may append and read at once."""

    name = "embedded"

    def __init__(
        self,
        root: Path,
        *,
        segment_bytes: int = SEGMENT_BYTES,
        dedupe_window_s: float = DEFAULT_DEDUPE_WINDOW_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = root
        self.segments = root / "segments"
        self.segment_bytes = segment_bytes
        self.window = max(1.0, float(dedupe_window_s))
        self.clock = clock

    # -- locking and bookkeeping -------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.segments.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _ids(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.root / "ids.sqlite", timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS ids (event_id TEXT PRIMARY KEY, user TEXT, t REAL)"
        )
        conn.execute("CREATE INDEX IF NOT EXISTS ids_user ON ids (user)")
        batches.create_table(conn)
        return conn

    def _head(self) -> tuple[int, int]:
        try:
            nxt, size = (self.root / "head").read_text().split()
            return int(nxt), int(size)
        except (FileNotFoundError, ValueError):
            return 0, 0

    def _write_small(self, name: str, text: str) -> None:
        tmp = self.root / f".{name}.tmp"
        tmp.write_text(text)
        os.replace(tmp, self.root / name)

    def _segment_files(self) -> list[Path]:
        return sorted(self.segments.glob("*.jsonl"))

    def _recover(self, conn: sqlite3.Connection) -> int:
        """Make `head` agree with the last segment; returns the next offset."""
        nxt, size = self._head()
        files = self._segment_files()
        if not files:
            return nxt
        last = files[-1]
        actual = last.stat().st_size
        if actual == size:
            return nxt
        data = last.read_bytes()
        cut = data.rfind(b"\n") + 1
        if cut != len(data):  # a torn line from a crashed append: it was never acknowledged
            with open(last, "r+b") as fh:
                fh.truncate(cut)
        for line in data[:cut].splitlines():
            record = orjson.loads(line)
            if record["o"] >= nxt:
                if record.get("idempotent"):
                    conn.execute(
                        "INSERT OR IGNORE INTO ids VALUES (?, ?, ?)",
                        (record["event_id"], record.get("user_id"), record["timestamp"]),
                    )
                if "b" in record:  # the first line of a batch: its hash and size
                    first = record["o"]
                    batches.remember(
                        conn,
                        record["b"],
                        at=self.clock(),
                        first=first,
                        last=first + record["bn"] - 1,
                    )
                nxt = record["o"] + 1
        conn.commit()
        self._write_small("head", f"{nxt} {cut}")
        return nxt

    # -- EventLog ----------------------------------------------------------------------

    def append(self, events: Sequence[Event], *, keep_generated_ids: bool = False) -> AppendResult:
        try:
            return self._append(events, keep_generated_ids=keep_generated_ids)
        except (OSError, sqlite3.Error) as exc:
            if is_disk_full(exc):
                raise disk_full() from None
            raise

    def _append(self, events: Sequence[Event], *, keep_generated_ids: bool) -> AppendResult:
        result = AppendResult()
        if not events:
            return result
        key = batch_key(events)
        with self._locked():
            conn = self._ids()
            try:
                nxt = self._recover(conn)
                now = self.clock()
                if batches.seen(conn, key, since=now - self.window):
                    result.duplicates = list(range(len(events)))
                    return result
                keyed = [e.idempotent or keep_generated_ids for e in events]
                wanted = [e.event_id for e, k in zip(events, keyed, strict=True) if k]
                seen: set[str] = set()
                for start in range(0, len(wanted), 500):
                    part = wanted[start : start + 500]
                    rows = conn.execute(
                        f"SELECT event_id FROM ids WHERE event_id IN ({','.join('?' * len(part))})",
                        part,
                    )
                    seen.update(r[0] for r in rows)
                records: list[dict[str, Any]] = []
                new_ids: list[tuple[str, str | None, float]] = []
                for position, event in enumerate(events):
                    if keyed[position]:
                        if event.event_id in seen:
                            result.duplicates.append(position)
                            continue
                        seen.add(event.event_id)
                        new_ids.append((event.event_id, event.user_id, event.timestamp))
                    records.append({"o": nxt, **event.to_record()})
                    result.offsets.append(_offset(nxt))
                    nxt += 1
                if records:
                    first = nxt - len(records)
                    records[0] = {**records[0], "b": key, "bn": len(records)}
                    lines = [orjson.dumps(record) + b"\n" for record in records]
                    target = self._target(first=first)
                    before = target.stat().st_size if target.exists() else None
                    try:
                        size = self._write_lines(target, b"".join(lines))
                        conn.executemany("INSERT OR IGNORE INTO ids VALUES (?, ?, ?)", new_ids)
                        batches.prune(conn, before=now - self.window)
                        batches.remember(conn, key, at=now, first=first, last=nxt - 1)
                        conn.commit()
                    except BaseException:
                        self._undo(target, before)
                        with contextlib.suppress(sqlite3.Error):  # nothing was committed
                            conn.rollback()
                        raise
                    try:
                        self._write_small("head", f"{nxt} {size}")
                    except OSError:  # stored: the next append's `_recover` moves head
                        log.warning("event log head not moved; the next append repairs it")
            finally:
                conn.close()
        return result

    def _target(self, *, first: int) -> Path:
        """The segment the next lines go to (a new one once the last is full)."""
        files = self._segment_files()
        if not files or files[-1].stat().st_size >= self.segment_bytes:
            return self.segments / f"{first:012d}.jsonl"
        return files[-1]

    def _write_lines(self, target: Path, data: bytes) -> int:
        with open(target, "ab") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
            return fh.tell()

    @staticmethod
    def _undo(target: Path, before: int | None) -> None:
        """Cut `target` back to its size `before` an append that failed (remove it if the
        append created it), so no partly written line stays in the log."""
        try:
            if before is None:
                target.unlink(missing_ok=True)
                return
            with open(target, "r+b") as fh:
                fh.truncate(before)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError:  # the next append's `_recover` still cuts a torn last line
            log.exception("could not undo a failed append to the event log")

    def read(
        self, after: str | None = None, *, limit: int | None = None
    ) -> Iterator[tuple[str, Event]]:
        start = offset_key(after)[0] + 1 if after else 0
        head, _ = self._head()
        files = self._segment_files() if self.segments.exists() else []
        produced = 0
        for i, path in enumerate(files):
            if i + 1 < len(files) and int(files[i + 1].stem) <= start:
                continue
            try:
                fh = open(path, "rb")  # noqa: SIM115 - held while the caller iterates
            except FileNotFoundError:
                continue
            with fh:
                if start:
                    fh.seek(first_line_at(fh.fileno(), start))
                for line in fh:
                    try:
                        record = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        break  # a line being written right now
                    n = record.pop("o")
                    record.pop("b", None)
                    record.pop("bn", None)
                    if n < start:
                        continue
                    if n >= head:
                        return
                    yield _offset(n), Event.from_record(record)
                    produced += 1
                    if limit is not None and produced >= limit:
                        return

    def consume(self, consumer: str, *, count: int = 1000) -> list[tuple[str, Event]]:
        return list(self.read(self._acked(), limit=count))

    def _acked(self) -> str | None:
        try:
            return (self.root / "acked").read_text().strip() or None
        except FileNotFoundError:
            return None

    def ack(self, offsets: Sequence[str]) -> None:
        if not offsets:
            return
        with self._locked():
            best = max(offsets, key=offset_key)
            current = self._acked()
            if current is None or offset_key(best) > offset_key(current):
                self._write_small("acked", best)

    def count(self) -> int:
        return sum(1 for _ in self.read())

    # -- erasure -----------------------------------------------------------------------

    def _rewrite(
        self, drop: dict[str, set[str]] | None, cutoff: float | None
    ) -> tuple[ForgetResult, list[int]]:
        """Rewrite the segments without the events of `drop` users/sessions or before cutoff;
        returns what went and the offsets it had."""
        result = ForgetResult()
        erased: list[int] = []
        users = drop["users"] if drop else set()
        sessions = drop["sessions"] if drop else set()
        if drop:  # anonymous events of the user's sessions are theirs too
            for _, event in self.read():
                if event.user_id in users and event.session_id:
                    sessions.add(event.session_id)
        for path in self._segment_files():
            kept: list[bytes] = []
            removed = 0
            for line in path.read_bytes().splitlines():
                record = orjson.loads(line)
                gone = record.get("user_id") in users or (
                    record.get("session_id") in sessions and record.get("user_id") in users | {None}
                )
                if cutoff is not None and record["timestamp"] < cutoff:
                    gone = True
                if gone:
                    removed += 1
                    erased.append(record["o"])
                else:
                    kept.append(line + b"\n")
            if removed:
                result.events += removed
                tmp = path.with_suffix(".tmp")
                with open(tmp, "wb") as fh:
                    fh.write(b"".join(kept))
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
        result.sessions = sessions
        files = self._segment_files()
        nxt, _ = self._head()
        if files:
            self._write_small("head", f"{nxt} {files[-1].stat().st_size}")
        return result, erased

    def forget(self, user: str) -> ForgetResult:
        with self._locked():
            conn = self._ids()
            try:
                self._recover(conn)
                result, erased = self._rewrite({"users": {user}, "sessions": set()}, None)
                conn.execute("DELETE FROM ids WHERE user = ?", (user,))
                batches.forget_offsets(conn, erased)
                conn.commit()
            finally:
                conn.close()
        return result

    def enforce_retention(self, now: float, *, retention_s: float) -> int:
        cutoff = now - retention_s
        with self._locked():
            conn = self._ids()
            try:
                self._recover(conn)
                result, _ = self._rewrite(None, cutoff)
                conn.execute("DELETE FROM ids WHERE t < ?", (cutoff,))
                batches.prune(conn, before=self.clock() - self.window)
                conn.commit()
            finally:
                conn.close()
        return result.events

    def clear(self) -> None:
        with self._locked():
            for path in self._segment_files():
                path.unlink()
            for name in ("head", "acked", "ids.sqlite", "ids.sqlite-wal", "ids.sqlite-shm"):
                (self.root / name).unlink(missing_ok=True)
