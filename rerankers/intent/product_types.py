"""Product types induced from a catalog that has no category field.

A title-only catalog (Home Depot's 54,667 titles, a shop's feed without a taxonomy) still
has kinds of products: its text vectors form clusters, and the words that are common in a
cluster but rare elsewhere name it ("toilet seat", "ceiling fan"). `induce` clusters the
stored `text_vector` of every product with seeded spherical k-means (fitted on a sample,
every product assigned), names each cluster by its most distinctive title words, and
calibrates how sharply a query's embedding picks a type: softmax(cos / T), with T the
maximum-likelihood temperature on query-shaped word windows of products (embedded with
the serving encoder, their type known). Held-out windows measure top-1/top-3.

Serving reads `types.json` (names, temperature) and `types.npz` (centroids, the type of
each product id): `predict` costs one [k, d] matrix-vector product on the query embedding
the vector leg already computed; `of` is a dict lookup. The ranker uses the two together
(`intent_cat_prob` of a product = the query's probability of the product's type), the
rewriter never filters on them: no product carries a type field in the index.
"""

from __future__ import annotations

import json
import math
import random
import zlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .text import tokenize

FIT_SAMPLE = 20_000
MAX_TYPES = 200
MIN_PRODUCTS = 20
ITERATIONS = 20
CALIBRATION_PRODUCTS = 1_500
TEMPERATURES = (0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.07, 0.1)
MIN_TYPE_PROB = 0.05
MAX_PREDICTED = 8
#: Words that never name a type: units, connectives, sizes.
_STOP = frozenset(
    {"and", "the", "for", "with", "inch", "inches", "pack", "set", "piece", "pieces", "gal"}
)
Encode = Callable[[Sequence[str]], npt.NDArray[np.float32]]


def type_count(products: int) -> int:
    """About one type per 4·k products: sqrt(n / 4), between 2 and `MAX_TYPES`."""
    return int(min(MAX_TYPES, max(2, round(math.sqrt(products / 4)))))


