"""Diversity reranking of a result page: MMR over product vectors, or a per-value cap.

A page of near-identical products (ten black HP toners) answers the query but wastes the
shopper's screen. Two optional ways to spread it, chosen by `SHOPRANK_DIVERSITY` or per
request (`ext.shoprank.diversity` on `_search`, `diversity` on a recommendation):

- `mmr` — maximal marginal relevance: the page is picked greedily, each next product the
  one with the best `λ · relevance − (1 − λ) · max similarity to the products already
  picked`; relevance is the list's scores min-max normalised, similarity the cosine of
  the products' text vectors (a product without a vector is similar to nothing). λ = 1
  keeps the relevance order.
- `cap` — at most `max` products per value of a field (`brand`, `category`, …) on each
  page: a product whose value (any value, for a multi-valued field) is already at the cap
  is deferred, and deferred products fill in when the page would otherwise be short. A
  product without the field is never capped.

`diversify` only reorders: its output is a permutation of its input, whose first `size`
positions are the diversified pages and the rest follow in their given order.
`Diversifier` fetches what `diversify` needs (vectors, field values) from a backend,
cached briefly per product like the ranker's features.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from shoprank.errors import BadRequestError
from shoprank.rerankers.features.source import TEXT_VECTOR_FIELD, _TTLCache

if TYPE_CHECKING:
    from shoprank.plugin.backends.protocol import SearchBackend
    from shoprank.settings import Settings

__all__ = [
    "DIVERSITY_TYPES",
    "NO_DIVERSITY",
    "DiversitySpec",
    "Diversifier",
    "diversify",
    "intra_list_diversity",
    "parse_diversity",
]

DiversityType = Literal["none", "mmr", "cap"]
DIVERSITY_TYPES: tuple[DiversityType, ...] = ("none", "mmr", "cap")
# The keys an object spec may carry, per type ("max" and "lambda" as the request spells them).
SPEC_KEYS: dict[str, tuple[str, ...]] = {
    "none": ("type",),
    "mmr": ("type", "lambda"),
    "cap": ("type", "field", "max"),
}
Vector = npt.NDArray[np.float32]
Ranked = list[tuple[str, float]]


@dataclass(frozen=True)
class DiversitySpec:
    """How to diversify a page: the method and its parameters (unused ones keep defaults)."""

    type: DiversityType
    lambda_: float = 0.7
    field: str = "brand"
    max_per: int = 2

    @property
    def enabled(self) -> bool:
        return self.type != "none"

    @property
    def stage(self) -> str:
        """The stage name under `_shoprank.stages` and `degraded` (`diversity:mmr`, …)."""
        return f"diversity:{self.type}"

    def to_dict(self) -> dict[str, Any]:
        """The spec as a request would spell it (what `_shoprank.diversity` reports)."""
        if self.type == "mmr":
            return {"type": "mmr", "lambda": self.lambda_}
        if self.type == "cap":
            return {"type": "cap", "field": self.field, "max": self.max_per}
        return {"type": "none"}


NO_DIVERSITY = DiversitySpec("none")


def parse_diversity(
    raw: Any, settings: Settings, *, where: str = "ext.shoprank.diversity"
) -> DiversitySpec:
    """The spec a request asks for: `"none"`, `"mmr"`, `"cap"`, or an object
    (`{"type": "mmr", "lambda": 0.5}`, `{"type": "cap", "field": "brand", "max": 2}`);
    absent (None) means the `SHOPRANK_DIVERSITY*` settings. Anything else is a 400 naming
    `where`, the bad key or value and what is allowed."""
    defaults = DiversitySpec(
        settings.diversity,
        lambda_=settings.diversity_lambda,
        field=settings.diversity_field,
        max_per=settings.diversity_cap,
    )
    if raw is None:
        return defaults
    if isinstance(raw, str):
        return DiversitySpec(_type(raw, where), defaults.lambda_, defaults.field, defaults.max_per)
    if not isinstance(raw, dict):
        raise BadRequestError(
            f"[{where}] must be one of {list(DIVERSITY_TYPES)} or an object such as "
            f'{{"type": "mmr", "lambda": 0.7}}, got {raw!r}'
        )
    if "type" not in raw:
        raise BadRequestError(
            f"[{where}] needs [type], one of {list(DIVERSITY_TYPES)}; got keys {sorted(raw)}"
        )
    kind = _type(raw["type"], f"{where}.type")
    unknown = sorted(set(raw) - set(SPEC_KEYS[kind]))
    if unknown:
        raise BadRequestError(
            f"unknown [{where}] key(s) {unknown} for type [{kind}]; allowed: "
            f"{sorted(SPEC_KEYS[kind])}"
        )
    lam = raw.get("lambda", defaults.lambda_)
    if isinstance(lam, bool) or not isinstance(lam, int | float) or not 0.0 <= lam <= 1.0:
        raise BadRequestError(
            f"[{where}.lambda] must be a number from 0 (only dissimilarity) to 1 (relevance "
            f"order), got {lam!r}"
        )
    field = raw.get("field", defaults.field)
    if not isinstance(field, str) or not field.strip():
        raise BadRequestError(
            f"[{where}.field] must be a field name such as brand or category, got {field!r}"
        )
    cap = raw.get("max", defaults.max_per)
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
        raise BadRequestError(
            f"[{where}.max] must be a whole number of at least 1 (products per value on a "
            f"page), got {cap!r}"
        )
    return DiversitySpec(kind, lambda_=float(lam), field=field.strip(), max_per=cap)


def _type(raw: Any, where: str) -> DiversityType:
    for kind in DIVERSITY_TYPES:
        if raw == kind:
            return kind
    raise BadRequestError(f"[{where}] must be one of {list(DIVERSITY_TYPES)}, got {raw!r}")


def diversify(
    ranked: Sequence[tuple[str, float]],
    spec: DiversitySpec,
    *,
    size: int,
    vectors: Mapping[str, Any] | None = None,
    facts: Mapping[str, Mapping[str, Any]] | None = None,
    page_size: int | None = None,
) -> Ranked:
    """`ranked` (id, score), best first, with its first `size` positions diversified and
    the rest following in their order; scores are kept. `vectors` (id → text vector) serve
    `mmr`, `facts` (id → source fields) serve `cap`, whose count restarts every
    `page_size` positions (default: one page of `size`)."""
    items = list(ranked)
    size = max(0, min(size, len(items)))
    if not spec.enabled or size == 0:
        return items
    if spec.type == "mmr":
        order = _mmr(items, spec.lambda_, size, vectors or {})
    else:
        order = _cap(items, spec.field, spec.max_per, size, page_size or size, facts or {})
    picked = set(order)
    return [items[i] for i in order] + [it for i, it in enumerate(items) if i not in picked]


def _unit_rows(ids: Sequence[str], vectors: Mapping[str, Any]) -> Vector:
    """One unit row per id (zeros for an id without a vector, so it is similar to none)."""
    dims = next((np.asarray(vectors[i]).shape[-1] for i in ids if i in vectors), 0)
    matrix = np.zeros((len(ids), dims), dtype=np.float32)
    for row, pid in enumerate(ids):
        vector = vectors.get(pid)
        if vector is not None:
            matrix[row] = np.asarray(vector, dtype=np.float32).reshape(-1)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit: npt.NDArray[np.float32] = np.divide(
        matrix, norms, out=np.zeros_like(matrix), where=norms > 0
    )
    return unit


def _mmr(items: Ranked, lam: float, size: int, vectors: Mapping[str, Any]) -> list[int]:
    if lam >= 1.0 or not vectors:
        return list(range(size))
    scores = np.asarray([s for _, s in items], dtype=np.float64)
    scores = np.nan_to_num(scores, nan=0.0, posinf=0.0, neginf=0.0)
    spread = float(scores.max() - scores.min())
    relevance = (scores - scores.min()) / spread if spread > 0 else np.ones_like(scores)
    matrix = _unit_rows([pid for pid, _ in items], vectors)
    gain = lam * relevance
    closest: npt.NDArray[np.float64] | None = None  # max similarity to the picked products
    taken = np.zeros(len(items), dtype=bool)
    order: list[int] = []
    for _ in range(size):
        value = gain if closest is None else gain - (1.0 - lam) * closest
        value = np.where(taken, -np.inf, value)
        best = int(np.argmax(value))  # ties go to the better-ranked product
        order.append(best)
        taken[best] = True
        similarity = (matrix @ matrix[best]).astype(np.float64)
        closest = similarity if closest is None else np.maximum(closest, similarity)
    return order


def _values(source: Mapping[str, Any] | None, field: str) -> set[str]:
    """The field's values in a product's source (a dotted path walks objects); strings
    compare case-insensitively."""
    node: Any = source
    for part in field.split("."):
        if isinstance(node, list):
            node = [n.get(part) for n in node if isinstance(n, Mapping)]
        elif isinstance(node, Mapping):
            node = node.get(part)
        else:
            return set()
    pending = list(node) if isinstance(node, list) else [node]  # a copy: sources stay as read
    out = set()
    for value in pending:
        if isinstance(value, list):
            pending.extend(value)
        elif value is not None and value != "":
            out.add(value.strip().casefold() if isinstance(value, str) else str(value))
    return out


def _cap(
    items: Ranked,
    field: str,
    max_per: int,
    size: int,
    page_size: int,
    facts: Mapping[str, Mapping[str, Any]],
) -> list[int]:
    values = [_values(facts.get(pid), field) for pid, _ in items]
    remaining = list(range(len(items)))
    order: list[int] = []
    while len(order) < size and remaining:
        want = min(page_size, size - len(order))
        counts: dict[str, int] = {}
        page: list[int] = []
        deferred: list[int] = []
        for i in remaining:
            if len(page) == want:
                break
            if any(counts.get(v, 0) >= max_per for v in values[i]):
                deferred.append(i)
                continue
            page.append(i)
            for v in values[i]:
                counts[v] = counts.get(v, 0) + 1
        page += deferred[: want - len(page)]  # short page: the deferred fill in, in order
        chosen = set(page)
        order += page
        remaining = [i for i in remaining if i not in chosen]
    return order


def intra_list_diversity(ids: Sequence[str], vectors: Mapping[str, Any]) -> float:
    """Mean pairwise `1 − cosine` of the listed products' vectors (products without one are
    left out; fewer than two → 0.0): 0 for identical products, about 1 for unrelated."""
    present = [pid for pid in dict.fromkeys(ids) if pid in vectors]
    if len(present) < 2:
        return 0.0
    matrix = _unit_rows(present, vectors).astype(np.float64)
    gram = matrix @ matrix.T
    n = len(present)
    mean_similarity = (float(gram.sum()) - float(np.trace(gram))) / (n * (n - 1))
    value = 1.0 - mean_similarity
    return value if math.isfinite(value) else 0.0


class Diversifier:
    """Diversifies pages of one backend's products: fetches the text vectors (`mmr`) or the
    field values (`cap`) of the listed ids, cached per product for `cache_ttl_s`."""

    def __init__(
        self,
        backend: SearchBackend,
        *,
        vector_field: str = TEXT_VECTOR_FIELD,
        cache_size: int = 50_000,
        cache_ttl_s: float = 60.0,
    ) -> None:
        self.backend = backend
        self.vector_field = vector_field
        self._vectors = _TTLCache(cache_size, cache_ttl_s)
        self._facts = _TTLCache(cache_size, cache_ttl_s)

    def vectors(
        self, index: str, ids: Sequence[str], *, now: float | None = None
    ) -> dict[str, Any]:
        """The text vectors of those ids that have one."""
        backend, field = self.backend, self.vector_field
        return self._cached(
            self._vectors,
            index,
            ids,
            lambda miss: backend.vectors_of(index, miss, field),
            now,
        )

    def facts(
        self, index: str, ids: Sequence[str], field: str, *, now: float | None = None
    ) -> dict[str, Any]:
        """Each id's source, narrowed to `field` (cached per index and field)."""
        backend = self.backend
        top = field.split(".")[0]
        return self._cached(
            self._facts,
            f"{index}\x00{top}",
            ids,
            lambda miss: backend.mget(index, miss, source=[top]),
            now,
        )

    def apply(
        self,
        index: str,
        ranked: Sequence[tuple[str, float]],
        spec: DiversitySpec,
        *,
        size: int,
        page_size: int | None = None,
    ) -> Ranked:
        """`diversify` over `ranked` with the inputs its method needs fetched."""
        if not spec.enabled:
            return list(ranked)
        ids = [pid for pid, _ in ranked]
        if spec.type == "mmr":
            return diversify(ranked, spec, size=size, vectors=self.vectors(index, ids))
        facts = self.facts(index, ids, spec.field)
        return diversify(ranked, spec, size=size, facts=facts, page_size=page_size)

    def ild(self, index: str, ids: Sequence[str]) -> float:
        """`intra_list_diversity` of the listed products."""
        return intra_list_diversity(ids, self.vectors(index, ids))

    @staticmethod
    def _cached(
        cache: _TTLCache, key: str, ids: Sequence[str], fetch: Any, now: float | None
    ) -> dict[str, Any]:
        at = time.monotonic() if now is None else now
        found, missing = cache.get_many(key, ids, at)
        if missing:
            fetched = fetch(missing)
            cache.put_many(key, fetched, missing, at)
            found.update(fetched)
        return {k: v for k, v in found.items() if v is not None}
