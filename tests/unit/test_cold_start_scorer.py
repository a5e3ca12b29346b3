"""The cold-start scorer (`default-v1`, live until the gate promotes a trained ranker) keeps
the retrieval order unless the evidence is strong."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shoprank.rerankers.features import Inputs, compute_features, vectorise
from shoprank.rerankers.intent.types import Intent
from shoprank.rerankers.ltr.reranker import LearnedRanker
from shoprank.rerankers.ltr.scorers import DefaultScorer
from shoprank.rerankers.protocol import Candidate, RerankContext


def window(n: int = 30, seed: int = 0) -> list[Candidate]:
    """A fused window whose legs disagree with the fused order (as they do in practice)."""
    rng = random.Random(seed)
    lex = list(range(1, n + 1))
    vec = list(range(1, n + 1))
    rng.shuffle(lex)
    rng.shuffle(vec)
    return [
        Candidate(
            f"p{i}",
            1.0 / (60 + i),
            legs={"lexical": (lex[i - 1], 10.0 / lex[i - 1]), "vector": (vec[i - 1], 0.5)},
            retrieval_rank=i,
        )
        for i in range(1, n + 1)
    ]


def facts(n: int = 30) -> dict[str, dict[str, Any]]:
    return {
        f"p{i}": {"brand": f"B{i % 4}", "price": 10.0 * i, "rating": 3 + (i % 3)}
        for i in range(1, n + 1)
    }


def stats(n: int = 30, seed: int = 1) -> dict[str, dict[str, float]]:
    rng = random.Random(seed)
    return {
        f"p{i}": {"clicks": float(rng.randint(0, 40)), "ctr": rng.uniform(0.0, 0.4)}
        for i in range(1, n + 1)
    }


def order(cands: list[Candidate], inputs: Inputs) -> list[str]:
    scores = DefaultScorer().score(vectorise(compute_features(cands, inputs)))
    return [cands[i].id for i in sorted(range(len(cands)), key=lambda i: (-scores[i], i))]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_without_profile_or_intent_the_retrieval_order_stays(seed: int) -> None:
    # Popularity, click-through rates, ratings and the legs' own ranks all vary: none of
    # them is strong evidence, so nothing moves.
    cands = window(seed=seed)
    inputs = Inputs(facts=facts(), stats=stats(seed=seed), query_stats=stats(seed=seed + 7))
    assert order(cands, inputs) == [c.id for c in cands]


def test_weak_personal_evidence_does_not_move_anything() -> None:
    cands = window()
    one_click = {"aff": {"brand": {"B3": 2.0}}}  # a single click on brand B3
    assert order(cands, Inputs(facts=facts(), user=one_click)) == [c.id for c in cands]
    spread = {"aff": {"brand": {"B0": 8.0, "B1": 8.0, "B2": 8.0, "B3": 8.0}}}
    assert order(cands, Inputs(facts=facts(), user=spread)) == [c.id for c in cands]


def test_a_strong_brand_history_lifts_that_brand_by_a_bounded_step() -> None:
    cands = window()
    fan = {"aff": {"brand": {"B3": 30.0, "B1": 2.0}}}
    ranked = order(cands, Inputs(facts=facts(), user=fan))
    b3 = [c.id for c in cands if int(c.id[1:]) % 4 == 3]
    # every B3 product moves up, none by more than a factor of 3 in rank
    for pid in b3:
        before, after = int(pid[1:]), ranked.index(pid) + 1
        assert after <= before and after >= before / 3 - 1
    assert ranked.index("p3") < ranked.index("p2")
    # the others keep their relative order
    others = [pid for pid in ranked if pid not in b3]
    assert others == [c.id for c in cands if c.id not in b3]


def test_a_brand_named_in_the_query_leads() -> None:
    cands = window()
    intent = Intent(query="b2", attributes={"brand": ["B2"]})
    ranked = order(cands, Inputs(facts=facts(), intent=intent))
    assert ranked.index("p2") < ranked.index("p1")
    assert ranked.index("p6") < ranked.index("p3")


def test_the_ranker_stage_with_no_trained_model_keeps_the_window(tmp_path: Path) -> None:
    class Source:
        def warm_up(self) -> None:
            pass

        def fetch(self, **_: Any) -> Inputs:
            return Inputs(facts=facts(), stats=stats(), query_stats=stats(seed=9))

    ranker = LearnedRanker(model_dir=tmp_path, source=Source(), timeout_ms=600_000)  # type: ignore[arg-type]
    context = RerankContext(index="demo", query_text="q", user_id=None, body={"size": 10})
    out = ranker.rerank(context, window())
    assert [c.id for c in out] == [c.id for c in window()]
    assert context.info["model_version"] == "default-v1"
    assert np.isfinite([c.score for c in out]).all()
