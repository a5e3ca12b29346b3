"""Training from logs: position-bias correction, ONNX parity, the gate, the registry."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from shoprank.errors import BadRequestError, ConfigError
from shoprank.evaluation.metrics import ndcg_at_k
from shoprank.events.model import Event
from shoprank.rerankers.features.registry import FEATURE_NAMES, vectorise
from shoprank.rerankers.ltr.dataset import Dataset, LoggedSearch, join
from shoprank.rerankers.ltr.propensity import propensities
from shoprank.rerankers.ltr.registry import ModelRegistry
from shoprank.rerankers.ltr.reranker import LearnedRanker, load_scorer
from shoprank.rerankers.ltr.scorers import DEFAULT_VERSION, DefaultScorer, OnnxScorer
from shoprank.rerankers.ltr.train import (
    NotEnoughDataError,
    TrainParams,
    evaluate_scorer,
    fit,
    gate,
    parity,
    train_ranker,
)

EXAMINE_ETA = 1.2
CLICK = (0.03, 0.3, 0.6, 0.9)


def window(rng: random.Random, size: int = 20) -> tuple[list[dict[str, float]], list[int]]:
    """Products with a true grade; a logging ranker that only weakly knows it put them in
    order, and `retrieval_rr` carries that order (as in serving)."""
    items = []
    for _ in range(size):
        grade = rng.choices((0, 1, 2, 3), weights=(5, 3, 2, 1))[0]
        items.append(
            {
                "grade": grade,
                "user_brand_aff": min(1.0, max(0.0, grade / 3 + rng.gauss(0, 0.2))),
                "rating": rng.uniform(3, 5),
                "logger": 0.25 * grade + rng.gauss(0, 1.0),
            }
        )
    items.sort(key=lambda it: -it["logger"])
    feats = [
        {
            "retrieval_rr": 1 / (i + 1),
            "user_brand_aff": it["user_brand_aff"],
            "rating": it["rating"],
        }
        for i, it in enumerate(items)
    ]
    return feats, [int(it["grade"]) for it in items]


def simulated_logs(
    n: int, seed: int
) -> tuple[Dataset, list[tuple[list[dict[str, float]], list[int]]]]:
    """Position-biased clicks on logged windows, and the true grades of each window."""
    rng = random.Random(seed)
    searches, truth = [], []
    t = 0.0
    while len(searches) < n:
        feats, grades = window(rng)
        clicks = [
            1.0 if rng.random() < (1 / (i + 1)) ** EXAMINE_ETA and rng.random() < CLICK[g] else 0.0
            for i, g in enumerate(grades)
        ]
        t += 1
        if not any(clicks):
            continue
        ids = [f"p{i}" for i in range(len(feats))]
        searches.append(
            LoggedSearch(f"q{t}", t, "u", "q", ids, list(range(1, len(ids) + 1)), feats, clicks)
        )
        truth.append((feats, grades))
    return Dataset(searches), truth


def true_ndcg(scorer: object, windows: list[tuple[list[dict[str, float]], list[int]]]) -> float:
    total = 0.0
    for feats, grades in windows:
        scores = scorer.score(vectorise(feats))  # type: ignore[attr-defined]
        order = sorted(range(len(feats)), key=lambda i: -float(scores[i]))
        ids = [str(i) for i in order]
        total += ndcg_at_k(ids, {str(i): float(g) for i, g in enumerate(grades)}, 10)
    return total / len(windows)


@pytest.fixture(scope="module")
def logs() -> Dataset:
    return simulated_logs(600, seed=1)[0]


def test_position_bias_correction_ranks_closer_to_true_relevance(
    tmp_path: Path, logs: Dataset
) -> None:
    """Measure: mean nDCG@10 against the *true* grades on 300 fresh windows of the same
    logging ranker. Clicks over-credit top positions; the corrected model must trust the
    relevance evidence more than the position-carrying retrieval rank."""
    _, fresh = simulated_logs(300, seed=2)
    reg = ModelRegistry(tmp_path)
    results = {}
    for debias in (True, False):
        report = train_ranker(
            logs,
            registry=reg,
            live=DefaultScorer(),
            params=TrainParams(debias=debias),
            min_searches=1,
            promote=False,
        )
        results[debias] = true_ndcg(OnnxScorer(report.path), fresh)
    assert results[True] > results[False] + 0.01, results


def test_onnx_scores_equal_lightgbm(tmp_path: Path, logs: Dataset) -> None:
    report = train_ranker(
        logs,
        registry=ModelRegistry(tmp_path),
        live=DefaultScorer(),
        params=TrainParams(rounds=60, num_leaves=15, min_data_in_leaf=5),
        min_searches=1,
        promote=False,
    )
    booster = fit(logs.split(0.2)[0], TrainParams(rounds=60, num_leaves=15, min_data_in_leaf=5))
    scorer = OnnxScorer(report.path)
    x = logs.matrices()[0]
    assert parity(booster, scorer, x) <= 1e-5
    # contributions (Saabas over the exported trees) add up to the ONNX score
    contrib = scorer.contributions(x[:5])
    for row, c in zip(scorer.score(x[:5]), contrib, strict=True):
        assert sum(c.values()) == pytest.approx(float(row), abs=1e-4)


def _shuffled(logs: Dataset, seed: int) -> Dataset:
    rng = random.Random(seed)
    return Dataset(
        [
            LoggedSearch(
                s.query_id,
                s.timestamp,
                s.user,
                s.query,
                s.ids,
                s.positions,
                s.features,
                rng.sample(s.grades, len(s.grades)),
            )
            for s in logs.searches
        ]
    )


def test_gate_promotes_better_refuses_worse_and_rollback(tmp_path: Path, logs: Dataset) -> None:
    reg = ModelRegistry(tmp_path)
    # a model trained on shuffled engagement, forced live
    weak = train_ranker(
        _shuffled(logs, 3), registry=reg, live=load_scorer(reg), min_searches=1, force=True
    )
    assert weak.promoted and reg.live() == weak.version
    good = train_ranker(logs, registry=reg, live=load_scorer(reg), min_searches=1)
    assert good.promoted and reg.live() == good.version, good.gate
    # (the gate's refusals: test_gate_refuses_worse_models; here only the registry)
    worse = train_ranker(
        _shuffled(logs, 4), registry=reg, live=DefaultScorer(), min_searches=1, promote=False
    )
    assert not worse.promoted
    assert reg.live() == good.version
    reg.promote(worse.version)
    assert reg.live() == worse.version
    assert reg.rollback() == good.version
    assert reg.rollback() == weak.version
    assert reg.rollback() is None  # before the first promotion: the default scorer
    assert load_scorer(reg).version == DEFAULT_VERSION
    with pytest.raises(BadRequestError, match="no ranker model"):
        reg.promote("ranker-does-not-exist")
    with pytest.raises(NotEnoughDataError):
        train_ranker(
            Dataset(logs.searches[:3]), registry=reg, live=DefaultScorer(), min_searches=50
        )


class _Negated:
    """A scorer that ranks exactly opposite to another one."""

    def __init__(self, scorer: OnnxScorer) -> None:
        self.inner = scorer
        self.version = f"negated-{scorer.version}"

    def score(self, x: np.ndarray) -> np.ndarray:
        return -self.inner.score(x)

    def contributions(self, x: np.ndarray) -> list[dict[str, float]]:
        return []


def test_position_propensities_are_estimated_from_the_logs(logs: Dataset) -> None:
    """The gate's examination propensities, estimated from clicks alone, follow the
    simulator's examination curve (1/r)^1.2 - not the click rate per position, which also
    carries the logging ranker's relevance."""
    train, _ = logs.split(0.2)
    estimated = propensities(train)[:10]
    truth = np.asarray([(1 / r) ** EXAMINE_ETA for r in range(1, 11)])
    assert estimated[0] == 1.0
    assert np.all(np.diff(estimated) <= 0)
    assert np.max(np.abs(estimated - truth)) < 0.08, np.round(estimated, 3)


