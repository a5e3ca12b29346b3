"""The production event log: a Redis Stream read by a consumer group.

A batch is appended by one Lua script, all or nothing. Redis rolls nothing back, so the
script does every check before its first write (a full `maxmemory` refuses a script only
at its first write, never half-way): it skips events whose client `event_id` is already
kept (`shoprank:evid:<id>`, for the retention period), `XADD`s the rest, and records the
batch under a key derived from its content (`shoprank:batch:<hash>`, kept for
`SHOPRANK_EVENT_DEDUPE_WINDOW_S`) with the offsets it got. A batch whose key is already
there is not appended again: a resend of the same attempt (a client with retries, a proxy
in between) gets its own offsets back, and an identical batch sent again by a client (same
events, same timestamps) is answered as duplicates, so retries never store an event twice,
with or without `event_id` (the hash is `shoprank.events.batches.batch_key`, shared with
the embedded log). Events without a timestamp get the server's time, so only their
`event_id` can make a client's retry of them recognisable. `forget` deletes the records of
the batches that held the user's events with them.

When the script's answer is lost, `append` settles the outcome before it answers: a second
script either finds the batch (stored: the append succeeds) or fences the attempt
(`shoprank:fence:<token>`), so a copy of the command still on its way finds the fence and
stores nothing, and the error raised means nothing was stored. If Redis cannot be reached
to settle, the error is raised as it came; a retry of the same batch is recognised.
Folders read with `XREADGROUP`, reclaim what a dead consumer left with `XAUTOCLAIM`, and
`XACK` after folding. Durability is Redis's: run it with `appendonly yes` in production.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator, Sequence
from typing import Any

import orjson

from shoprank.events.batches import DEFAULT_DEDUPE_WINDOW_S, batch_key
from shoprank.events.model import Event
from shoprank.events.protocol import AppendResult, ForgetResult

__all__ = ["DEFAULT_DEDUPE_WINDOW_S", "RedisEventLog", "batch_key"]

PREFIX = "shoprank:"
STREAM = PREFIX + "events"
GROUP = "folders"
EVID = PREFIX + "evid:"
BATCH = PREFIX + "batch:"
FENCE = PREFIX + "fence:"
log = logging.getLogger("shoprank.events")

# KEYS: stream, event-id key prefix, batch key, fence key.
# ARGV: event-id ttl, batch ttl, attempt token, then (event_id or '', record) per event.
# Returns "<token of the attempt that stored the batch>|<offset or '' per event>", or nil
# when this attempt was fenced (given up by `append`; nothing is written).
_APPEND = """
if redis.call('EXISTS', KEYS[4]) == 1 then return false end
local done = redis.call('GET', KEYS[3])
if done then return done end
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'none' and kind ~= 'stream' then
  return redis.error_reply('WRONGTYPE ' .. KEYS[1] .. ' holds a ' .. kind .. ', not a stream')
