"""Folding events into profiles: pure, deterministic functions of (state, event, facts).

Every decayed quantity is kept as its value at the profile's reference time `t` (the latest
event time seen). A newer event first decays the profile to its time, then adds itself; an
older one adds itself already decayed. Replaying the log in offset order therefore
reproduces every profile bit for bit.

Product facts (category, brand, other facets, price, text `vector`) come from a
`ProductLookup(ids) -> {id: facts}` callable; without one only counts, prices sent on the
events, recent items and product statistics are built.

No single event can stop the fold: one that cannot be folded (numbers out of range, a
record a bug or an older version wrote) is left out of every profile and statistic and
reported in `FoldResult.quarantined`; the stores keep it, with the error, in their
quarantine. Product facts out of range (a non-finite price or vector) are ignored.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from shoprank.events.model import EVENT_TYPES, MAX_POSITION, MAX_PRICE, MAX_QUANTITY, Event
from shoprank.profiles.cooccur import MAX_NEIGHBOURS, BehaviourStats, track_session
from shoprank.settings import Settings

ProductFacts = Mapping[str, Any]
ProductLookup = Callable[[Sequence[str]], Mapping[str, ProductFacts]]
Profile = dict[str, Any]
DAY = 86_400.0
INTERACTIONS = ("view", "click", "add_to_cart", "purchase")


@dataclass(frozen=True)
class FoldConfig:
    """Half-lives (seconds) and weights; build it with `from_settings`."""

    half_life_s: Mapping[str, float]
    weights: Mapping[str, float]
    facets: tuple[str, ...] = ("category", "brand")
    recent_max: int = 50
    max_values: int = 100
    session_gap_s: float = 1800.0
    session_max_items: int = 20
    trending_half_life_s: float = DAY
    max_neighbours: int = MAX_NEIGHBOURS  # per (kind, product): the strongest are kept

    @classmethod
    def from_settings(cls, settings: Settings) -> FoldConfig:
        return cls(
            half_life_s={k: v * DAY for k, v in settings.half_life_days.items()},
            weights=dict(settings.event_weights),
            facets=tuple(settings.profile_facets),
            session_gap_s=settings.cooccur_session_gap_s,
            session_max_items=settings.cooccur_max_items,
            trending_half_life_s=settings.trending_half_life_days * DAY,
        )

    def half_life(self, name: str, kind: str = "user") -> float:
        if kind == "session" and "session" in self.half_life_s:
            return self.half_life_s["session"]
        return self.half_life_s.get(name, self.half_life_s.get("default", 30 * DAY))


def new_profile(subject: str, t: float) -> Profile:
    return {
        "kind": "session" if subject.startswith("s:") else "user",
        "t": t,
        "first": t,
        "last": t,
        "counts": {},
        "aff": {},
        "price": {"w": 0.0, "mean": 0.0, "var": 0.0},
        "recent": [],
        "vec": None,
    }


def _decay(dt: float, half_life: float) -> float:
    return math.pow(2.0, -dt / half_life) if dt > 0 else 1.0


def _advance(profile: Profile, t: float, cfg: FoldConfig) -> None:
    """Decay every quantity from the profile's reference time to the later time `t`."""
    dt = t - profile["t"]
    if dt <= 0:
        return
    kind = profile["kind"]
    for facet, values in profile["aff"].items():
        f = _decay(dt, cfg.half_life(facet, kind))
        for value in values:
            values[value] *= f
    profile["price"]["w"] *= _decay(dt, cfg.half_life("price", kind))
    vec = profile["vec"]
    if vec is not None:
        f = _decay(dt, cfg.half_life("vector", kind))
        vec["w"] *= f
        vec["sum"] = [x * f for x in vec["sum"]]
    profile["t"] = t


def _values(raw: Any) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, list | tuple):
        return [str(v) for v in raw if v is not None and str(v)]
    return [str(raw)] if str(raw) else []


class PoisonEventError(ValueError):
    """An event that cannot be folded; it is quarantined, the fold goes on."""


def _number(value: Any, low: float, high: float) -> TypeGuard[int | float]:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and low <= value <= high
    )


def check_event(event: Event) -> None:
    """Raise `PoisonEventError` for an event that must not be folded (the events API
    refuses these already; a log may still hold one from an older version)."""
    if event.type not in EVENT_TYPES:
        raise PoisonEventError(f"[type] unknown: {event.type!r}")
    if event.type in INTERACTIONS and not event.product_id:
        raise PoisonEventError(f"[product_id] missing on a {event.type} event")
    if not _number(event.timestamp, 0.0, math.inf):
        raise PoisonEventError(f"[timestamp] out of range: {event.timestamp!r}")
    if event.price is not None and not _number(event.price, 0.0, MAX_PRICE):
        raise PoisonEventError(f"[price] out of range: {event.price!r}")
    if event.quantity is not None and not _number(event.quantity, 1, MAX_QUANTITY):
        raise PoisonEventError(f"[quantity] out of range: {event.quantity!r}")
    if event.position is not None and not _number(event.position, 0, MAX_POSITION):
        raise PoisonEventError(f"[position] out of range: {event.position!r}")


