"""The recommendation strategies over a real embedded index of a small shop and behaviour
statistics given as counts (what the fold's co-occurrence statistics hold)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shoprank.errors import BadRequestError, DocumentNotFoundError
from shoprank.plugin.recommend import RecommendService, context
from shoprank.plugin.recommend.behaviour import RecommendReads
from shoprank.plugin.search import SearchService
from shoprank.rerankers.protocol import Candidate, RerankContext
from shoprank.searchlog.logger import SearchLogger
from shoprank.searchlog.record import SearchRecord
from shoprank.settings import Settings
from tests.unit.conftest import build_index

NOW = 1_767_225_600.0
LAPTOPS = "Electronics > Computers > Laptops"
BAGS = "Electronics > Computers > Bags"
PHONES = "Electronics > Phones > Smartphones"
CASES = "Electronics > Phones > Cases"
AUDIO = "Electronics > Audio > Headphones"
SHOES = "Fashion > Shoes"

# id, title, brand, category, price, vector
SHOP: list[tuple[str, str, str, str, float, list[float]]] = [
    ("L1", "Aster Book 14 laptop", "Aster", LAPTOPS, 900.0, [1.0, 0.05, 0.0, 0.0]),
    ("L2", "Aster Book 16 laptop", "Aster", LAPTOPS, 1200.0, [0.97, 0.1, 0.05, 0.0]),
    ("L3", "Brio Air 13 laptop", "Brio", LAPTOPS, 700.0, [0.95, 0.0, 0.1, 0.0]),
    ("B1", "Aster laptop sleeve bag", "Aster", BAGS, 60.0, [0.7, 0.3, 0.2, 0.0]),
    ("B2", "Brio laptop backpack", "Brio", BAGS, 45.0, [0.65, 0.2, 0.3, 0.0]),
    ("P1", "Nimbus X phone", "Nimbus", PHONES, 800.0, [0.1, 1.0, 0.0, 0.0]),
    ("P2", "Nimbus Lite phone", "Nimbus", PHONES, 300.0, [0.1, 0.95, 0.1, 0.0]),
    ("C1", "Nimbus X phone case", "Nimbus", CASES, 20.0, [0.2, 0.8, 0.1, 0.0]),
    ("H1", "Sonara Pulse headphones", "Sonara", AUDIO, 100.0, [0.3, 0.3, 1.0, 0.0]),
    ("H2", "Sonara Bud earphones", "Sonara", AUDIO, 50.0, [0.2, 0.4, 0.9, 0.1]),
    ("S1", "Fleetfoot running shoes", "Fleetfoot", SHOES, 80.0, [0.0, 0.0, 0.1, 1.0]),
]


def _levels(path: str) -> list[str]:
    parts = path.split(" > ")
    return [" > ".join(parts[: i + 1]) for i in range(len(parts))]


def shop_docs() -> tuple[list[dict[str, Any]], np.ndarray]:
    docs = [
        {
            "_id": pid,
            "id": pid,
            "title": title,
            "brand": brand,
            "category": cat,
            "category_levels": _levels(cat),
            "price": price,
        }
        for pid, title, brand, cat, price, _ in SHOP
    ]
    vectors = np.asarray([v for *_, v in SHOP], dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return docs, vectors


class CountsReads:
    """Behaviour statistics as plain counts: sessions per product and per pair, per kind."""

    def __init__(self) -> None:
        self.pairs: dict[str, dict[tuple[str, str], float]] = {"view": {}, "buy": {}}
        self.items: dict[str, dict[str, float]] = {"view": {}, "buy": {}}
        self.total: dict[str, float] = {"view": 0.0, "buy": 0.0}
        self.trend: list[tuple[str, float]] = []
        self.stats: dict[str, dict[str, float]] = {}
        self.profiles: dict[str, dict[str, Any]] = {}

    def pair(self, kind: str, a: str, b: str, sessions: float) -> None:
        self.pairs[kind][(a, b)] = sessions
        self.pairs[kind][(b, a)] = sessions

    def profile(self, user_id: str, *, now: float | None = None) -> dict[str, Any] | None:
        return self.profiles.get(user_id)

    def shopper_profiles(self, *, user_id: str | None = None, session_id: str | None = None) -> Any:
        return None

    def product_stats(
        self, ids: Sequence[str], *, query: str | None = None
    ) -> dict[str, dict[str, float]]:
        return {i: self.stats[i] for i in ids if i in self.stats}

    def neighbours(
        self, ids: Sequence[str], *, kind: Any, limit: int = 200
    ) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for a in ids:
            found = {b: c for (x, b), c in self.pairs[kind].items() if x == a}
            if found:
                ranked = sorted(found.items(), key=lambda kv: -kv[1])[:limit]
                out[a] = dict(ranked)
        return out

    def cooccur_totals(self, *, kind: Any) -> dict[str, float]:
        return {"sessions": self.total[kind]}

    def item_sessions(self, ids: Sequence[str], *, kind: Any) -> dict[str, float]:
        return {i: self.items[kind][i] for i in ids if i in self.items[kind]}

    def trending(self, *, now: float, limit: int = 200) -> list[tuple[str, float]]:
        assert now == NOW  # the injected clock reaches the store
        return self.trend[:limit]


def shop_behaviour() -> CountsReads:
    """100 purchase sessions: the headphones H1 are the best-seller (in 40 of them, 6 with
    the laptop L1); the sleeve B1 is bought with L1 in 5 of its 6; the case C1 goes with the
    phone P1; L3 is compared with L1 (co-viewed in 40 sessions) and bought instead of it."""
    reads = CountsReads()
    reads.total = {"view": 300.0, "buy": 100.0}
    reads.items["buy"] = {"L1": 12, "L2": 10, "L3": 8, "B1": 6, "P1": 10, "C1": 5, "H1": 40}
    reads.items["view"] = {"L1": 60, "L2": 30, "L3": 30, "B1": 10, "P1": 20, "C1": 8, "H1": 90}
    reads.pair("buy", "L1", "B1", 5)
    reads.pair("buy", "L1", "H1", 6)
    reads.pair("buy", "L1", "L3", 1)
    reads.pair("buy", "P1", "C1", 4)
    reads.pair("buy", "P1", "H1", 4)
    reads.pair("view", "L1", "L3", 40)
    reads.pair("view", "L1", "L2", 25)
    reads.pair("view", "L1", "B1", 6)
    reads.stats = {
        "H1": {"views": 90, "purchases": 40},
        "P2": {"views": 50, "purchases": 3},
        "B2": {"views": 30, "purchases": 6},
    }
    return reads


class FailingRanker:
    name = "ltr"

    def rerank(self, context: RerankContext, candidates: list[Candidate]) -> list[Candidate]:
        raise RuntimeError("model file unreadable")


class ReversingRanker:
    """Stands in for the learned ranker: checks the context, reverses the candidates."""

    name = "ltr"

    def __init__(self) -> None:
        self.contexts: list[RerankContext] = []

    def rerank(self, context: RerankContext, candidates: list[Candidate]) -> list[Candidate]:
        self.contexts.append(context)
        out = list(reversed(candidates))
        for rank, cand in enumerate(out, 1):
            cand.score = 1.0 / rank
            cand.features = {"fused_score": 1.0}
        return out


class Captured:
    def __init__(self) -> None:
        self.records: list[SearchRecord] = []

    def write(self, record: SearchRecord) -> None:
        self.records.append(record)

    def flush(self) -> None:
        pass


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Any:
    docs, vectors = shop_docs()
    backend, _ = build_index(tmp_path_factory.mktemp("shop"), docs, vectors)
    return backend


def make(
    shop: Any,
    tmp_path: Path,
    reads: RecommendReads | None,
    *,
    rerankers: Sequence[Any] = (),
    sink: Captured | None = None,
) -> RecommendService:
    settings = Settings(data_dir=tmp_path, product_index="products")
    logger = SearchLogger(settings, events=None, sinks=[sink]) if sink else None
    search = SearchService(
        backend=shop, settings=settings, rerankers=list(rerankers), search_logger=logger
    )
    return RecommendService(search, reads, settings, clock=lambda: NOW)


def ids(response: dict[str, Any]) -> list[str]:
    return [h["_id"] for h in response["hits"]["hits"]]


# -- bought together ------------------------------------------------------------------------


def test_bought_together_ranks_the_complement_above_the_best_seller(
    shop: Any, tmp_path: Path
) -> None:
    service = make(shop, tmp_path, shop_behaviour())
    got = service.recommend({"strategy": "bought_together", "product_id": "L1", "explain": True})
    order = ids(got)
    # Raw co-occurrence would put H1 (6 sessions) before B1 (5).
    assert order[0] == "B1"
    assert "H1" not in order[:1]
    assert "L1" not in order
    evidence = got["hits"]["hits"][0]["_shoprank"]["sources"]["bought_with"]["L1"]
    assert evidence["sessions"] == 5 and evidence["lift"] > 0
    assert got["hits"]["hits"][0]["_source"]["title"] == "Aster laptop sleeve bag"


def test_bought_together_leaves_out_a_substitute(shop: Any, tmp_path: Path) -> None:
    service = make(shop, tmp_path, shop_behaviour())
    got = service.recommend({"strategy": "bought_together", "product_id": "L1", "explain": True})
    # L3 was bought with L1 once, which a lift alone would count, but it is compared with
    # L1 in 40 sessions and bought instead of it.
    assert "L3" not in ids(got)
    assert any("substitute" in n for n in got["_shoprank"]["notes"])


def test_bought_together_for_a_cart_aggregates_and_leaves_the_cart_out(
    shop: Any, tmp_path: Path
) -> None:
    service = make(shop, tmp_path, shop_behaviour())
    order = service.strategy_ids("bought_together", index="products", product_ids=["L1", "P1"])
    assert {"B1", "C1"} <= set(order_ids := [pid for pid, _ in order])
    assert not {"L1", "P1"} & set(order_ids)
    # H1 goes with both cart items, but it is the best-seller: each complement beats it.
    assert order_ids.index("B1") < order_ids.index("H1")
    assert order_ids.index("C1") < order_ids.index("H1")


def test_bought_together_cold_start_is_complementary_content(shop: Any, tmp_path: Path) -> None:
    service = make(shop, tmp_path, shop_behaviour())
    got = service.recommend({"strategy": "bought_together", "product_id": "B2", "size": 4})
    assert got["_shoprank"]["cold_start"] is True
    assert got["_shoprank"]["fallback"] == "complementary_content"
    cats = {h["_source"]["category"] for h in got["hits"]["hits"]}
    assert cats and BAGS not in cats
    # Close in content from other categories: the laptops the backpack goes with.
    assert any(pid.startswith("L") for pid in ids(got)[:2])


# -- similar ------------------------------------------------------------------------------


def test_similar_returns_the_same_category_first(shop: Any, tmp_path: Path) -> None:
    service = make(shop, tmp_path, None)
    got = service.recommend({"strategy": "similar", "product_id": "L1", "size": 3})
    assert set(ids(got)[:2]) == {"L2", "L3"}
    assert "L1" not in ids(got)


def test_similar_blends_co_views_when_there_are_enough(shop: Any, tmp_path: Path) -> None:
    without = make(shop, tmp_path, None).strategy_ids(
        "similar", index="products", product_ids=["L1"]
    )
    reads = shop_behaviour()
    with_views = make(shop, tmp_path, reads).recommend(
        {"strategy": "similar", "product_id": "L1", "explain": True}
    )
    scores_without = dict(without)
    scores_with = {h["_id"]: h["_score"] for h in with_views["hits"]["hits"]}
    # L3 is co-viewed most with L1: the blend lifts it relative to content alone.
    assert scores_with["L3"] - scores_with["L2"] > scores_without["L3"] - scores_without["L2"]
    assert any("co-views blended" in n for n in with_views["_shoprank"]["notes"])
    few = CountsReads()
    few.pair("view", "L1", "B2", 2)
    few.items["view"] = {"L1": 2, "B2": 2}
    notes = make(shop, tmp_path, few).recommend(
        {"strategy": "similar", "product_id": "L1", "explain": True}
    )["_shoprank"]["notes"]
    assert any("too few co-views" in n for n in notes)


# -- trending -----------------------------------------------------------------------------


def test_trending_follows_the_velocity_and_the_category(shop: Any, tmp_path: Path) -> None:
    reads = shop_behaviour()
    reads.trend = [("H2", 9.0), ("P2", 4.0), ("S1", 1.0)]
    service = make(shop, tmp_path, reads)
    assert ids(service.recommend({"strategy": "trending"})) == ["H2", "P2", "S1"]
    phones = service.recommend({"strategy": "trending", "category": "Electronics > Phones"})
    assert ids(phones) == ["P2"]
    assert "cold_start" not in phones["_shoprank"]


def test_trending_without_recent_events_falls_back_to_popularity(shop: Any, tmp_path: Path) -> None:
    reads = shop_behaviour()
    reads.trend = [("S1", 0.01), ("H1", 0.004), ("P2", 0.003), ("B2", 0.001)]
    got = make(shop, tmp_path, reads).recommend({"strategy": "trending", "explain": True})
    assert got["_shoprank"]["fallback"] == "popularity"
    # By all-time event counts weighted like SHOPRANK_EVENT_WEIGHTS (B2: 30 views + 6
    # purchases beats P2: 50 views + 3 purchases).
    assert ids(got)[:3] == ["H1", "B2", "P2"]
    assert any("no recent events" in n for n in got["_shoprank"]["notes"])


# -- for you ------------------------------------------------------------------------------


def laptop_shopper(reads: CountsReads) -> None:
    reads.profiles["u1"] = {
        "affinities": {
            "category": {"Electronics": 3.0, "Electronics > Computers": 3.0, LAPTOPS: 3.0},
            "brand": {"Aster": 2.0, "Brio": 1.0},
        },
        "recent_products": ["L1"],
        "vector": [0.98, 0.05, 0.05, 0.0],
    }


def test_for_you_recommends_what_goes_with_what_the_shopper_looks_at(
    shop: Any, tmp_path: Path
) -> None:
    # u1 has just looked at the laptop L1: the page has what is bought with it (the sleeve
    # B1, the headphones H1), laptops compared with it, and nothing unrelated (shoes).
    reads = shop_behaviour()
    laptop_shopper(reads)
    got = make(shop, tmp_path, reads).recommend(
        {"strategy": "for_you", "user_id": "u1", "size": 4, "explain": True}
    )
    assert "cold_start" not in got["_shoprank"]
    hits = got["hits"]["hits"]
    top = [h["_id"] for h in hits[:3]]
    assert {"B1", "H1"} <= set(top)
    cats = [h["_source"]["category"] for h in hits]
    assert LAPTOPS in cats and SHOES not in cats
    assert hits[0]["_shoprank"]["sources"]["recent"] > 0  # came from the recent history


def test_for_you_is_ranked_by_the_learned_ranker_on_the_recommend_surface(
    shop: Any, tmp_path: Path
) -> None:
    reads = shop_behaviour()
    laptop_shopper(reads)
    plain = make(shop, tmp_path, reads).strategy_ids(
        "for_you", index="products", user_id="u1", size=50
    )
    ranker = ReversingRanker()
    ranked = make(shop, tmp_path, reads, rerankers=[ranker]).strategy_ids(
        "for_you", index="products", user_id="u1", size=50
    )
    assert [p for p, _ in ranked] == [p for p, _ in reversed(plain)]
    context = ranker.contexts[-1]
    assert context.surface == "recommend" and context.query_text is None
    assert context.user_id == "u1"


def test_for_you_keeps_its_order_when_the_ranker_fails(shop: Any, tmp_path: Path) -> None:
    reads = shop_behaviour()
    laptop_shopper(reads)
    plain = make(shop, tmp_path, reads).strategy_ids("for_you", index="products", user_id="u1")
    service = make(shop, tmp_path, reads, rerankers=[FailingRanker()])
    got = service.recommend({"strategy": "for_you", "user_id": "u1"})
    assert [(h["_id"], h["_score"]) for h in got["hits"]["hits"]] == plain
    assert any("rerank" in d for d in got["_shoprank"]["degraded"])


def test_for_you_cold_start_is_trending_then_popular(shop: Any, tmp_path: Path) -> None:
    reads = shop_behaviour()
    reads.trend = [("H2", 3.0), ("B2", 0.02), ("H1", 0.01)]  # only H2 is recent
    got = make(shop, tmp_path, reads).recommend(
        {"strategy": "for_you", "user_id": "new", "size": 3}
    )
    assert got["_shoprank"]["cold_start"] is True
    assert ids(got)[0] == "H2"
    assert ids(got)[1] == "H1"  # the all-time best-seller fills in
    assert len(ids(got)) == 3


# -- every strategy ------------------------------------------------------------------------

CHEAP = [{"range": {"price": {"lte": 100}}}]


@pytest.mark.parametrize(
    "body",
    [
        {"strategy": "similar", "product_id": "L1"},
        {"strategy": "bought_together", "product_id": "L1"},
        {"strategy": "bought_together", "product_ids": ["L1", "P1"]},
        {"strategy": "for_you", "user_id": "u1"},
        {"strategy": "for_you", "user_id": "nobody"},
        {"strategy": "trending"},
    ],
)
def test_every_strategy_applies_the_filters_and_exclude(
    shop: Any, tmp_path: Path, body: dict[str, Any]
) -> None:
    reads = shop_behaviour()
    laptop_shopper(reads)
    reads.trend = [("L2", 5.0), ("H2", 4.0), ("C1", 3.0)]
    service = make(shop, tmp_path, reads)
    got = service.recommend({**body, "filter": CHEAP, "exclude": ["B1"], "size": 20})
    prices = [h["_source"]["price"] for h in got["hits"]["hits"]]
    assert prices and max(prices) <= 100
    assert "B1" not in ids(got)
    assert len(ids(got)) == len(set(ids(got)))


def test_diversity_caps_a_brand(shop: Any, tmp_path: Path) -> None:
    service = make(shop, tmp_path, None)
    body = {"strategy": "similar", "product_id": "L1", "size": 4}
    plain = ids(service.recommend(body))
    capped = service.recommend({**body, "diversity": {"type": "cap", "field": "brand", "max": 1}})
    brands = [h["_source"]["brand"] for h in capped["hits"]["hits"]]
    assert len(set(brands)) == len(brands)
    assert plain != ids(capped)
    assert capped["_shoprank"]["diversity"] == {"type": "cap", "field": "brand", "max": 1}


def test_each_answer_is_logged_under_its_rec_id(shop: Any, tmp_path: Path) -> None:
    sink = Captured()
    service = make(shop, tmp_path, shop_behaviour(), sink=sink)
    got = service.recommend({"strategy": "bought_together", "product_id": "L1", "size": 3})
    assert service.search.search_logger is not None
    service.search.search_logger.flush()
    (record,) = sink.records
    assert record.query_id == got["_shoprank"]["rec_id"]
    assert (record.surface, record.strategy, record.query) == ("recommend", "bought_together", None)
    assert record.product_ids == ids(got)
    again = service.recommend({"strategy": "bought_together", "product_id": "L1", "size": 3})
    assert again["_shoprank"]["rec_id"] != got["_shoprank"]["rec_id"]


def test_a_store_that_fails_degrades_to_content(shop: Any, tmp_path: Path) -> None:
    class Down(CountsReads):
        def neighbours(self, ids: Sequence[str], *, kind: Any, limit: int = 200) -> Any:
            raise ConnectionError("redis down")

    got = make(shop, tmp_path, Down()).recommend(
        {"strategy": "bought_together", "product_id": "L1"}
    )
    assert got["_shoprank"]["cold_start"] is True
    assert ids(got)
    assert any("unavailable" in d for d in got["_shoprank"]["degraded"])


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ({"strategy": "popular"}, "strategy"),
        ({}, "strategy"),
        ({"strategy": "similar"}, "product_id"),
        ({"strategy": "bought_together", "product_ids": []}, "product_id"),
        ({"strategy": "for_you"}, "user_id"),
        ({"strategy": "trending", "size": 0}, "size"),
        ({"strategy": "trending", "size": 5000}, "size"),
        ({"strategy": "trending", "filter": "price < 3"}, "filter"),
        ({"strategy": "trending", "exclude": {"a": 1}}, "exclude"),
        ({"strategy": "trending", "explain": "yes"}, "explain"),
        ({"strategy": "trending", "limit": 3}, "limit"),
        ({"strategy": "trending", "diversity": {"type": "random"}}, "diversity.type"),
    ],
)
def test_bad_bodies_are_400s_naming_the_key(
    shop: Any, tmp_path: Path, body: dict[str, Any], key: str
) -> None:
    with pytest.raises(BadRequestError) as caught:
        make(shop, tmp_path, None).recommend(body)
    assert f"[{key}" in caught.value.reason


def test_an_unknown_product_is_a_404(shop: Any, tmp_path: Path) -> None:
    with pytest.raises(DocumentNotFoundError) as caught:
        make(shop, tmp_path, None).recommend({"strategy": "similar", "product_id": "nope"})
    assert "[nope]" in caught.value.reason


def test_for_you_without_recent_neighbours_is_the_long_term_taste(
    shop: Any, tmp_path: Path
) -> None:
    # u2 last looked at the running shoes (nothing is viewed or bought with them), but has
    # long liked Aster laptops: their page comes from the user vector and the affinities.
    reads = shop_behaviour()
    reads.profiles["u2"] = {
        "affinities": {"category": {LAPTOPS: 4.0}, "brand": {"Aster": 3.0}},
        "recent_products": ["S1"],
        "vector": [0.98, 0.05, 0.05, 0.0],
    }
    got = make(shop, tmp_path, reads).recommend(
        {"strategy": "for_you", "user_id": "u2", "size": 3, "explain": True}
    )
    hits = got["hits"]["hits"]
    assert [h["_source"]["category"] for h in hits[:2]] == [LAPTOPS, LAPTOPS]
    assert all({"vector", "affinity"} & set(h["_shoprank"]["sources"]) for h in hits[:2])


def test_for_you_with_a_pool_of_recent_neighbours_keeps_to_them(
    shop: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With the candidate pool cut to 3, L1's four neighbours fill it: long-term taste (the
    # vector's nearest laptops, the brand affinity) does not push them down the page.
    monkeypatch.setattr(context, "MIN_POOL", 3)
    monkeypatch.setattr(context, "POOL_FACTOR", 1)
    reads = shop_behaviour()
    laptop_shopper(reads)
    got = make(shop, tmp_path, reads).recommend(
        {"strategy": "for_you", "user_id": "u1", "size": 3, "explain": True}
    )
    sources = [h["_shoprank"]["sources"] for h in got["hits"]["hits"]]
    assert sources and all("vector" not in s and "affinity" not in s for s in sources)
    assert {h["_id"] for h in got["hits"]["hits"][:2]} <= {"B1", "H1", "L2", "L3"}
