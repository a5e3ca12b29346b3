"""The read path of profiles: a user's profile for the API, and the ranker's read.

`ProfileReads` is the `ProfileReader` the ranker's features use. The ranker's read never
fails a search: a store that is down is counted (`METRICS`, the degradation counter) and
answered with None, so ranking goes on unpersonalised.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from shoprank.events.privacy import Pseudonyms
from shoprank.metrics import DEGRADATIONS
from shoprank.profiles.folding import FoldConfig, Profile, snapshot
from shoprank.profiles.protocol import ProfileStore

log = logging.getLogger("shoprank.events")
# Read-path health, counted in-process (exported by whoever serves metrics).
METRICS: Counter[str] = Counter()


class ProfileReads:
    """Profiles and product statistics read from `store`, looked up by raw ids."""

    def __init__(self, *, store: ProfileStore, pseudonyms: Pseudonyms, cfg: FoldConfig) -> None:
        self.store = store
        self.pseudonyms = pseudonyms
        self.cfg = cfg

    def profile(self, user_id: str, *, now: float | None = None) -> dict[str, Any] | None:
        """The user's profile decayed to now (None when there is none)."""
        subject = self.pseudonyms.subject(user_id=user_id)
        stored = self.store.get(subject)
        if stored is None:
            return None
        return {"user": subject, **snapshot(stored, time.time() if now is None else now, self.cfg)}

    def features(
        self, *, user_id: str | None = None, session_id: str | None = None
    ) -> dict[str, Profile] | None:
        """User and session profile by subject in one round trip, or None on any failure
        (counted in `METRICS`) or when neither has a profile."""
        try:
            subjects = []
            if user_id:
                subjects.append(self.pseudonyms.subject(user_id=user_id))
            if session_id:
                subjects.append(self.pseudonyms.subject(session_id=session_id))
            if not subjects:
                return None
            found = self.store.get_many(subjects)
        except Exception:  # noqa: BLE001 - the store is down: degrade, never fail a search
            METRICS["profile_store_errors"] += 1
            DEGRADATIONS.labels(stage="profile", reason="store unavailable").inc()
            log.warning("profile store unavailable; ranking unpersonalised", exc_info=True)
            return None
        if not found:
            METRICS["profile_missing"] += 1
            return None
        return dict(found)

    # -- ProfileReader -------------------------------------------------------------------

    def shopper_profiles(
        self, *, user_id: str | None = None, session_id: str | None = None
    ) -> tuple[Profile | None, Profile | None] | None:
        found = self.features(user_id=user_id, session_id=session_id)
        if not found:
            return None
        user = found.get(self.pseudonyms.subject(user_id=user_id)) if user_id else None
        session = found.get(self.pseudonyms.subject(session_id=session_id)) if session_id else None
        return user, session

    def product_stats(
        self, ids: Sequence[str], *, query: str | None = None
    ) -> dict[str, dict[str, float]]:
        return self.store.product_stats(ids, query=query)

    # -- behaviour statistics (recommendations) -------------------------------------------

    def neighbours(
        self, ids: Sequence[str], *, kind: str, limit: int = 200
    ) -> dict[str, dict[str, float]]:
        return self.store.neighbours(ids, kind=kind, limit=limit)

    def cooccur_totals(self, *, kind: str) -> dict[str, float]:
        return self.store.cooccur_totals(kind=kind)

    def item_sessions(self, ids: Sequence[str], *, kind: str) -> dict[str, float]:
        return self.store.item_sessions(ids, kind=kind)

    def trending(self, *, now: float, limit: int = 200) -> list[tuple[str, float]]:
        return self.store.trending(now=now, limit=limit)
