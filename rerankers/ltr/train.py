"""`shoprank train ranker`: logged windows + engagement → LightGBM lambdarank → ONNX →
offline gate against the live model → promotion.

Position bias. Shoppers click top positions more whatever they hold, so clicks
over-credit whatever the logging ranker put first. The model is trained with LightGBM's
position-aware ("unbiased") lambdarank: each example carries the position it was shown at,
and LightGBM learns a per-position examination factor jointly with the relevance trees
(Wu et al., "Unbiased LambdaMART", WWW 2021 style). Only the trees are exported, so the
position factor is neutralised at serve time. `debias=False` trains the plain, biased
model (for comparison).

The gate is debiased as well: the held-out engagement is weighted by the inverse of the
examination propensity of the position it happened at (`propensities`: a position-based
click model fitted on the training slice), and the default metric is the unbiased
IPS-DCG@10 (`evaluate_scorer`). Unweighted, the live model that chose the order would
look better than a truly better candidate. The candidate must win by more than `GATE_Z`
standard errors of its paired per-search gain, not on the mean alone (`gate`).

Needs the [ml] extra (lightgbm, onnxmltools); the serving path never imports this module.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shoprank.errors import ConfigError, ShoprankError
from shoprank.evaluation.metrics import dcg_of_gains
from shoprank.rerankers.features.registry import FEATURE_NAMES, REGISTRY_VERSION, vectorise
from shoprank.rerankers.ltr.dataset import Dataset
from shoprank.rerankers.ltr.propensity import propensities
from shoprank.rerankers.ltr.registry import ModelRegistry
from shoprank.rerankers.ltr.scorers import OnnxScorer, Scorer

log = logging.getLogger("shoprank.train")
PARITY_TOLERANCE = 1e-5


class NotEnoughDataError(ShoprankError):
    """Too few labelled searches to train (the default scorer stays live)."""


@dataclass
class TrainParams:
    rounds: int | None = None  # None: one tree per 5 training searches, within [40, 300]
    num_leaves: int = 7
    learning_rate: float = 0.05
    min_data_in_leaf: int = 50
    debias: bool = True
    position_regularization: float = 0.0
    seed: int = 0


@dataclass
class TrainReport:
    version: str
    path: Path
    examples: int
    searches: int
    holdout_searches: int
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    parity_max_abs_diff: float = 0.0
    promoted: bool = False
    gate: str = ""
    gate_gain: float = 0.0
    gate_gain_se: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "path": str(self.path),
            "examples": self.examples,
            "searches": self.searches,
            "holdout_searches": self.holdout_searches,
            "metrics": self.metrics,
            "parity_max_abs_diff": self.parity_max_abs_diff,
            "promoted": self.promoted,
            "gate": self.gate,
            "gate_gain": self.gate_gain,
            "gate_gain_se": self.gate_gain_se,
        }


def _lightgbm() -> Any:
    try:
        import lightgbm
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigError(
            "training the ranker needs lightgbm and onnxmltools: pip install 'shoprank[ml]'"
        ) from exc
    return lightgbm


def rounds_for(params: TrainParams, searches: int) -> int:
    """Boosting rounds: as given, else grown with the data (more trees overfit small logs;
    on the simulator 40 trees were best at ~400 searches, 200 at ~1,000)."""
    if params.rounds is not None:
        return params.rounds
    return max(40, min(300, searches // 5))


def fit(data: Dataset, params: TrainParams) -> Any:
    """A LightGBM lambdarank booster over the registry's features."""
    lgb = _lightgbm()
    x, y, groups, positions = data.matrices()
    kwargs: dict[str, Any] = {"group": groups, "feature_name": list(FEATURE_NAMES)}
    if params.debias:
        kwargs["position"] = positions
    train_set = lgb.Dataset(x, y, free_raw_data=False, **kwargs)
    booster = lgb.train(
        {
            "objective": "lambdarank",
            "metric": "ndcg",
            "num_leaves": params.num_leaves,
            "learning_rate": params.learning_rate,
            "min_data_in_leaf": params.min_data_in_leaf,
            "lambdarank_position_bias_regularization": params.position_regularization,
            "deterministic": True,
            "num_threads": 1,
            "seed": params.seed,
            "verbose": -1,
        },
        train_set,
        num_boost_round=rounds_for(params, len(data)),
    )
    return booster


