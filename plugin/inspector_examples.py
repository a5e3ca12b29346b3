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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from shoprank.errors import ShoprankError
from shoprank.settings import Settings

if TYPE_CHECKING:
    from shoprank.events.service import EventService
    from shoprank.plugin.backends.protocol import SearchBackend

BRANDS = 8
SAMPLE_PER_BRAND = 40
SAMPLE_UNBRANDED = 200
MIN_UNDER = 3
CATEGORY_SEPARATOR = ">"
PRODUCT_SOURCE = ["title", "description", "brand", "category"]
# `shoprank simulate` (and the demo's first start) names its shoppers sim-0000, sim-0001, …;
# raw user ids are never stored (only keyed pseudonyms), so these are the ids to try.
SIMULATED_USERS = tuple(f"sim-{i:04d}" for i in range(200))
NICE_PRICES: tuple[int, ...] = (5, 10, 15, 20, 25, 30, 40, 50, 75, 100, 150, 200, 250, 300)
NICE_PRICES += (400, 500, 750, 1000, 1500, 2000, 2500, 5000, 10000)
_WORD = re.compile(r"[^\W\d_][^\W_]*(?:['-][^\W_]+)*")
# Words that never name a product type on their own: glue words, marketing words, units.
_NOT_TYPE_WORDS = (
    "and for with the from your you our this that are its has have into over under not all "
    "new original compatible genuine series edition version model models type plus pro max "
    "mini ultra lite standard classic essential everyday great perfect choice made built "
    "high low quality best part parts item items unit units piece pieces pcs pack set sets "
    "kit multi single double dual inch inches cm mm ml kg gb tb mb ghz mhz dpi ppm rpm mah "
    "pages page sheets sheet black white grey gray silver red blue green yellow cyan magenta "
    "orange pink purple brown beige gold navy cream clear transparent multicolour multicolor "
    "colour color light dark matt matte gloss glossy cheap premium budget luxury"
)
_NOT_TYPES = frozenset(_NOT_TYPE_WORDS.split())


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


def read_catalog(backend: SearchBackend, index: str, *, attributes: Sequence[str]) -> Catalog:
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
        name for i, name in enumerate(colour_fields) if buckets.get(f"colour{i}", {}).get("buckets")
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


def nice_price(prices: Iterable[Any]) -> int | None:
    """A round price just above the median, so "under N" keeps about half, and at least
    `MIN_UNDER` of them."""
    ordered = sorted(float(p) for p in prices if isinstance(p, int | float) and p > 0)
    if len(ordered) < 2 * MIN_UNDER:
        return None
    median = ordered[len(ordered) // 2]
    above = [n for n in NICE_PRICES if n >= median and n < ordered[-1]]
    return above[0] if above else None


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
    ranked = sorted(by_type, key=lambda t: (-len(brands_of[t]) * math.log1p(len(by_type[t])), t))
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
        # The sample holds at most SAMPLE_PER_BRAND per brand: ties go to the bigger brand.
        rank = {b: i for i, b in enumerate(catalog.brands)}
        counts = Counter(str(d["brand"]) for d in by_type[brand_type] if d.get("brand"))
        if counts:
            brand = min(counts, key=lambda b: (-counts[b], rank.get(b, len(rank)), b))
            examples.append(
                Example(
                    f"{brand} {brand_type}",
                    "brand",
                    f"{brand} is one of the biggest brands; {len(brands_of[brand_type])} "
                    f"sampled brands have “{brand_type}” products",
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
                f"a price phrase: about half of the sampled “{price_type}” products cost "
                f"less than {limit}",
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
                    f"{colour} is a colour of the catalog; the sampled “{phrase}” products "
                    f"come in {colours_of[phrase]} colours",
                )
            )
            break
    # Every type used already (a small catalog): the biggest one, without its brand.
    plain = pick(ranked) or next(iter(ranked), None)
    if plain is not None:
        examples.append(
            Example(
                plain,
                "category",
                f"a category of the catalog ({len(by_type[plain])} sampled products)",
            )
            if has_categories
            else Example(
                plain, "product type", "a frequent product type: no brand, colour or price"
            )
        )
    return examples


def personal_example(
    catalog: Catalog,
    profiles: Mapping[str, dict[str, Any]],
    fallback: str | None,
    *,
    recent: Callable[[list[str]], list[dict[str, Any]]] | None = None,
    of_brand: Callable[[str], list[dict[str, Any]]] | None = None,
) -> Example | None:
    """A query for the user with the most events: a product type of the brand the profile
    prefers, else of the products it saw last, else `fallback`. `of_brand` and `recent`
    read products the sample does not hold."""
    if not profiles:
        return None
    user, profile = max(
        profiles.items(), key=lambda kv: (sum((kv[1].get("counts") or {}).values()), kv[0])
    )
    events = sum((profile.get("counts") or {}).values())
    brands = (profile.get("aff") or {}).get("brand") or {}
    favourite = max(brands, key=lambda b: (brands[b], b)) if brands else None
    docs: list[dict[str, Any]] = []
    reason = ""
    if favourite is not None:
        docs = [d for d in catalog.docs if d.get("brand") == favourite]
        if not docs and of_brand is not None:
            docs = of_brand(favourite)
        reason = f", prefers {favourite}"
    ids = [str(r[0]) for r in profile.get("recent") or [] if r]
    if not docs and ids and recent is not None:
        docs = recent(ids[:10])
        reason = ", recently saw"
    types = Counter(t for d in docs for t in catalog.product_type(d))
    query = types.most_common(1)[0][0] if types else fallback
    if query is None:
        return None
    if types and reason == ", recently saw":
        reason += f" {query}"
    return Example(
        query,
        "personalisation",
        f"user {user} has a profile ({events} event{'' if events == 1 else 's'}{reason})",
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
        self, backend: SearchBackend, *, attributes: Sequence[str], profiles: ProfileSource
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

    def _products(self, generation: str, ids: list[str]) -> list[dict[str, Any]]:
        try:
            found = self.backend.mget(generation, ids, source=PRODUCT_SOURCE)
        except ShoprankError:
            return []
        return [found[i] for i in ids if i in found]

    def _brand(self, generation: str, brand: str) -> list[dict[str, Any]]:
        body = {
            "size": SAMPLE_PER_BRAND,
            "_source": PRODUCT_SOURCE,
            "query": {"term": {"brand": brand}},
        }
        try:
            hits = self.backend.search(generation, body)["hits"]["hits"]
        except ShoprankError:
            return []
        return [h.get("_source") or {} for h in hits]

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
        plain = [e.query for e in examples if e.shows in ("category", "product type")]
        fallback = next(iter(plain + [e.query for e in examples]), None)
        found = personal_example(
            catalog,
            profiles,
            fallback,
            recent=partial(self._products, generation),
            of_brand=partial(self._brand, generation),
        )
        with self._lock:
            if len(self._users) > 64:
                self._users.clear()
            self._users[key] = found
        return found


class EventProfiles:
    """`ProfileSource` over the deployment's profile store (raw ids are pseudonymised as
    the ranker does it); the store is opened on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._events: EventService | None = None

    def _service(self) -> EventService:
        if self._events is None:
            from shoprank.events.service import EventService

            self._events = EventService(self.settings)
        return self._events

    def watermark(self) -> str | None:
        return self._service().store.watermark()

    def profiles(self, users: Sequence[str]) -> dict[str, dict[str, Any]]:
        events = self._service()
        subjects = {events.subject(user_id=u): u for u in users}
        found = events.store.get_many(list(subjects))
        return {subjects[s]: p for s, p in found.items() if p.get("kind") == "user"}
