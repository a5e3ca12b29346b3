"""The interface of a stage that reorders the fused window in `full` mode.

Query understanding and the learned ranker plug in here; `full` applies every configured
stage in order and reports each under `_shoprank.stages`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from shoprank.rerankers.intent.types import Intent


@dataclass
class Candidate:
    """One product in the window, with what retrieval knows about it.

    `legs` maps each retrieval leg (`lexical`, `vector`, `image`) that found the product to
    its (1-based rank, score) in that leg; `retrieval_rank` is the 1-based rank after fusion,
    before any reranking. Rerankers fill `features` (name → value) and `contributions`
    (name → share of the final score) for explanations and feature logging.
    """

    id: str
    score: float
    features: dict[str, float] = field(default_factory=dict)
    legs: dict[str, tuple[int, float]] = field(default_factory=dict)
    retrieval_rank: int = 0
    contributions: dict[str, float] = field(default_factory=dict)


@dataclass
class RerankContext:
    """What a reranking stage may know about the search.

    `intent` is the query-understanding prediction (`shoprank.rerankers.intent`), or None
    when no intent model ran; `deadline` is a `time.perf_counter()` value after which a
    stage should give up and keep the order it was given; `info` collects what a stage wants
    reported under `_shoprank` (model version, degradations); `surface` says whether the
    list is a search's window or a recommendation list (no query: query features keep
    their defaults). `ranker_version` pins the learned ranker's model (an experiment arm);
    None serves the live one.
    """

    index: str
    query_text: str | None
    user_id: str | None
    body: dict[str, Any]
    session_id: str | None = None
    intent: Intent | None = None
    deadline: float | None = None
    explain: bool = False
    info: dict[str, Any] = field(default_factory=dict)
    surface: Literal["search", "recommend"] = "search"
    ranker_version: str | None = None


# The built-in learned ranker's stage name (`shoprank.rerankers.ltr.LearnedRanker`).
RANKER_NAME = "ltr"


@runtime_checkable
class Reranker(Protocol):
    name: str

    def rerank(self, context: RerankContext, candidates: list[Candidate]) -> list[Candidate]:
        """Return the candidates in their new order (scores updated)."""
        ...


@runtime_checkable
class WarmUp(Protocol):
    """A stage with something to load (a model, a store) before the first search."""

    def warm_up(self) -> None: ...