end
local n = (#ARGV - 3) / 2
local fresh, taken = {}, {}
for i = 1, n do
  local id = ARGV[2 * i + 2]
  fresh[i] = id == '' or (not taken[id] and redis.call('EXISTS', KEYS[2] .. id) == 0)
  if id ~= '' then taken[id] = true end
end
local out = {}
for i = 1, n do
  out[i] = ''
  if fresh[i] then
    local id = ARGV[2 * i + 2]
    if id ~= '' then redis.call('SET', KEYS[2] .. id, '1', 'EX', ARGV[1]) end
    out[i] = redis.call('XADD', KEYS[1], '*', 'e', ARGV[2 * i + 3])
  end
end
done = ARGV[3] .. '|' .. table.concat(out, ',')
redis.call('SET', KEYS[3], done, 'EX', ARGV[2])
return done
"""
# KEYS: batch key, fence key. ARGV: fence ttl. The batch's record if it was stored, else
# nil after fencing the attempt (its command, if it still arrives, then stores nothing).
_SETTLE = """
local done = redis.call('GET', KEYS[1])
if done then return done end
redis.call('SET', KEYS[2], '1', 'EX', ARGV[1])
return false
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisEventLog:
    """`EventLog` on a Redis Stream (`shoprank:events`)."""

    name = "redis"

    def __init__(
        self,
        client: Any,
        *,
        idempotency_ttl_s: int = 365 * 86_400,
        dedupe_window_s: int = DEFAULT_DEDUPE_WINDOW_S,
    ) -> None:
        self.client = client
        self.ttl = max(1, int(idempotency_ttl_s))
        self.window = max(1, int(dedupe_window_s))
        self._script = client.register_script(_APPEND)
        self._settle = client.register_script(_SETTLE)
        self._group_ready = False

    def append(self, events: Sequence[Event], *, keep_generated_ids: bool = False) -> AppendResult:
        """Append the batch all or nothing; raises only when nothing of it is stored (or,
        when Redis cannot be reached to tell, may be: a retry of it is then recognised).
        `keep_generated_ids` keeps shoprank's ids as idempotency keys too (a spool replay)."""
        if not events:
            return AppendResult()
        key = BATCH + batch_key(events)
        token = secrets.token_hex(8)
        fence = FENCE + token
        args: list[Any] = [self.ttl, self.window, token]
        for event in events:
            keyed = event.idempotent or keep_generated_ids
            args += [event.event_id if keyed else "", orjson.dumps(event.to_record())]
        try:
            done = self._script(keys=[STREAM, EVID, key, fence], args=args)
        except Exception as exc:  # noqa: BLE001 - the reply is lost, not the outcome: settle
            done = self._settle_after(exc, key=key, fence=fence)
        if done is None:  # fenced, which only a settle of this very attempt can do
            raise RuntimeError("the event append was given up before it ran; nothing was stored")
        return self._result(_text(done), token=token, size=len(events))

    def _settle_after(self, error: Exception, *, key: str, fence: str) -> Any:
        """The batch's record if the failed append stored it; else raise `error`, after
        fencing the attempt so that nothing of it can be stored later."""
        try:
            done = self._settle(keys=[key, fence], args=[self.window])
        except Exception:  # noqa: BLE001 - Redis still unreachable: the outcome is unknown
            log.warning(
                "event append failed (%s) and Redis could not be asked whether it was stored; "
                "a retry of the same batch is recognised",
                type(error).__name__,
            )
            raise error from None
        if done is None:
            raise error
        log.warning("event append reply lost (%s); the batch was stored", type(error).__name__)
        return done

    @staticmethod
    def _result(done: str, *, token: str, size: int) -> AppendResult:
        storer, _, offsets = done.partition("|")
        result = AppendResult()
        if storer != token:  # an identical batch was stored before: all of it is a repeat
            result.duplicates = list(range(size))
            return result
        for position, offset in enumerate(offsets.split(",")):
            if offset:
                result.offsets.append(offset)
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
            pipe.delete(*[EVID + i for i in event_ids[start : start + 1000]])
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
                event_ids.append(event.event_id)  # a spool replay may have kept a generated one
        self._ensure_group()
        if offsets:
            self._delete(offsets, event_ids)
            self._forget_batches(set(offsets))
        result.events = len(offsets)
        return result

    def _forget_batches(self, offsets: set[str]) -> int:
        """Delete the records of batches that stored any of `offsets`. One SCAN over the
        batch keys of the last dedupe window: fewer than the stream `forget` has read."""
        doomed: list[Any] = []
        keys = list(self.client.scan_iter(match=BATCH + "*", count=1000))
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            for key, done in zip(chunk, self.client.mget(chunk), strict=True):
                stored = _text(done).partition("|")[2].split(",") if done else ()
                if any(offset in offsets for offset in stored):
                    doomed.append(key)
        for start in range(0, len(doomed), 1000):
            self.client.delete(*doomed[start : start + 1000])
        return len(doomed)

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
        keys = [
            key
            for prefix in (EVID, BATCH, FENCE)
            for key in self.client.scan_iter(match=prefix + "*", count=1000)
        ]
        for start in range(0, len(keys), 1000):
            self.client.delete(*keys[start : start + 1000])
        self.client.delete(STREAM)
        self._group_ready = False
