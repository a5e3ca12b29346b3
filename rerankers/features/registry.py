"""The one list of ranking features: name, type, default and meaning.

Training and serving both build their feature matrices from `FEATURES` (in this order),
so a model trained on logged features sees the same columns at serve time. A model records
the `REGISTRY_VERSION` it was trained with; a mismatch refuses to load.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Kind = Literal["float", "bool"]
Group = Literal["retrieval", "intent", "user", "product"]


@dataclass(frozen=True)
class Feature:
    name: str
    group: Group
    kind: Kind
    default: float
    doc: str


def _f(name: str, group: Group, doc: str, *, kind: Kind = "float", default: float = 0.0) -> Feature:
    return Feature(name, group, kind, default, doc)


FEATURES: tuple[Feature, ...] = (
    # retrieval evidence
    _f("fused_score", "retrieval", "score after fusion (RRF or linear)"),
    _f("retrieval_rr", "retrieval", "1 / rank after fusion"),
    _f("lex_present", "retrieval", "found by the lexical (BM25) leg", kind="bool"),
    _f("lex_score", "retrieval", "BM25 score"),
    _f("lex_rr", "retrieval", "1 / rank in the lexical leg (0 when absent)"),
    _f("vec_present", "retrieval", "found by the text kNN leg", kind="bool"),
    _f("vec_score", "retrieval", "text kNN similarity"),
    _f("vec_rr", "retrieval", "1 / rank in the text kNN leg"),
    _f("img_score", "retrieval", "text→image kNN similarity"),
    _f("img_rr", "retrieval", "1 / rank in the image leg"),
    # intent agreement
    _f("intent_present", "intent", "an intent prediction was available", kind="bool"),
    _f("intent_cat_prob", "intent", "predicted probability of the product's category"),
    _f(
        "intent_type_prob",
        "intent",
        "query's probability of the product's induced type (a catalog without categories)",
    ),
    _f(
        "intent_brand_match", "intent", "the product's brand is one named in the query", kind="bool"
    ),
    _f("intent_brand_conflict", "intent", "the query names another brand", kind="bool"),
    _f(
        "intent_colour_match",
        "intent",
        "the product's colour is one named in the query",
        kind="bool",
    ),
    _f("intent_price_in", "intent", "price inside the query's price range", kind="bool"),
    _f("intent_price_out", "intent", "price outside the query's price range", kind="bool"),
    # user × product
    _f("user_present", "user", "the shopper has a profile", kind="bool"),
    _f("user_cat_aff", "user", "share of the user's category affinity on the product's category"),
    _f("user_brand_aff", "user", "share of the user's brand affinity on the product's brand"),
    _f("user_price_fit", "user", "exp(−z²/2), z = (price − user's mean price) / std"),
    _f("user_vec_sim", "user", "cosine of the user vector and the product's text vector"),
    _f("user_seen", "user", "the user interacted with the product before", kind="bool"),
    _f("user_seen_recency", "user", "1 / (1 + days since the user's last interaction)"),
    _f(
        "user_brand_weight",
        "user",
        "log(1 + the user's decayed engagement weight on the product's brand)",
    ),
    _f(
        "user_sim_max",
        "user",
        "highest cosine of the product's text vector to an item the user engaged with",
    ),
    _f(
        "user_sim_brand",
        "user",
        "share of the user's engaged items similar to the product that are of its brand",
    ),
    _f(
        "user_sim_price_fit",
        "user",
        "exp(−z²/2), z = log-price gap to the user's engaged items similar to the product",
    ),
    _f("session_cat_aff", "user", "category affinity share in this session"),
    _f("session_brand_aff", "user", "brand affinity share in this session"),
    # product
    _f("prod_popularity", "product", "log(1 + clicks + carts + purchases)"),
    _f("prod_ctr", "product", "smoothed click-through rate of the product"),
    _f("query_ctr", "product", "smoothed CTR of this query × product"),
    _f("query_clicks", "product", "log(1 + clicks) of this query × product"),
    _f("rating", "product", "average rating (0 when the catalog has none)"),
    _f("log_reviews", "product", "log(1 + review count)"),
    _f("log_price", "product", "log(1 + price)"),
    _f("freshness", "product", "1 / (1 + years since release)"),
    _f(
        "in_stock",
        "product",
        "in stock (1 when the catalog does not say)",
        kind="bool",
        default=1.0,
    ),
)

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
DEFAULTS: dict[str, float] = {f.name: f.default for f in FEATURES}
INDEX: dict[str, int] = {name: i for i, name in enumerate(FEATURE_NAMES)}
REGISTRY_VERSION = (
    "features-"
    + hashlib.sha256(
        "\n".join(f"{f.name}:{f.kind}:{f.default}" for f in FEATURES).encode()
    ).hexdigest()[:12]
)


_DEFAULT_ROW = np.array([f.default for f in FEATURES], dtype=np.float32)


def vectorise(rows: Sequence[Mapping[str, float]]) -> np.ndarray:
    """Feature dicts → a float32 matrix in registry order (missing → the default).

    A row sets a third of the registry or less: the defaults are laid down at once and the
    values present written over them. The rows of a window mostly set the same names in
    the same order (one code path made them), so rows are grouped by their names and each
    group written in one assignment (names outside the registry are ignored)."""
    out = np.tile(_DEFAULT_ROW, (len(rows), 1))
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(tuple(row), []).append(i)
    index = INDEX
    for names, at in groups.items():
        keep = [k for k, name in enumerate(names) if name in index]
        if not keep:
            continue
        cols = [index[names[k]] for k in keep]
        values = np.array([list(rows[i].values()) for i in at], dtype=np.float32)
        if len(keep) < len(names):
            values = values[:, keep]
        out[np.ix_(at, cols)] = values
    return out
