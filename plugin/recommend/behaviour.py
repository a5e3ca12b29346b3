"""Behaviour statistics as recommendations use them: co-view similarity, a shrunk lift for
"bought together", the substitute rule, and popularity.

The counts come from the fold (`ProfileReads.neighbours`, `cooccur_totals`,
`item_sessions`, `trending`): how many sessions held both products, how many held each, and
how many sessions there were. The measures:

- **co-view similarity** (similar): `c_ab / sqrt(n_a * n_b)` over view sessions (cosine of
  the session vectors), so a product viewed everywhere is not everyone's neighbour.
- **bought together** (`together_score`): the conditional rate `P(b | a)` (the share of
  a's purchase sessions that also bought b, shrunk towards b's own rate), times
  `exp(shrunk log-lift)`. The lift `log((c_ab + m) / (E_ab + m))`, `E_ab = n_a * n_b / N`
  the co-purchases expected if a and b were bought independently and `m = SHRINK`
  pseudo-sessions, is above 0 only for what is bought with `a` *more* than its own rate
  predicts: a best-seller is expected beside everything. The conditional rate alone is
  what predicts the next purchase best (and favours best-sellers); the lift alone misses
  that shoppers do buy best-sellers with things; the product keeps both.
- **substitutes**: b is a substitute of a (bought instead of a, not with it) when they
  share a category, were viewed together in at least `SUBSTITUTE_MIN_COVIEWS` sessions, and
  were bought together in fewer than `SUBSTITUTE_RATIO` of the sessions their buy rates
  predict for those co-views (`c_view_ab * (n_buy_a / n_view_a) * (n_buy_b / n_view_b)`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

from shoprank.profiles.folding import Profile

log = logging.getLogger("shoprank.recommend")

Kind = Literal["view", "buy"]
SHRINK = 1.0
# bought_together: pseudo-sessions of the conditional rate's prior, and the lift's weight.
PRIOR_SESSIONS = 5.0
LIFT_WEIGHT = 2.0
SUBSTITUTE_MIN_COVIEWS = 3
SUBSTITUTE_RATIO = 0.5
# `similar` blends in co-views once a product has this many co-view sessions (weight grows
# linearly to `SIMILAR_BEHAVIOUR_MAX_WEIGHT` at `SIMILAR_BEHAVIOUR_FULL` sessions).
SIMILAR_BEHAVIOUR_MIN = 3
SIMILAR_BEHAVIOUR_FULL = 20
SIMILAR_BEHAVIOUR_MAX_WEIGHT = 0.5
# A trending score below this (one view about four half-lives ago) is not "recent".
MIN_TRENDING = 0.05


@runtime_checkable
class RecommendReads(Protocol):
    """What recommendations read from the profile store, by raw ids (`ProfileReads`)."""

    def profile(self, user_id: str, *, now: float | None = None) -> dict[str, Any] | None: ...

    def shopper_profiles(
        self, *, user_id: str | None = None, session_id: str | None = None
    ) -> tuple[Profile | None, Profile | None] | None: ...

    def product_stats(
        self, ids: Sequence[str], *, query: str | None = None
    ) -> dict[str, dict[str, float]]: ...

    def neighbours(
        self, ids: Sequence[str], *, kind: Kind, limit: int = 200
    ) -> dict[str, dict[str, float]]: ...

    def cooccur_totals(self, *, kind: Kind) -> dict[str, float]: ...

    def item_sessions(self, ids: Sequence[str], *, kind: Kind) -> dict[str, float]: ...

    def trending(self, *, now: float, limit: int = 200) -> list[tuple[str, float]]: ...


class Behaviour:
    """Guarded reads: a store that is down answers "no behaviour" (and is noted), so a
    recommendation falls back to content instead of failing."""

    def __init__(self, reads: RecommendReads | None, degraded: list[str]) -> None:
        self.reads = reads
        self.degraded = degraded

    def _guard(self, what: str, fn: Any, empty: Any) -> Any:
        if self.reads is None:
            return empty
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - behaviour is optional: degrade to content
            log.warning("recommend: %s unavailable", what, exc_info=True)
            note = f"behaviour: {what} unavailable ({type(exc).__name__})"
            if note not in self.degraded:
                self.degraded.append(note)
            return empty

    def neighbours(
        self, ids: Sequence[str], kind: Kind, limit: int = 200
    ) -> dict[str, dict[str, float]]:
        if self.reads is None or not ids:
            return {}
        reads = self.reads
        found = self._guard(
            "co-occurrence", lambda: reads.neighbours(list(ids), kind=kind, limit=limit), {}
        )
        return dict(found)

    def sessions(self, ids: Sequence[str], kind: Kind) -> dict[str, float]:
        if self.reads is None or not ids:
            return {}
        reads = self.reads
        return dict(
            self._guard("co-occurrence", lambda: reads.item_sessions(list(ids), kind=kind), {})
        )

    def total_sessions(self, kind: Kind) -> float:
        if self.reads is None:
            return 0.0
        reads = self.reads
        totals = self._guard("co-occurrence", lambda: reads.cooccur_totals(kind=kind), {})
        return float(totals.get("sessions", 0.0))

    def trending(self, now: float, limit: int = 200) -> list[tuple[str, float]]:
        if self.reads is None:
            return []
        reads = self.reads
        return list(self._guard("trending", lambda: reads.trending(now=now, limit=limit), []))

    def stats(self, ids: Sequence[str]) -> dict[str, dict[str, float]]:
        if self.reads is None or not ids:
            return {}
        reads = self.reads
        return dict(self._guard("product statistics", lambda: reads.product_stats(list(ids)), {}))

    def profile(
        self, user_id: str | None, session_id: str | None, now: float
    ) -> dict[str, Any] | None:
        """The shopper's decayed profile (the user's, else the session's), or None."""
        reads = self.reads
        if reads is None:
            return None

        def read() -> dict[str, Any] | None:
            if user_id:
                found = reads.profile(user_id, now=now)
                if found is not None:
                    return found
            if session_id:
                pair = reads.shopper_profiles(session_id=session_id)
                if pair is not None and pair[1] is not None:
                    return session_snapshot(reads, pair[1], now)
            return None

        result: dict[str, Any] | None = self._guard("profile", read, None)
        return result


