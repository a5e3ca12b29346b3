"""The learned ranker: scorers (ONNX model, default), model registry, the reranking stage.
Training lives in `shoprank.rerankers.ltr.train` (needs the [ml] extra)."""

from __future__ import annotations

from typing import Any

from shoprank.settings import Settings


def make_ranker(settings: Settings, backend: Any) -> Any:
    """The `ltr` reranking stage wired from settings (cheap: nothing loads until used)."""
    from shoprank.events.service import EventService
    from shoprank.rerankers.features.source import FeatureSource
    from shoprank.rerankers.ltr.reranker import LearnedRanker

    prior = settings.ctr_prior_clicks / settings.ctr_prior_impressions
    return LearnedRanker(
        model_dir=ranker_dir(settings),
        source=FeatureSource(backend=backend, events=EventService(settings), prior_ctr=prior),
        timeout_ms=settings.rerank_timeout_ms,
    )


def ranker_dir(settings: Settings) -> Any:
    return settings.data_dir / "models" / "ranker"
