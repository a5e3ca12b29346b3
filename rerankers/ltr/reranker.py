"""The learned, personalised ranker as a `full`-mode reranking stage.

Per search: fetch inputs (facts, profiles, statistics) → compute the registry features →
score with the live model (ONNX, or the default scorer before one is trained) → reorder.
The live model is reloaded when `registry.json` changes. Past its budget (CPU time:
`SHOPRANK_RERANK_TIMEOUT_MS`; wall time: `SHOPRANK_RERANK_WALL_TIMEOUT_MS` or the request's
deadline) or on any error the retrieval order comes back, counted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from shoprank.metrics import degrade
from shoprank.rerankers.features.compute import compute_features
from shoprank.rerankers.features.registry import FEATURE_NAMES, REGISTRY_VERSION, vectorise
from shoprank.rerankers.features.source import FeatureSource
from shoprank.rerankers.ltr.registry import ModelRegistry
from shoprank.rerankers.ltr.scorers import (
    DEFAULT_RECOMMEND_WEIGHTS,
    DEFAULT_VERSION,
    DefaultScorer,
    LinearScorer,
    OnnxScorer,
    Scorer,
)
from shoprank.rerankers.protocol import RANKER_NAME, Candidate, RerankContext

log = logging.getLogger("shoprank.ranker")
RELOAD_CHECK_S = 1.0
MAX_PINNED = 4


class RankerTimeoutError(Exception):
    pass


def load_scorer(registry: ModelRegistry) -> Scorer:
    """The live model; the default scorer when none is promoted."""
    live = registry.live()
    if not live or live == DEFAULT_VERSION:
        return DefaultScorer()
    return OnnxScorer(registry.path(live))


class LearnedRanker:
    name = RANKER_NAME

    def __init__(
        self,
        *,
        model_dir: Path,
        source: FeatureSource,
        timeout_ms: float = 25.0,
        wall_timeout_ms: float = 250.0,
        cpu_clock: Callable[[], float] = time.thread_time,
        wall_clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.registry = ModelRegistry(model_dir)
        self.source = source
        # The budget is CPU time of the thread the ranker runs on: a busy machine stretches
        # the wall time of the same work (waiting for a core, for the GIL), not its CPU time,
        # so whether the ranker applies does not depend on the machine's load. The wall
        # clock bounds what CPU time cannot see (a slow store) at `wall_timeout_ms`, and
        # the search's own deadline still applies.
        self.timeout_s = timeout_ms / 1000.0
        self.wall_timeout_s = max(wall_timeout_ms, timeout_ms) / 1000.0
        self._cpu = cpu_clock
        self._wall = wall_clock
        self._scorer: Scorer | None = None
        self._stamp: float | None = None
        self._checked = 0.0
        self._lock = threading.Lock()
        # Scorers of versions an experiment serves beside the live one, by version.
        self._pinned: dict[str, Scorer] = {}
        # The cold-start scorer's weights for recommendation lists (same version).
        self._recommend_default = LinearScorer(DEFAULT_RECOMMEND_WEIGHTS)

    def scorer(self) -> Scorer:
        """The live scorer. The registry is checked at most once a second; a changed one is
        loaded in the background while the current model keeps serving (only the very
        first load happens in line, normally from `warm_up`). A model that fails to load
        leaves the previous one serving."""
        now = time.monotonic()
        current = self._scorer
        if current is not None and now - self._checked < RELOAD_CHECK_S:
            return current
        with self._lock:
            self._checked = now
            try:
                stamp: float | None = self.registry.file.stat().st_mtime
            except FileNotFoundError:
                stamp = None
            if self._scorer is None:
                self._load(stamp)
            elif stamp != self._stamp:
                self._stamp = stamp  # one reload per change
                threading.Thread(
                    target=self._load, args=(stamp,), name="ranker-reload", daemon=True
                ).start()
            assert self._scorer is not None
            return self._scorer

    def scorer_for(self, version: str | None) -> Scorer:
        """The scorer of `version` (an experiment arm's ranker); the live one for None or
        "live". A pinned version loads once per process and stays (an experiment has two
        arms, so few are ever held); one that cannot load raises, and the search keeps
        its retrieval order, reported degraded."""
        if version is None or version == "live":
            return self.scorer()
        live = self.scorer()
        if live.version == version:
            return live
        found = self._pinned.get(version)
        if found is None:
            with self._lock:
                found = self._pinned.get(version)
                if found is None:
                    if version == DEFAULT_VERSION:
                        found = DefaultScorer()
                    else:
                        self.registry.meta(version)  # a clear error for an unknown version
                        found = OnnxScorer(self.registry.path(version))
                    if len(self._pinned) >= MAX_PINNED:
                        self._pinned.pop(next(iter(self._pinned)))
                    self._pinned[version] = found
        return found

    def _load(self, stamp: float | None) -> None:
        try:
            scorer = load_scorer(self.registry)
            scorer.score(np.zeros((1, len(FEATURE_NAMES)), dtype=np.float32))  # warm
            self._scorer = scorer
            log.info("ranker model %s loaded", scorer.version)
        except Exception:
            log.exception("ranker model failed to load; keeping the previous one")
            if self._scorer is None:
                self._scorer = DefaultScorer()
        self._stamp = stamp

    def warm_up(self) -> None:
        """Load the live model and open the stores now rather than on the first search."""
        self.scorer()
        try:
            self.source.warm_up()
        except Exception:  # noqa: BLE001 - a store that is down degrades per search later
            log.warning("ranker feature sources not reachable at start", exc_info=True)

    def rerank(self, context: RerankContext, candidates: list[Candidate]) -> list[Candidate]:
        if not candidates:
            return candidates
        started, cpu_started = self._wall(), self._cpu()
        deadline = started + self.wall_timeout_s
        if context.deadline is not None:
            deadline = min(deadline, context.deadline)

        def late() -> bool:
            return self._cpu() - cpu_started > self.timeout_s or self._wall() > deadline

        notes: list[str] = context.info.setdefault("degraded", [])
        try:
            scorer = self.scorer_for(context.ranker_version)
            if context.surface == "recommend" and isinstance(scorer, DefaultScorer):
                scorer = self._recommend_default
            context.info["model_version"] = scorer.version
            context.info["feature_registry"] = REGISTRY_VERSION
            inputs = self.source.fetch(
                index=context.index,
                ids=[c.id for c in candidates],
                query=context.query_text,
                user_id=context.user_id,
                session_id=context.session_id,
                intent=context.intent,
                degraded=notes,
            )
            features = compute_features(candidates, inputs)
            for cand, feats in zip(candidates, features, strict=True):
                cand.features = feats
            if late():
                raise RankerTimeoutError("features")
            x = vectorise(features)
            scores = scorer.score(x)
            if late():
                raise RankerTimeoutError("model")
        except RankerTimeoutError:
            degrade(notes, "rerank", "timeout")
            return candidates
        except Exception as exc:  # noqa: BLE001 - a ranker failure must never fail a search
            log.warning("ranker failed; retrieval order kept", exc_info=True)
            degrade(notes, "rerank", f"error: {type(exc).__name__}")
            return candidates
        # Stable: ties keep the retrieval order.
        order = sorted(range(len(candidates)), key=lambda i: (-float(scores[i]), i))
        ranked = []
        for i in order:
            cand = candidates[i]
            cand.score = float(scores[i])
            ranked.append(cand)
        if context.explain:
            self._explain(context, ranked, x, order, scorer)
        return ranked

    @staticmethod
    def _explain(
        context: RerankContext,
        ranked: list[Candidate],
        x: np.ndarray,
        order: list[int],
        scorer: Scorer,
    ) -> None:
        """Contributions for the requested page only (the rest is never shown)."""
        body: dict[str, Any] = context.body
        try:
            shown = int(body.get("from", 0) or 0) + int(body.get("size", 10) or 10)
        except (TypeError, ValueError):
            shown = 10
        top = order[: max(shown, 1)]
        for cand, contrib in zip(ranked, scorer.contributions(x[top]), strict=False):
            cand.contributions = {k: round(v, 6) for k, v in contrib.items()}