def _finite_vector(raw: Any) -> list[float] | None:
    """The product's vector as floats, or None when it has none or a bad one."""
    if raw is None or not len(raw):
        return None
    try:
        values = [float(x) for x in raw]
    except (TypeError, ValueError):
        return None
    return values if all(math.isfinite(x) and abs(x) <= 1e6 for x in values) else None


def repair(profile: Profile) -> Profile:
    """A stored profile with its non-finite (or null) price band or vector reset, so a
    profile an older version corrupted folds on instead of failing every event."""
    band = profile.get("price")
    if not isinstance(band, dict) or not all(
        _number(band.get(k), -math.inf, math.inf) for k in ("w", "mean", "var")
    ):
        profile["price"] = {"w": 0.0, "mean": 0.0, "var": 0.0}
    vec = profile.get("vec")
    if vec is not None and not (
        _number(vec.get("w"), 0.0, math.inf)
        and all(_number(x, -math.inf, math.inf) for x in vec.get("sum", ()))
    ):
        profile["vec"] = None
    return profile


def fold_event(
    profile: Profile, event: Event, facts: ProductFacts | None, cfg: FoldConfig
) -> Profile:
    """Fold one event into `profile` (updated in place and returned). It may raise for a
    bad event, part way: `fold_batch` then restores the profile without it."""
    counts = profile["counts"]
    counts[event.type] = counts.get(event.type, 0) + 1
    profile["last"] = max(profile["last"], event.timestamp)
    profile["first"] = min(profile["first"], event.timestamp)
    if event.type not in INTERACTIONS or event.product_id is None:
        return profile
    _advance(profile, event.timestamp, cfg)
    kind = profile["kind"]
    age = profile["t"] - event.timestamp
    base = cfg.weights.get(event.type, 1.0) * (1.0 + math.log(event.quantity or 1))
    facts = facts or {}
    for facet in cfg.facets:
        values = _values(facts.get(facet))
        if not values:
            continue
        w = base * _decay(age, cfg.half_life(facet, kind)) / len(values)
        scores = profile["aff"].setdefault(facet, {})
        for value in values:
            scores[value] = scores.get(value, 0.0) + w
        if len(scores) > cfg.max_values:
            ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
            profile["aff"][facet] = dict(ranked[: cfg.max_values])
    price = event.price if event.price is not None else facts.get("price")
    if _number(price, 0.0, MAX_PRICE):
        band = profile["price"]
        w = base * _decay(age, cfg.half_life("price", kind))
        total = band["w"] + w
        delta = float(price) - band["mean"]
        mean = band["mean"] + delta * w / total
        var = (band["w"] * band["var"] + w * delta * (float(price) - mean)) / total
        if not all(map(math.isfinite, (total, mean, var))):
            raise PoisonEventError(f"price band overflows with [price] {price!r}")
        band["var"] = var
        band["mean"] = mean
        band["w"] = total
    vector = _finite_vector(facts.get("vector"))
    if vector is not None:
        w = base * _decay(age, cfg.half_life("vector", kind))
        vec = profile["vec"]
        if vec is None or len(vec["sum"]) != len(vector):
            vec = profile["vec"] = {"w": 0.0, "sum": [0.0] * len(vector)}
        vec["w"] += w
        vec["sum"] = [s + w * x for s, x in zip(vec["sum"], vector, strict=True)]
    recent = [r for r in profile["recent"] if r[0] != event.product_id]
    recent.append([event.product_id, event.timestamp])
    recent.sort(key=lambda r: (-r[1], r[0]))
    profile["recent"] = recent[: cfg.recent_max]
    return profile


def normalise_query(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower())


@dataclass
class FoldResult:
    """What one batch changes: whole profiles, plus additive statistics."""

    profiles: dict[str, Profile] = field(default_factory=dict)
    stats: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(product_id, field) → increment; fields: impressions, views, clicks, carts, purchases."""
    query_stats: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    """(normalised query, product_id, field) → increment."""
    queries: dict[str, str] = field(default_factory=dict)
    """query_id → normalised query text, from this batch's search events."""
    applied: int = 0
    quarantined: list[tuple[int, str]] = field(default_factory=list)
    """(position in the batch, error) of each event left out because it cannot be folded."""
    behaviour: BehaviourStats = field(default_factory=BehaviourStats)
    """Session co-occurrence and trending additions (`shoprank.profiles.cooccur`)."""