def test_gate_promotes_debiased_model_that_is_truly_better(tmp_path: Path, logs: Dataset) -> None:
    """The live model learnt the position bias (trained without correction); the
    corrected candidate ranks closer to the true grades. Judged by logged clicks alone the
    live model looks better (it agrees with where clicks landed because of position);
    the gate, which weights clicks by inverse propensity, promotes the candidate."""
    _, fresh = simulated_logs(300, seed=2)
    reg = ModelRegistry(tmp_path)
    biased = train_ranker(
        logs,
        registry=reg,
        live=DefaultScorer(),
        params=TrainParams(debias=False),
        min_searches=1,
        force=True,
    )
    assert reg.live() == biased.version
    candidate = train_ranker(logs, registry=reg, live=load_scorer(reg), min_searches=1)
    truly = {
        "candidate": true_ndcg(OnnxScorer(candidate.path), fresh),
        "live": true_ndcg(OnnxScorer(biased.path), fresh),
    }
    assert truly["candidate"] > truly["live"] + 0.02, truly  # the premise
    assert candidate.promoted and reg.live() == candidate.version, candidate.gate
    assert "pass" in candidate.gate and "dcg@10" in candidate.gate
    # the uncorrected click metric prefers the biased live model
    train, test = logs.split(0.2)
    raw_candidate = evaluate_scorer(OnnxScorer(candidate.path), test)["dcg@10"]
    raw_live = evaluate_scorer(OnnxScorer(biased.path), test)["dcg@10"]
    assert raw_live > raw_candidate
    # the margin is configurable: a margin larger than the gain refuses
    high = gate(
        OnnxScorer(candidate.path),
        OnnxScorer(biased.path),
        train,
        test,
        margin=candidate.metrics["candidate"]["dcg@10"],
    )
    assert not high.wins and "fail" in high.verdict


