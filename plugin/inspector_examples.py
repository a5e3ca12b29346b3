"""Example queries for the inspector's landing page, computed from the inspected catalog.

Nothing here is a fixed word list of queries: the brands, product types, colours and price
levels come from the index itself (a few aggregations and one `msearch` of a small per-brand
sample), so the examples fit the demo shop as well as an Icecat catalog. Each example says
what it should show: a brand, a colour or a price phrase the intent step recognises, a
category, and (when a user with a profile is found) personalisation. Computed once per index
generation (`ExampleCache`); the user part is refreshed when the profile store has folded
new events.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from shoprank.errors import ShoprankError

BRANDS = 8
SAMPLE_PER_BRAND = 40
SAMPLE_UNBRANDED = 200
CATEGORY_SEPARATOR = ">"
# `shoprank simulate` (and the demo's first start) names its shoppers sim-0000, sim-0001, …;
# raw user ids are never stored (only keyed pseudonyms), so these are the ids to try.
SIMULATED_USERS = tuple(f"sim-{i:04d}" for i in range(200))
NICE_PRICES = (5, 10, 15, 20, 25, 30, 40, 50, 75, 100, 150, 200, 250, 300, 400, 500, 750)
NICE_PRICES += (1000, 1500, 2000, 2500, 5000, 10000)
_WORD = re.compile(r"[^\W\d_][^\W_]*(?:['-][^\W_]+)*")
# Words that never name a product type on their own: glue words, marketing words, units.
_NOT_TYPES = frozenset(
    "and for with the from your you our this that are its has have into over under not all "
    "new original compatible genuine series edition version model models type plus pro max "
    "mini ultra lite standard classic essential everyday great perfect choice made built "
    "high low quality best part parts item items unit units piece pieces pcs pack set sets "
    "kit multi single double dual inch inches cm mm ml kg gb tb mb ghz mhz dpi ppm rpm mah "
    "pages page sheets sheet black white grey gray silver red blue green yellow cyan magenta "
    "orange pink purple brown beige gold navy cream clear transparent multicolour multicolor "
    "colour color light dark matt matte gloss glossy cheap premium budget luxury".split()
)


@dataclass(frozen=True, slots=True)
class Example:
    """One example query and what it should show in the compare view."""

    query: str
    shows: str  # brand | price | colour | category | product type | personalisation
    why: str
    user: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Catalog:
    """What the examples are made of, read once per generation."""

    total: int = 0
    brands: list[str] = field(default_factory=list)
    docs: list[dict[str, Any]] = field(default_factory=list)
    colour_fields: list[str] = field(default_factory=list)

    def product_type(self, doc: dict[str, Any]) -> list[str]:
        """The product-type phrases of `doc`: its category leaf, else its type-like words."""
        category = doc.get("category")
        if isinstance(category, str) and category.strip():
            return [category.split(CATEGORY_SEPARATOR)[-1].strip().lower()]
        brand_words = {w.lower() for b in self.brands for w in _WORD.findall(b)}
        text = f"{doc.get('title') or ''} {doc.get('description') or ''}"
        words = {w.lower() for w in _WORD.findall(text)}
        return sorted(w for w in words if _type_like(w) and w not in brand_words)

    def colour(self, doc: dict[str, Any]) -> str | None:
        for name in self.colour_fields:
            value = doc.get(name)
            if isinstance(value, str) and value.strip() and "," not in value:
                return value.strip()
        return None


def _type_like(word: str) -> bool:
    return len(word) > 2 and word not in _NOT_TYPES and not any(c.isdigit() for c in word)


def read_catalog(backend: Any, index: str, *, attributes: Sequence[str]) -> Catalog:
    """Top brands, the colour fields that hold values, and a small sample per brand."""
    colour_fields = [a for a in attributes if "colo" in a.lower()]
    aggs: dict[str, Any] = {"brand": {"terms": {"field": "brand", "size": BRANDS}}}
    for i, name in enumerate(colour_fields):
        aggs[f"colour{i}"] = {"terms": {"field": name, "size": 1}}
    found = backend.search(index, {"size": 0, "track_total_hits": True, "aggs": aggs})
    total = found["hits"]["total"]
    catalog = Catalog(total=int(total["value"] if isinstance(total, dict) else total))
    buckets = found.get("aggregations", {})
    catalog.brands = [
        str(b["key"]) for b in buckets.get("brand", {}).get("buckets", []) if b.get("key")
    ]
    catalog.colour_fields = [
        name
        for i, name in enumerate(colour_fields)
        if buckets.get(f"colour{i}", {}).get("buckets")
    ]
    source = ["title", "description", "brand", "category", "price", *catalog.colour_fields]
    bodies = [
        {"size": SAMPLE_PER_BRAND, "_source": source, "query": {"term": {"brand": brand}}}
        for brand in catalog.brands
    ] or [{"size": SAMPLE_UNBRANDED, "_source": source, "query": {"match_all": {}}}]
    for answer in backend.msearch(index, bodies):
        if isinstance(answer, ShoprankError):
            continue
        catalog.docs.extend(h.get("_source") or {} for h in answer["hits"]["hits"])
    return catalog


def nice_price(prices: Iterable[float]) -> int | None:
    """A round price at or below the median, so "under N" narrows but still finds some."""
    ordered = sorted(p for p in prices if isinstance(p, int | float) and p > 0)
    if len(ordered) < 2:
        return None
    median = ordered[len(ordered) // 2]
    below = [n for n in NICE_PRICES if n <= median and n > ordered[0]]
    return below[-1] if below else None


def catalog_examples(catalog: Catalog) -> list[Example]:
    """Up to four examples: brand + product type, type + price phrase, colour + type, and a
    category (or a plain product type when the catalog has no categories)."""
    has_categories = any(isinstance(d.get("category"), str) for d in catalog.docs)
    by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for doc in catalog.docs:
        for phrase in catalog.product_type(doc):
            by_type[phrase].append(doc)
    brands_of = {t: {d.get("brand") for d in docs if d.get("brand")} for t, docs in by_type.items()}
    # A type shared by several brands is a real product type (a model name is not).
    ranked = sorted(
        by_type, key=lambda t: (-len(brands_of[t]) * math.log1p(len(by_type[t])), t)
    )
    examples: list[Example] = []
    used: set[str] = set()

    def pick(candidates: Iterable[str]) -> str | None:
        for phrase in candidates:
            if phrase not in used:
                used.add(phrase)
                return phrase
        return None

    shared = [t for t in ranked if len(brands_of[t]) >= 2] or ranked
    brand_type = pick(shared)
    if brand_type is not None:
        brand, count = Counter(d.get("brand") for d in by_type[brand_type]).most_common(1)[0]
        if brand:
            examples.append(
                Example(
                    f"{brand} {brand_type}",
                    "brand",
                    f"{brand} is a frequent brand; {brand_type} is sold by "
                    f"{len(brands_of[brand_type])} brands in the sample",
                )
            )
    priced = [t for t in ranked if nice_price(d.get("price") for d in by_type[t])]
    price_type = pick(priced)
    if price_type is not None:
        limit = nice_price(d.get("price") for d in by_type[price_type])
        examples.append(
            Example(
                f"{price_type} under {limit}",
                "price",
                f"a price phrase: about half the {price_type} in the sample cost less",
            )
        )
    pairs = Counter(
        (catalog.colour(d), t)
        for t in ranked[:20]
        for d in by_type[t]
        if catalog.colour(d) is not None
    )
    colours_of = Counter(t for (_, t) in pairs)
    for (colour, phrase), _ in pairs.most_common():
        if colours_of[phrase] >= 2 and phrase not in used and colour:
            used.add(phrase)
            examples.append(
                Example(
                    f"{colour.lower()} {phrase}",
                    "colour",
                    f"{colour} is a colour value of the catalog; {phrase} come in "
                    f"{colours_of[phrase]} colours",
                )
            )
            break
    plain = pick(ranked)
    if plain is not None:
        examples.append(
            Example(plain, "category", f"a category of the catalog ({len(by_type[plain])} sampled)")
            if has_categories
            else Example(plain, "product type", "a frequent product type, no brand or filter")
        )
    return examples


def personal_example(
    catalog: Catalog, profiles: Mapping[str, dict[str, Any]], fallback: str | None
) -> Example | None:
    """The query for the user with the most events, with what the profile prefers."""
    if not profiles:
        return None
    user, profile = max(
        profiles.items(), key=lambda kv: (sum((kv[1].get("counts") or {}).values()), kv[0])
    )
    events = sum((profile.get("counts") or {}).values())
    brands = (profile.get("aff") or {}).get("brand") or {}
    favourite = max(brands, key=lambda b: (brands[b], b)) if brands else None
    query = fallback
    if favourite is not None:
        # A product type the favourite brand sells alongside others: the ranker can lift it.
        types = Counter(
            t for d in catalog.docs if d.get("brand") == favourite for t in catalog.product_type(d)
        )
        if types:
            query = types.most_common(1)[0][0]
    if query is None:
        return None
    prefers = f", prefers {favourite}" if favourite else ""
    return Example(
        query,
        "personalisation",
        f"user {user} has a profile ({events} events{prefers})",
        user=user,
    )


class ProfileSource(Protocol):
    """The profiles the landing page may show, keyed by raw user id."""

    def watermark(self) -> str | None:
        """Changes whenever profiles change (the store's folded-offset watermark)."""
        ...

    def profiles(self, users: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The stored profiles of those raw user ids that have one."""
        ...


class ExampleCache:
    """Examples per index generation; the user example per profile-store watermark."""

    def __init__(
        self, backend: Any, *, attributes: Sequence[str], profiles: ProfileSource
    ) -> None:
        self.backend = backend
        self.attributes = list(attributes)
        self.profiles = profiles
        self._lock = threading.Lock()
        self._catalogs: dict[str, tuple[Catalog, list[Example]]] = {}
        self._users: dict[tuple[str, str | None], Example | None] = {}

    def examples(self, index: str) -> dict[str, Any]:
        """`{index, generation, total, examples}` for the landing page (raises
        IndexNotFoundError for an unknown index)."""
        generation = self.backend.resolve(index)
        cached = self._catalogs.get(generation)
        if cached is None:
            catalog = read_catalog(self.backend, generation, attributes=self.attributes)
            cached = (catalog, catalog_examples(catalog))
            with self._lock:
                if len(self._catalogs) > 16:
                    self._catalogs.clear()
                self._catalogs[generation] = cached
        catalog, examples = cached
        found = list(examples)
        personal = self._personal(generation, catalog, examples)
        if personal is not None:
            found.append(personal)
        return {
            "index": index,
            "generation": generation,
            "total": catalog.total,
            "examples": [e.to_dict() for e in found],
        }

    def _personal(
        self, generation: str, catalog: Catalog, examples: list[Example]
    ) -> Example | None:
        try:
            key = (generation, self.profiles.watermark())
            if key in self._users:
                return self._users[key]
            profiles = self.profiles.profiles(SIMULATED_USERS) if key[1] is not None else {}
        except (ShoprankError, OSError):
            return None  # an unreadable profile store only costs the personalised example
        if key not in self._users:
            plain = [e.query for e in examples if e.shows in ("category", "product type")]
            fallback = next(iter(plain + [e.query for e in examples]), None)
            with self._lock:
                if len(self._users) > 64:
                    self._users.clear()
                self._users[key] = personal_example(catalog, profiles, fallback)
        return self._users[key]
