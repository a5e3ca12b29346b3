"""The per-client rate limit shared by every worker of one `shoprank serve`.

With N worker processes each holding its own token buckets a client would get N times its
rate (and a keep-alive client pinned to one worker exactly its rate, another spread over
all of them N times it). `SharedTokenBucketLimiter` keeps the buckets in one small
memory-mapped file instead (`data_dir/run/ratelimit.buckets`, recreated at each start), so
all workers draw from the same bucket: a fixed table of slots (key hash, tokens, last
refill), each read-modify-write under an exclusive `flock` of the file (a few
microseconds). The table is bounded: when the probe window of a new client is full, its
least recently refilled slot is reused (that client starts again with a full bucket).
`time.monotonic` is the system-wide monotonic clock on Linux, the same in every worker.
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path

from shoprank.plugin.limits import TokenBucketLimiter
from shoprank.settings import Settings

SLOT = struct.Struct("<Qdd")  # client key hash (0 = free), tokens, last refill (s)
SLOTS = 65_536
PROBES = 8


class SharedTokenBucketLimiter(TokenBucketLimiter):
    """`TokenBucketLimiter` whose buckets live in `path`, shared across processes."""

    def __init__(
        self,
        path: Path,
        rate: float,
        burst: int,
        *,
        slots: int = SLOTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(rate, burst, max_clients=slots, clock=clock)
        self.path = path
        self.slots = slots
        size = slots * SLOT.size
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        if os.fstat(self._fd).st_size < size:
            os.ftruncate(self._fd, size)  # zero-filled: every slot free
        self._map = mmap.mmap(self._fd, size)
        self._thread_lock = threading.Lock()  # flock does not exclude this process's threads

    @staticmethod
    def reset(path: Path) -> None:
        """Start a new server with empty buckets."""
        path.unlink(missing_ok=True)

    def acquire(self, client: str, *, now: float | None = None) -> float:
        now = self.clock() if now is None else now
        key = int.from_bytes(hashlib.blake2b(client.encode(), digest_size=8).digest(), "little")
        key |= 1  # never 0, the free mark
        with self._thread_lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                offset, tokens, last = self._find(key, now)
                tokens = min(self.burst, tokens + max(0.0, now - last) * self.rate)
                if tokens >= 1.0:
                    tokens -= 1.0
                    wait = 0.0
                else:
                    wait = (1.0 - tokens) / self.rate
                SLOT.pack_into(self._map, offset, key, tokens, now)
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        return wait

    def _find(self, key: int, now: float) -> tuple[int, float, float]:
        """The slot of `key` (offset, tokens, last), or a free / the stalest one for it."""
        start = key % self.slots
        stalest: tuple[float, int] | None = None
        for i in range(PROBES):
            offset = ((start + i) % self.slots) * SLOT.size
            held, tokens, last = SLOT.unpack_from(self._map, offset)
            if held == key:
                return offset, tokens, last
            if held == 0:
                return offset, self.burst, now
            if stalest is None or last < stalest[0]:
                stalest = (last, offset)
        assert stalest is not None
        return stalest[1], self.burst, now

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)


def buckets_path(settings: Settings) -> Path:
    return settings.data_dir / "run" / "ratelimit.buckets"


def make_shared_limiter(settings: Settings) -> SharedTokenBucketLimiter | None:
    """The shared limiter of `settings`' server, or None without a rate limit."""
    if settings.rate_limit_per_s <= 0:
        return None
    return SharedTokenBucketLimiter(
        buckets_path(settings), settings.rate_limit_per_s, settings.rate_limit_burst
    )
