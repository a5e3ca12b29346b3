"""Scoring a feature matrix: the learned ONNX model, or the documented default scorer.

Both give a score per row and, for explanations, each feature's contribution to it
(contributions plus the bias sum to the score). Only numpy and onnxruntime are used here:
this module is on the serving path.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from shoprank.errors import ConfigError
from shoprank.rerankers.features.registry import FEATURE_NAMES, INDEX, REGISTRY_VERSION

DEFAULT_VERSION = "default-v1"

#: Cold-start scorer (`DefaultScorer`): the retrieval (hybrid) order, moved only by strong
#: evidence. A product's score is -ln(retrieval rank) plus nudges in the same units (a
#: nudge of ln 2 halves its rank), and every nudge is zero unless its evidence is strong:
#: the query names the product's brand (or another one), the query's price range excludes
#: it, a confident category prediction rules it out, or the shopper's history leans on
#: its brand. Without a profile and without such intent the order is exactly hybrid's
#: (the weighted sum this replaced shuffled places: on a title-only catalog it moved 301
#: of 2,000 Home Depot queries, 167 of them down).
COLD_START_NUDGES: dict[str, float] = {
    "intent_brand_match": math.log(3.0),
    "intent_brand_conflict": -math.log(2.0),
    "intent_price_out": -math.log(4.0),
    "intent_cat_prob": -math.log(2.0),  # the confident prediction names another category
    "user_brand_aff": math.log(3.0),  # × the share, when the evidence is strong
}
#: A category prediction is confident when some product of the window gets at least this
#: probability; a product below `CAT_RULED_OUT` is then ruled out.
CAT_CONFIDENT = 0.7
CAT_RULED_OUT = 0.05
#: The shopper's history leans on a brand: at least half of their brand affinity and more
#: than one click's worth of engagement (`SHOPRANK_EVENT_WEIGHTS`: click 2, cart 5, buy 10).
BRAND_SHARE = 0.5
BRAND_WEIGHT = math.log1p(3.0)

#: The cold-start scorer on a recommendation list (`RerankContext.surface == "recommend"`):
#: no query, so the candidates' blend (`fused_score`, the strategy's own evidence) leads,
#: nudged by the shopper's brand affinity and price band. Search's weights put brand
#: affinity above everything past the third candidate, which cost `for_you` 17 % of its
#: hits on the simulator's held-out purchases (0.455 → 0.382 hit-rate@10, seed 0).
DEFAULT_RECOMMEND_WEIGHTS: dict[str, float] = {
    "fused_score": 1.0,
    "retrieval_rr": 0.5,
    "user_brand_aff": 0.2,
    "user_price_fit": 0.1,
}


class Scorer(Protocol):
    version: str

    def score(self, x: np.ndarray) -> np.ndarray:
        """One score per row of `x` (float32, registry column order)."""
        ...

    def contributions(self, x: np.ndarray) -> list[dict[str, float]]:
        """Per row: feature → its share of the score (plus `_bias`), non-zero ones only."""
        ...


class LinearScorer:
    """A documented weighted sum of features (the recommendation lists' cold start)."""

    def __init__(self, weights: dict[str, float], *, version: str = DEFAULT_VERSION) -> None:
        self.version = version
        self.weights = dict(weights)
        self._w = np.zeros(len(FEATURE_NAMES), dtype=np.float32)
        for name, w in self.weights.items():
            self._w[INDEX[name]] = w

    def score(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x @ self._w, dtype=np.float32)

    def contributions(self, x: np.ndarray) -> list[dict[str, float]]:
        parts = x * self._w
        return [{FEATURE_NAMES[j]: float(row[j]) for j in np.flatnonzero(row)} for row in parts]


class DefaultScorer:
    """The cold-start scorer of search (`COLD_START_NUDGES`): keeps the retrieval order
    unless the evidence is strong. Scores a whole window at once (the category rule looks
    at the window's best prediction)."""

    version = DEFAULT_VERSION

    def __init__(self, nudges: dict[str, float] | None = None) -> None:
        self.nudges = dict(COLD_START_NUDGES if nudges is None else nudges)

    def parts(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Each term of the score per row: `retrieval_rr` (-ln rank) and the nudges."""
        col = {name: x[:, INDEX[name]].astype(np.float64) for name in _USED}
        rr = col["retrieval_rr"]
        # A product without a retrieval rank goes after every ranked one, in its order.
        base = np.where(rr > 0, np.log(np.where(rr > 0, rr, 1.0)), -1e6)
        out: dict[str, np.ndarray] = {"retrieval_rr": base}
        n = self.nudges
        out["intent_brand_match"] = n.get("intent_brand_match", 0.0) * col["intent_brand_match"]
        out["intent_brand_conflict"] = (
            n.get("intent_brand_conflict", 0.0) * col["intent_brand_conflict"]
        )
        out["intent_price_out"] = n.get("intent_price_out", 0.0) * col["intent_price_out"]
        cat = col["intent_cat_prob"]
        confident = len(cat) > 0 and float(cat.max()) >= CAT_CONFIDENT
        ruled_out = (col["intent_present"] > 0) & (cat < CAT_RULED_OUT) & confident
        out["intent_cat_prob"] = n.get("intent_cat_prob", 0.0) * ruled_out
        share, weight = col["user_brand_aff"], col["user_brand_weight"]
        strong = (share >= BRAND_SHARE) & (weight >= BRAND_WEIGHT)
        out["user_brand_aff"] = n.get("user_brand_aff", 0.0) * share * strong
        return out

    def score(self, x: np.ndarray) -> np.ndarray:
        if len(x) == 0:
            return np.zeros(0, dtype=np.float32)
        total = sum(self.parts(x).values())
        return np.asarray(total, dtype=np.float32)

    def contributions(self, x: np.ndarray) -> list[dict[str, float]]:
        if len(x) == 0:
            return []
        parts = self.parts(x)
        # The retrieval term is always shown (it is 0 at rank 1): the order's basis.
        return [
            {
                name: float(v[i])
                for name, v in parts.items()
                if v[i] != 0.0 or name == "retrieval_rr"
            }
            for i in range(len(x))
        ]


_USED = (
    "retrieval_rr",
    "intent_present",
    "intent_brand_match",
    "intent_brand_conflict",
    "intent_price_out",
    "intent_cat_prob",
    "user_brand_aff",
    "user_brand_weight",
)


class OnnxScorer:
    """A trained model directory: `model.onnx`, `trees.json` (for contributions) and
    `meta.json` (version, feature list, registry version). Refuses a model whose features
    are not this registry's."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        self.path = path
        try:
            self.meta: dict[str, Any] = json.loads((path / "meta.json").read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"ranker model {path} has no readable meta.json: {exc}") from exc
        if (
            self.meta.get("registry_version") != REGISTRY_VERSION
            or tuple(self.meta.get("features", ())) != FEATURE_NAMES
        ):
            raise ConfigError(
                f"ranker model {self.meta.get('version', path.name)} was trained with feature "
                f"registry {self.meta.get('registry_version')!r}, this shoprank has "
                f"{REGISTRY_VERSION!r}; retrain it (`shoprank train ranker`) or roll back"
            )
        self.version = str(self.meta["version"])
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(path / "model.onnx"), opts, providers=["CPUExecutionProvider"]
        )
        self._input = self.session.get_inputs()[0].name
        self._trees: list[dict[str, Any]] | None = None

    def score(self, x: np.ndarray) -> np.ndarray:
        out = self.session.run(None, {self._input: np.ascontiguousarray(x, dtype=np.float32)})
        return np.asarray(out[0], dtype=np.float32).reshape(-1)

    def contributions(self, x: np.ndarray) -> list[dict[str, float]]:
        """Saabas attribution: walking each tree, a split's feature gets the change in the
        node's expected value; the root values sum to `_bias`."""
        if self._trees is None:
            self._trees = json.loads((self.path / "trees.json").read_text())
        out = []
        for row in x:
            contrib: dict[str, float] = {}
            bias = 0.0
            for tree in self._trees:
                node = tree
                if "leaf_value" in node:
                    bias += node["leaf_value"]
                    continue
                bias += node["internal_value"]
                while "leaf_value" not in node:
                    feature = node["split_feature"]
                    child = (
                        node["left_child"]
                        if row[feature] <= node["threshold"]
                        else node["right_child"]
                    )
                    value = child.get("leaf_value", child.get("internal_value", 0.0))
                    name = FEATURE_NAMES[feature]
                    contrib[name] = contrib.get(name, 0.0) + value - node["internal_value"]
                    node = child
            contrib = {k: v for k, v in contrib.items() if v != 0.0}
            contrib["_bias"] = bias
            out.append(contrib)
        return out
