"""The vector leg finds what exact search finds: how widely shoprank's own kNN legs search
(`num_candidates` = `SHOPRANK_KNN_CANDIDATES_FACTOR` × the window) and how well the embedded
HNSW graph is built. A vector leg that misses part of the exact top k ranks worse products in
their place, in `vector` mode and in every fused mode."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shoprank.indexing.mapping import TEXT_VECTOR_FIELD
from shoprank.plugin.backends.embedded.backend import EmbeddedBackend
from shoprank.plugin.backends.embedded.vectors import VectorField
from shoprank.plugin.pipeline.legs import num_candidates
from shoprank.plugin.search import SearchService
from shoprank.settings import Settings
from tests.unit.test_search_service import INDEX, PRODUCTS, ConceptEncoder, _build


def _clustered(n: int, dims: int, seed: int) -> np.ndarray:
    """Unit vectors in 100 clusters: neighbours are close, as product embeddings are."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(100, dims))
    points = centres[rng.integers(0, 100, n)] + 0.6 * rng.normal(size=(n, dims))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    return points.astype(np.float32)


# The query's own neighbourhood, and the rest of the catalog, far from it.
NEAR, FAR = 2000, 6000
FAR_DIMS = 16


def _near_and_far(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`NEAR` unit vectors close to a query and `FAR` spread around its opposite (keys
    0..NEAR-1 are the neighbourhood), and the query itself."""
    rng = np.random.default_rng(seed)
    near = rng.normal(size=FAR_DIMS)
    points = np.vstack(
        [
            near + 0.3 * rng.normal(size=(NEAR, FAR_DIMS)),
            -near + 1.5 * rng.normal(size=(FAR, FAR_DIMS)),
        ]
    ).astype(np.float32)
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    return points, (near / np.linalg.norm(near)).astype(np.float32)


def test_hnsw_top_100_is_nearly_the_exact_top_100(tmp_path: Path) -> None:
    points = _clustered(8_000, 48, seed=7)
    field = VectorField(tmp_path / "v.usearch", dims=48)
    field.add(np.arange(len(points), dtype=np.uint64), points)
    rng = np.random.default_rng(11)
    recalls = []
    for i in rng.integers(0, len(points), 25):
        query = points[i] + 0.3 * rng.normal(size=48).astype(np.float32)
        query /= np.linalg.norm(query)
        exact = set(np.argsort(-(points @ query))[:100].tolist())
        keys, sims = field.search(query, k=100, num_candidates=num_candidates(100, 4.0))
        assert len(keys) == 100 and list(sims) == sorted(sims, reverse=True)
        recalls.append(len(exact.intersection(keys.tolist())) / 100)
    # The graph built with expansion_add 64 and searched at 2× the window found ~96 % here.
    assert float(np.mean(recalls)) >= 0.97


def test_search_breadth_is_a_multiple_of_the_window_within_bounds() -> None:
    assert num_candidates(100, 4.0) == 400
    assert num_candidates(10, 4.0) == 100  # small windows still search 100 wide
    assert num_candidates(5_000, 4.0) == 10_000  # Elasticsearch's ceiling
    assert num_candidates(100, 1.0) == 100


class RecordingBackend(EmbeddedBackend):
    """The embedded backend, keeping every msearch body it was sent."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.sent: list[dict[str, Any]] = []

    def msearch(self, index: str, bodies: Any) -> Any:
        self.sent.extend(bodies)
        return super().msearch(index, bodies)


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> RecordingBackend:
    backend = RecordingBackend(tmp_path_factory.mktemp("recording"))
    _build(backend, INDEX, PRODUCTS)
    return backend


@pytest.mark.parametrize(("factor", "window", "expected"), [(4.0, 50, 200), (8.0, 100, 800)])
def test_hybrid_vector_leg_searches_the_configured_breadth(
    recording: RecordingBackend, tmp_path: Path, factor: float, window: int, expected: int
) -> None:
    service = SearchService(
        backend=recording,
        settings=Settings(data_dir=tmp_path, knn_candidates_factor=factor),
        encoder=lambda: ConceptEncoder(),
    )
    recording.sent.clear()
    body = {
        "query": {"match": {"title": "running shoes"}},
        "ext": {"shoprank": {"mode": "hybrid", "window": window}},
    }
    response = service.search(INDEX, body)
    assert response["hits"]["hits"]
    ((spec,),) = [b["knn"] for b in recording.sent if "knn" in b]
    assert spec["k"] == window and spec["num_candidates"] == expected


def test_knn_candidates_factor_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="knn_candidates_factor"):
        Settings(data_dir=tmp_path, knn_candidates_factor=0.5)