def test_gate_refuses_worse_models(tmp_path: Path, logs: Dataset) -> None:
    """Against a good live model the gate refuses its exact inverse, a model trained on
    shuffled engagement and the live model itself (not strictly better)."""
    _, fresh = simulated_logs(300, seed=2)
    reg = ModelRegistry(tmp_path)
    good = OnnxScorer(
        train_ranker(logs, registry=reg, live=DefaultScorer(), min_searches=1, promote=False).path
    )
    shuffled = OnnxScorer(
        train_ranker(
            _shuffled(logs, 4), registry=reg, live=DefaultScorer(), min_searches=1, promote=False
        ).path
    )
    inverted = _Negated(good)
    assert true_ndcg(good, fresh) > true_ndcg(shuffled, fresh) + 0.1  # the premise
    train, test = logs.split(0.2)
    for metric in ("dcg@10", "ndcg@10"):
        for worse in (inverted, shuffled, good):
            result = gate(worse, good, train, test, metric=metric)
            assert not result.wins and "fail" in result.verdict, (worse.version, result.verdict)
    with pytest.raises(ConfigError, match="unknown gate metric"):
        gate(good, good, train, test, metric="precision@3")


def test_model_with_another_feature_registry_refuses_to_load(tmp_path: Path, logs: Dataset) -> None:
    reg = ModelRegistry(tmp_path)
    report = train_ranker(logs, registry=reg, live=DefaultScorer(), min_searches=1)
    meta_path = report.path / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["registry_version"] = "features-000000000000"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="feature registry"):
        OnnxScorer(report.path)
    ranker = LearnedRanker(model_dir=tmp_path, source=None, timeout_ms=50)  # type: ignore[arg-type]
    assert ranker.scorer().version == DEFAULT_VERSION  # serving keeps a working scorer


def test_join_grades_engagement_by_query_id() -> None:
    window = (
        {"id": "a", "before": 2, "after": 1, "features": {"lex_rr": 0.5}},
        {"id": "b", "before": 1, "after": 2, "features": {"lex_rr": 1.0}},
        {"id": "c", "before": 3, "after": 3, "features": {}},
    )
    events = [
        Event(type="search", timestamp=1, event_id="q1", query_id="q1", user_id="u", window=window),
        Event(type="click", timestamp=2, event_id="e1", query_id="q1", product_id="b"),
        Event(type="add_to_cart", timestamp=3, event_id="e2", query_id="q1", product_id="b"),
        Event(type="click", timestamp=3, event_id="e3", query_id="q1", product_id="c"),
        Event(type="purchase", timestamp=4, event_id="e4", query_id="q2", product_id="a"),
        Event(
            type="search",
            timestamp=5,
            event_id="q3",
            query_id="q3",
            user_id="u",
            window=({"id": "a", "before": 1, "after": 1},),
        ),  # features not sampled
    ]
    data = join(events)
    assert len(data) == 1
    (s,) = data.searches
    assert s.ids == ["a", "b", "c"] and s.grades == [0.0, 2.0, 1.0] and s.positions == [1, 2, 3]
    x, y, groups, pos = data.matrices()
    assert groups == [3] and list(pos) == [0, 1, 2] and list(y) == [0, 2, 1]
    lex = list(FEATURE_NAMES).index("lex_rr")
    assert x[0][lex] == np.float32(0.5) and x[2][lex] == 0.0  # missing → default
