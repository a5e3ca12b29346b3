"""`for_you`: candidates from the shopper's profile, ranked by the learned ranker.

What a shopper buys next is mostly about what they were just doing: another product of
the category they are browsing, something bought with what they just bought, or a
best-seller. The candidates' blend says so:

- `recent`: the co-viewed and co-bought neighbours of the recently seen products, each
  anchor's neighbours normalised to its strongest (so a much-viewed anchor does not drown
  the others), halving with every step back in the shopper's history
  (`RECENT_DECAY`), co-purchases weighted over co-views (`RECENT_WEIGHTS`);
- `trending`: what is trending now, by rank (`1 / (1 + rank)`);
- `vector` and `affinity`: the user vector's kNN neighbours and filter searches of the top
  category and brand affinities, at lower weights (long-term taste), searched only when
  the recent history gives fewer than `Ask.pool` neighbours: they carry the page when
  there is little recent history.

Weights (`SOURCE_WEIGHTS`) were chosen on the recommendation simulator's held-out next
purchases (seed 0; checked on seeds 1 and 2, `benchmarks/bench_recommend.py`). Only the
best `Ask.pool` of the blend are checked against the client's filters and ranked: the
learned ranker (`RerankContext(surface="recommend")`, the same feature registry as
search) orders them, and when it fails or is late the blend's order stands (noted under
`degraded`). A shopper with no profile gets trending products and popular content
instead (`cold_start`).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from shoprank.plugin.recommend.behaviour import MIN_TRENDING, Kind
from shoprank.plugin.recommend.catalog import category_clause
from shoprank.plugin.recommend.context import Ask, Outcome, Pick
from shoprank.plugin.recommend.strategies import cosine, popular, rank_picks
from shoprank.rerankers.protocol import RANKER_NAME, Candidate, RerankContext, Reranker

SOURCE_WEIGHTS = {"recent": 1.0, "trending": 1.0, "vector": 0.3, "affinity": 0.2}
RECENT_WEIGHTS: dict[Kind, float] = {"view": 0.4, "buy": 2.0}
RECENT_DECAY = 0.5
TRENDING_CANDIDATES = 200
TOP_CATEGORIES = 3
TOP_BRANDS = 3
RECENT_ITEMS = 5


def top_categories(affinities: Mapping[str, float], n: int = TOP_CATEGORIES) -> list[str]:
    """The shopper's strongest category paths, deepest first among equals, leaving out a
    path's ancestors once the path is chosen (every level of a product gets the same
    credit, so "Electronics" would otherwise always win)."""
    ordered = sorted(affinities.items(), key=lambda kv: (-kv[1], -kv[0].count(">"), kv[0]))
    chosen: list[str] = []
    for value, weight in ordered:
        if weight <= 0:
            continue
        if any(c.startswith(value + " >") for c in chosen):
            continue
        chosen.append(value)
        if len(chosen) == n:
            break
    return chosen


def _top(values: Mapping[str, float], n: int) -> list[str]:
    ordered = sorted(values.items(), key=lambda kv: (-kv[1], kv[0]))
    return [v for v, w in ordered[:n] if w > 0]


def recent_neighbours(ask: Ask, recent: Sequence[str]) -> dict[str, float]:
    """Co-viewed and co-bought neighbours of `recent` (newest first): per anchor divided by
    its strongest neighbour, times `RECENT_DECAY ** position` and the kind's weight."""
    out: dict[str, float] = defaultdict(float)
    position = {pid: i for i, pid in enumerate(recent)}
    for kind, weight in RECENT_WEIGHTS.items():
        found = ask.behaviour.neighbours(list(recent), kind)
        for anchor, counts in found.items():
            top = max(counts.values(), default=0.0)
            if top <= 0 or anchor not in position:
                continue
            scale = weight * RECENT_DECAY ** position[anchor] / top
            for pid, count in counts.items():
                out[pid] += scale * count
    return dict(out)


