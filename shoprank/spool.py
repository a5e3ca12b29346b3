"""A local spool for behaviour events while Redis is down, replayed when it is back.

With `SHOPRANK_EVENT_SPOOL_DIR` set, an ingest that cannot reach the event log writes the
accepted (already pseudonymised) events to one fsynced JSONL file per batch and answers
200 with `spooled`. A background thread replays the files in order into the log and deletes
each once it is appended. Every spooled event carries an idempotency id, so a replay that is
interrupted and repeated applies nothing twice.

A line is the event's record with `"idempotent": true`, plus `"generated_id": true` when
shoprank generated its `event_id` (the client sent none). The replay gives such an event
back its generated-id status, so the replayed batch hashes like the request it came from
(`shoprank.events.batches`): when that request was in fact stored before its reply was
lost, the replay is answered as duplicates instead of storing the events again. Files
written before `generated_id` existed read as before (every id a client id).
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

import orjson

from shoprank.errors import BackendUnavailableError
from shoprank.events.model import Event
from shoprank.events.privacy import pseudonymise

log = logging.getLogger("shoprank.spool")
_seq = itertools.count()
_replayers: dict[str, threading.Thread] = {}
_replayers_lock = threading.Lock()
GENERATED: Final = "generated_id"


def encode(event: Event) -> bytes:
    """One spool line: every event idempotent, a generated id marked as one."""
    record = event.to_record()
    if not event.idempotent:
        record["idempotent"] = True
        record[GENERATED] = True
    return orjson.dumps(record) + b"\n"


def decode(line: bytes) -> Event:
    """The event of a spool line, its `idempotent` flag as the client's request had it."""
    record = orjson.loads(line)
    generated = record.pop(GENERATED, False) is True
    event = Event.from_record(record)
    return replace(event, idempotent=False) if generated else event


class EventSpool:
    """Batches of events in `directory`, one file each (`<ns>-<pid>-<seq>-<count>.jsonl`)."""

    def __init__(self, directory: Path, *, max_bytes: int = 1024**3) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._lock = threading.Lock()

    def files(self) -> list[Path]:
        try:
            return sorted(self.directory.glob("*.jsonl"))
        except FileNotFoundError:
            return []

    def depth(self) -> int:
        """Events waiting to be replayed."""
        total = 0
        for path in self.files():
            try:
                total += int(path.stem.rsplit("-", 1)[1])
            except (IndexError, ValueError):
                continue
        return total

    def size_bytes(self) -> int:
        total = 0
        for path in self.files():
            try:
                total += path.stat().st_size
            except FileNotFoundError:
                continue
        return total

    def put(self, events: Sequence[Event]) -> int:
        """Keep `events` durably (fsynced); returns how many were spooled."""
        if not events:
            return 0
        payload = b"".join(encode(e) for e in events)
        with self._lock:
            if self.size_bytes() + len(payload) > self.max_bytes:
                raise BackendUnavailableError(
                    "the event log is unavailable and the local event spool is full "
                    "(SHOPRANK_EVENT_SPOOL_MAX_BYTES); retry later"
                )
            self.directory.mkdir(parents=True, exist_ok=True)
            name = f"{time.time_ns():020d}-{os.getpid()}-{next(_seq):06d}-{len(events)}"
            tmp = self.directory / f".{name}.tmp"
            with open(tmp, "wb") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.directory / f"{name}.jsonl")
            fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return len(events)

    def replay(self, service: Any) -> int:
        """Append every spooled batch to `service`'s log (oldest first), deleting each once
        appended; stops at the first failure (the rest waits for the next try)."""
        done = 0
        for path in self.files():
            try:
                lines = path.read_bytes().splitlines()
            except FileNotFoundError:
                continue  # another replayer took it
            events = [decode(line) for line in lines if line.strip()]
            # Generated ids become idempotency keys too (a repeated replay stores nothing),
            # without changing the batch's hash.
            service.log.append(events, keep_generated_ids=True)
            if service.settings.redis_url:
                service.trigger()
            path.unlink(missing_ok=True)
            done += len(events)
        return done


def prepare(service: Any, events: Sequence[Event], *, now: float) -> tuple[list[Event], int]:
    """What `EventService.ingest` would append: in retention and pseudonymised, with the
    `idempotent` flag kept as parsed (so the batch hashes the same), for `EventSpool.put`.
    Returns (events, too_old)."""
    cutoff = now - service.settings.retention_days * 86_400
    out: list[Event] = []
    too_old = 0
    for event in events:
        if event.timestamp < cutoff:
            too_old += 1
            continue
        out.append(
            replace(
                event,
                user_id=pseudonymise(event.user_id, service.secret) if event.user_id else None,
                session_id=(
                    pseudonymise(event.session_id, service.secret) if event.session_id else None
                ),
            )
        )
    return out, too_old


def start_replayer(spool: EventSpool, service: Any, *, interval_s: float = 1.0) -> None:
    """One daemon thread per spool directory and process, replaying while files remain."""
    key = str(spool.directory.resolve())
    with _replayers_lock:
        thread = _replayers.get(key)
        if thread is not None and thread.is_alive():
            return

        def loop() -> None:
            while True:
                if not spool.files():
                    with _replayers_lock:
                        if not spool.files():
                            _replayers.pop(key, None)
                            return
                try:
                    replayed = spool.replay(service)
                    if replayed:
                        log.info("replayed %d spooled events", replayed)
                except Exception as exc:  # noqa: BLE001 - still down: try again shortly
                    log.debug("spool replay failed: %s", type(exc).__name__)
                time.sleep(interval_s)

        thread = threading.Thread(target=loop, name="event-spool-replay", daemon=True)
        _replayers[key] = thread
        thread.start()
