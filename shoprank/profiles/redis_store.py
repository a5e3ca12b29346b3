"""The production profile store in Redis: one hash per profile, read in one round trip.

    shoprank:profile:<subject>   HASH  p = profile JSON without the vector sum,
                                       v = vector sum as little-endian float64 bytes,
                                       last = last event time
    shoprank:profiles            ZSET  subject → last event time (retention, listing)
    shoprank:stats:<product>     HASH  impressions / views / clicks / carts / purchases
    shoprank:qstats:<query>      HASH  "<product>|<field>" → count
    shoprank:query:<query_id>    STRING the normalised query text (expires with retention)
    shoprank:watermark           STRING highest folded stream id
    shoprank:quarantine          HASH  stream id → quarantine entry JSON (events left out)
    shoprank:co:<kind>:<product> ZSET  other product → sessions with both (kind view|buy;
                                       the strongest FoldConfig.max_neighbours kept)
    shoprank:cosessions:<kind>   HASH  product → sessions it occurred in
    shoprank:cototals            HASH  kind → sessions with an interaction of that kind
    shoprank:trending            ZSET  product → forward-decayed event velocity
    shoprank:trend_epoch         STRING the trending epoch (`shoprank.profiles.cooccur`)

`apply` is an optimistic transaction: WATCH the watermark, read, fold, then MULTI/EXEC the
profiles, counters and new watermark together; a concurrent apply makes it retry.

The user vector (hundreds of floats) is kept out of the JSON: decoding it from text was most
of a read's cost. float64, not float32, so a stored profile folds on exactly as the
in-memory one would and `profiles rebuild` stays bit-for-bit equal to the live profiles.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
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
    normalise_query,
    smoothed_ctr,
)

P = "shoprank:"
WATERMARK = P + "watermark"
INDEX = P + "profiles"
QUARANTINE = P + "quarantine"
TRENDING = P + "trending"
TREND_EPOCH = P + "trend_epoch"
COTOTALS = P + "cototals"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def encode_profile(profile: Profile) -> dict[str, Any]:
    """The hash fields of a profile: `p` (JSON), `v` (vector sum bytes), `last`."""
    vec = profile.get("vec")
    packed = b""
    if vec is not None:
        values = array("d", vec["sum"])
        if sys.byteorder == "big":
            values.byteswap()
        packed = values.tobytes()
        profile = {**profile, "vec": {"w": vec["w"]}}
    return {"p": orjson.dumps(profile), "v": packed, "last": profile["last"]}


def decode_profile(raw: Any, packed: Any) -> Profile | None:
    """The profile from its `p` and `v` fields (None when there is none)."""
    if not raw:
        return None
    profile: Profile = orjson.loads(raw)
    vec = profile.get("vec")
    if vec is not None and "sum" not in vec:  # profiles written before `v` keep it inline
        values = array("d")
        values.frombytes(packed or b"")
        if sys.byteorder == "big":
            values.byteswap()
        vec["sum"] = values.tolist()
    return profile


class RedisProfileStore:
    """`ProfileStore` on Redis (the same server as the event stream, or another)."""

    name = "redis"

    def __init__(
        self,
        client: Any,
        cfg: FoldConfig,
        *,
        prior_clicks: float = 1.0,
        prior_impressions: float = 20.0,
        query_ttl_s: int = 365 * 86_400,
    ) -> None:
        self.client = client
        self.cfg = cfg
        self.prior = (prior_clicks, prior_impressions)
        self.query_ttl = max(1, int(query_ttl_s))

    def watermark(self) -> str | None:
        value = self.client.get(WATERMARK)
        return _text(value) if value else None

    def apply(
        self, batch: Sequence[tuple[str, Event]], *, lookup: ProductLookup | None = None
    ) -> int:
        import redis

        if not batch:
            return 0
        while True:
            with self.client.pipeline() as pipe:
                try:
                    pipe.watch(WATERMARK)
                    raw = pipe.get(WATERMARK)
                    mark = _text(raw) if raw else None
                    todo = [
                        (o, e) for o, e in batch if mark is None or offset_key(o) > offset_key(mark)
                    ]
                    if not todo:
                        pipe.unwatch()
                        return 0
                    events = [e for _, e in todo]
                    subjects = sorted({e.subject for e in events})
                    qids = sorted({e.query_id for e in events if e.query_id and e.type != "search"})
                    reads = self.client.pipeline(transaction=False)
                    reads.get(TREND_EPOCH)
                    for s in subjects:
                        reads.hmget(P + "profile:" + s, ("p", "v"))
                    for q in qids:
                        reads.get(P + "query:" + q)
                    epoch_raw, *got = reads.execute()
                    profiles = {
                        s: p
                        for s, (raw, packed) in zip(subjects, got[: len(subjects)], strict=True)
                        if (p := decode_profile(raw, packed)) is not None
                    }
                    queries = {
                        q: _text(v) for q, v in zip(qids, got[len(subjects) :], strict=True) if v
                    }
                    result = fold_batch(
                        events,
                        profiles=profiles,
                        queries=queries,
                        lookup=lookup,
                        cfg=self.cfg,
                        trending_epoch=int(_text(epoch_raw)) if epoch_raw else None,
                    )
                    pipe.multi()
                    self._write_behaviour(pipe, result.behaviour)
                    for s, p in result.profiles.items():
                        pipe.hset(P + "profile:" + s, mapping=encode_profile(p))
                        pipe.zadd(INDEX, {s: p["last"]})
                    for (product, name), n in sorted(result.stats.items()):
                        pipe.hincrbyfloat(P + "stats:" + product, name, n)
                    for (query, product, name), n in sorted(result.query_stats.items()):
                        pipe.hincrbyfloat(P + "qstats:" + query, f"{product}|{name}", n)
                    for qid, query in result.queries.items():
                        pipe.set(P + "query:" + qid, query, ex=self.query_ttl)
                    left_out = quarantine.entries(todo, result.quarantined)
                    if left_out:
                        pipe.hset(
                            QUARANTINE,
                            mapping={q["offset"]: quarantine.encode(q) for q in left_out},
                        )
                    pipe.set(WATERMARK, max((o for o, _ in todo), key=offset_key))
                    pipe.execute()
                    quarantine.QUARANTINED.inc(len(left_out))
                    return int(result.applied)
                except redis.WatchError:
                    continue

    def _write_behaviour(self, pipe: Any, stats: BehaviourStats) -> None:
        """Queue the batch's behaviour statistics in the apply's MULTI."""
        if stats.shift:
            pipe.zunionstore(TRENDING, {TRENDING: rescale(stats.shift)})
        if stats.epoch is not None:
            pipe.set(TREND_EPOCH, stats.epoch)
        for product, score in sorted(stats.trending.items()):
            pipe.zincrby(TRENDING, score, product)
        touched: set[str] = set()
        for (kind, a, b), n in sorted(stats.pairs.items()):
            key = f"{P}co:{kind}:{a}"
            pipe.zincrby(key, n, b)
            touched.add(key)
        for key in sorted(touched):  # keep the strongest neighbours only
            pipe.zremrangebyrank(key, 0, -(self.cfg.max_neighbours + 1))
        for (kind, product), n in sorted(stats.item_sessions.items()):
            pipe.hincrbyfloat(f"{P}cosessions:{kind}", product, n)
        for kind, n in sorted(stats.sessions.items()):
            pipe.hincrbyfloat(COTOTALS, kind, n)

    # -- behaviour statistics (recommendations) -------------------------------------------

    def neighbours(
        self, ids: Sequence[str], *, kind: str, limit: int = 200
    ) -> dict[str, dict[str, float]]:
        kind = check_kind(kind)
        unique = list(dict.fromkeys(ids))
        if not unique:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for pid in unique:  # whole (capped) sets: ties are cut by id, as the embedded store
            pipe.zrevrange(f"{P}co:{kind}:{pid}", 0, self.cfg.max_neighbours - 1, withscores=True)
        out: dict[str, dict[str, float]] = {}
        for pid, rows in zip(unique, pipe.execute(), strict=True):
            if rows:
                ranked = top([(_text(b), float(n)) for b, n in rows], limit)
                out[pid] = dict(ranked)
        return out

    def cooccur_totals(self, *, kind: str) -> dict[str, float]:
        kind = check_kind(kind)
        value = self.client.hget(COTOTALS, kind)
        return {"sessions": float(value) if value is not None else 0.0}

    def item_sessions(self, ids: Sequence[str], *, kind: str) -> dict[str, float]:
        kind = check_kind(kind)
        unique = list(dict.fromkeys(ids))
        if not unique:
            return {}
        values = self.client.hmget(f"{P}cosessions:{kind}", unique)
        return {p: float(v) for p, v in zip(unique, values, strict=True) if v is not None}

    def trending(self, *, now: float, limit: int = 200) -> list[tuple[str, float]]:
        pipe = self.client.pipeline(transaction=False)
        pipe.get(TREND_EPOCH)
        pipe.zrevrange(TRENDING, 0, max(0, limit) - 1, withscores=True)
        epoch, rows = pipe.execute()
        if epoch is None or limit <= 0:
            return []
        factor = decay_factor(now, int(_text(epoch)), self.cfg.trending_half_life_s)
        return top([(_text(p), float(score) * factor) for p, score in rows], limit)

    def quarantined(self) -> list[dict[str, Any]]:
        entries = [orjson.loads(v) for v in self.client.hvals(QUARANTINE)]
        return sorted(entries, key=lambda q: offset_key(q["offset"]))

    def _drop_quarantined(self, keep: Callable[[dict[str, Any]], bool]) -> None:
        """Remove the quarantine entries `keep(entry)` rejects (small: read whole)."""
        gone = [q["offset"] for q in self.quarantined() if not keep(q)]
        for start in range(0, len(gone), 1000):
            self.client.hdel(QUARANTINE, *gone[start : start + 1000])

    def get(self, subject: str) -> Profile | None:
        return decode_profile(*self.client.hmget(P + "profile:" + subject, ("p", "v")))

    def get_many(self, subjects: Sequence[str]) -> dict[str, Profile]:
        if len(subjects) == 1:  # the common read: one command, no pipeline to build
            found = self.get(subjects[0])
            return {subjects[0]: found} if found is not None else {}
        pipe = self.client.pipeline(transaction=False)
        for s in subjects:
            pipe.hmget(P + "profile:" + s, ("p", "v"))
        got = pipe.execute()
        return {
            s: p
            for s, (raw, packed) in zip(subjects, got, strict=True)
            if (p := decode_profile(raw, packed)) is not None
        }

    def product_stats(
        self, ids: Sequence[str], *, query: str | None = None
    ) -> dict[str, dict[str, float]]:
        names = ("impressions", "views", "clicks", "carts", "purchases")
        out: dict[str, dict[str, float]] = {}
        if not ids:
            return out
        if query is None:
            pipe = self.client.pipeline(transaction=False)
            for pid in ids:
                pipe.hgetall(P + "stats:" + pid)
            for pid, raw in zip(ids, pipe.execute(), strict=True):
                if raw:
                    out[pid] = {_text(k): float(v) for k, v in raw.items()}
        else:
            fields = [f"{pid}|{name}" for pid in ids for name in names]
            values = self.client.hmget(P + "qstats:" + normalise_query(query), fields)
            for key, value in zip(fields, values, strict=True):
                if value is not None:
                    pid, _, name = key.rpartition("|")
                    out.setdefault(pid, {})[name] = float(value)
        for counts in out.values():
            counts["ctr"] = smoothed_ctr(
                counts.get("clicks", 0.0),
                counts.get("impressions", 0.0),
                prior_clicks=self.prior[0],
                prior_n=self.prior[1],
            )
        return out

    def profiles(self) -> Iterator[tuple[str, Profile]]:
        subjects = sorted(_text(s) for s in self.client.zrange(INDEX, 0, -1))
        for start in range(0, len(subjects), 500):
            part = subjects[start : start + 500]
            found = self.get_many(part)
            for s in part:
                if s in found:
                    yield s, found[s]

    def stats_snapshot(self) -> dict[str, Any]:
        stats: list[tuple[str, str, float]] = []
        for key in self.client.scan_iter(match=P + "stats:*", count=1000):
            product = _text(key)[len(P + "stats:") :]
            stats += [(product, _text(k), float(v)) for k, v in self.client.hgetall(key).items()]
        qstats: list[tuple[str, str, str, float]] = []
        for key in self.client.scan_iter(match=P + "qstats:*", count=1000):
            query = _text(key)[len(P + "qstats:") :]
            for k, v in self.client.hgetall(key).items():
                product, _, name = _text(k).rpartition("|")
                qstats.append((query, product, name, float(v)))
        return {"stats": sorted(stats), "qstats": sorted(qstats)}

    def forget(self, subjects: Iterable[str]) -> int:
        wanted = list(subjects)
        if not wanted:
            return 0
        pipe = self.client.pipeline()
        for s in wanted:
            pipe.delete(P + "profile:" + s)
        pipe.zrem(INDEX, *wanted)
        gone = sum(int(n) for n in pipe.execute()[: len(wanted)])
        subjects = set(wanted)
        self._drop_quarantined(lambda q: q["subject"] not in subjects)
        return gone

    def enforce_retention(self, now: float, *, retention_s: float) -> int:
        cutoff = now - retention_s
        old = [_text(s) for s in self.client.zrangebyscore(INDEX, "-inf", f"({cutoff}")]
        self._drop_quarantined(lambda q: q["t"] >= cutoff)
        return self.forget(old)

    def clear(self) -> None:
        for pattern in ("profile:*", "stats:*", "qstats:*", "query:*", "co:*", "cosessions:*"):
            keys = list(self.client.scan_iter(match=P + pattern, count=1000))
            for start in range(0, len(keys), 1000):
                self.client.delete(*keys[start : start + 1000])
        self.client.delete(INDEX, WATERMARK, QUARANTINE, TRENDING, TREND_EPOCH, COTOTALS)
