"""Turning the category tree into products, deterministically for a seed."""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from .specs import (
    _article,
    _lower_noun,
    _noun_phrase,
)
from .tree import (
    _LEAVES,
    _PALETTES,
    _Leaf,
)

#: Fixed "today" for release dates, so output never depends on the wall clock.
REFERENCE_DATE = date(2025, 6, 30)
_RELEASE_WINDOW_DAYS = 4 * 365

_ADJECTIVES = ("versatile", "reliable", "well-designed", "popular", "dependable", "premium")
_CODE_LETTERS = "ABCEGHKMRSTVXZ"


@dataclass(frozen=True, slots=True)
class _Model:
    """A product family: brand, model name, base price, quality and release date."""

    brand: str
    name: str
    base_price: float
    quality: float
    released: date
    popularity: float


def _quotas(n: int) -> list[int]:
    """Split ``n`` products across leaves by weight (largest-remainder rounding)."""
    total = sum(leaf.weight for leaf in _LEAVES)
    raw = [n * leaf.weight / total for leaf in _LEAVES]
    counts = [math.floor(x) for x in raw]
    order = sorted(range(len(raw)), key=lambda i: (counts[i] - raw[i], i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return counts


def _model_code(rng: random.Random) -> str:
    pattern = rng.randrange(6)
    if pattern == 0:
        return f"{rng.choice(_CODE_LETTERS)}-{rng.randrange(100, 1000)}"
    if pattern == 1:
        return str(rng.randrange(2, 10))
    if pattern == 2:
        return f"{rng.choice(_CODE_LETTERS)}{rng.randrange(10, 100)}"
    if pattern == 3:
        return rng.choice(("II", "III", "IV", "Mk2", "Plus", "Max", "Lite"))
    if pattern == 4:
        return str(rng.choice((12, 14, 15, 16, 20, 24, 300, 500, 700)))
    return ""


def _make_models(rng: random.Random, leaf: _Leaf, count: int) -> list[_Model]:
    n_models = max(2, round(count / rng.uniform(2.5, 4.5)))
    seen: set[tuple[str, str]] = set()
    models: list[_Model] = []
    median, sigma = leaf.price
    for rank in range(n_models):
        for _ in range(8):
            brand = rng.choice(leaf.brands)
            name = f"{rng.choice(leaf.lines)} {_model_code(rng)}".strip()
            if (brand, name) not in seen:
                break
        seen.add((brand, name))
        released = REFERENCE_DATE - timedelta(days=rng.randrange(_RELEASE_WINDOW_DAYS))
        models.append(
            _Model(
                brand=brand,
                name=name,
                base_price=median * math.exp(rng.gauss(0.0, sigma)),
                quality=min(4.9, max(2.2, rng.gauss(4.1, 0.45))),
                released=released,
                popularity=1.0 / (rank + 1) ** 0.8,
            )
        )
    return models


def _shop_price(rng: random.Random, value: float) -> float:
    """Round to shop-style prices: 899.99, 49.95, 7.49."""
    if value >= 10:
        price = round(value) - rng.choice((0.01, 0.01, 0.05, 0.51, 0.0))
    else:
        price = round(value, 1) - 0.01
    return round(max(0.99, price), 2)


def _title(
    rng: random.Random, leaf: _Leaf, model: _Model, spec: str, noun: str, colour: str
) -> str:
    head = " ".join(p for p in (model.brand, model.name, spec, noun) if p)
    if rng.random() >= leaf.colour_in_title:
        return head
    style = rng.random()
    if style < 0.75:
        return f"{head} – {colour}"
    if style < 0.9:
        return f"{head}, {colour}"
    return f"{head} ({colour})"


def _description(
    rng: random.Random, leaf: _Leaf, model: _Model, noun: str, colour: str, material: str
) -> str:
    f1, f2, f3 = rng.sample(leaf.features, 3)
    use = rng.choice(leaf.uses)
    adj = rng.choice(_ADJECTIVES)
    full = f"{model.brand} {model.name}"
    noun_l = _noun_phrase(noun)
    colour_l = _lower_noun(colour)
    intro = rng.choice(
        (
            f"The {full} is {_article(adj)} {adj} {noun_l} with {f1} and {f2}.",
            f"Meet the {model.name} from {model.brand}: {_article(adj)} {adj} {noun_l} built "
            f"around {f1}.",
            f"This {colour_l} {noun_l} from {model.brand} combines {f1} with {f2}.",
            f"{f1[0].upper()}{f1[1:]}, {f2} and {f3} set the {full} apart.",
        )
    )
    if leaf.formula:
        body = rng.choice(
            (
                f"The formula contains {material}.",
                f"Enriched with {material}, it feels as good as it looks.",
                f"Its blend of {material} is suitable for daily use.",
            )
        )
    else:
        body = rng.choice(
            (
                f"It is made from {material}.",
                f"Crafted from {material}, it is built to last.",
                f"The {material} construction is durable and easy to care for.",
            )
        )
    outro = rng.choice(
        (
            f"Ideal for {use}.",
            f"A great choice for {use}.",
            f"Perfect for {use}, and backed by a {rng.choice((1, 2, 2, 3, 5))}-year warranty.",
            f"Designed with {use} in mind.",
        )
    )
    sentences = rng.random()
    if sentences < 0.6:
        return f"{intro} {body} {outro}"
    if sentences < 0.8:
        return f"{intro} {body}"
    return f"{intro} {outro}"


def _product(rng: random.Random, leaf: _Leaf, model: _Model) -> dict[str, Any]:
    spec, attrs, mult = leaf.spec(rng)
    noun = leaf.nouns[0] if rng.random() < 0.55 else rng.choice(leaf.nouns[1:])
    desc_noun = rng.choice([x for x in leaf.nouns if x != noun] or [noun])
    colour = rng.choice(_PALETTES[leaf.palette])
    material = str(attrs.get("material") or rng.choice(leaf.materials))
    if leaf.material_attr:
        attrs["material"] = material
    price = _shop_price(rng, model.base_price * mult * rng.uniform(0.95, 1.05))
    rating = round(min(5.0, max(1.0, rng.gauss(model.quality, 0.3))), 1)
    reviews = int(rng.lognormvariate(math.log(30 * leaf.weight * model.popularity + 1), 1.2))
    return {
        "title": _title(rng, leaf, model, spec, noun, colour),
        "description": _description(rng, leaf, model, desc_noun, colour, material),
        "brand": model.brand,
        "category": leaf.path,
        "colour": colour,
        "price": price,
        "rating": rating,
        "review_count": reviews,
        "in_stock": rng.random() < 0.88,
        "released": model.released.isoformat(),
        **attrs,
    }


def generate_demo_catalog(*, n: int = 3000, seed: int = 7) -> list[dict[str, Any]]:
    """Return ``n`` synthetic products; identical for identical ``(n, seed)``.

    Each product has ``id``, ``title``, ``description``, ``brand``, ``category``
    ("Top > Mid > Leaf"), ``colour``, ``price`` (EUR), ``rating``, ``review_count``,
    ``in_stock``, ``released`` (ISO date) and category-specific attributes.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(seed)
    drafts: list[dict[str, Any]] = []
    for leaf, count in zip(_LEAVES, _quotas(n), strict=True):
        if count == 0:
            continue
        models = _make_models(rng, leaf, count)
        weights = [m.popularity for m in models]
        for model in rng.choices(models, weights=weights, k=count):
            drafts.append(_product(rng, leaf, model))
    rng.shuffle(drafts)
    return [{"id": f"SR-{i:06d}", **draft} for i, draft in enumerate(drafts, start=1)]


def write_demo_catalog(path: Path, *, n: int = 3000, seed: int = 7) -> Path:
    """Write the demo catalog to ``path`` as UTF-8 JSONL (one product per line)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for product in generate_demo_catalog(n=n, seed=seed):
            fh.write(json.dumps(product, ensure_ascii=False))
            fh.write("\n")
    return path
