"""Synthetic shopper sessions for evaluating recommendations. **Synthetic** - for demos,
tests and benchmarks, never a claim about real shoppers.

Deterministic from a seed over a real catalog (ids, category, brand, price):

- every product has an intrinsic popularity (Zipf within its category);
- categories are paired with 1-2 *complement* categories (a laptop → a bag, a mouse), drawn
  from the seed; every product has a few *partners* in a complement category (same brand and
  a similar price tier preferred), the items a shopper buys together with it;
- shoppers have latent tastes: 1-3 categories, favourite brands, a price band;
- a session browses one taste category: views several *substitutes* (popular, on-taste
  products of that category), clicks some, carts and buys one; then often buys one of its
  partners (after viewing it), and sometimes an impulse best-seller from anywhere.

Events are `Event`s with timestamps from the injected clock (`start`), in time order.
`write_offline` appends them to a data dir's event log (and folds them); `post_events`
sends them to a running server's events API.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shoprank.events.model import Event

DAY = 86_400.0


@dataclass(frozen=True)
class Item:
    id: str
    category: str
    brand: str
    price: float


@dataclass
class RecCatalog:
    """The products the simulator draws from, by category."""

    items: list[Item]
    by_category: dict[str, list[Item]] = field(init=False)

    def __post_init__(self) -> None:
        grouped: dict[str, list[Item]] = defaultdict(list)
        for item in sorted(self.items, key=lambda i: i.id):
            grouped[item.category].append(item)
        # Categories with too few products to browse are left out of tastes and pairs.
        self.by_category = {c: v for c, v in sorted(grouped.items()) if len(v) >= 3}
        if len(self.by_category) < 2:
            raise ValueError(
                f"the catalog has {len(self.by_category)} categories with 3+ products; the "
                "recommendation simulator needs at least 2 (give products a category)"
            )

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]]) -> RecCatalog:
        """Products from dicts with `id`, `category` (a path "A > B" or levels; the leaf is
        used), `brand` and `price`; rows missing one are skipped."""
        items = []
        for row in records:
            category = row.get("category")
            if isinstance(category, list | tuple):
                category = category[-1] if category else None
            price = row.get("price")
            if not category or not row.get("brand") or not isinstance(price, int | float):
                continue
            leaf = str(category).split(" > ")[-1]
            items.append(Item(str(row["id"]), leaf, str(row["brand"]), float(price)))
        return cls(items)

    @classmethod
    def from_backend(cls, backend: Any, index: str, *, limit: int = 10_000) -> RecCatalog:
        """The products of a loaded index (up to `limit`, the result window), read through
        the backend protocol (`SearchBackend.search`)."""
        rows: list[dict[str, Any]] = []
        start = 0
        while start < limit:
            size = min(500, limit - start)
            resp = backend.search(
                index,
                {
                    "query": {"match_all": {}},
                    "from": start,
                    "size": size,
                    "sort": [{"price": "asc"}],
                    "_source": ["category", "brand", "price"],
                },
            )
            hits = resp["hits"]["hits"]
            rows += [{"id": h["_id"], **(h.get("_source") or {})} for h in hits]
            start += len(hits)
            if len(hits) < size:
                break
        return cls.from_records(rows)


@dataclass
class Shopper:
    id: str
    categories: list[str]
    brands: dict[str, float]
    price_band: float  # preferred price tier in [0, 1] (0 cheapest of a category)


@dataclass
class World:
    """What the seed decided: complements, partners, popularity, shoppers (the truth a test
    or a report can compare recommendations with)."""

    catalog: RecCatalog
    complements: dict[str, list[str]]
    partners: dict[str, list[str]]
    popularity: dict[str, float]
    tier: dict[str, float]
    shoppers: list[Shopper]
    best_sellers: list[str]


def build_world(catalog: RecCatalog, *, shoppers: int, seed: int) -> World:
    rng = random.Random(f"recs-world-{seed}")
    cats = list(catalog.by_category)
    complements: dict[str, list[str]] = {}
    for c in cats:
        others = [o for o in cats if o != c]
        complements[c] = rng.sample(others, k=min(len(others), rng.choice((1, 2))))
    popularity: dict[str, float] = {}
    tier: dict[str, float] = {}
    for items in catalog.by_category.values():
        order = list(items)
        rng.shuffle(order)
        for rank, item in enumerate(order, start=1):
            popularity[item.id] = 1.0 / rank**0.9
        by_price = sorted(items, key=lambda i: (i.price, i.id))
        for pos, item in enumerate(by_price):
            tier[item.id] = pos / max(1, len(by_price) - 1)
    partners: dict[str, list[str]] = {}
    for c, items in catalog.by_category.items():
        for item in items:
            target = complements[c][rng.randrange(len(complements[c]))]
            scored = sorted(
                catalog.by_category[target],
                key=lambda o: (
                    -(
                        (1.5 if o.brand == item.brand else 0.0)
                        - 2.0 * abs(tier[o.id] - tier[item.id])
                        + rng.random()
                    )
                ),
            )
            partners[item.id] = [o.id for o in scored[:3]]
    # A few products bought with anything (cables, batteries): what raw co-occurrence
    # counts favour and a lift-like measure must see through.
    tops = sorted(pid for pid, pop in popularity.items() if pop >= 1.0)  # rank 1 of a category
    rng.shuffle(tops)
    people = []
    for n in range(shoppers):
        taste = rng.sample(cats, k=min(len(cats), rng.randint(1, 3)))
        brands: dict[str, float] = {}
        for c in taste:
            names = sorted({i.brand for i in catalog.by_category[c]})
            for brand in rng.sample(names, k=min(len(names), rng.randint(1, 2))):
                brands[brand] = rng.uniform(1.0, 2.5)
        people.append(Shopper(f"rs-{n:05d}", taste, brands, rng.random()))
    return World(catalog, complements, partners, popularity, tier, people, tops[:5])


def _pick(rng: random.Random, items: Sequence[Item], shopper: Shopper, world: World) -> Item:
    """One product of `items`, drawn by popularity × taste (brand, price band)."""
    weights = [
        world.popularity[i.id]
        * math.exp(
            shopper.brands.get(i.brand, 0.0) - 3.0 * abs(world.tier[i.id] - shopper.price_band)
        )
        for i in items
    ]
    return items[rng.choices(range(len(items)), weights=weights, k=1)[0]]


@dataclass
class SimulatedTraffic:
    events: list[Event]
    world: World
    start: float
    end: float

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for e in self.events:
            out[e.type] += 1
        return dict(sorted(out.items()))


def simulate(
    catalog: RecCatalog,
    *,
    shoppers: int = 200,
    sessions: int = 8,
    days: float = 28.0,
    start: float = 1_767_225_600.0,  # 2026-01-01T00:00:00Z; inject the clock
    complement_rate: float = 0.6,
    impulse_rate: float = 0.2,
    seed: int = 0,
) -> SimulatedTraffic:
    """Sessions of `shoppers` × `sessions` spread over `days` from `start`, in time order."""
    world = build_world(catalog, shoppers=shoppers, seed=seed)
    rng = random.Random(f"recs-traffic-{seed}")
    raw: list[tuple[float, int, dict[str, Any]]] = []
    seq = 0
    for shopper in world.shoppers:
        starts = sorted(start + rng.uniform(0, days * DAY) for _ in range(sessions))
        for s_no, t0 in enumerate(starts):
            session = f"{shopper.id}-s{s_no}"
            t = t0
            for kind, item in _session(rng, shopper, world, complement_rate, impulse_rate):
                t += rng.uniform(15, 120)
                fields: dict[str, Any] = {"type": kind, "product_id": item.id}
                if kind in ("add_to_cart", "purchase"):
                    fields["quantity"] = 1
                if kind == "purchase":
                    fields["price"] = item.price
                raw.append((t, seq, {"user_id": shopper.id, "session_id": session, **fields}))
                seq += 1
    raw.sort(key=lambda r: (r[0], r[1]))
    events = [
        Event(timestamp=round(t, 3), event_id=f"rs{seed}-{n:07d}", idempotent=True, **fields)
        for n, (t, _, fields) in enumerate(raw)
    ]
    end = events[-1].timestamp if events else start
    return SimulatedTraffic(events, world, start, end)


def _session(
    rng: random.Random, shopper: Shopper, world: World, complement_rate: float, impulse: float
) -> list[tuple[str, Item]]:
    """The interactions of one session, in order."""
    by_id = {i.id: i for i in world.catalog.items}
    category = rng.choice(shopper.categories)
    pool = world.catalog.by_category[category]
    out: list[tuple[str, Item]] = []
    viewed: list[Item] = []
    for _ in range(rng.randint(2, 5)):  # substitutes: several products of one category
        item = _pick(rng, pool, shopper, world)
        out.append(("view", item))
        viewed.append(item)
        if rng.random() < 0.5:
            out.append(("click", item))
    if rng.random() < 0.25:  # browsed, bought nothing
        return out
    chosen = max(viewed, key=lambda i: (shopper.brands.get(i.brand, 0.0), world.popularity[i.id]))
    out += [("click", chosen), ("add_to_cart", chosen), ("purchase", chosen)]
    extras: list[list[tuple[str, Item]]] = []
    if rng.random() < complement_rate:
        partner = by_id[world.partners[chosen.id][min(2, int(rng.random() ** 2 * 3))]]
        extras.append(
            [("view", partner), ("click", partner), ("add_to_cart", partner), ("purchase", partner)]
        )
    if rng.random() < impulse:
        seller = by_id[world.best_sellers[rng.randrange(len(world.best_sellers))]]
        extras.append([("view", seller), ("add_to_cart", seller), ("purchase", seller)])
    rng.shuffle(extras)
    for block in extras:
        out += block
    return out


def write_offline(traffic: SimulatedTraffic, service: Any, *, batch: int = 1000) -> int:
    """Append the events through `EventService.ingest` (pseudonymised, folded as a
    server would); returns how many were accepted."""
    accepted = 0
    for n in range(0, len(traffic.events), batch):
        chunk = traffic.events[n : n + batch]
        result = service.ingest(chunk, now=chunk[-1].timestamp)
        accepted += int(result["accepted"])
    return accepted


def event_json(event: Event) -> dict[str, Any]:
    """The events API form of a simulated event."""
    record = event.to_record()
    record.pop("idempotent", None)
    return record


def post_events(traffic: SimulatedTraffic, url: str, *, batch: int = 1000) -> int:
    """POST the events to a running server's `/_shoprank/events`; returns how many it
    accepted."""
    from shoprank.simulate import Client

    client = Client(url)
    accepted = 0
    try:
        for n in range(0, len(traffic.events), batch):
            body = [event_json(e) for e in traffic.events[n : n + batch]]
            accepted += int(client.post("/_shoprank/events", body).get("accepted", 0))
    finally:
        client.close()
    return accepted
