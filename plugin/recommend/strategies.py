"""`similar`, `bought_together` and `trending` (`for_you` is in `personal`), and the
popularity and complementary-content fallbacks they share. Each returns an `Outcome` whose
picks already passed the client's filters and `exclude` (`Ask.keep`)."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from shoprank.indexing.mapping import IMAGE_VECTOR_FIELD
from shoprank.plugin.recommend.behaviour import (
    MIN_TRENDING,
    coview_similarity,
    is_substitute,
    popularity,
    shrunk_lift,
    similar_behaviour_weight,
    together_score,
)
from shoprank.plugin.recommend.catalog import category_clause, category_of, levels_of, normalise
from shoprank.plugin.recommend.context import Ask, Outcome, Pick

# `similar`: how text and image neighbours blend, and the boosts for sharing the anchor's
# category path and brand.
TEXT_WEIGHT = 0.8
IMAGE_WEIGHT = 0.2
CATEGORY_BOOST = 0.3
BRAND_BOOST = 0.05
# Complementary content (bought_together cold start): closeness vs popularity.
COMPLEMENT_CONTENT_WEIGHT = 0.8


def cosine(knn_score: float) -> float:
    """ES kNN scores of cosine fields are (1 + cos) / 2: back to a cosine, floored at 0."""
    return max(0.0, 2.0 * knn_score - 1.0)


def rank_picks(scores: Mapping[str, float], evidence: Mapping[str, dict[str, Any]]) -> list[Pick]:
    ordered = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
    return [Pick(pid, round(score, 6), dict(evidence.get(pid, {}))) for pid, score in ordered]


# -- similar ----------------------------------------------------------------------------


def similar(ask: Ask) -> Outcome:
    """Content neighbours of the product (text + image vectors under the client's filters,
    a boost for its category path and brand), blended with co-views once there are enough."""
    anchor = ask.anchors[0]
    source = ask.catalog.anchors([anchor])[anchor]
    notes: list[str] = []
    content: dict[str, float] = {}
    evidence: dict[str, dict[str, Any]] = defaultdict(dict)
    text = ask.catalog.vectors([anchor]).get(anchor)
    if text is not None:
        for rank, (pid, s) in enumerate(
            ask.catalog.knn(text, k=ask.pool, filters=ask.filters, exclude=ask.excluded), 1
        ):
            content[pid] = TEXT_WEIGHT * cosine(s)
            evidence[pid]["text"] = {"rank": rank, "cosine": round(cosine(s), 4)}
    image = ask.catalog.vectors([anchor], IMAGE_VECTOR_FIELD).get(anchor)
    if image is not None:
        hits = ask.catalog.knn(
            image,
            k=ask.pool,
            filters=ask.filters,
            exclude=ask.excluded,
            field=IMAGE_VECTOR_FIELD,
        )
        for rank, (pid, s) in enumerate(hits, 1):
            content[pid] = content.get(pid, 0.0) + IMAGE_WEIGHT * cosine(s)
            evidence[pid]["image"] = {"rank": rank, "cosine": round(cosine(s), 4)}
    if text is None and image is None:
        notes.append("similar: the product has no vectors; content is its category")
        cat = category_of(source)
        if cat:
            for pid, _ in ask.catalog.search_ids(
                [category_clause(cat), *ask.filters], size=ask.pool, exclude=ask.excluded
            ):
                content[pid] = 0.5
    coviewed = ask.behaviour.neighbours([anchor], "view").get(anchor, {})
    support = float(sum(coviewed.values()))
    weight = similar_behaviour_weight(support)
    behaviour: dict[str, float] = {}
    if weight > 0:
        sessions = ask.behaviour.sessions([anchor, *coviewed], "view")
        behaviour = normalise(coview_similarity(anchor, coviewed, sessions))
        notes.append(
            f"similar: co-views blended in at weight {weight:.2f} ({support:.0f} co-view sessions)"
        )
    elif coviewed:
        notes.append(f"similar: too few co-views to blend in ({support:.0f} sessions)")
    kept = ask.keep([*content, *behaviour])
    levels = set(levels_of(source))
    brand = source.get("brand")
    scores: dict[str, float] = {}
    for pid in kept:
        other = ask.hits[pid].source
        shared = len(levels & set(levels_of(other))) / len(levels) if levels else 0.0
        # Squared: the leaf matters most (a laptop bag shares 2 of a laptop's 3 levels, yet
        # is no substitute for it); a sibling leaf keeps under half the boost.
        boost = CATEGORY_BOOST * shared * shared
        if brand is not None and other.get("brand") == brand:
            boost += BRAND_BOOST
            evidence[pid]["same_brand"] = True
        if shared:
            evidence[pid]["shared_category_levels"] = round(shared, 3)
        if pid in behaviour:
            evidence[pid]["coview"] = {
                "sessions": coviewed.get(pid, 0.0),
                "similarity": round(behaviour[pid], 4),
            }
        scores[pid] = (1 - weight) * content.get(pid, 0.0) + weight * behaviour.get(pid, 0.0)
        scores[pid] += boost
    return Outcome(rank_picks(scores, evidence), notes=notes)


# -- bought together ----------------------------------------------------------------------


def bought_together(ask: Ask) -> Outcome:
    """What is bought *with* the product (or the cart) more than its own rate predicts,
    summed over the cart's items, without substitutes; complementary content fills in
    (and stands in entirely when there are no co-purchases: cold start)."""
    anchors = list(ask.anchors)
    sources = ask.catalog.anchors(anchors)
    cobought = ask.behaviour.neighbours(anchors, "buy")
    scores: dict[str, float] = defaultdict(float)
    evidence: dict[str, dict[str, Any]] = defaultdict(dict)
    notes: list[str] = []
    candidates = {b for a in anchors for b in cobought.get(a, {})} - set(ask.excluded)
    if candidates:
        total = ask.behaviour.total_sessions("buy")
        n = ask.behaviour.sessions([*anchors, *candidates], "buy")
        for a in anchors:
            for b, c_ab in cobought.get(a, {}).items():
                if b not in candidates:
                    continue
                n_a, n_b = n.get(a, 0.0), n.get(b, 0.0)
                lift = shrunk_lift(c_ab, n_a, n_b, total)
                score = together_score(c_ab, n_a, n_b, total)
                evidence[b].setdefault("bought_with", {})[a] = {
                    "sessions": c_ab,
                    "expected": round(n_a * n_b / total, 4) if total else 0,
                    "lift": round(lift, 4),
                    "score": round(score, 4),
                }
                scores[b] += score
    kept = ask.keep_best(sorted(scores, key=lambda b: (-scores[b], b)))
    substitutes = _substitutes(ask, anchors, sources, kept)
    if substitutes:
        notes.append(f"bought_together: left out {len(substitutes)} substitute(s)")
    picks = rank_picks({b: scores[b] for b in kept if b not in substitutes}, evidence)
    if candidates and len(picks) < ask.size:
        # What is bought beside anything, on the same scale: the prior part of
        # `together_score` with no co-purchase seen (a few best-sellers, by their rate).
        skip = {*(p.id for p in picks), *substitutes, *candidates}
        prior = _bought_with_anything(ask, anchors, sources, skip)
        if prior:
            picks += prior[: ask.size - len(picks)]
            notes.append(
                "bought_together: too few co-purchases; what is bought with anything fills in"
            )
    if len(picks) < ask.size:
        skip_ids = [*(p.id for p in picks), *substitutes]
        fill = complementary(ask, sources, skip=skip_ids)
        if not candidates:
            notes.append(
                "bought_together: no co-purchases yet (cold start): complementary products "
                "(other categories, close in content, popular), alternating with what is "
                "bought with anything"
            )
            merged = _alternate(fill, _bought_with_anything(ask, anchors, sources, set(skip_ids)))
            return Outcome(merged, notes=notes, cold_start=True, fallback="complementary_content")
        if not picks:
            notes.append(
                "bought_together: nothing the filters let through is bought with it: "
                "complementary products instead"
            )
            return Outcome(fill, notes=notes, fallback="complementary_content")
        floor = min(p.score for p in picks)
        for pick in fill[: ask.size - len(picks)]:
            pick.score = round(floor * 0.5 * min(1.0, pick.score), 6)
            picks.append(pick)
        notes.append("bought_together: too few co-purchases; complementary products fill in")
    return Outcome(picks, notes=notes)


def _alternate(first: Sequence[Pick], second: Sequence[Pick]) -> list[Pick]:
    """One of each in turn (first's first), each product once; scores fall with the
    position, so the merged order is the page's order."""
    out: list[Pick] = []
    seen: set[str] = set()
    for pair in itertools.zip_longest(first, second):
        for pick in pair:
            if pick is not None and pick.id not in seen:
                seen.add(pick.id)
                out.append(pick)
    for rank, pick in enumerate(out, 1):
        pick.score = round(1.0 / rank, 6)
    return out


def _bought_with_anything(
    ask: Ask, anchors: Sequence[str], sources: Mapping[str, dict[str, Any]], skip: set[str]
) -> list[Pick]:
    """Recently active products never bought with the anchors, scored by `together_score`
    with no co-purchase: `m * rate_b / (n_a + m)`, discounted by the lift of seeing none."""
    pool = [
        pid
        for pid, _ in ask.behaviour.trending(ask.now, limit=max(200, ask.pool))
        if pid not in skip and pid not in ask.excluded
    ]
    if not pool:
        return []
    total = ask.behaviour.total_sessions("buy")
    n = ask.behaviour.sessions([*anchors, *pool], "buy")
    scores = {
        b: sum(together_score(0.0, n.get(a, 0.0), n[b], total) for a in anchors)
        for b in pool
        if n.get(b, 0.0) > 0
    }
    ranked = sorted(scores, key=lambda b: (-scores[b], b))[: ask.pool]
    kept = ask.keep(ranked)
    substitutes = _substitutes(ask, anchors, sources, kept)
    kept = [b for b in kept if b not in substitutes]
    evidence = {
        b: {"bought_with_anything": {"sessions": n[b], "score": round(scores[b], 4)}} for b in kept
    }
    return rank_picks({b: scores[b] for b in kept}, evidence)


def _substitutes(
    ask: Ask, anchors: Sequence[str], sources: Mapping[str, dict[str, Any]], kept: Sequence[str]
) -> set[str]:
    """The kept candidates the data shows bought instead of an anchor (`is_substitute`)."""
    if not kept:
        return set()
    coviewed = ask.behaviour.neighbours(anchors, "view")
    if not any(coviewed.values()):
        return set()
    cobought = ask.behaviour.neighbours(anchors, "buy")
    ids = [*anchors, *kept]
    views = ask.behaviour.sessions(ids, "view")
    buys = ask.behaviour.sessions(ids, "buy")
    out: set[str] = set()
    for b in kept:
        cat_b = category_of(ask.hits[b].source)
        for a in anchors:
            if is_substitute(
                same_category=cat_b is not None and cat_b == category_of(sources[a]),
                coviews=coviewed.get(a, {}).get(b, 0.0),
                cobuys=cobought.get(a, {}).get(b, 0.0),
                view_sessions=(views.get(a, 0.0), views.get(b, 0.0)),
                buy_sessions=(buys.get(a, 0.0), buys.get(b, 0.0)),
            ):
                out.add(b)
    return out


def complementary(
    ask: Ask, sources: Mapping[str, dict[str, Any]], *, skip: Sequence[str] = ()
) -> list[Pick]:
    """Products of other categories than the anchors', close to them in content and
    popular: what goes with them when behaviour cannot say."""
    cats = sorted({c for c in (category_of(s) for s in sources.values()) if c})
    clauses = [*ask.filters]
    if cats:
        clauses.append({"bool": {"must_not": [{"terms": {"category": cats}}]}})
    exclude = [*ask.excluded, *skip]
    vectors = ask.catalog.vectors(list(sources))
    closeness: dict[str, float] = {}
    if vectors:
        mean = np.mean(np.stack(list(vectors.values())), axis=0)
        found = ask.catalog.knn(mean, k=ask.pool, filters=clauses, exclude=exclude)
        closeness = {pid: cosine(s) for pid, s in found}
    else:
        found = ask.catalog.search_ids(clauses, size=ask.pool, exclude=exclude)
        closeness = {pid: 0.0 for pid, _ in found}
    counts = popularity(ask.behaviour.stats(list(closeness)), ask.settings.event_weights)
    pop = normalise({pid: math.log1p(c) for pid, c in counts.items()})
    scores: dict[str, float] = {}
    evidence: dict[str, dict[str, Any]] = {}
    for pid in ask.keep(list(closeness)):
        w = COMPLEMENT_CONTENT_WEIGHT
        scores[pid] = w * closeness[pid] + (1 - w) * pop.get(pid, 0.0)
        evidence[pid] = {
            "complementary": {
                "cosine": round(closeness[pid], 4),
                "popularity": round(pop.get(pid, 0.0), 4),
            }
        }
    return rank_picks(scores, evidence)


# -- trending and popularity ------------------------------------------------------------


def trending(ask: Ask) -> Outcome:
    """Products by decayed event velocity now (SHOPRANK_TRENDING_HALF_LIFE_DAYS), overall
    or in `category`; all-time popularity only when nothing had recent events."""
    clauses = [category_clause(ask.category)] if ask.category else []
    recent = [
        (pid, s)
        for pid, s in ask.behaviour.trending(ask.now, limit=max(200, ask.pool))
        if s >= MIN_TRENDING
    ]
    scores = dict(recent)
    kept = ask.keep_best([pid for pid, _ in recent], clauses=clauses) if recent else []
    half_life = ask.settings.trending_half_life_days
    if kept:
        evidence = {pid: {"trending": {"velocity": round(scores[pid], 4)}} for pid in kept}
        picks = rank_picks({pid: scores[pid] for pid in kept}, evidence)
        return Outcome(
            picks, notes=[f"trending: decayed event velocity, half-life {half_life:g} d"]
        )
    where = f" in [{ask.category}]" if ask.category else ""
    picks = popular(ask, clauses=clauses)
    return Outcome(
        picks,
        notes=[f"trending: no recent events{where}; all-time popularity instead"],
        cold_start=True,
        fallback="popularity",
    )


def popular(
    ask: Ask, *, clauses: Sequence[dict[str, Any]] = (), skip: Sequence[str] = ()
) -> list[Pick]:
    """All-time popularity (event counts weighted like SHOPRANK_EVENT_WEIGHTS) among the
    products with behaviour, then the catalog's own order for the rest of the page."""
    seen = [pid for pid, _ in ask.behaviour.trending(ask.now, limit=max(500, ask.pool))]
    pop = popularity(ask.behaviour.stats(seen), ask.settings.event_weights)
    ranked = sorted((p for p in pop if p not in set(skip)), key=lambda p: (-pop[p], p))
    kept = ask.keep_best(ranked, clauses=clauses)
    top = max((pop[p] for p in kept), default=1.0)
    picks = [
        Pick(p, round(pop[p] / top, 6), {"popularity": {"events": round(pop[p], 3)}}) for p in kept
    ]
    if len(picks) < ask.size:
        have = {p.id for p in picks} | set(skip)
        found = ask.catalog.search_ids(
            [*clauses, *ask.filters], size=ask.pool, exclude=[*ask.excluded, *have]
        )
        more = ask.keep([pid for pid, _ in found], clauses=clauses)
        for rank, pid in enumerate(more, 1):
            picks.append(Pick(pid, 0.0, {"catalog": {"rank": rank}}))
    return picks
