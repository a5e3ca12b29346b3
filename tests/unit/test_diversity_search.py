"""`ext.shoprank.diversity` on a real search: a real embedded index, a real `SearchService`
(and the real HTTP app on loopback for the error bodies). Diversity reorders the page of a
fused search; the total, the facets and the set of ranked hits stay as Elasticsearch
answers them. Expected brands and counts come from the catalog rows below."""

from __future__ import annotations

import re
import zlib
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pytest

from shoprank.indexing.catalog import embedding_text
from shoprank.indexing.mapping import TEXT_VECTOR_FIELD, product_mapping
from shoprank.plugin.backends.embedded.backend import EmbeddedBackend
from shoprank.plugin.search import SearchService
from shoprank.plugin.stages import StageRunner
from shoprank.rerankers.diversity import Diversifier, DiversitySpec
from shoprank.settings import Settings
from tests.unit._apps import loopback_server

INDEX = "shop"

# Seven near-identical HP toners rank first for "toner cartridge"; other brands follow.
ROWS = [(f"hp{i}", "HP Toner Cartridge", "HP", "Toner") for i in range(7)]
ROWS += [
    ("br1", "Brother TN-2420 high yield mono laser toner cartridge", "Brother", "Toner"),
    ("br2", "Brother TN-2410 standard yield mono laser toner cartridge", "Brother", "Toner"),
    ("ca1", "Canon 052 black laser printer toner cartridge, high yield", "Canon", "Toner"),
    ("ep1", "Epson ink cartridge for office inkjet printers, not a toner", "Epson", "Ink"),
    ("sa1", "Samsung MLT-D111S black laser toner cartridge for Xpress", "Samsung", "Toner"),
    ("ky1", "Kyocera TK-1150 toner kit for Ecosys laser printers", "Kyocera", "Toner"),
    ("m1", "Espresso coffee mug", "Brewmaster", "Kitchen"),
]
PRODUCTS = [
    {"id": i, "title": t, "brand": b, "category": c, "price": 10.0 + n}
    for n, (i, t, b, c) in enumerate(ROWS)
]
BRAND = {p["id"]: p["brand"] for p in PRODUCTS}
TONER_WORDS = {"toner", "cartridge"}


