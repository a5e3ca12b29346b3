"""Behaviour statistics for recommendations, folded with the profiles: pure, no I/O.

**Session co-occurrence.** A session is one subject's interactions each within
`FoldConfig.session_gap_s` of the previous one. Interactions come in two kinds: `view`
(view, click) and `buy` (add_to_cart, purchase). When a product first occurs in a session
for a kind, its `item_sessions` count goes up by one, so does its pair count with every
product already in that session for that kind (both directions), and the kind's
`sessions` count when it is the session's first product of that kind. The profile keeps
the current session in `profile["co"]`: its start and latest time and, per kind, its
latest `session_max_items` distinct products (the ones a new product is paired with).

Out-of-order events: an event older than the latest joins the current session when it
falls into it (no earlier than its start minus the gap); one older than that belongs to a
session already closed and adds nothing to co-occurrence (it still counts for trending).
The log is folded in offset order, so a rebuild reproduces every count. In a session with
more than `session_max_items` distinct products of a kind, a product seen again after
dropping out of that window counts as a new occurrence.

**Trending.** Forward decay: an event of weight w (SHOPRANK_EVENT_WEIGHTS × (1 + ln
quantity), as in profiles) at time t adds w·2^((t − t0)/h) to its product's score, h the
trending half-life, t0 = epoch × `EPOCH_HALF_LIVES` × h. Additions commute, so the order of
events does not matter; a read at `now` divides by 2^((now − t0)/h). When an event is more
than two epochs past t0 the epoch moves to the event's and every stored score is scaled by
the exact power of two that keeps it equal (`BehaviourStats.shift`).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

if TYPE_CHECKING:
    from shoprank.events.model import Event
    from shoprank.profiles.folding import FoldConfig, Profile

Kind = Literal["view", "buy"]
KINDS: Final[tuple[Kind, ...]] = ("view", "buy")
KIND_OF: Final[dict[str, Kind]] = {
    "view": "view",
    "click": "view",
    "add_to_cart": "buy",
    "purchase": "buy",
}
# Neighbours kept per (kind, product): the strongest, so memory stays bounded.
MAX_NEIGHBOURS: Final = 200
# Trending scores are relative to an epoch of this many half-lives; they stay below
# w·2^(3·EPOCH_HALF_LIVES), far from float overflow.
EPOCH_HALF_LIVES: Final = 128


def check_kind(kind: str) -> Kind:
    """`kind` itself when it is `view` or `buy`; a clear error otherwise."""
    if kind == "view":
        return "view"
    if kind == "buy":
        return "buy"
    raise ValueError(f"[kind] must be 'view' or 'buy', got {kind!r}")


def _session(profile: Profile) -> dict[str, Any] | None:
    """The profile's current session, or None when it has none (or a malformed one)."""
    co = profile.get("co")
    if not isinstance(co, dict):
        return None
    ok = (
        isinstance(co.get("start"), int | float)
        and isinstance(co.get("last"), int | float)
        and all(isinstance(co.get(k), list) for k in KINDS)
    )
    return co if ok else None


@dataclass(frozen=True)
class Occurrence:
    """What one interaction did to its session: a product new to it for `kind`."""

    kind: Kind
    product: str
    partners: tuple[str, ...]
    """The products already in the session for this kind (now paired with `product`)."""


def track_session(profile: Profile, event: Event, cfg: FoldConfig) -> Occurrence | None:
    """Move the profile's session state past `event` (in place); the occurrence it
    makes, or None (not an interaction, an old session's event, a product seen already)."""
    kind = KIND_OF.get(event.type)
    product = event.product_id
    if kind is None or not product:
        return None
    t = float(event.timestamp)
    co = _session(profile)
    if co is None or t > co["last"] + cfg.session_gap_s:
        co = profile["co"] = {"start": t, "last": t, "view": [], "buy": []}
    elif t < co["start"] - cfg.session_gap_s:
        return None  # an earlier, closed session: its pairs are not known any more
    else:
        co["start"] = min(co["start"], t)
        co["last"] = max(co["last"], t)
    items: list[str] = co[kind]
    if product in items:
        items.remove(product)  # seen again: it stays in the window longer
        items.append(product)
        return None
    partners = tuple(items)
    items.append(product)
    del items[: max(0, len(items) - cfg.session_max_items)]
    return Occurrence(kind=kind, product=product, partners=partners)


def trending_weight(event: Event, cfg: FoldConfig) -> float:
    """The event's trending weight (0 for non-interactions)."""
    if event.type not in KIND_OF or not event.product_id:
        return 0.0
    return cfg.weights.get(event.type, 1.0) * (1.0 + math.log(event.quantity or 1))


def epoch_of(t: float, half_life_s: float) -> int:
    return math.floor(t / (EPOCH_HALF_LIVES * half_life_s))


def decay_factor(now: float, epoch: int, half_life_s: float) -> float:
    """What a stored trending score is multiplied by to read it at `now`."""
    exponent = (now - epoch * EPOCH_HALF_LIVES * half_life_s) / half_life_s
    return math.pow(2.0, -min(exponent, 1000.0))


def rescale(shift: int) -> float:
    """The exact power of two that moves scores `shift` epochs forward."""
    return math.ldexp(1.0, -EPOCH_HALF_LIVES * shift)


@dataclass
class BehaviourStats:
    """One batch's additions to the behaviour statistics (what `FoldResult.behaviour`
    holds); stores add them in the transaction that writes the profiles."""

    epoch: int | None = None
    """The trending epoch the stored scores are relative to (None before the first)."""
    pairs: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    """(kind, product, other product) → sessions added; symmetric."""
    item_sessions: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(kind, product) → sessions added."""
    sessions: Counter[str] = field(default_factory=Counter)
    """kind → sessions added."""
    trending: dict[str, float] = field(default_factory=dict)
    """product → forward-decayed score to add, relative to `epoch`."""
    shift: int = 0
    """Epochs the stored trending scores move forward (× `rescale(shift)`) before adding."""

    def observe(self, profile: Profile, event: Event, cfg: FoldConfig) -> None:
        """Fold one (valid) event: its session co-occurrence and its trending score."""
        occurrence = track_session(profile, event, cfg)
        if occurrence is not None:
            kind, product = occurrence.kind, occurrence.product
            self.item_sessions[(kind, product)] += 1
            if not occurrence.partners:
                self.sessions[kind] += 1
            for other in occurrence.partners:
                self.pairs[(kind, product, other)] += 1
                self.pairs[(kind, other, product)] += 1
        self._trend(event, cfg)

    def _trend(self, event: Event, cfg: FoldConfig) -> None:
        weight = trending_weight(event, cfg)
        if weight <= 0 or not event.product_id:
            return
        h = cfg.trending_half_life_s
        t = float(event.timestamp)
        if self.epoch is None:
            self.epoch = epoch_of(t, h)
        elif t > (self.epoch + 2) * EPOCH_HALF_LIVES * h:
            moved = epoch_of(t, h) - self.epoch
            factor = rescale(moved)
            self.trending = {p: s * factor for p, s in self.trending.items()}
            self.shift += moved
            self.epoch += moved
        exponent = (t - self.epoch * EPOCH_HALF_LIVES * h) / h
        score = weight * math.pow(2.0, exponent)
        self.trending[event.product_id] = self.trending.get(event.product_id, 0.0) + score


def top(items: list[tuple[str, float]], limit: int) -> list[tuple[str, float]]:
    """Highest score first, ties by id (what both stores answer)."""
    return sorted(items, key=lambda kv: (-kv[1], kv[0]))[: max(0, limit)]