def test_a_filter_keeping_many_far_documents_widens_hnsw_and_finds_the_allowed_top_k(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A filter that keeps most of the catalog but none of the query's own neighbourhood
    (recommending outside the product's category): the search widens until enough allowed
    documents turn up, and returns the exact top k of the allowed ones, without scoring
    every allowed vector (which costs a hundred times more on a real catalog)."""
    points, query = _near_and_far(3)
    field = VectorField(tmp_path / "v.usearch", dims=FAR_DIMS)
    keys = np.arange(len(points), dtype=np.uint64)
    field.add(keys, points)
    allowed = keys[NEAR:]  # 6,000 allowed (more than EXACT_LIMIT), all far from the query
    sims = points[NEAR:] @ query
    exact = set((allowed[np.argsort(-sims)[:50]]).tolist())

    allowed_set = set(allowed.tolist())
    widest: list[int] = []  # allowed keys among each HNSW answer
    hnsw, exhaustive = field._hnsw, field._exact

    def recorded_hnsw(q: Any, count: int) -> Any:
        keys, sims = hnsw(q, count)
        widest.append(len(allowed_set & set(keys.tolist())))
        return keys, sims

    def checked_exact(*args: Any) -> Any:
        # Only the fallback for a graph that, asked for everything, still gave too few
        # (multi-threaded builds vary; a weakly linked one does that now and then).
        assert widest and max(widest) < 50, "scored every allowed vector"
        return exhaustive(*args)

    monkeypatch.setattr(field, "_hnsw", recorded_hnsw)
    monkeypatch.setattr(field, "_exact", checked_exact)
    found, scores = field.search(query, k=50, num_candidates=200, allowed=allowed)
    assert len(found) == 50 and set(found.tolist()) <= allowed_set
    assert len(exact & set(found.tolist())) >= 45
    assert list(scores) == sorted(scores, reverse=True)


def test_a_knn_filter_of_only_exclusions_matches_the_same_filter_said_otherwise(
    recording: RecordingBackend,
) -> None:
    """`bool.must_not` alone is searched by leaving out the few documents it names; it
    must find exactly what the same filter with a `match_all` beside it finds."""
    vector = ConceptEncoder().encode(["running shoes"])[0].tolist()
    excluded = [{"term": {"brand": "Acme"}}, {"ids": {"values": [PRODUCTS[1]["id"]]}}]

    def knn(filters: list[dict[str, Any]]) -> list[tuple[str, float]]:
        spec = {"field": TEXT_VECTOR_FIELD, "query_vector": vector, "k": 5, "filter": filters}
        response = recording.search(INDEX, {"knn": spec, "size": 5})
        return [(h["_id"], h["_score"]) for h in response["hits"]["hits"]]

    only = knn([{"bool": {"must_not": excluded}}])
    said_otherwise = knn([{"bool": {"must": [{"match_all": {}}], "must_not": excluded}}])
    assert only == said_otherwise and len(only) == 5
    sources = {p["id"]: p for p in PRODUCTS}
    assert all(sources[i]["brand"] != "Acme" and i != PRODUCTS[1]["id"] for i, _ in only)


def test_denied_documents_never_come_back_from_a_widened_search(tmp_path: Path) -> None:
    """Leaving out the query's whole neighbourhood (2,000 of 8,000): the widened search
    returns only the others, the same as allowing exactly the others."""
    points, query = _near_and_far(4)
    field = VectorField(tmp_path / "v.usearch", dims=FAR_DIMS)
    keys = np.arange(len(points), dtype=np.uint64)
    field.add(keys, points)
    denied, _ = field.search(query, k=50, num_candidates=200, denied=keys[:NEAR])
    allowed, _ = field.search(query, k=50, num_candidates=200, allowed=keys[NEAR:])
    assert len(denied) == 50 and int(denied.min()) >= NEAR
    assert denied.tolist() == allowed.tolist()


def test_a_wide_filter_checks_the_hnsw_candidates_and_keeps_only_matches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `range` filter letting 6,000 of 8,000 products through, none of them near the
    query: the search checks HNSW candidates against the filter (never listing the 6,000)
    and returns only matches, nearly the exact top 50 among them."""
    from shoprank.plugin.backends.embedded import knn as knn_module
    from tests.unit.conftest import build_index

    points, query = _near_and_far(5)
    docs = [
        {"_id": f"d{i}", "id": f"d{i}", "title": "thing", "price": float(i)}
        for i in range(len(points))
    ]
    backend, _ = build_index(tmp_path, docs, points, dims=FAR_DIMS)
    listed: list[int] = []
    real = knn_module.matching_keys

    def counting(searcher: Any, query: Any) -> Any:
        found = real(searcher, query)
        listed.append(len(found))
        return found

    monkeypatch.setattr(knn_module, "matching_keys", counting)
    spec = {
        "field": TEXT_VECTOR_FIELD,
        "query_vector": query.tolist(),
        "k": 50,
        "num_candidates": 200,
        "filter": [{"range": {"price": {"gte": NEAR}}}],
    }
    hits = backend.search("products", {"knn": spec, "size": 50})["hits"]["hits"]
    got = [int(h["_id"][1:]) for h in hits]
    assert len(got) == 50 and min(got) >= NEAR
    exact = set((NEAR + np.argsort(-(points[NEAR:] @ query))[:50]).tolist())
    assert len(exact & set(got)) >= 45
    assert listed and max(listed) < FAR  # only candidates were checked, never every match


def test_a_graph_that_cannot_reach_the_allowed_documents_still_gives_a_full_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HNSW asked for the whole index may answer only the region it can reach (a weakly
    linked graph): the page is then the exact top k of the allowed documents, not short."""
    points, query = _near_and_far(3)
    field = VectorField(tmp_path / "v.usearch", dims=FAR_DIMS)
    keys = np.arange(len(points), dtype=np.uint64)
    field.add(keys, points)
    allowed = keys[NEAR:]
    sims = points[NEAR:] @ query
    exact = allowed[np.argsort(-sims)[:50]].tolist()
    hnsw = field._hnsw

    def unreachable(q: Any, count: int) -> Any:  # the near region and 15 far documents
        found, scores = hnsw(q, count)
        reach = found < NEAR + 15
        return found[reach], scores[reach]

    monkeypatch.setattr(field, "_hnsw", unreachable)
    found, _ = field.search(query, k=50, num_candidates=200, allowed=allowed)
    assert found.tolist() == exact
