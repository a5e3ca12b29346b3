"""The production event log: a Redis Stream read by a consumer group.

Appends run one Lua script per batch: for each event, `SET shoprank:evid:<id> NX EX` (the
idempotency key, kept for the retention period) and, only if that succeeded, `XADD` — both
or neither, so a retried batch is never stored twice. Folders read with `XREADGROUP`,
reclaim what a dead consumer left with `XAUTOCLAIM`, and `XACK` after folding.
Durability is Redis's: run it with `appendonly yes` in production.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import orjson

from shoprank.events.model import Event
from shoprank.events.protocol import AppendResult, ForgetResult

PREFIX = "shoprank:"
STREAM = PREFIX + "events"
GROUP = "folders"
_APPEND = """
local out = {}
local n = (#ARGV - 1) / 2
for i = 1, n do
  local id = ARGV[2 * i]
  local ok = true
  if id ~= '' then
    ok = redis.call('SET', KEYS[2] .. id, '1', 'NX', 'EX', ARGV[1])
  end
  if ok then
    out[i] = redis.call('XADD', KEYS[1], '*', 'e', ARGV[2 * i + 1])
  else
    out[i] = ''
  end
end
return out
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisEventLog:
    """`EventLog` on a Redis Stream (`shoprank:events`)."""

    name = "redis"

    def __init__(self, client: Any, *, idempotency_ttl_s: int = 365 * 86_400) -> None:
        self.client = client
        self.ttl = max(1, int(idempotency_ttl_s))
        self._script = client.register_script(_APPEND)
        self._group_ready = False

    def append(self, events: Sequence[Event]) -> AppendResult:
        result = AppendResult()
        if not events:
            return result
        args: list[Any] = [self.ttl]
        for event in events:
            args += [event.event_id if event.idempotent else "", orjson.dumps(event.to_record())]
        ids = self._script(keys=[STREAM, PREFIX + "evid:"], args=args)
        for position, stream_id in enumerate(ids):
            if stream_id:
                result.offsets.append(_text(stream_id))
            else:
                result.duplicates.append(position)
        return result

    def _entries(self, raw: Any) -> list[tuple[str, Event | None]]:
        out: list[tuple[str, Event | None]] = []
        for stream_id, fields in raw:
            payload = fields.get(b"e") if fields else None
            out.append(
                (_text(stream_id), Event.from_record(orjson.loads(payload)) if payload else None)
            )
        return out

    def read(
        self, after: str | None = None, *, limit: int | None = None
    ) -> Iterator[tuple[str, Event]]:
        start = f"({after}" if after else "-"
        produced = 0
        while True:
            chunk = self.client.xrange(STREAM, start, "+", count=1000)
            if not chunk:
                return
            for offset, event in self._entries(chunk):
                if event is not None:
                    yield offset, event
                    produced += 1
                    if limit is not None and produced >= limit:
                        return
            start = f"({_text(chunk[-1][0])}"

    def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            self.client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        except Exception as exc:  # noqa: BLE001 - redis.ResponseError BUSYGROUP: exists
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    def consume(self, consumer: str, *, count: int = 1000) -> list[tuple[str, Event]]:
        """Pending entries first (claimed from any consumer: the caller holds the fold lock),
        then new ones; entries erased by `forget` are acknowledged and skipped."""
        self._ensure_group()
        cursor = "0-0"
        while True:
            reply = self.client.xautoclaim(
                STREAM, GROUP, consumer, min_idle_time=0, start_id=cursor, count=count
            )
            cursor = _text(reply[0])
            if cursor == "0-0":
                break
        for stream_id in ("0", ">"):
            raw = self.client.xreadgroup(GROUP, consumer, {STREAM: stream_id}, count=count)
            entries = self._entries(raw[0][1]) if raw else []
            gone = [o for o, e in entries if e is None]
            if gone:
                self.client.xack(STREAM, GROUP, *gone)
            live = [(o, e) for o, e in entries if e is not None]
            if live:
                return live
            if entries:  # only erased ones: look again
                return self.consume(consumer, count=count)
        return []

    def ack(self, offsets: Sequence[str]) -> None:
        if offsets:
            self.client.xack(STREAM, GROUP, *offsets)

    def pending(self) -> int:
        self._ensure_group()
        info = self.client.xpending(STREAM, GROUP)
        return int(info["pending"])

    def count(self) -> int:
        return int(self.client.xlen(STREAM))

    def _delete(self, offsets: list[str], event_ids: list[str]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for start in range(0, len(offsets), 1000):
            pipe.xdel(STREAM, *offsets[start : start + 1000])
            pipe.xack(STREAM, GROUP, *offsets[start : start + 1000])
        for start in range(0, len(event_ids), 1000):
            pipe.delete(*[PREFIX + "evid:" + i for i in event_ids[start : start + 1000]])
        pipe.execute()

    def forget(self, user: str) -> ForgetResult:
        result = ForgetResult()
        for _, event in self.read():
            if event.user_id == user and event.session_id:
                result.sessions.add(event.session_id)
        offsets: list[str] = []
        event_ids: list[str] = []
        for offset, event in self.read():
            mine = event.user_id == user or (
                event.user_id is None and event.session_id in result.sessions
            )
            if mine:
                offsets.append(offset)
                if event.idempotent:
                    event_ids.append(event.event_id)
        self._ensure_group()
        if offsets:
            self._delete(offsets, event_ids)
        result.events = len(offsets)
        return result

    def enforce_retention(self, now: float, *, retention_s: float) -> int:
        cutoff = now - retention_s
        offsets: list[str] = []
        event_ids: list[str] = []
        for offset, event in self.read():
            if event.timestamp < cutoff:
                offsets.append(offset)
                if event.idempotent:
                    event_ids.append(event.event_id)
        self._ensure_group()
        if offsets:
            self._delete(offsets, event_ids)
        return len(offsets)

    def clear(self) -> None:
        keys = list(self.client.scan_iter(match=PREFIX + "evid:*", count=1000))
        for start in range(0, len(keys), 1000):
            self.client.delete(*keys[start : start + 1000])
        self.client.delete(STREAM)
        self._group_ready = False
