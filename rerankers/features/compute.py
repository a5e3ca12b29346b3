"""Computing the registry's features for every (query, user, product) of a window.

`compute_features` is a pure function of what the ranker fetched (product facts, vectors,
profiles, statistics, intent), so each feature can be checked on a hand-built case;
`FeatureSource` does the fetching. A missing input (no profile, no intent, no statistics,
a product without rating) gives the registry default, never an error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np

from shoprank.rerankers.protocol import Candidate

DAY = 86_400.0
#: Items the shopper engaged with count as "similar" to a product above this cosine of
#: their text vectors (MiniLM: same kind of product, often the same line).
SIMILAR_COS = 0.6
#: The log-price gap (≈ a factor of 1.4) that counts as one standard deviation of fit.
SIM_PRICE_SD = 0.35
FACT_FIELDS = [
    "brand",
    "category",
    "category_levels",
    "price",
    "colour",
    "color",
    "rating",
    "review_count",
    "released",
    "in_stock",
]


@dataclass
class Inputs:
    """Everything the features of one window are computed from (all optional)."""

    facts: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    vectors: Mapping[str, np.ndarray] = field(default_factory=dict)
    user: Mapping[str, Any] | None = None
    session: Mapping[str, Any] | None = None
    stats: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    query_stats: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    intent: Any = None
    prior_ctr: float = 0.05
    now: float = 0.0


def _levels(fact: Mapping[str, Any]) -> list[str]:
    raw = fact.get("category_levels") or fact.get("category")
    if raw is None:
        return []
    if isinstance(raw, list | tuple):
        return [str(v) for v in raw if v]
    return [str(raw)]


def _norm(value: Any) -> str:
    return str(value).strip().casefold()


def _share(profile: Mapping[str, Any] | None, facet: str, values: Sequence[str]) -> float:
    """Share of a profile's (decayed) affinity for `facet` that falls on `values`.

    Every value of a facet decays with the same half-life, so the share is the same at any
    time: the stored (undecayed) weights need no decay here."""
    if not profile or not values:
        return 0.0
    scores = (profile.get("aff") or {}).get(facet) or {}
    total = sum(scores.values())
    if total <= 0:
        return 0.0
    return float(min(1.0, sum(scores.get(v, 0.0) for v in values) / total))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _years_since(released: Any, now: float) -> float | None:
    if not isinstance(released, str):
        return None
    try:
        day = date.fromisoformat(released[:10])
    except ValueError:
        return None
    today = date.fromtimestamp(now) if now else date.today()
    return max(0.0, (today - day).days / 365.25)


class _Profile:
    """What the features need from a stored profile, read once per window."""

    def __init__(self, profile: Mapping[str, Any] | None, now: float) -> None:
        self.profile = profile
        self.recent: dict[str, float] = {}
        self.vector: np.ndarray | None = None
        self.price: tuple[float, float] | None = None
        if not profile:
            return
        for pid, ts in profile.get("recent") or []:
            self.recent.setdefault(str(pid), float(ts))
        vec = profile.get("vec")
        if vec and vec.get("w", 0) > 0:
            v = np.asarray(vec["sum"], dtype=np.float32)
            n = float(np.linalg.norm(v))
            self.vector = v / n if n > 0 else None
        band = profile.get("price") or {}
        if band.get("w", 0) > 0:
            mean = float(band["mean"])
            std = max(math.sqrt(max(float(band.get("var", 0.0)), 0.0)), 0.15 * abs(mean), 1.0)
            self.price = (mean, std)


def _brand_weight(profile: Mapping[str, Any] | None, brand: Any) -> float:
    if not profile or brand is None:
        return 0.0
    scores = (profile.get("aff") or {}).get("brand") or {}
    return math.log1p(max(0.0, float(scores.get(str(brand), 0.0))))


def _log_price(fact: Mapping[str, Any]) -> float:
    price = _number(fact.get("price"))
    return math.log1p(price) if price is not None and price >= 0 else math.nan


def similar_features(
    candidates: Sequence[Candidate], user: Mapping[str, Any] | None, inputs: Inputs
) -> list[dict[str, float]]:
    """Per candidate, "what this shopper chose among products like this one", from the
    items of the profile's recent list that have a text vector (works on a catalog without
    categories): the highest cosine to one of them (`user_sim_max`), and, over those more
    similar than `SIMILAR_COS` (weighted by how much more), the share of its brand
    (`user_sim_brand`) and the fit of its price to theirs (`user_sim_price_fit`). One
    matrix product for the window: ~0.2 ms for 100 candidates x 50 items."""
    out: list[dict[str, float]] = [{} for _ in candidates]
    recent = [str(r[0]) for r in (user or {}).get("recent") or [] if r]
    ids = [pid for pid in dict.fromkeys(recent) if pid in inputs.vectors]
    rows = [i for i, c in enumerate(candidates) if c.id in inputs.vectors]
    if not ids or not rows:
        return out
    mine = np.stack([inputs.vectors[pid] for pid in ids]).astype(np.float32)
    theirs = np.stack([inputs.vectors[candidates[i].id] for i in rows]).astype(np.float32)
    # candidates x engaged items; einsum, not BLAS: no worker threads for a small product
    # (on a busy machine BLAS threads waiting for a core cost milliseconds)
    sims = np.einsum("ij,kj->ik", theirs, mine).astype(np.float64)
    position = {pid: j for j, pid in enumerate(ids)}
    for r, i in enumerate(rows):  # a product is not "similar" to itself
        j = position.get(candidates[i].id)
        if j is not None:
            sims[r, j] = -1.0
    if len(ids) == 1 and (sims <= -1.0).all():
        return out
    best = sims.max(axis=1)
    weights = np.clip(sims - SIMILAR_COS, 0.0, None)
    total = weights.sum(axis=1)
    facts = [inputs.facts.get(pid) or {} for pid in ids]
    codes: dict[str, int] = {}
    mine_brand = np.asarray(
        [codes.setdefault(_norm(f["brand"]), len(codes)) if f.get("brand") else -1 for f in facts]
    )
    mine_price = np.asarray([_log_price(f) for f in facts])
    priced = ~np.isnan(mine_price)
    w_price = weights * priced
    mean_price = np.divide(
        w_price @ np.nan_to_num(mine_price),
        w_price.sum(axis=1),
        out=np.full(len(rows), np.nan),
        where=w_price.sum(axis=1) > 0,
    )
    their_facts = [inputs.facts.get(candidates[i].id) or {} for i in rows]
    their_brand = np.asarray(
        [codes.get(_norm(f["brand"]), -2) if f.get("brand") else -3 for f in their_facts]
    )
    safe = np.where(total > 0, total, 1.0)
    brand_share = (weights * (their_brand[:, None] == mine_brand[None, :])).sum(axis=1) / safe
    z = (np.asarray([_log_price(f) for f in their_facts]) - mean_price) / SIM_PRICE_SD
    price_fit = np.exp(-0.5 * np.minimum(np.nan_to_num(z * z, nan=np.inf), 50.0))
    price_known = ~np.isnan(z)
    for r, i in enumerate(rows):
        if best[r] <= -1.0:
            continue
        f = out[i]
        f["user_sim_max"] = float(best[r])
        if total[r] <= 0:
            continue
        if their_brand[r] != -3:
            f["user_sim_brand"] = float(brand_share[r])
        if price_known[r]:
            f["user_sim_price_fit"] = float(price_fit[r])
    return out


_NO_FACTS: Mapping[str, Any] = {}


def compute_features(candidates: Sequence[Candidate], inputs: Inputs) -> list[dict[str, float]]:
    """The feature dict of each candidate (in order); only non-default values need be
    present, but every registry feature that applies is set."""
    intent = inputs.intent
    user = _Profile(inputs.user, inputs.now)
    session = _Profile(inputs.session, inputs.now)
    brands = {_norm(b) for b in (intent.attributes.get("brand", []) if intent else [])}
    colours = {
        _norm(c)
        for key in ("colour", "color")
        for c in (intent.attributes.get(key, []) if intent else [])
    }
    price_range = intent.price if intent is not None else None
    similar = similar_features(candidates, inputs.user, inputs) if user.profile else None
    out: list[dict[str, float]] = []
    for n, cand in enumerate(candidates):
        f: dict[str, float] = {
            "fused_score": float(cand.score),
            "retrieval_rr": 1.0 / cand.retrieval_rank if cand.retrieval_rank > 0 else 0.0,
        }
        for leg, prefix in (("lexical", "lex"), ("vector", "vec"), ("image", "img")):
            found = cand.legs.get(leg)
            if found is not None:
                rank, score = found
                if prefix != "img":
                    f[f"{prefix}_present"] = 1.0
                f[f"{prefix}_score"] = float(score)
                f[f"{prefix}_rr"] = 1.0 / rank if rank > 0 else 0.0
        fact = inputs.facts.get(cand.id) or _NO_FACTS
        if fact:
            levels = _levels(fact)
            brand = fact.get("brand")
            price = _number(fact.get("price"))
        else:  # a title-only catalog: none of the fact features below apply
            levels, brand, price = [], None, None
        if intent is not None:
            f["intent_present"] = 1.0
            if levels:
                f["intent_cat_prob"] = sum(intent.category_probability(x) for x in levels) / len(
                    levels
                )
            elif (typed := intent.type_probability(cand.id)) is not None:
                # Its own feature: the cold-start scorer's category rule does not read it
                # (weaker evidence than a shop's taxonomy), a learned ranker may.
                f["intent_type_prob"] = typed
            if brands:
                hit = brand is not None and _norm(brand) in brands
                f["intent_brand_match" if hit else "intent_brand_conflict"] = 1.0
            colour = fact.get("colour", fact.get("color"))
            if colours and colour is not None and _norm(colour) in colours:
                f["intent_colour_match"] = 1.0
            if price_range and price is not None:
                inside = price >= price_range.get("gte", -math.inf) and price <= price_range.get(
                    "lte", math.inf
                )
                f["intent_price_in" if inside else "intent_price_out"] = 1.0
        if user.profile:
            f["user_present"] = 1.0
            f["user_cat_aff"] = _share(user.profile, "category", levels)
            f["user_brand_aff"] = _share(user.profile, "brand", [str(brand)] if brand else [])
            f["user_brand_weight"] = _brand_weight(user.profile, brand)
            if user.price and price is not None:
                z = (price - user.price[0]) / user.price[1]
                f["user_price_fit"] = math.exp(-0.5 * min(z * z, 50.0))
            vector = inputs.vectors.get(cand.id)
            if user.vector is not None and vector is not None:
                f["user_vec_sim"] = float(np.dot(user.vector, vector))
            if similar is not None:
                f.update(similar[n])
            seen = user.recent.get(cand.id)
            if seen is not None:
                f["user_seen"] = 1.0
                f["user_seen_recency"] = 1.0 / (1.0 + max(0.0, inputs.now - seen) / DAY)
        if session.profile:
            f["session_cat_aff"] = _share(session.profile, "category", levels)
            f["session_brand_aff"] = _share(session.profile, "brand", [str(brand)] if brand else [])
        stats = inputs.stats.get(cand.id) or {}
        engaged = stats.get("clicks", 0.0) + stats.get("carts", 0.0) + stats.get("purchases", 0.0)
        f["prod_popularity"] = math.log1p(engaged)
        f["prod_ctr"] = float(stats.get("ctr", inputs.prior_ctr))
        qstats = inputs.query_stats.get(cand.id) or {}
        f["query_ctr"] = float(qstats.get("ctr", inputs.prior_ctr))
        f["query_clicks"] = math.log1p(qstats.get("clicks", 0.0))
        if fact:
            _fact_features(f, fact, price, inputs.now)
        out.append(f)
    return out


def _fact_features(f: dict[str, float], fact: Mapping[str, Any], price: Any, now: float) -> None:
    """The product's own features from its facts (rating, reviews, price, age, stock)."""
    rating = _number(fact.get("rating"))
    if rating is not None:
        f["rating"] = rating
    reviews = _number(fact.get("review_count"))
    if reviews is not None and reviews >= 0:
        f["log_reviews"] = math.log1p(reviews)
    if price is not None and price >= 0:
        f["log_price"] = math.log1p(price)
    years = _years_since(fact.get("released"), now)
    if years is not None:
        f["freshness"] = 1.0 / (1.0 + years)
    if isinstance(fact.get("in_stock"), bool):
        f["in_stock"] = 1.0 if fact["in_stock"] else 0.0
