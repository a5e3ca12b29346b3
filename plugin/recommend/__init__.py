"""Recommendations beside search (`POST /_shoprank/recommend`, `shoprank recommend`):
`similar`, `bought_together`, `for_you` and `trending` over the same product vectors,
behaviour statistics, profiles, feature registry and learned ranker as search.

`RecommendService` (`service`) runs them; `strategies` and `personal` hold the strategies,
`behaviour` the association measures, `catalog` the backend reads and `parse` the request.
"""

from __future__ import annotations

from shoprank.plugin.recommend.parse import STRATEGIES, RecommendRequest, parse_recommend
from shoprank.plugin.recommend.service import RecommendService, recommend_service

__all__ = [
    "STRATEGIES",
    "RecommendRequest",
    "RecommendService",
    "parse_recommend",
    "recommend_service",
]