STAT_FIELD = {"view": "views", "click": "clicks", "add_to_cart": "carts", "purchase": "purchases"}


def fold_batch(
    events: Sequence[Event],
    *,
    profiles: Mapping[str, Profile | None],
    queries: Mapping[str, str],
    lookup: ProductLookup | None,
    cfg: FoldConfig,
    trending_epoch: int | None = None,
) -> FoldResult:
    """Fold `events` (in log order) into copies of `profiles` (the stored ones, by subject);
    `trending_epoch` is the store's (see `shoprank.profiles.cooccur`)."""
    import copy

    def start(subject: str, t: float) -> Profile:
        stored = profiles.get(subject)
        return repair(copy.deepcopy(stored)) if stored else new_profile(subject, t)

    result = FoldResult(behaviour=BehaviourStats(epoch=trending_epoch))
    wanted = sorted({e.product_id for e in events if e.product_id and e.type in INTERACTIONS})
    facts = dict(lookup(wanted)) if lookup and wanted else {}
    folded: dict[str, list[Event]] = {}  # per subject, this batch's events folded so far
    for position, event in enumerate(events):
        subject = event.subject
        profile = result.profiles.get(subject)
        if profile is None:
            profile = result.profiles[subject] = start(subject, event.timestamp)
        try:
            check_event(event)
            fold_event(profile, event, facts.get(event.product_id or ""), cfg)
        except Exception as exc:  # noqa: BLE001 - any bad event is isolated, never fatal
            result.quarantined.append((position, f"{type(exc).__name__}: {exc}"[:1000]))
            done = folded.get(subject, [])
            if not done and not profiles.get(subject):
                del result.profiles[subject]  # the subject has nothing but this event
                continue
            # Fold the subject again without it: as if the log never had it.
            profile = start(subject, done[0].timestamp if done else event.timestamp)
            for earlier in done:
                fold_event(profile, earlier, facts.get(earlier.product_id or ""), cfg)
                track_session(profile, earlier, cfg)  # its statistics are counted already
            result.profiles[subject] = profile
            continue
        folded.setdefault(subject, []).append(event)
        result.behaviour.observe(profile, event, cfg)
        result.applied += 1
        if event.type == "search":
            query = normalise_query(event.query) if event.query else None
            if event.query_id and query:
                result.queries[event.query_id] = query
            for pid in dict.fromkeys(event.product_ids):
                result.stats[(pid, "impressions")] += 1
                if query:
                    result.query_stats[(query, pid, "impressions")] += 1
            continue
        assert event.product_id is not None
        name = STAT_FIELD[event.type]
        amount = (event.quantity or 1) if event.type == "purchase" else 1
        result.stats[(event.product_id, name)] += amount
        if event.query_id:
            query = result.queries.get(event.query_id) or queries.get(event.query_id)
            if query:
                result.query_stats[(query, event.product_id, name)] += amount
    return result


def smoothed_ctr(
    clicks: float, impressions: float, *, prior_clicks: float, prior_n: float
) -> float:
    """Beta-smoothed click-through rate: (clicks + a) / (impressions + n)."""
    return (clicks + prior_clicks) / (max(impressions, clicks) + prior_n)


def snapshot(profile: Profile, now: float, cfg: FoldConfig) -> dict[str, Any]:
    """A read-path view of a stored profile: every quantity decayed to `now`."""
    dt = max(0.0, now - profile["t"])
    kind = profile["kind"]
    aff: dict[str, dict[str, float]] = {}
    for facet, values in profile["aff"].items():
        f = _decay(dt, cfg.half_life(facet, kind))
        ranked = sorted(values.items(), key=lambda kv: (-kv[1], kv[0]))
        aff[facet] = {v: s * f for v, s in ranked}
    fixed = repair({"price": profile["price"], "vec": profile["vec"]})  # a copy: read only
    band, vec = fixed["price"], fixed["vec"]
    return {
        "kind": kind,
        "first_seen": profile["first"],
        "last_seen": profile["last"],
        "counts": dict(profile["counts"]),
        "affinities": aff,
        "price": {
            "mean": band["mean"] if band["w"] else None,
            "std": math.sqrt(max(band["var"], 0.0)) if band["w"] else None,
            "weight": band["w"] * _decay(dt, cfg.half_life("price", kind)),
        },
        "recent_products": [r[0] for r in profile["recent"]],
        "vector": [x / vec["w"] for x in vec["sum"]] if vec and vec["w"] > 0 else None,
    }