def float32_thresholds(dump: dict[str, Any]) -> dict[str, Any]:
    """Round every split threshold down to a float32, in place.

    ONNX trees compare in float32. Features are float32 (`vectorise`), and for a float32
    `x`, `x <= t` equals `x <= largest float32 <= t`, so the rounded model decides exactly
    as LightGBM does (nearest rounding could flip `x == float32(t) > t`)."""

    def walk(node: dict[str, Any]) -> None:
        if "threshold" in node and isinstance(node["threshold"], int | float):
            t = float(node["threshold"])
            t32 = np.float32(t)
            if float(t32) > t:
                t32 = np.nextafter(t32, np.float32(-np.inf))
            node["threshold"] = float(t32)
        for child in ("left_child", "right_child"):
            if isinstance(node.get(child), dict):
                walk(node[child])

    for tree in dump["tree_info"]:
        walk(tree["tree_structure"])
    return dump


def export(booster: Any, out: Path, meta: dict[str, Any]) -> Path:
    """Write `model.onnx`, `trees.json` and `meta.json` to `out`."""
    from onnxmltools.convert import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    out.mkdir(parents=True, exist_ok=True)
    dump = float32_thresholds(booster.dump_model())
    # onnxmltools reads a "mock" booster's dump as given: hand it the adjusted thresholds.
    booster.is_mock = True
    booster.dump_model = lambda *args, **kwargs: dump
    onx = convert_lightgbm(
        booster,
        initial_types=[("features", FloatTensorType([None, len(FEATURE_NAMES)]))],
        target_opset=15,
        zipmap=False,
    )
    (out / "model.onnx").write_bytes(onx.SerializeToString())
    trees = [t["tree_structure"] for t in dump["tree_info"]]
    (out / "trees.json").write_text(json.dumps(trees))
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    return out


def evaluate_scorer(
    scorer: Scorer | None,
    data: Dataset,
    *,
    k: int = 10,
    propensity: np.ndarray | None = None,
) -> dict[str, float]:
    """Mean DCG@k, nDCG@5/@k and MRR of reranking each logged window by `scorer` (None =
    the logged order, i.e. what the live ranker showed), the engagement grade g of each
    product as its label.

    With `propensity`, each engaged product's gain 2^g - 1 is divided by the examination
    propensity of the position it was shown at (inverse propensity scoring). The mean
    IPS-DCG@k is then an unbiased estimate of the DCG@k the scorer's order would earn if
    shoppers examined every position alike (Agarwal et al., "A General Framework for
    Counterfactual Learning-to-Rank", SIGIR 2019) - the gate's default metric. The nDCG
    keys divide it by the IPS-weighted ideal DCG of the same window: a ratio, so not
    unbiased, kept for comparison."""
    values = per_search_metrics(scorer, data, k=k, propensity=propensity)
    n = max(len(data.searches), 1)
    return {key: sum(v) / n for key, v in values.items()}


def per_search_metrics(
    scorer: Scorer | None,
    data: Dataset,
    *,
    k: int = 10,
    propensity: np.ndarray | None = None,
) -> dict[str, list[float]]:
    """`evaluate_scorer`'s metrics, one value per logged search (in `data`'s order)."""
    dcgk, ndcg5, ndcgk, rr = [], [], [], []
    for search in data.searches:
        gains = {}
        for pid, g, pos in zip(search.ids, search.grades, search.positions, strict=True):
            gain = math.pow(2.0, g) - 1.0
            if g and propensity is not None:
                gain /= float(propensity[min(max(pos, 1), len(propensity)) - 1])
            gains[pid] = gain
        if scorer is None:
            ranked = [pid for _, pid in sorted(zip(search.positions, search.ids, strict=True))]
        else:
            scores = scorer.score(vectorise(search.features))
            order = sorted(range(len(search.ids)), key=lambda i: (-float(scores[i]), i))
            ranked = [search.ids[i] for i in order]
        ideal = sorted(gains.values(), reverse=True)
        got = [gains[pid] for pid in ranked]
        dcgk.append(dcg_of_gains(got[:k]))
        ndcg5.append(dcg_of_gains(got[:5]) / max(dcg_of_gains(ideal[:5]), 1e-12))
        ndcgk.append(dcg_of_gains(got[:k]) / max(dcg_of_gains(ideal[:k]), 1e-12))
        rr.append(next((1.0 / (i + 1) for i, gain in enumerate(got) if gain > 0), 0.0))
    return {f"dcg@{k}": dcgk, "ndcg@5": ndcg5, f"ndcg@{k}": ndcgk, "mrr": rr}


