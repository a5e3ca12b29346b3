"""A synthetic shop: shoppers with latent tastes search through the real endpoint and
click, cart and buy through the real events API. **Synthetic** - for demos, tests and
benchmarks, never a claim about real shoppers.

- Shoppers: 1-3 interest categories, 0-3 favourite brands within them, a price taste
  (budget … premium) and how much they care about ratings. "Neutral" shoppers have no
  brand or price taste.
- Queries come from the catalog: a category leaf's name ("running shoes"), sometimes with
  a brand or a colour in front.
- True relevance of a product for (shopper, query) is graded 0-3 from that taste
  (`Shopper.grade`); held-out sessions are written with these grades for evaluation.
- Engagement follows a position-biased click model: position r is examined with
  probability (1/r)^eta, an examined product is clicked with a probability rising with its
  grade, then carted and bought with probabilities rising with it too.
"""

from __future__ import annotations

import http.client
import json
import math
import random
import statistics
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

CLICK_GIVEN_GRADE = (0.04, 0.25, 0.55, 0.85)
CART_GIVEN_GRADE = (0.0, 0.1, 0.35, 0.6)
BUY_GIVEN_CART = (0.0, 0.2, 0.4, 0.7)


class Client:
    """A minimal keep-alive JSON client for one shoprank server (stdlib only)."""

    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 9200
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def post(self, path: str, body: Any) -> dict[str, Any]:
        data = json.dumps(body).encode()
        for attempt in range(2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self._conn.request(
                    "POST", path, body=data, headers={"Content-Type": "application/json"}
                )
                resp = self._conn.getresponse()
                payload = resp.read()
            except (http.client.HTTPException, OSError):
                self._conn.close()
                self._conn = None
                if attempt:
                    raise
                continue
            out: dict[str, Any] = json.loads(payload) if payload else {}
            if resp.status >= 400:
                raise RuntimeError(f"POST {path} → {resp.status}: {payload[:300]!r}")
            return out
        raise RuntimeError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


@dataclass
class Product:
    id: str
    leaf: str
    brand: str
    price: float
    rating: float
    colour: str | None
    price_z: float = 0.0  # standardised log price within its leaf


@dataclass
class Shopper:
    id: str
    interests: list[str]
    brands: dict[str, float] = field(default_factory=dict)
    price_taste: float = 0.0  # < 0 budget, > 0 premium
    quality: float = 0.3

    def utility(self, product: Product, query: Query) -> float:
        if product.leaf != query.leaf:
            return -math.inf
        u = 1.0 + self.brands.get(product.brand, 0.0)
        u += 0.8 * self.price_taste * product.price_z - 0.25 * abs(self.price_taste) * (
            product.price_z**2
        )
        u += self.quality * (product.rating - 4.0)
        if query.brand and product.brand != query.brand:
            u -= 1.5
        if query.colour and (product.colour or "").lower() != query.colour.lower():
            u -= 0.6
        return u

    def grade(self, product: Product, query: Query) -> int:
        u = self.utility(product, query)
        if u >= 2.0:
            return 3
        if u >= 1.4:
            return 2
        if u >= 0.7:
            return 1
        return 0


@dataclass
class Query:
    text: str
    leaf: str
    brand: str | None = None
    colour: str | None = None


class Catalog:
    def __init__(self, products: list[Product]) -> None:
        self.products = products
        self.by_id = {p.id: p for p in products}
        self.by_leaf: dict[str, list[Product]] = defaultdict(list)
        for p in products:
            self.by_leaf[p.leaf].append(p)
        for items in self.by_leaf.values():
            logs = [math.log1p(p.price) for p in items]
            mean = statistics.fmean(logs)
            std = statistics.pstdev(logs) or 1.0
            for p, lp in zip(items, logs, strict=True):
                p.price_z = (lp - mean) / std
        self.leaves = sorted(leaf for leaf, items in self.by_leaf.items() if len(items) >= 3)

    @classmethod
    def fetch(cls, client: Client, index: str) -> Catalog:
        """Every product of `index`, read through the endpoint (lexical pages)."""
        products: list[Product] = []
        start = 0
        while True:
            resp = client.post(
                f"/{index}/_search",
                {
                    "query": {"match_all": {}},
                    "from": start,
                    "size": 500,
                    "sort": [{"price": "asc"}],
                    "_source": ["category", "brand", "price", "rating", "colour", "color"],
                    "ext": {"shoprank": {"mode": "lexical"}},
                },
            )
            hits = resp["hits"]["hits"]
            for hit in hits:
                src = hit.get("_source") or {}
                cat = src.get("category")
                if not cat or not src.get("brand") or not isinstance(src.get("price"), int | float):
                    continue
                leaf = str(cat).split(" > ")[-1]
                products.append(
                    Product(
                        id=hit["_id"],
                        leaf=leaf,
                        brand=str(src["brand"]),
                        price=float(src["price"]),
                        rating=float(src.get("rating") or 4.0),
                        colour=src.get("colour") or src.get("color"),
                    )
                )
            start += len(hits)
            if len(hits) < 500 or start >= 10_000:
                break
        if not products:
            raise RuntimeError(f"index {index!r} has no products with category, brand and price")
        return cls(products)


def make_shoppers(
    catalog: Catalog, n: int, rng: random.Random, *, neutral: float = 0.2
) -> list[Shopper]:
    shoppers = []
    for i in range(n):
        interests = rng.sample(catalog.leaves, k=min(len(catalog.leaves), rng.randint(1, 3)))
        shopper = Shopper(id=f"sim-{i:04d}", interests=interests)
        if rng.random() >= neutral:
            for leaf in interests:
                brands = sorted({p.brand for p in catalog.by_leaf[leaf]})
                for brand in rng.sample(brands, k=min(len(brands), rng.randint(1, 2))):
                    shopper.brands[brand] = rng.uniform(0.8, 1.6)
            shopper.price_taste = rng.choice((-1.0, -0.5, 0.5, 1.0))
            shopper.quality = rng.uniform(0.1, 0.6)
        shoppers.append(shopper)
    return shoppers


def make_query(shopper: Shopper, catalog: Catalog, rng: random.Random) -> Query:
    leaf = rng.choice(shopper.interests)
    text = leaf.lower()
    roll = rng.random()
    if roll < 0.12:
        brand = rng.choice(sorted({p.brand for p in catalog.by_leaf[leaf]}))
        return Query(f"{brand.lower()} {text}", leaf, brand=brand)
    if roll < 0.2:
        colours = sorted({p.colour for p in catalog.by_leaf[leaf] if p.colour})
        if colours:
            colour = rng.choice(colours)
            return Query(f"{colour.lower()} {text}", leaf, colour=colour)
    return Query(text, leaf)


def search_body(
    query: str,
    *,
    mode: str,
    user_id: str | None,
    session_id: str | None,
    size: int = 10,
    fields: str = "title^3,brand.text^2,category.text^1.5,description",
) -> dict[str, Any]:
    opts: dict[str, Any] = {"mode": mode}
    if user_id:
        opts["user_id"] = user_id
    if session_id:
        opts["session_id"] = session_id
    return {
        "query": {"multi_match": {"query": query, "fields": fields.split(",")}},
        "size": size,
        "_source": False,
        "ext": {"shoprank": opts},
    }


@dataclass
class SimulationReport:
    searches: int = 0
    clicks: int = 0
    carts: int = 0
    purchases: int = 0
    holdout_sessions: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def _engage(
    shopper: Shopper,
    query: Query,
    ids: list[str],
    catalog: Catalog,
    rng: random.Random,
    eta: float,
) -> Iterator[tuple[str, str, int]]:
    """(event type, product id, 1-based position) drawn from the position-biased model."""
    for pos, pid in enumerate(ids, start=1):
        product = catalog.by_id.get(pid)
        if product is None or rng.random() >= (1.0 / pos) ** eta:
            continue
        g = shopper.grade(product, query)
        if rng.random() >= CLICK_GIVEN_GRADE[g]:
            continue
        yield "click", pid, pos
        if rng.random() < CART_GIVEN_GRADE[g]:
            yield "add_to_cart", pid, pos
            if rng.random() < BUY_GIVEN_CART[g]:
                yield "purchase", pid, pos


def run(
    url: str,
    *,
    index: str,
    shoppers: int = 50,
    sessions: int = 6,
    queries_per_session: int = 2,
    holdout_per_shopper: int = 2,
    holdout_out: Path | None = None,
    mode: str = "full",
    size: int = 10,
    eta: float = 1.0,
    seed: int = 0,
    progress: Any = None,
) -> SimulationReport:
    """Send the simulated traffic; write held-out sessions (with true grades) if asked.

    `progress(searches_done, searches_total, report)` is called once the catalog is read
    (with 0 done) and after every search."""
    rng = random.Random(seed)
    client = Client(url)
    try:
        catalog = Catalog.fetch(client, index)
        people = make_shoppers(catalog, shoppers, rng)
        report = SimulationReport()
        total = sessions * len(people) * queries_per_session
        if progress is not None:
            progress(0, total, report)
        # Interleave shoppers session by session, as real traffic would.
        for round_no in range(sessions):
            for shopper in people:
                session_id = (
                    f"{shopper.id}-s{round_no}-{uuid.UUID(int=rng.getrandbits(128)).hex[:8]}"
                )
                for _ in range(queries_per_session):
                    query = make_query(shopper, catalog, rng)
                    resp = client.post(
                        f"/{index}/_search",
                        search_body(
                            query.text,
                            mode=mode,
                            user_id=shopper.id,
                            session_id=session_id,
                            size=size,
                        ),
                    )
                    report.searches += 1
                    ids = [h["_id"] for h in resp["hits"]["hits"]]
                    query_id = (resp.get("_shoprank") or {}).get("query_id")
                    events = []
                    for kind, pid, pos in _engage(shopper, query, ids, catalog, rng, eta):
                        events.append(
                            {
                                "type": kind,
                                "user_id": shopper.id,
                                "session_id": session_id,
                                "product_id": pid,
                                "query_id": query_id,
                                "position": pos,
                            }
                        )
                        if kind == "purchase":
                            events[-1].update(quantity=1, price=catalog.by_id[pid].price)
                        if kind == "click":
                            report.clicks += 1
                        elif kind == "add_to_cart":
                            report.carts += 1
                        else:
                            report.purchases += 1
                    for event in events:
                        if event["query_id"] is None:
                            del event["query_id"]
                    if events:
                        client.post("/_shoprank/events", events)
                    if progress is not None:
                        progress(report.searches, total, report)
        if holdout_out is not None:
            holdout_out.parent.mkdir(parents=True, exist_ok=True)
            with holdout_out.open("w") as fh:
                for shopper in people:
                    for _ in range(holdout_per_shopper):
                        query = make_query(shopper, catalog, rng)
                        grades = {
                            p.id: g
                            for p in catalog.by_leaf[query.leaf]
                            if (g := shopper.grade(p, query)) > 0
                        }
                        if not grades:
                            continue
                        fh.write(
                            json.dumps(
                                {
                                    "user_id": shopper.id,
                                    "query": query.text,
                                    "grades": grades,
                                    "neutral": not shopper.brands,
                                }
                            )
                            + "\n"
                        )
                        report.holdout_sessions += 1
        return report
    finally:
        client.close()