class WordEncoder:
    """Hashed bag of words, unit length: same words → same vector (deterministic)."""

    model_id = "words@test"
    dims = 32

    def warm_up(self) -> None:
        pass

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> npt.NDArray[np.float32]:
        out = np.zeros((len(texts), self.dims), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                out[row, zlib.crc32(word.encode()) % self.dims] += 1.0
            out[row] /= max(float(np.linalg.norm(out[row])), 1e-9)
        return out


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> EmbeddedBackend:
    be = EmbeddedBackend(tmp_path_factory.mktemp("diversity"))
    enc = WordEncoder()
    gen = be.create_generation(INDEX, product_mapping(text_dims=enc.dims))
    vectors = enc.encode([embedding_text(p) for p in PRODUCTS])
    be.bulk_upsert(gen, [{"_id": p["id"], **p} for p in PRODUCTS], {TEXT_VECTOR_FIELD: vectors})
    be.commit(gen, ready=True)
    be.swap_alias(INDEX, gen)
    return be


def make_service(backend: EmbeddedBackend, tmp_path: Path, **settings: Any) -> SearchService:
    enc = WordEncoder()
    return SearchService(
        backend=backend,
        settings=Settings(data_dir=tmp_path, **settings),
        encoder=lambda: enc,
    )


@pytest.fixture
def service(backend: EmbeddedBackend, tmp_path: Path) -> SearchService:
    return make_service(backend, tmp_path)


def body(size: int = 5, start: int = 0, **ext: Any) -> dict[str, Any]:
    return {
        "query": {"match": {"title": "toner cartridge"}},
        "from": start,
        "size": size,
        "aggs": {"brands": {"terms": {"field": "brand"}}},
        "ext": {"shoprank": {"mode": "hybrid", **ext}},
    }


def ids(response: dict[str, Any]) -> list[str]:
    return [h["_id"] for h in response["hits"]["hits"]]


def brand_counts(response: dict[str, Any]) -> Counter[str]:
    return Counter(BRAND[i] for i in ids(response))


CAP = {"type": "cap", "field": "brand", "max": 2}


def test_cap_reorders_the_page_but_keeps_total_and_facets(service: SearchService) -> None:
    one_each = {"type": "cap", "field": "brand", "max": 1}
    plain = service.search(INDEX, body())
    capped = service.search(INDEX, body(diversity=one_each))
    assert brand_counts(plain)["HP"] >= 2  # the precondition: one brand repeats on the page
    assert max(brand_counts(capped).values()) == 1  # six toner brands: enough for a page
    assert brand_counts(capped)["HP"] == 1
    assert len(ids(capped)) == 5
    # What a frontend shows besides the ranked hits is the client's own query's answer.
    toner_matches = sum(1 for p in PRODUCTS if set(p["title"].lower().split()) & TONER_WORDS)
    assert capped["hits"]["total"] == plain["hits"]["total"]
    assert capped["hits"]["total"]["value"] >= toner_matches
    assert capped["aggregations"] == plain["aggregations"]
    hp_bucket = {b["key"]: b["doc_count"] for b in capped["aggregations"]["brands"]["buckets"]}
    assert hp_bucket["HP"] == 7


def test_every_ranked_hit_still_shows_on_some_page(service: SearchService) -> None:
    plain, capped = [], []
    for start in range(0, 15, 5):
        plain += ids(service.search(INDEX, body(start=start)))
        capped += ids(service.search(INDEX, body(start=start, diversity=CAP)))
    assert len(capped) == len(set(capped))  # no hit on two pages
    assert sorted(capped) == sorted(plain)
    first = capped[:5]
    second = capped[5:10]
    assert Counter(BRAND[i] for i in first)["HP"] == 2
    assert Counter(BRAND[i] for i in second)["HP"] <= 2  # the cap holds on every page


def test_mmr_spreads_near_duplicates(service: SearchService) -> None:
    plain = service.search(INDEX, body())
    mmr = service.search(INDEX, body(diversity={"type": "mmr", "lambda": 0.3}))
    assert ids(mmr)[0] == ids(plain)[0]  # the most relevant stays first
    assert brand_counts(mmr)["HP"] < brand_counts(plain)["HP"]
    assert mmr["hits"]["total"] == plain["hits"]["total"]
    assert mmr["aggregations"] == plain["aggregations"]
    page_ild = service.diversity.ild
    assert page_ild(INDEX, ids(mmr)) > page_ild(INDEX, ids(plain))
    # λ = 1 is the relevance order itself.
    same = service.search(INDEX, body(diversity={"type": "mmr", "lambda": 1}))
    assert ids(same) == ids(plain)


def test_explain_reports_the_stage_and_each_hits_rank_before(service: SearchService) -> None:
    plain = service.search(INDEX, body(size=20, explain=True))
    capped = service.search(INDEX, body(size=6, explain=True, diversity=CAP))
    meta = capped["_shoprank"]
    assert "diversity:cap" in meta["stages"]
    assert meta["diversity"] == CAP
    assert "diversity:cap" not in plain["_shoprank"]["stages"]
    before = {pid: rank for rank, pid in enumerate(ids(plain), start=1)}
    for hit in capped["hits"]["hits"]:
        assert hit["_shoprank"]["rank_before_diversity"] == before[hit["_id"]]
    moved = [h for h in capped["hits"]["hits"] if h["_shoprank"]["rank_before_diversity"] > 6]
    assert moved  # products from below the page moved up into it


def test_no_diversity_unless_asked(backend: EmbeddedBackend, tmp_path: Path) -> None:
    service = make_service(backend, tmp_path)
    explained = service.search(INDEX, body(explain=True))
    assert not any(s.startswith("diversity") for s in explained["_shoprank"]["stages"])
    assert "diversity" not in explained["_shoprank"]
    assert all("rank_before_diversity" not in h["_shoprank"] for h in explained["hits"]["hits"])
    # The setting turns it on for every search; a request's "none" turns it off again.
    configured = make_service(backend, tmp_path, diversity="cap", diversity_cap=1)
    assert max(brand_counts(configured.search(INDEX, body())).values()) == 1
    off = configured.search(INDEX, body(diversity="none"))
    assert ids(off) == ids(service.search(INDEX, body()))


def test_lexical_mode_keeps_the_backends_order_and_says_so(service: SearchService) -> None:
    plain = service.search(INDEX, body(mode="lexical", explain=True))
    capped = service.search(INDEX, body(mode="lexical", explain=True, diversity=CAP))
    assert ids(capped) == ids(plain)
    assert any("diversity needs a fused mode" in n for n in capped["_shoprank"]["notes"])
    # A hybrid search that has to run lexical (an explicit sort) says so too.
    sorted_body = {**body(explain=True, diversity=CAP), "sort": [{"price": "asc"}]}
    notes = service.search(INDEX, sorted_body)["_shoprank"]["notes"]
    assert any("diversity needs a fused mode" in n for n in notes)


class Broken(Diversifier):
    def apply(self, *args: Any, **kwargs: Any) -> list[tuple[str, float]]:
        raise RuntimeError("vector store down")


class PastDeadline:
    """A stage clock at which every deadline has already passed."""

    def now(self) -> float:
        return float("inf")

    def wait(self, future: Future[Any], deadline: float) -> bool:
        return False


def test_a_failing_or_late_stage_keeps_the_order(
    service: SearchService, backend: EmbeddedBackend
) -> None:
    plain = service.search(INDEX, body())
    service.diversity = Broken(backend)
    failed = service.search(INDEX, body(diversity=CAP))
    assert ids(failed) == ids(plain)
    assert failed["_shoprank"]["degraded"] == ["diversity:cap: error: RuntimeError"]
    service.stages = StageRunner(clock=PastDeadline())
    late = service.search(INDEX, body(diversity={"type": "mmr"}))
    assert ids(late) == ids(plain)
    assert late["_shoprank"]["degraded"] == ["diversity:mmr: deadline"]


def test_the_diversifier_caches_vectors_and_facts(backend: EmbeddedBackend) -> None:
    diversifier = Diversifier(backend)
    ranked = [(p["id"], 1.0) for p in PRODUCTS]
    first = diversifier.apply(INDEX, ranked, DiversitySpec("cap", max_per=1), size=4)
    assert [BRAND[i] for i, _ in first[:4]] == ["HP", "Brother", "Canon", "Epson"]
    assert set(diversifier.vectors(INDEX, ["hp0", "nope"])) == {"hp0"}


@pytest.mark.parametrize(
    ("diversity", "needle"),
    [
        ("shuffle", "[ext.shoprank.diversity] must be one of ['none', 'mmr', 'cap']"),
        ({"type": "cap", "max": 0}, "[ext.shoprank.diversity.max]"),
        ({"type": "mmr", "weight": 1}, "unknown [ext.shoprank.diversity] key(s) ['weight']"),
    ],
)
def test_bad_specs_answer_400_in_the_es_shape(
    service: SearchService, diversity: Any, needle: str
) -> None:
    with loopback_server(service, wait_s=30) as url:
        resp = httpx.post(f"{url}/{INDEX}/_search", json=body(diversity=diversity), timeout=30)
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert needle in error["reason"]
    assert error["root_cause"][0]["reason"] == error["reason"]
    assert resp.json()["status"] == 400