def session_snapshot(reads: RecommendReads, profile: Profile, now: float) -> dict[str, Any] | None:
    """A session profile decayed to `now` (as `ProfileReads.profile` gives a user's)."""
    from shoprank.events.reads import ProfileReads
    from shoprank.profiles.folding import snapshot

    if not isinstance(reads, ProfileReads):
        return None
    return snapshot(profile, now, reads.cfg)


def coview_similarity(
    anchor: str, neighbours: Mapping[str, float], sessions: Mapping[str, float]
) -> dict[str, float]:
    """Cosine of session vectors: `c_ab / sqrt(n_a * n_b)`."""
    n_a = sessions.get(anchor, 0.0)
    out: dict[str, float] = {}
    for other, c_ab in neighbours.items():
        n_b = sessions.get(other, 0.0)
        if c_ab > 0 and n_a > 0 and n_b > 0:
            out[other] = min(1.0, c_ab / math.sqrt(n_a * n_b))
    return out


def shrunk_lift(c_ab: float, n_a: float, n_b: float, total: float, *, m: float = SHRINK) -> float:
    """`log((c_ab + m) / (E_ab + m))`, `E_ab = n_a * n_b / N`: above 0 only when a and b are
    bought together more often than their own purchase rates predict."""
    expected = n_a * n_b / total if total > 0 else 0.0
    return math.log((c_ab + m) / (expected + m))


def together_score(
    c_ab: float,
    n_a: float,
    n_b: float,
    total: float,
    *,
    m: float = PRIOR_SESSIONS,
    lift_weight: float = LIFT_WEIGHT,
) -> float:
    """How likely b is bought in a session that bought a, tilted towards what is bought
    with a specifically: `P(b | a) * exp(lift_weight * shrunk_lift)`.

    `P(b | a) = (c_ab + m * n_b / N) / (n_a + m)` is the share of a's purchase sessions that
    also bought b, shrunk towards b's own purchase rate with `m` pseudo-sessions (one
    chance co-purchase of a rarely bought a says little). The lift factor discounts what
    is bought beside everything: between a complement and a best-seller with as many
    co-purchases, the complement wins; a best-seller bought with a much more often still
    ranks (it is what shoppers do buy with it)."""
    rate_b = n_b / total if total > 0 else 0.0
    conditional = (c_ab + m * rate_b) / (n_a + m)
    return conditional * math.exp(lift_weight * shrunk_lift(c_ab, n_a, n_b, total))


def is_substitute(
    *,
    same_category: bool,
    coviews: float,
    cobuys: float,
    view_sessions: tuple[float, float],
    buy_sessions: tuple[float, float],
) -> bool:
    """Viewed together, rarely bought together: one is bought instead of the other."""
    if not same_category or coviews < SUBSTITUTE_MIN_COVIEWS:
        return False
    (va, vb), (ba, bb) = view_sessions, buy_sessions
    if va <= 0 or vb <= 0:
        return False
    predicted = coviews * min(1.0, ba / va) * min(1.0, bb / vb)
    return cobuys < SUBSTITUTE_RATIO * predicted


def similar_behaviour_weight(support: float) -> float:
    """How much co-views count in `similar`, by the anchor's co-view sessions."""
    if support < SIMILAR_BEHAVIOUR_MIN:
        return 0.0
    share = min(1.0, support / SIMILAR_BEHAVIOUR_FULL)
    return SIMILAR_BEHAVIOUR_MAX_WEIGHT * share


def popularity(
    stats: Mapping[str, Mapping[str, float]], weights: Mapping[str, float]
) -> dict[str, float]:
    """All-time popularity: each product's event counts weighted like SHOPRANK_EVENT_WEIGHTS."""
    fields = {"views": "view", "clicks": "click", "carts": "add_to_cart", "purchases": "purchase"}
    out: dict[str, float] = {}
    for pid, counts in stats.items():
        score = sum(float(counts.get(f, 0.0)) * weights.get(t, 0.0) for f, t in fields.items())
        if score > 0:
            out[pid] = score
    return out