def parity(booster: Any, scorer: OnnxScorer, x: np.ndarray) -> float:
    """Max |ONNX score − LightGBM score| over `x`."""
    if len(x) == 0:
        return 0.0
    ref = np.asarray(booster.predict(x.astype(np.float64)), dtype=np.float64)
    got = scorer.score(x).astype(np.float64)
    return float(np.max(np.abs(ref - got)))


@dataclass
class GateResult:
    wins: bool
    verdict: str
    metrics: dict[str, dict[str, float]]
    propensity: np.ndarray
    gain: float = 0.0  # mean per-search gain of the candidate over the live model
    gain_se: float = 0.0  # its standard error (paired over the held-out searches)


#: The gate's one-sided confidence: the candidate must beat the live model by more than
#: the margin by `z` standard errors of the paired per-search gain, not merely on average
#: (the IPS-weighted metric is noisy: a deep engagement weighs up to 20x). 0.5 ≈ 69 %
#: one-sided confidence.
GATE_Z = 0.5
#: The fewest held-out searches the gate decides on: below it the candidate is refused
#: (the paired standard error of an IPS-weighted metric over a few dozen searches is itself
#: too noisy to trust; a model trained on the latest 200 searches, gated on its own 40,
#: passed with a truly worse model in 2 of 3 seeds of `bench_personalisation.py`).
MIN_GATE_SEARCHES = 100


def paired_gain(new: Sequence[float], old: Sequence[float]) -> tuple[float, float]:
    """Mean of (new - old) over paired searches and its standard error."""
    diff = np.asarray(new, dtype=np.float64) - np.asarray(old, dtype=np.float64)
    if len(diff) < 2:
        return (float(diff.mean()) if len(diff) else 0.0), 0.0
    return float(diff.mean()), float(diff.std(ddof=1) / math.sqrt(len(diff)))


def gate(
    candidate: Scorer,
    live: Scorer,
    train: Dataset,
    test: Dataset,
    *,
    metric: str = "dcg@10",
    margin: float = 0.0,
    z: float = GATE_Z,
    min_searches: int = MIN_GATE_SEARCHES,
) -> GateResult:
    """Does `candidate` beat `live` by more than `margin` on `metric` over the held-out
    logged windows `test`, with one-sided confidence `z` (paired per search; `z=0`: on the
    mean alone)? Position-debiased whether or not either model was trained so:
    examination propensities are estimated on `train` (`propensities`) and the held-out
    engagement is weighted by their inverse (`evaluate_scorer`)."""
    prop = propensities(train)
    per = {
        "candidate": per_search_metrics(candidate, test, propensity=prop),
        "live": per_search_metrics(live, test, propensity=prop),
        "logged": per_search_metrics(None, test, propensity=prop),
    }
    n = max(len(test.searches), 1)
    metrics = {name: {key: sum(v) / n for key, v in values.items()} for name, values in per.items()}
    if metric not in metrics["candidate"]:
        raise ConfigError(f"unknown gate metric {metric!r}; one of {', '.join(metrics['live'])}")
    new, old = metrics["candidate"][metric], metrics["live"][metric]
    gain, se = paired_gain(per["candidate"][metric], per["live"][metric])
    bound = gain - z * se
    enough = len(test.searches) >= min_searches
    wins = bound > margin and enough
    verdict = (
        f"{metric} (position-debiased): candidate {new:.4f} vs live {live.version} {old:.4f}, "
        f"gain lower bound {bound:+.4f} (z {z:g}, margin {margin}) → "
        f"{'pass' if wins else 'fail'}"
    )
    if not enough:
        verdict += (
            f" (only {len(test.searches)} held-out searches, fewer than {min_searches}: "
            "too few to tell a better model from noise)"
        )
    return GateResult(wins, verdict, metrics, prop, gain, se)


