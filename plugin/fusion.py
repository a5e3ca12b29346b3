"""Fusing ranked legs (lexical, kNN) into one list: reciprocal rank fusion or a normalised
linear combination. Both work on any backend because they only need ids and scores."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

Fusion = Literal["rrf", "linear"]


@dataclass
class LegHit:
    id: str
    score: float
    rank: int  # 1-based


@dataclass
class FusedHit:
    id: str
    score: float
    legs: dict[str, LegHit] = field(default_factory=dict)


def rrf(legs: Mapping[str, Sequence[LegHit]], *, k: int = 60) -> list[FusedHit]:
    """Reciprocal rank fusion: score = Σ 1 / (k + rank) over the legs that found the id."""
    fused: dict[str, FusedHit] = {}
    for leg, hits in legs.items():
        for hit in hits:
            entry = fused.setdefault(hit.id, FusedHit(hit.id, 0.0))
            entry.score += 1.0 / (k + hit.rank)
            entry.legs[leg] = hit
    return _ordered(fused)


def linear(legs: Mapping[str, Sequence[LegHit]], *, weights: dict[str, float]) -> list[FusedHit]:
    """Min-max normalise each leg's scores to [0, 1], then a weighted sum (missing = 0)."""
    fused: dict[str, FusedHit] = {}
    for leg, hits in legs.items():
        if not hits:
            continue
        scores = [h.score for h in hits]
        lo, hi = min(scores), max(scores)
        span = hi - lo
        weight = weights.get(leg, 1.0)
        for hit in hits:
            norm = (hit.score - lo) / span if span > 0 else 1.0
            entry = fused.setdefault(hit.id, FusedHit(hit.id, 0.0))
            entry.score += weight * norm
            entry.legs[leg] = hit
    return _ordered(fused)


def _ordered(fused: dict[str, FusedHit]) -> list[FusedHit]:
    # Ties keep first-seen order (lexical leg first), so results are deterministic.
    order = {hid: i for i, hid in enumerate(fused)}
    return sorted(fused.values(), key=lambda h: (-h.score, order[h.id]))


def fuse(
    legs: Mapping[str, Sequence[LegHit]],
    *,
    method: Fusion,
    rrf_k: int = 60,
    vector_weight: float = 0.5,
) -> list[FusedHit]:
    present = {leg: hits for leg, hits in legs.items() if hits}
    if len(present) == 1:
        # One leg found anything: keep its own scores (fusion would only flatten them).
        ((leg, hits),) = present.items()
        return [FusedHit(h.id, h.score, {leg: h}) for h in hits]
    if method == "rrf":
        return rrf(legs, k=rrf_k)
    weights = {leg: (vector_weight if leg != "lexical" else 1.0 - vector_weight) for leg in legs}
    return linear(legs, weights=weights)