def for_you(ask: Ask) -> Outcome:
    profile = ask.behaviour.profile(ask.user_id, ask.session_id, ask.now)
    if not profile:
        return _cold_start(ask)
    sources: dict[str, dict[str, float]] = defaultdict(dict)
    legs: dict[str, dict[str, tuple[int, float]]] = defaultdict(dict)
    recent = [str(p) for p in (profile.get("recent_products") or [])[:RECENT_ITEMS]]
    sources["recent"] = recent_neighbours(ask, recent)
    affinities = profile.get("affinities") or {}
    cats = top_categories(affinities.get("category") or {})
    brands = _top(affinities.get("brand") or {}, TOP_BRANDS)
    vector = profile.get("vector")
    # Long-term taste (the user vector's neighbours, the top affinities) fills the
    # candidates when the recent history cannot. Beside a full pool of recent neighbours
    # it only pushed them down: hit-rate@10 on the simulator's held-out purchases, seeds
    # 0-2, 0.452 / 0.494 / 0.483 always searched, 0.455 / 0.510 / 0.506 searched only
    # here; and it cost two thirds of the strategy's backend searches.
    if len(sources["recent"]) < ask.pool:
        if vector:
            found = ask.catalog.knn(vector, k=ask.pool, filters=ask.filters, exclude=ask.excluded)
            for rank, (pid, s) in enumerate(found, 1):
                sources["vector"][pid] = cosine(s)
                legs[pid]["vector"] = (rank, s)
        _affinity(ask, sources["affinity"], affinities, cats, brands)
    trend = ask.behaviour.trending(ask.now, limit=TRENDING_CANDIDATES)
    sources["trending"] = {
        pid: 1.0 / (1 + rank) for rank, (pid, s) in enumerate(trend) if s >= MIN_TRENDING
    }
    blended: dict[str, float] = defaultdict(float)
    evidence: dict[str, dict[str, Any]] = defaultdict(dict)
    for name, scores in sources.items():
        # recent and trending are on their own scales already; the others are shares of
        # their best candidate.
        top = 1.0 if name in ("recent", "trending") else max(scores.values(), default=0.0)
        for pid, s in scores.items():
            share = s / top if top > 0 else 0.0
            blended[pid] += SOURCE_WEIGHTS[name] * share
            evidence[pid][name] = round(share, 4)
    kept = ask.keep_best(sorted(blended, key=lambda p: (-blended[p], p)))
    if not kept:
        return _cold_start(ask, note="for_you: the profile found nothing the filters let through")
    picks = rank_picks({p: blended[p] for p in kept}, evidence)
    notes = [f"for_you: categories {cats}, brands {brands}"] if cats or brands else []
    ranked, version = rank_with_model(ask, picks, legs)
    return Outcome(ranked, notes=notes, model_version=version)


def _affinity(
    ask: Ask,
    out: dict[str, float],
    affinities: Mapping[str, Mapping[str, float]],
    cats: Sequence[str],
    brands: Sequence[str],
) -> None:
    """Filter searches of the top category paths and brands, scored by the affinity."""
    per = max(10, ask.pool // max(1, len(cats) + len(brands)))
    wanted = [("category", c, category_clause(c)) for c in cats]
    wanted += [("brand", b, {"term": {"brand": b}}) for b in brands]
    for facet, value, clause in wanted:
        weight = float((affinities.get(facet) or {}).get(value, 0.0))
        found = ask.catalog.search_ids([clause, *ask.filters], size=per, exclude=ask.excluded)
        for pid, _ in found:
            out[pid] = out.get(pid, 0.0) + weight


def _cold_start(ask: Ask, *, note: str | None = None) -> Outcome:
    """No profile: what is trending, then popular content."""
    trend = [
        (p, s)
        for p, s in ask.behaviour.trending(ask.now, limit=max(200, ask.pool))
        if s >= MIN_TRENDING
    ]
    kept = ask.keep_best([p for p, _ in trend])
    scores = dict(trend)
    picks = [Pick(p, round(scores[p], 6), {"trending": round(scores[p], 4)}) for p in kept]
    if len(picks) < ask.size:
        floor = min((p.score for p in picks), default=1.0)
        for pick in popular(ask, skip=[p.id for p in picks]):
            pick.score = round(floor * 0.5 * pick.score, 6)
            picks.append(pick)
    return Outcome(
        picks,
        notes=[note or "for_you: no profile yet (cold start): trending and popular products"],
        cold_start=True,
        fallback="trending+popularity",
    )


def learned_ranker(rerankers: Sequence[Reranker]) -> Reranker | None:
    for reranker in rerankers:
        if reranker.name == RANKER_NAME:
            return reranker
    return None


def rank_with_model(
    ask: Ask, picks: list[Pick], legs: Mapping[str, dict[str, tuple[int, float]]]
) -> tuple[list[Pick], str | None]:
    """The picks in the learned ranker's order (its features from the same registry as
    search, `surface="recommend"`), or in their own order when it fails or is late."""
    ranker = learned_ranker(ask.service.rerankers)
    if ranker is None or not picks:
        return picks, None
    candidates = [
        Candidate(p.id, p.score, legs=dict(legs.get(p.id, {})), retrieval_rank=rank)
        for rank, p in enumerate(picks, 1)
    ]
    context = RerankContext(
        index=ask.catalog.index,
        query_text=None,
        user_id=ask.user_id,
        body={"size": ask.size},
        session_id=ask.session_id,
        explain=ask.explain,
        deadline=time.perf_counter() + ask.settings.search_budget_ms / 1000.0,
        surface="recommend",
    )
    notes: list[str] = []
    try:
        ranked = ask.service.stages.rerank(ranker, context, candidates, notes=notes)
    except Exception as exc:  # noqa: BLE001 - a ranker failure never fails a recommendation
        ranked = None
        notes.append(f"rerank: error: {type(exc).__name__}")
    notes += context.info.pop("degraded", [])
    ask.degraded.extend(n for n in notes if n not in ask.degraded)
    if ranked is None:
        return picks, None
    by_id = {p.id: p for p in picks}
    out = []
    for cand in ranked:
        pick = by_id[cand.id]
        pick.sources["blend"] = pick.score
        pick.score = round(float(cand.score), 6)
        pick.features = dict(cand.features) if cand.features else None
        if ask.explain and cand.contributions:
            pick.sources["ranker"] = dict(cand.contributions)
        out.append(pick)
    version = context.info.get("model_version")
    return out, str(version) if version else None
