"""Ranking features: the registry (names, types, defaults), their computation and sources."""

from shoprank.rerankers.features.compute import Inputs, compute_features
from shoprank.rerankers.features.registry import (
    FEATURE_NAMES,
    FEATURES,
    REGISTRY_VERSION,
    Feature,
    vectorise,
)

__all__ = [
    "FEATURES",
    "FEATURE_NAMES",
    "REGISTRY_VERSION",
    "Feature",
    "Inputs",
    "compute_features",
    "vectorise",
]
