"""Scoring a feature matrix: the learned ONNX model, or the documented default scorer.

Both give a score per row and, for explanations, each feature's contribution to it
(contributions plus the bias sum to the score). Only numpy and onnxruntime are used here:
this module is on the serving path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from shoprank.errors import ConfigError
from shoprank.rerankers.features.registry import FEATURE_NAMES, INDEX, REGISTRY_VERSION

DEFAULT_VERSION = "default-v1"

#: Cold-start scorer: retrieval order first, nudged by intent agreement, the shopper's
#: affinities (when a profile exists) and popularity. A linear sum of weight × feature.
DEFAULT_WEIGHTS: dict[str, float] = {
    "retrieval_rr": 1.0,
    "lex_rr": 0.2,
    "vec_rr": 0.2,
    "intent_cat_prob": 0.4,
    "intent_brand_match": 0.3,
    "intent_brand_conflict": -0.2,
    "intent_colour_match": 0.1,
    "intent_price_out": -0.4,
    "user_cat_aff": 0.15,
    "user_brand_aff": 0.3,
    "user_price_fit": 0.05,
    "user_vec_sim": 0.05,
    "session_cat_aff": 0.1,
    "session_brand_aff": 0.15,
    "prod_popularity": 0.02,
    "query_ctr": 0.3,
}

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


class DefaultScorer:
    """The documented cold-start scorer (`DEFAULT_WEIGHTS`)."""

    version = DEFAULT_VERSION

    def __init__(self, weights: dict[str, float] | None = None) -> None:
        self.weights = dict(weights or DEFAULT_WEIGHTS)
        self._w = np.zeros(len(FEATURE_NAMES), dtype=np.float32)
        for name, w in self.weights.items():
            self._w[INDEX[name]] = w

    def score(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x @ self._w, dtype=np.float32)

    def contributions(self, x: np.ndarray) -> list[dict[str, float]]:
        parts = x * self._w
        return [{FEATURE_NAMES[j]: float(row[j]) for j in np.flatnonzero(row)} for row in parts]


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
