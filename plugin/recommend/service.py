"""`RecommendService`: the four strategies behind `POST /_shoprank/recommend`, answered in
the ES hits shape and logged to the search log (surface `recommend`) with a fresh `rec_id`.

A request runs its strategy (`strategies`, `personal`) over the backend (`catalog`: kNN
legs and filter searches under the client's filters) and the behaviour statistics
(`behaviour`), keeps what the filters and `exclude` let through, applies the diversity the
request or SHOPRANK_DIVERSITY asks for, and cuts the page to `size`. `strategy_ids` is the
same computation for the offline evaluation: ids and scores, nothing logged.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from shoprank import logs
from shoprank.plugin.recommend.behaviour import Behaviour, RecommendReads
from shoprank.plugin.recommend.catalog import Catalog
from shoprank.plugin.recommend.context import Ask, Outcome, Pick
from shoprank.plugin.recommend.parse import (
    RecommendRequest,
    as_tuple,
    check_strategy,
    parse_recommend,
)
from shoprank.plugin.recommend.personal import for_you
from shoprank.plugin.recommend.strategies import bought_together, similar, trending
from shoprank.plugin.search import SearchService
from shoprank.rerankers.diversity import DiversitySpec, diversify, parse_diversity
from shoprank.searchlog.record import SearchRecord, WindowItem
from shoprank.settings import Settings

Strategy = Callable[[Ask], Outcome]
STRATEGY_FUNCTIONS: dict[str, Strategy] = {
    "similar": similar,
    "bought_together": bought_together,
    "for_you": for_you,
    "trending": trending,
}


class RecommendService:
    """Recommendations over one `SearchService`'s backend and rankers; thread-safe."""

    def __init__(
        self,
        search: SearchService,
        reads: RecommendReads | None,
        settings: Settings | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.search = search
        self.reads = reads
        self.settings = settings or search.settings
        self.clock = clock

    # -- the API --------------------------------------------------------------------------

    def recommend(
        self,
        body: dict[str, Any] | None,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
        now: float | None = None,
    ) -> dict[str, Any]:
        """The ES-shaped answer to one request body (400 naming the bad key, 404 for an
        unknown anchor product)."""
        started = time.perf_counter()
        request = parse_recommend(
            body, settings=self.settings, user_id=user_id, session_id=session_id
        )
        spec = parse_diversity(request.diversity, self.settings, where="diversity")
        ask = self._ask(request, now=self.clock() if now is None else now)
        outcome, page = self._run(ask, request.strategy, spec)
        rec_id = uuid.uuid4().hex
        hits = [self._hit(ask, request, pick) for pick in page]
        took = int((time.perf_counter() - started) * 1000)
        info: dict[str, Any] = {"rec_id": rec_id, "strategy": request.strategy}
        if outcome.cold_start:
            info["cold_start"] = True
        if outcome.fallback:
            info["fallback"] = outcome.fallback
        if spec.enabled:
            info["diversity"] = spec.to_dict()
        if outcome.model_version:
            info["model_version"] = outcome.model_version
        if ask.degraded:
            info["degraded"] = list(ask.degraded)
        if request.explain:
            info["notes"] = list(outcome.notes)
            info["candidates"] = len(outcome.picks)
        self._log(request, ask, outcome, page, rec_id=rec_id, took_ms=took)
        logs.note(query_id=rec_id)
        return {
            "took": took,
            "timed_out": False,
            "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
            "hits": {
                "total": {"value": len(hits), "relation": "eq"},
                "max_score": max((h["_score"] for h in hits), default=None),
                "hits": hits,
            },
            "_shoprank": info,
        }

    def strategy_ids(
        self,
        strategy: str,
        *,
        index: str,
        product_ids: Sequence[str] = (),
        user_id: str | None = None,
        session_id: str | None = None,
        category: str | None = None,
        filters: Sequence[dict[str, Any]] = (),
        exclude: Sequence[str] = (),
        size: int = 10,
        now: float | None = None,
        diversity: Any = None,
    ) -> list[tuple[str, float]]:
        """The ranked (id, score) page of one strategy, as `recommend` computes it, without
        logging (the offline evaluation's entry point)."""
        check_strategy(strategy)
        request = RecommendRequest(
            strategy=strategy,
            index=index,
            product_ids=as_tuple(product_ids),
            user_id=user_id,
            session_id=session_id,
            category=category,
            filters=tuple(filters),
            exclude=as_tuple(exclude),
            size=size,
        )
        spec = parse_diversity(diversity, self.settings, where="diversity")
        ask = self._ask(request, now=self.clock() if now is None else now)
        _, page = self._run(ask, strategy, spec)
        return [(p.id, p.score) for p in page]

    # -- the work -------------------------------------------------------------------------

    def _ask(self, request: RecommendRequest, *, now: float) -> Ask:
        degraded: list[str] = []
        return Ask(
            service=self.search,
            catalog=Catalog(
                self.search.backend,
                request.index,
                candidates_factor=self.settings.knn_candidates_factor,
            ),
            behaviour=Behaviour(self.reads, degraded),
            settings=self.settings,
            now=now,
            anchors=request.product_ids,
            user_id=request.user_id,
            session_id=request.session_id,
            category=request.category,
            filters=request.filters,
            exclude=request.exclude,
            size=request.size,
            explain=request.explain,
            degraded=degraded,
        )

    def _run(self, ask: Ask, strategy: str, spec: DiversitySpec) -> tuple[Outcome, list[Pick]]:
        outcome = STRATEGY_FUNCTIONS[strategy](ask)
        picks = [p for p in outcome.picks if p.id in ask.hits]
        if spec.enabled and len(picks) > 1:
            picks = self._diversify(ask, picks, spec)
        return outcome, picks[: ask.size]

    def _diversify(self, ask: Ask, picks: list[Pick], spec: DiversitySpec) -> list[Pick]:
        ranked = [(p.id, p.score) for p in picks]
        try:
            if spec.type == "mmr":
                vectors = ask.catalog.vectors([p.id for p in picks])
                order = diversify(ranked, spec, size=ask.size, vectors=vectors)
            else:
                facts = {p.id: ask.hits[p.id].source for p in picks}
                order = diversify(ranked, spec, size=ask.size, facts=facts)
        except Exception as exc:  # noqa: BLE001 - diversity is optional: keep the order
            ask.degraded.append(f"{spec.stage}: error: {type(exc).__name__}")
            return picks
        by_id = {p.id: p for p in picks}
        return [by_id[pid] for pid, _ in order]

    @staticmethod
    def _hit(ask: Ask, request: RecommendRequest, pick: Pick) -> dict[str, Any]:
        found = ask.hits[pick.id]
        hit: dict[str, Any] = {
            "_index": found.index,
            "_id": pick.id,
            "_score": pick.score,
            "_source": found.source,
        }
        if request.explain:
            hit["_shoprank"] = {"strategy": request.strategy, "sources": pick.sources}
        return hit

    def _log(
        self,
        request: RecommendRequest,
        ask: Ask,
        outcome: Outcome,
        page: Sequence[Pick],
        *,
        rec_id: str,
        took_ms: int,
    ) -> None:
        """The list to the search log (and, with a shopper, to the behaviour log as its
        impressions), under its `rec_id`; never fails the request."""
        logger = self.search.search_logger
        if logger is None:
            return
        before = {p.id: rank for rank, p in enumerate(outcome.picks, 1)}
        record = SearchRecord(
            index=request.index,
            query=None,
            mode="recommend",
            user_id=request.user_id,
            session_id=request.session_id,
            query_id=rec_id,
            model_version=outcome.model_version,
            timings_ms={"total": float(took_ms)},
            total_hits=len(page),
            window=[
                WindowItem(p.id, before.get(p.id, rank), rank, float(p.score), p.features)
                for rank, p in enumerate(page, 1)
            ],
            degraded=list(ask.degraded),
            surface="recommend",
            strategy=request.strategy,
        )
        logger.log(record)


def recommend_service(search: SearchService, reads: Any = None) -> RecommendService:
    """The service over `search`, reading behaviour from `reads` or, when none is given,
    from the profiles the learned ranker reads (None when they lack the statistics)."""
    if reads is None:
        from shoprank.plugin.recommend.personal import learned_ranker
        from shoprank.rerankers.ltr.reranker import LearnedRanker

        ranker = learned_ranker(search.rerankers)
        if isinstance(ranker, LearnedRanker):
            reads = ranker.source.profiles
    return RecommendService(search, reads if isinstance(reads, RecommendReads) else None)
