"""One search as the logs see it: built once by the search pipeline, then written off the
hot path to the behaviour log (impressions and logged ranker features, for training) and to
the search log (for Kibana / the inspector)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class WindowItem:
    """One returned product: ranks are 1-based; `features` only when sampled for logging."""

    product_id: str
    rank_before: int
    rank_after: int
    score: float
    features: dict[str, float] | None = None


@dataclass
class SearchRecord:
    index: str
    query: str | None
    mode: str
    user_id: str | None = None
    session_id: str | None = None
    query_id: str | None = None
    timestamp: float = field(default_factory=time.time)
    intent: dict[str, Any] | None = None
    rewrite: list[dict[str, Any]] = field(default_factory=list)
    relaxation: str | None = None
    model_version: str | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    total_hits: int = 0
    window: list[WindowItem] = field(default_factory=list)
    degraded: list[str] = field(default_factory=list)
    # "search", or "recommend" for a recommendation list (its `query_id` is the `rec_id`
    # the response carries, `strategy` the strategy that made it).
    surface: str = "search"
    strategy: str | None = None
    # A search of an online experiment: {"id", "method", "variant" ("A", "B" or
    # "interleave"), "runs": {arm: {"zero_results", "latency_ms"}}, "teams": {id: arm}}
    # (`teams` on interleaved pages: the arm that contributed each returned product).
    experiment: dict[str, Any] | None = None

    @property
    def product_ids(self) -> list[str]:
        return [item.product_id for item in self.window]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
