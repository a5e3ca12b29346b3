"""The learned ranker: scorers (ONNX model, default), model registry, the reranking stage.
Training lives in `shoprank.rerankers.ltr.train` (needs the [ml] extra)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from shoprank.settings import Settings

if TYPE_CHECKING:
    from shoprank.plugin.backends.protocol import SearchBackend
    from shoprank.profiles.protocol import ProfileReader
    from shoprank.rerankers.ltr.reranker import LearnedRanker


def make_ranker(
    settings: Settings, backend: SearchBackend | None, *, profiles: ProfileReader | None
) -> LearnedRanker:
    """The `ltr` reranking stage wired from settings (cheap: nothing loads until used).
    `profiles` feeds the personal and product-statistics features (None: their defaults)."""
    from shoprank.rerankers.features.source import FeatureSource
    from shoprank.rerankers.ltr.reranker import LearnedRanker

    prior = settings.ctr_prior_clicks / settings.ctr_prior_impressions
    return LearnedRanker(
        model_dir=ranker_dir(settings),
        source=FeatureSource(backend=backend, profiles=profiles, prior_ctr=prior),
        timeout_ms=settings.rerank_timeout_ms,
        wall_timeout_ms=settings.rerank_wall_timeout_ms,
    )


def ranker_dir(settings: Settings) -> Path:
    return settings.data_dir / "models" / "ranker"