def train_ranker(
    data: Dataset,
    *,
    registry: ModelRegistry,
    live: Scorer,
    params: TrainParams | None = None,
    holdout: float = 0.2,
    min_searches: int = 50,
    gate_metric: str = "dcg@10",
    gate_margin: float = 0.0,
    gate_z: float = GATE_Z,
    min_gate_searches: int = MIN_GATE_SEARCHES,
    promote: bool = True,
    force: bool = False,
) -> TrainReport:
    """Train, export, check ONNX parity, compare with the live model on the held-out
    (latest) searches and promote when it wins by `gate_margin` on `gate_metric`
    (position-debiased: see `evaluate_scorer` and `propensities`)."""
    params = params or TrainParams()
    if len(data) < min_searches:
        raise NotEnoughDataError(
            f"only {len(data)} searches with logged features and engagement; at least "
            f"{min_searches} are needed (SHOPRANK_RANKER_MIN_SEARCHES) - the "
            f"{live.version} scorer stays live"
        )
    train, test = data.split(holdout)
    booster = fit(train, params)
    version = time.strftime("ranker-%Y%m%d-%H%M%S-", time.gmtime()) + secrets.token_hex(2)
    path = registry.path(version)
    window = data.window
    meta: dict[str, Any] = {
        "version": version,
        "created": time.time(),
        "registry_version": REGISTRY_VERSION,
        "features": list(FEATURE_NAMES),
        "training_window": {"from": window[0], "to": window[1]} if window else None,
        "searches": {"train": len(train), "holdout": len(test)},
        "params": {**params.__dict__, "rounds": rounds_for(params, len(train))},
        "position_bias": "lightgbm unbiased lambdarank (position-aware, neutralised at serve)"
        if params.debias
        else "none",
    }
    export(booster, path, meta)
    scorer = OnnxScorer(path)
    x_test = test.matrices()[0]
    diff = parity(booster, scorer, x_test)
    if diff > PARITY_TOLERANCE:
        raise ShoprankError(f"ONNX export differs from LightGBM by {diff:.2e} (> 1e-5)")
    result = gate(
        scorer,
        live,
        train,
        test,
        metric=gate_metric,
        margin=gate_margin,
        z=gate_z,
        min_searches=min_gate_searches,
    )
    metrics = result.metrics
    meta["offline_metrics"] = metrics
    meta["gate"] = {
        "metric": gate_metric,
        "margin": gate_margin,
        "z": gate_z,
        "weighting": "inverse propensity (position-based click model, regression-EM)",
        "verdict": result.verdict,
    }
    meta["propensities"] = [round(float(p), 4) for p in result.propensity[:20]]
    meta["live_at_training"] = live.version
    meta["parity_max_abs_diff"] = diff
    (path / "meta.json").write_text(json.dumps(meta, indent=2))
    report = TrainReport(
        version=version,
        path=path,
        examples=int(sum(len(s.ids) for s in data.searches)),
        searches=len(train),
        holdout_searches=len(test),
        metrics=metrics,
        parity_max_abs_diff=diff,
        gate=result.verdict,
        gate_gain=result.gain,
        gate_gain_se=result.gain_se,
    )
    wins = result.wins
    if promote and (wins or force):
        registry.promote(version, reason="forced" if force and not wins else "gate")
        report.promoted = True
    return report


def latest_searches(data: Dataset, n: int | None) -> Dataset:
    """Only the `n` most recent searches (all when None)."""
    if n is None:
        return data
    ordered: Sequence[Any] = sorted(data.searches, key=lambda s: s.timestamp)
    return Dataset(list(ordered[-n:]))


LOG_MODE_FEATURES = {"lexical": "lex_rr", "vector": "vec_rr", "hybrid": "retrieval_rr"}


def evaluate_logged_modes(
    data: Dataset,
    live: Scorer,
    *,
    k: int = 10,
    propensity: np.ndarray | None = None,
) -> dict[str, dict[str, float]]:
    """Each mode's order within the logged windows, scored by the logged engagement
    (weighted by inverse `propensity` when given, as the gate does): `lexical` / `vector` /
    `hybrid` re-sort the window by that leg's logged rank, `full` by the live model's
    score. (Only what the window held can be judged from logs.) nDCG@k and MRR."""

    class _ByFeature:
        def __init__(self, name: str) -> None:
            self.version = name
            self.column = FEATURE_NAMES.index(name)

        def score(self, x: np.ndarray) -> np.ndarray:
            return np.asarray(x[:, self.column])

        def contributions(self, x: np.ndarray) -> list[dict[str, float]]:
            return []

    scorers: dict[str, Scorer] = {m: _ByFeature(f) for m, f in LOG_MODE_FEATURES.items()}
    scorers["full"] = live
    out = {}
    for mode, scorer in scorers.items():
        values = evaluate_scorer(scorer, data, k=k, propensity=propensity)
        out[mode] = {key: v for key, v in values.items() if not key.startswith("dcg@")}
    return out
