"""Fetching what the features need for one window: product facts and vectors from the
backend (cached briefly per product), profiles and statistics from a `ProfileReader`.

Every fetch degrades on failure: a store that is down means no personalisation (or no
statistics) for this search, counted under `_shoprank.degraded`, never a failed search.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from shoprank.rerankers.features.compute import FACT_FIELDS, Inputs

if TYPE_CHECKING:
    from shoprank.plugin.backends.protocol import SearchBackend
    from shoprank.profiles.protocol import ProfileReader

log = logging.getLogger("shoprank.ranker")
TEXT_VECTOR_FIELD = "text_vector"


class _TTLCache:
    """A small thread-safe LRU whose entries expire (catalog updates show within `ttl_s`).

    The stamps and the values are kept in two maps rather than as `(stamp, value)` pairs:
    a pair is one more object the cyclic collector tracks per entry (tens of thousands at
    the default size, walked by every full collection: 20-50 ms pauses on Home Depot),
    while a float and a dict of plain facts are not tracked at all."""

    def __init__(self, size: int, ttl_s: float) -> None:
        self.size = size
        self.ttl_s = ttl_s
        self._stamps: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._values: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def get_many(
        self, index: str, ids: Sequence[str], now: float
    ) -> tuple[dict[str, Any], list[str]]:
        found: dict[str, Any] = {}
        missing: list[str] = []
        with self._lock:
            for pid in ids:
                key = (index, pid)
                stamp = self._stamps.get(key)
                if stamp is not None and now - stamp < self.ttl_s:
                    found[pid] = self._values[key]
                    self._stamps.move_to_end(key)
                else:
                    missing.append(pid)
        return found, missing

    def put_many(self, index: str, values: dict[str, Any], ids: Sequence[str], now: float) -> None:
        with self._lock:
            for pid in ids:  # absent products are cached too (as None)
                key = (index, pid)
                self._stamps[key] = now
                self._stamps.move_to_end(key)
                self._values[key] = values.get(pid)
            while len(self._stamps) > self.size:
                key, _ = self._stamps.popitem(last=False)
                del self._values[key]


class FeatureSource:
    """Collects `Inputs` for a window from `backend` (product facts, vectors) and
    `profiles` (shopper profiles, product statistics); either may be None: those features
    keep their defaults."""

    def __init__(
        self,
        *,
        backend: SearchBackend | None,
        profiles: ProfileReader | None,
        prior_ctr: float,
        cache_size: int = 50_000,
        cache_ttl_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backend = backend
        self.profiles = profiles
        self.prior_ctr = prior_ctr
        self.clock = clock
        self._facts = _TTLCache(cache_size, cache_ttl_s)
        self._vectors = _TTLCache(cache_size, cache_ttl_s)
        self._has_facts = _TTLCache(256, cache_ttl_s)  # per index: does any product have one

    def warm_up(self) -> None:
        if self.profiles is not None:
            self.profiles.product_stats(["-"])

    def _cached(
        self, cache: _TTLCache, index: str, ids: Sequence[str], fetch: Any, now: float
    ) -> dict[str, Any]:
        found, missing = cache.get_many(index, ids, now)
        if missing:
            fetched = fetch(missing)
            cache.put_many(index, fetched, missing, now)
            found.update(fetched)
        return {k: v for k, v in found.items() if v is not None}

    def _index_has_facts(self, backend: SearchBackend, index: str, now: float) -> bool:
        """Whether any product of `index` has a fact field, asked once per cache period
        with one `count` of `exists` clauses (any backend): a title-only catalog (Home
        Depot) then skips the facts `mget` of every window, which could only come back
        empty. A product given a fact later is seen within the period, as a changed fact
        is. When the count fails, the facts are fetched as before."""
        found, _ = self._has_facts.get_many(index, [index], now)
        if index in found:
            return bool(found[index])
        exists = [{"exists": {"field": name}} for name in FACT_FIELDS]
        try:
            has = backend.count(index, {"query": {"bool": {"should": exists}}}) > 0
        except Exception:  # noqa: BLE001 - unknown: fetch the facts, which degrade on their own
            log.warning("could not tell whether products have facts", exc_info=True)
            return True
        self._has_facts.put_many(index, {index: has}, [index], now)
        return has

    def fetch(
        self,
        *,
        index: str,
        ids: Sequence[str],
        query: str | None,
        user_id: str | None,
        session_id: str | None,
        intent: Any,
        degraded: list[str],
    ) -> Inputs:
        from shoprank.metrics import degrade

        now = time.time()
        mono = self.clock()
        inputs = Inputs(intent=intent, prior_ctr=self.prior_ctr, now=now)
        backend = self.backend
        has_facts = backend is not None and self._index_has_facts(backend, index, mono)
        if backend is not None and has_facts:
            try:
                inputs.facts = self._cached(
                    self._facts,
                    index,
                    ids,
                    lambda miss: backend.mget(index, list(miss), source=FACT_FIELDS),
                    mono,
                )
            except Exception:  # noqa: BLE001 - facts are optional: rank on retrieval alone
                log.warning("product facts unavailable", exc_info=True)
                degrade(degraded, "features", "product facts unavailable")
        profiles = self.profiles
        if profiles is None:
            return inputs
        if user_id or session_id:
            found = profiles.shopper_profiles(user_id=user_id, session_id=session_id)
            if found:
                inputs.user, inputs.session = found
            recent = _recent_ids(inputs.user, exclude=ids)
            if recent and backend is not None and has_facts:
                try:  # the engaged items' brands and prices (the `user_sim_*` features)
                    inputs.facts = {
                        **self._cached(
                            self._facts,
                            index,
                            recent,
                            lambda miss: backend.mget(index, list(miss), source=FACT_FIELDS),
                            mono,
                        ),
                        **inputs.facts,
                    }
                except Exception:  # noqa: BLE001 - optional, as the window's facts are
                    log.warning("facts of the shopper's recent items unavailable", exc_info=True)
            if inputs.user and inputs.user.get("vec") and backend is not None:
                try:
                    inputs.vectors = self._cached(
                        self._vectors,
                        index,
                        [*ids, *recent],
                        lambda miss: {
                            k: _unit(v)
                            for k, v in backend.vectors_of(
                                index, list(miss), TEXT_VECTOR_FIELD
                            ).items()
                        },
                        mono,
                    )
                except Exception:  # noqa: BLE001
                    log.warning("product vectors unavailable", exc_info=True)
        try:
            inputs.stats = profiles.product_stats(list(ids))
            if query:
                inputs.query_stats = profiles.product_stats(list(ids), query=query)
        except Exception:  # noqa: BLE001 - statistics are optional
            log.warning("product statistics unavailable", exc_info=True)
            degrade(degraded, "features", "product statistics unavailable")
        return inputs


def _recent_ids(profile: Any, *, exclude: Sequence[str]) -> list[str]:
    """The products in a profile's recent list that are not in the window already."""
    if not profile:
        return []
    skip = set(exclude)
    out = []
    for item in profile.get("recent") or []:
        pid = str(item[0]) if isinstance(item, list | tuple) and item else None
        if pid is not None and pid not in skip:
            skip.add(pid)
            out.append(pid)
    return out


def _unit(vector: Any) -> np.ndarray:
    v = np.asarray(vector, dtype=np.float32)
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v
