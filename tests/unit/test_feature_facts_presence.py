"""The ranker reads product facts (brand, price, …) for every window; on a catalog whose
products have none (Home Depot: titles only) that read can only come back empty, so it is
skipped — found with one `count` per cache period on the real embedded backend, and redone
once the period passes, so facts added later are used."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shoprank.plugin.backends.embedded.backend import EmbeddedBackend
from shoprank.rerankers.features.compute import compute_features
from shoprank.rerankers.features.source import FeatureSource
from shoprank.rerankers.protocol import Candidate

from .conftest import build_index


class Counting(EmbeddedBackend):
    """The real embedded backend, counting the fact reads the ranker asks for."""

    mgets = 0

    def mget(self, index: str, ids: list[str], *, source: Any = True) -> dict[str, Any]:
        self.mgets += 1
        return super().mget(index, ids, source=source)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _backend(root: Path, docs: list[dict[str, Any]]) -> Counting:
    build_index(root, docs)
    return Counting(root)


def _fetch(source: FeatureSource, ids: list[str]) -> Any:
    return source.fetch(
        index="products",
        ids=ids,
        query="seat",
        user_id=None,
        session_id=None,
        intent=None,
        degraded=[],
    )


TITLES = ["Elongated Toilet Seat", "Round Toilet Seat", "Cordless Drill", "Wet Dry Vacuum"]


def test_a_title_only_catalog_is_ranked_without_reading_facts(tmp_path: Path) -> None:
    docs = [{"_id": str(i), "id": str(i), "title": t} for i, t in enumerate(TITLES)]
    backend = _backend(tmp_path / "data", docs)
    source = FeatureSource(backend=backend, profiles=None, prior_ctr=0.05, clock=Clock())
    ids = [str(i) for i in range(len(TITLES))]
    for _ in range(3):
        inputs = _fetch(source, ids)
        assert inputs.facts == {}
    assert backend.mgets == 0
    # ... and the features are those the same products get when their facts are read.
    read = FeatureSource(backend=backend, profiles=None, prior_ctr=0.05)
    read._index_has_facts = lambda *a: True  # type: ignore[method-assign]
    cands = [Candidate(pid, 1.0, retrieval_rank=i + 1) for i, pid in enumerate(ids)]
    assert compute_features(cands, _fetch(source, ids)) == compute_features(
        cands, _fetch(read, ids)
    )
    assert backend.mgets == 1


def test_facts_are_read_when_any_product_has_one_and_seen_once_the_period_passes(
    tmp_path: Path,
) -> None:
    docs = [{"_id": str(i), "id": str(i), "title": t} for i, t in enumerate(TITLES)]
    backend = _backend(tmp_path / "data", docs)
    clock = Clock()
    source = FeatureSource(
        backend=backend, profiles=None, prior_ctr=0.05, cache_ttl_s=60.0, clock=clock
    )
    assert _fetch(source, ["0", "1"]).facts == {}
    # One product gains a brand (a partial catalog update); a second product, dynamic
    # (unmapped) field, counts too.
    backend.bulk_upsert(
        backend.resolve("products"),
        [
            {"_id": "1", "id": "1", "title": TITLES[1], "brand": "Kohler"},
            {"_id": "2", "id": "2", "title": TITLES[2], "in_stock": True},
        ],
        None,
    )
    backend.commit(backend.resolve("products"), ready=True)
    assert _fetch(source, ["0", "1"]).facts == {}  # within the period: not asked again
    clock.now += 61.0
    facts = _fetch(source, ["0", "1", "2"]).facts
    assert facts["1"]["brand"] == "Kohler"
    assert facts["2"]["in_stock"] is True
    assert backend.mgets >= 1


def test_when_the_presence_count_fails_the_facts_are_read(tmp_path: Path) -> None:
    docs = [
        {"_id": "0", "id": "0", "title": TITLES[0], "brand": "Kohler", "price": 30.0},
        {"_id": "1", "id": "1", "title": TITLES[1]},
    ]
    backend = _backend(tmp_path / "data", docs)

    def broken(index: str, body: Any) -> int:
        raise ConnectionError("cluster unreachable")

    backend.count = broken  # type: ignore[method-assign]
    source = FeatureSource(backend=backend, profiles=None, prior_ctr=0.05, clock=Clock())
    assert _fetch(source, ["0", "1"]).facts["0"]["price"] == 30.0
