"""The fold lock: one folder at a time, so the log is folded into profiles in offset order.

With Redis it is a short lease renewed per batch (a killed folder blocks the others for
seconds only); embedded, an `flock` on `data_dir/profiles/.fold.lock`.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from shoprank.settings import Settings

log = logging.getLogger("shoprank.events")
FOLD_LOCK = "shoprank:fold:lock"
LOCK_LEASE_S = 10


class FoldLock:
    """`hold()` for the critical section; `renew()` after each batch while holding it."""

    def __init__(self, settings: Settings, *, client: Any = None) -> None:
        self.settings = settings
        self.client = client  # the Redis client when `SHOPRANK_REDIS_URL` is set

    @contextmanager
    def hold(self, *, wait_s: float = 30.0) -> Iterator[None]:
        if self.settings.redis_url:
            lock = self.client.lock(FOLD_LOCK, timeout=LOCK_LEASE_S, blocking_timeout=wait_s)
            if not lock.acquire():
                raise TimeoutError("another folder holds the fold lock")
            try:
                yield
            finally:
                try:
                    lock.release()
                except Exception:  # noqa: BLE001 - expired: another folder may have taken over
                    log.warning("fold lock expired before release")
            return
        path = self.settings.data_dir / "profiles" / ".fold.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def renew(self, lease_s: int = LOCK_LEASE_S) -> None:
        """Extend the lease (Redis) to `lease_s` from now; the flock needs no renewal."""
        if self.settings.redis_url:
            self.client.expire(FOLD_LOCK, lease_s)
