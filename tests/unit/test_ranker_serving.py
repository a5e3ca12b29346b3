"""The ranker stage: reorders by the live scorer, explains, and degrades to the retrieval
order (counted) on timeout or error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shoprank.rerankers.features.compute import Inputs
from shoprank.rerankers.ltr.reranker import LearnedRanker
from shoprank.rerankers.protocol import Candidate, RerankContext


class Source:
    def __init__(self, facts: dict[str, Any], *, fail: bool = False, delay: float = 0.0) -> None:
        self.facts = facts
        self.fail = fail
        self.delay = delay

    def fetch(self, **kw: Any) -> Inputs:
        if self.fail:
            raise RuntimeError("store down")
        if self.delay:
            import time

            time.sleep(self.delay)
        user = {"aff": {"brand": {"Fav": 5.0}}}
        return Inputs(facts=self.facts, user=user, now=0.0)


def window() -> list[Candidate]:
    return [
        Candidate(f"p{i}", 1.0 / i, legs={"lexical": (i, 5.0 / i)}, retrieval_rank=i)
        for i in range(1, 6)
    ]


FACTS = {f"p{i}": {"brand": "Fav" if i == 4 else "Other"} for i in range(1, 6)}


def ctx(**kw: Any) -> RerankContext:
    return RerankContext(index="demo", query_text="shoes", user_id="u", body={"size": 3}, **kw)


def test_reorders_explains_and_reports_version(tmp_path: Path) -> None:
    # A budget no busy machine overruns: this checks the ordering, not the speed.
    ranker = LearnedRanker(model_dir=tmp_path, source=Source(FACTS), timeout_ms=600_000)  # type: ignore[arg-type]
    context = ctx(explain=True)
    out = ranker.rerank(context, window())
    ids = [c.id for c in out]
    assert ids.index("p4") < 3  # the user's favourite brand climbs into the page
    assert context.info["model_version"] == "default-v1"
    assert not context.info["degraded"]
    top = out[0]
    assert top.features["retrieval_rr"] > 0 and top.contributions
    assert "user_brand_aff" in next(c for c in out if c.id == "p4").contributions


def test_a_recommendation_list_keeps_its_blend_ahead_of_brand_affinity(tmp_path: Path) -> None:
    # Ten candidates whose blend falls steadily; p8 is the shopper's favourite brand. As
    # a search window the cold-start scorer lifts p8 into the top three (brand affinity
    # outweighs the reciprocal rank past the third); as a recommendation list (no query:
    # the blend is the strategy's evidence) the blend's order leads.
    facts = {f"p{i}": {"brand": "Fav" if i == 8 else "Other"} for i in range(1, 11)}
    ranker = LearnedRanker(model_dir=tmp_path, source=Source(facts), timeout_ms=600_000)  # type: ignore[arg-type]

    def candidates() -> list[Candidate]:
        return [
            Candidate(f"p{i}", 3.0 - 0.3 * i, legs={"lexical": (i, 5.0 / i)}, retrieval_rank=i)
            for i in range(1, 11)
        ]

    searched = [c.id for c in ranker.rerank(ctx(), candidates())]
    assert "p8" in searched[:3]
    context = RerankContext(
        index="demo", query_text=None, user_id="u", body={"size": 3}, surface="recommend"
    )
    recommended = [c.id for c in ranker.rerank(context, candidates())]
    assert recommended[:3] == ["p1", "p2", "p3"]
    assert context.info["model_version"] == "default-v1"


def test_error_and_timeout_keep_retrieval_order(tmp_path: Path) -> None:
    # A store slower than the wall-clock bound (50 ms asleep, bound 20 ms): CPU time does
    # not see a wait, the wall clock does.
    for source, timeout_ms, reason in (
        (Source(FACTS, fail=True), 1000.0, "rerank: error: RuntimeError"),
        (Source(FACTS, delay=0.05), 5.0, "rerank: timeout"),
    ):
        ranker = LearnedRanker(
            model_dir=tmp_path,
            source=source,  # type: ignore[arg-type]
            timeout_ms=timeout_ms,
            wall_timeout_ms=20.0,
        )
        context = ctx()
        out = ranker.rerank(context, window())
        assert [c.id for c in out] == ["p1", "p2", "p3", "p4", "p5"]
        assert context.info["degraded"] == [reason]