def _unit(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.asarray(x / np.where(norms > 0, norms, 1.0), dtype=np.float32)


def spherical_kmeans(
    x: npt.NDArray[np.float32], k: int, *, seed: int, iterations: int = ITERATIONS
) -> npt.NDArray[np.float32]:
    """Unit centroids of `k` clusters of the unit rows of `x` (k-means++ seeding by
    cosine distance, then Lloyd steps on the sphere; an emptied cluster is re-seeded at
    the row its centroid explains worst)."""
    rng = np.random.default_rng(seed)
    n = len(x)
    k = min(k, n)
    centroids = np.empty((k, x.shape[1]), dtype=np.float32)
    centroids[0] = x[rng.integers(n)]
    best = x @ centroids[0]
    for j in range(1, k):
        gap = np.clip(1.0 - best, 0.0, None).astype(np.float64)
        total = gap.sum()
        pick = int(rng.choice(n, p=gap / total)) if total > 0 else int(rng.integers(n))
        centroids[j] = x[pick]
        best = np.maximum(best, x @ centroids[j])
    for _ in range(iterations):
        sims = x @ centroids.T
        assign = sims.argmax(axis=1)
        fit = sims[np.arange(n), assign]
        sums = np.zeros_like(centroids)
        np.add.at(sums, assign, x)
        counts = np.bincount(assign, minlength=k)
        for empty in np.flatnonzero(counts == 0):
            worst = int(fit.argmin())
            sums[empty] = x[worst]
            fit[worst] = np.inf
        moved = _unit(sums)
        if np.allclose(moved, centroids, atol=1e-5):
            centroids = moved
            break
        centroids = moved
    return centroids


def assign(x: npt.NDArray[np.float32], centroids: npt.NDArray[np.float32]) -> npt.NDArray[np.int64]:
    out = np.empty(len(x), dtype=np.int64)
    for i in range(0, len(x), 8192):
        out[i : i + 8192] = (x[i : i + 8192] @ centroids.T).argmax(axis=1)
    return out


def _words(title: str) -> set[str]:
    return {
        t.key
        for t in tokenize(title)
        if len(t.key) > 2 and t.key not in _STOP and not any(c.isdigit() for c in t.key)
    }


def type_names(titles: Sequence[str], labels: npt.NDArray[np.int64], k: int) -> list[str]:
    """Each type's two most distinctive title words (share in the type × log lift over
    the catalog), unique across types (a repeated name gets the next word)."""
    everywhere: Counter[str] = Counter()
    per_type: list[Counter[str]] = [Counter() for _ in range(k)]
    sizes = np.bincount(labels, minlength=k)
    for title, label in zip(titles, labels, strict=True):
        words = _words(title)
        everywhere.update(words)
        per_type[int(label)].update(words)
    total = max(len(titles), 1)
    names: list[str] = []
    taken: set[str] = set()
    for j in range(k):
        scored = sorted(
            (
                (count / sizes[j]) * math.log((count / sizes[j]) / (everywhere[w] / total)),
                w,
            )
            for w, count in per_type[j].items()
            if count >= 2 or sizes[j] < 4
        )
        ranked = [w for _, w in reversed(scored)]
        name = " ".join(ranked[:2]) or f"type {j}"
        extra = 2
        while name in taken:
            name = " ".join(ranked[: extra + 1]) if extra < len(ranked) else f"{name} {j}"
            extra += 1
        taken.add(name)
        names.append(name)
    return names


@dataclass
class ProductTypes:
    """The induced types: names, unit centroids, the temperature, each product's type."""

    names: list[str]
    centroids: npt.NDArray[np.float32]
    temperature: float
    ids: list[str] = field(default_factory=list)
    labels: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    accuracy: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._of = dict(zip(self.ids, (int(v) for v in self.labels), strict=True))

    # Shared, read-only: an `Intent` holding it is copied without copying the table.
    def __copy__(self) -> ProductTypes:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> ProductTypes:
        return self

    @property
    def dims(self) -> int:
        return int(self.centroids.shape[1])

    def of(self, product_id: str) -> str | None:
        label = self._of.get(str(product_id))
        return self.names[label] if label is not None else None

    def probabilities(self, embedding: Sequence[float]) -> npt.NDArray[np.float32]:
        q = _unit(np.asarray(embedding, dtype=np.float32).reshape(-1))
        logits = (self.centroids @ q) / self.temperature
        logits -= logits.max()
        p = np.exp(logits)
        return np.asarray(p / p.sum(), dtype=np.float32)

    def predict(self, embedding: Sequence[float] | None) -> list[tuple[str, float]]:
        """The query's most probable types (probability ≥ 0.05, at most 8)."""
        if embedding is None or len(embedding) != self.dims:
            return []
        probs = self.probabilities(embedding)
        order = np.argsort(-probs)[:MAX_PREDICTED]
        return [
            (self.names[i], round(float(probs[i]), 4)) for i in order if probs[i] >= MIN_TYPE_PROB
        ]

    # -- files ---------------------------------------------------------------------------

    def save(self, model_dir: Path) -> None:
        tmp = model_dir / ".types.npz.tmp"
        with tmp.open("wb") as fh:
            np.savez(
                fh,
                centroids=self.centroids,
                ids=np.asarray(self.ids, dtype=object).astype(str),
                labels=self.labels,
            )
        tmp.replace(model_dir / "types.npz")
        meta = {"names": self.names, "temperature": self.temperature, "accuracy": self.accuracy}
        (model_dir / "types.json").write_text(json.dumps(meta, ensure_ascii=False))

    @classmethod
    def load(cls, model_dir: Path) -> ProductTypes | None:
        if not (model_dir / "types.json").is_file():
            return None
        meta = json.loads((model_dir / "types.json").read_text())
        with np.load(model_dir / "types.npz", allow_pickle=False) as arrays:
            centroids = np.asarray(arrays["centroids"], dtype=np.float32)
            ids = [str(v) for v in arrays["ids"]]
            labels = np.asarray(arrays["labels"], dtype=np.int64)
        if len(meta["names"]) != len(centroids) or len(ids) != len(labels):
            raise ValueError("types.json and types.npz disagree")
        return cls(
            names=[str(n) for n in meta["names"]],
            centroids=centroids,
            temperature=float(meta["temperature"]),
            ids=ids,
            labels=labels,
            accuracy=dict(meta.get("accuracy") or {}),
        )


def _held_out(product_id: str) -> bool:
    return zlib.crc32(product_id.encode("utf-8")) % 2 == 0


def calibrate(
    types: ProductTypes,
    windows: Sequence[tuple[str, int, bool]],
    encode: Encode,
) -> tuple[float, dict[str, Any]]:
    """The temperature that makes softmax(cos / T) most likely on the fitting windows
    (text, type, held out?), and top-1/top-3 of the held-out ones."""
    if not windows:
        return 0.05, {}
    emb = _unit(np.asarray(encode([w[0] for w in windows]), dtype=np.float32))
    labels = np.array([w[1] for w in windows], dtype=np.int64)
    held = np.array([w[2] for w in windows], dtype=bool)
    sims = emb @ types.centroids.T
    fit = ~held if (~held).any() else held
    best_t, best_ll = TEMPERATURES[0], -math.inf
    for t in TEMPERATURES:
        z = sims[fit] / t
        z -= z.max(axis=1, keepdims=True)
        ll = float((z[np.arange(len(z)), labels[fit]] - np.log(np.exp(z).sum(axis=1))).mean())
        if ll > best_ll:
            best_t, best_ll = t, ll
    accuracy: dict[str, Any] = {}
    if held.any():
        top = np.argsort(-sims[held], axis=1)[:, :3]
        truth = labels[held]
        accuracy["window"] = {
            "n": int(held.sum()),
            "top1": round(float((top[:, 0] == truth).mean()), 4),
            "top3": round(float((top == truth[:, None]).any(axis=1).mean()), 4),
        }
        accuracy["all"] = accuracy["window"]
    return best_t, accuracy


def induce(
    products: Sequence[tuple[str, str]],
    vectors: Mapping[str, npt.NDArray[np.float32]],
    *,
    encode: Encode,
    windows_of: Callable[[str, random.Random], list[str]],
    seed: int = 13,
    k: int | None = None,
) -> ProductTypes:
    """Types of the (id, title) `products` from their stored `vectors` (those without one
    get no type); `windows_of(title, rng)` makes the query-shaped calibration texts."""
    with_vector = [(pid, title) for pid, title in products if pid in vectors]
    if len(with_vector) < MIN_PRODUCTS:
        raise ValueError(
            f"{len(with_vector)} products have a text vector; {MIN_PRODUCTS} are needed"
        )
    ids = [pid for pid, _ in with_vector]
    x = _unit(np.stack([np.asarray(vectors[pid], dtype=np.float32) for pid in ids]))
    k = k or type_count(len(ids))
    rng = np.random.default_rng(seed)
    sample = rng.choice(len(ids), size=min(FIT_SAMPLE, len(ids)), replace=False)
    centroids = spherical_kmeans(x[np.sort(sample)], k, seed=seed)
    labels = assign(x, centroids)
    titles = [title for _, title in with_vector]
    types = ProductTypes(type_names(titles, labels, len(centroids)), centroids, 0.05, ids, labels)
    text_rng = random.Random(seed)
    picks = text_rng.sample(range(len(ids)), min(CALIBRATION_PRODUCTS, len(ids)))
    windows = [
        (text, int(labels[i]), _held_out(ids[i]))
        for i in picks
        for text in windows_of(titles[i], text_rng)[:2]
    ]
    types.temperature, types.accuracy = calibrate(types, windows, encode)
    return types
