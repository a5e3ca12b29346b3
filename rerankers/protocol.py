"""The interface of a stage that reorders the fused window in `full` mode.

Query understanding and the learned ranker plug in here; `full` applies every configured
stage in order and reports each under `_shoprank.stages`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class Candidate:
    """One product in the window, with what retrieval knows about it."""

    id: str
    score: float
    features: dict[str, float] = field(default_factory=dict)


@dataclass
class RerankContext:
    index: str
    query_text: str | None
    user_id: str | None
    body: dict[str, Any]


class Reranker(Protocol):
    name: str

    def rerank(self, context: RerankContext, candidates: list[Candidate]) -> list[Candidate]:
        """Return the candidates in their new order (scores updated)."""
        ...
