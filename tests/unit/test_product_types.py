"""Product types induced for a catalog without categories (`product_types.py`), trained
through `train_intent` on an embedded index of real Home Depot titles and served by the
predictor and the ranker's features.

The titles are six kinds of products picked from the real catalog by a word of their
title; the vectors come from a deterministic bag-of-words encoder (a stand-in for MiniLM,
as in `test_intent_training.py`), which also embeds the queries and calibration texts.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from shoprank.errors import ConfigError
from shoprank.rerankers.features.compute import Inputs, compute_features
from shoprank.rerankers.intent.model import load_artefacts
from shoprank.rerankers.intent.predictor import IntentPredictor
from shoprank.rerankers.intent.product_types import ProductTypes, spherical_kmeans
from shoprank.rerankers.intent.rewriter import RewriteConfig, rewrite
from shoprank.rerankers.intent.training import train_intent
from shoprank.rerankers.protocol import Candidate
from shoprank.settings import Settings

from .conftest import build_index

HOMEDEPOT = Path(__file__).resolve().parents[3] / "shared" / "data" / "homedepot"
KINDS = ("toilet", "faucet", "drill", "mower", "chandelier", "thermostat")
PER_KIND = 60
DIMS = 512
INDEX = "hd"


def encode(texts: Sequence[str]) -> npt.NDArray[np.float32]:
    out = np.zeros((len(texts), DIMS), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in text.lower().replace("-", " ").split():
            out[i, zlib.crc32(word.strip(".,()").encode()) % DIMS] += 1.0
        out[i] /= max(float(np.linalg.norm(out[i])), 1e-6)
    return out


def _kind(title: str) -> str | None:
    words = set(title.lower().replace("-", " ").split())
    found = [k for k in KINDS if k in words]
    return found[0] if len(found) == 1 else None


@pytest.fixture(scope="module")
def catalog() -> dict[str, tuple[str, str]]:
    """id → (title, kind) of the first `PER_KIND` real titles of each kind."""
    path = HOMEDEPOT / "products.jsonl.gz"
    if not path.is_file():
        pytest.skip(f"Home Depot data not found at {path}")
    out: dict[str, tuple[str, str]] = {}
    counts: Counter[str] = Counter()
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            kind = _kind(row["title"])
            if kind is not None and counts[kind] < PER_KIND:
                counts[kind] += 1
                out[str(row["id"])] = (row["title"], kind)
    assert all(counts[k] == PER_KIND for k in KINDS), counts
    return out


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory, catalog: dict[str, tuple[str, str]]
) -> tuple[Settings, dict[str, Any]]:
    root = tmp_path_factory.mktemp("types")
    ids = list(catalog)
    docs = [
        {"_id": pid, "id": pid, "title": catalog[pid][0], "price": 10.0 + i % 50}
        for i, pid in enumerate(ids)
    ]
    build_index(
        Settings(data_dir=root).embedded_dir,
        docs,
        encode([catalog[p][0] for p in ids]),
        alias=INDEX,
        dims=DIMS,
    )
    settings = Settings(data_dir=root)
    model_dir = root / "models" / "intent"
    model_dir.mkdir(parents=True)
    (model_dir / "head.onnx").write_bytes(b"a category head of an earlier catalog")
    meta = train_intent(settings, index=INDEX, encode=encode)
    return settings, meta


def _types(settings: Settings) -> ProductTypes:
    artefacts = load_artefacts(settings.data_dir / "models" / "intent")
    assert artefacts is not None and artefacts.types is not None
    assert artefacts.head is None
    return artefacts.types


def test_a_catalog_without_categories_gets_product_types(
    trained: tuple[Settings, dict[str, Any]], catalog: dict[str, tuple[str, str]]
) -> None:
    settings, meta = trained
    assert meta["kind"] == "product_types" and meta["index"] == INDEX
    assert meta["train_examples"] == len(catalog)
    assert meta["product_types"] >= len(KINDS) // 2
    # The stale head of another catalog is gone: serving reads the types.
    assert not (settings.data_dir / "models" / "intent" / "head.onnx").exists()
    types = _types(settings)
    # A type holds one kind of product (a kind may span types: drills and drill bits).
    kinds_of: dict[str | None, Counter[str]] = {}
    for pid, (_, kind) in catalog.items():
        kinds_of.setdefault(types.of(pid), Counter())[kind] += 1
    assert None not in kinds_of
    for name, kinds in kinds_of.items():
        if kinds.total() >= 10:
            assert kinds.most_common(1)[0][1] >= 0.7 * kinds.total(), (name, kinds)
    # Named by what is distinctive: most kinds' largest type has the kind's word.
    named = 0
    for kind in KINDS:
        members = Counter(types.of(pid) for pid, (_, k) in catalog.items() if k == kind)
        named += kind in str(members.most_common(1)[0][0]).split()
    assert named >= 4, types.names


def test_the_query_picks_the_type_of_its_products(
    trained: tuple[Settings, dict[str, Any]], catalog: dict[str, tuple[str, str]]
) -> None:
    settings, _ = trained
    types = _types(settings)
    artefacts = load_artefacts(settings.data_dir / "models" / "intent")
    assert artefacts is not None
    predictor = IntentPredictor(artefacts.vocab, artefacts.head, types=types)
    assert predictor.wants_embedding and predictor.embedding_dims == DIMS
    intent = predictor.predict("toilet", embedding=encode(["toilet"])[0]).intent
    toilets = [pid for pid, (_, k) in catalog.items() if k == "toilet"]
    drills = [pid for pid, (_, k) in catalog.items() if k == "drill"]
    best = Counter(types.of(pid) for pid in toilets).most_common(1)[0][0]
    assert intent.product_types[0][0] == best
    assert intent.categories == []  # no category is invented
    share = np.mean([(intent.type_probability(p) or 0.0) > 0.5 for p in toilets])
    assert share >= 0.7
    assert all((intent.type_probability(p) or 0.0) < 0.05 for p in drills)
    # The ranker's feature reads it; without the query's embedding there is no type.
    cands = [Candidate(id=toilets[0], score=1.0), Candidate(id=drills[0], score=0.9)]
    features = compute_features(cands, Inputs(intent=intent))
    assert features[0]["intent_type_prob"] > 0.5 > 0.05 > features[1]["intent_type_prob"]
    assert "intent_cat_prob" not in features[0]  # the cold-start category rule ignores types
    blind = predictor.predict("toilet", embedding=None).intent
    assert blind.product_types == [] and blind.type_probability(toilets[0]) is None


def test_types_are_never_a_filter_and_the_intent_stays_json(
    trained: tuple[Settings, dict[str, Any]],
) -> None:
    settings, _ = trained
    artefacts = load_artefacts(settings.data_dir / "models" / "intent")
    assert artefacts is not None
    predictor = IntentPredictor(artefacts.vocab, types=_types(settings))
    understanding = predictor.predict("drill", embedding=encode(["drill"])[0])
    body = {"query": {"multi_match": {"query": "drill", "fields": ["title"]}}}
    rewritten, _ = rewrite(json.loads(json.dumps(body)), understanding, RewriteConfig())
    assert "category" not in json.dumps(rewritten)
    record = json.loads(json.dumps(understanding.intent.to_dict()))
    assert record["product_types"][0]["type"] == understanding.intent.product_types[0][0]
    assert "types" not in record


def test_an_index_without_text_vectors_is_a_clear_error(tmp_path: Path) -> None:
    docs = [{"_id": str(i), "id": str(i), "title": f"thing {i}"} for i in range(30)]
    build_index(Settings(data_dir=tmp_path).embedded_dir, docs, alias="plain")
    with pytest.raises(ConfigError, match="no categories and no `text_vector`"):
        train_intent(Settings(data_dir=tmp_path), index="plain", encode=encode)


def test_kmeans_is_seeded_and_fills_every_cluster() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    a = spherical_kmeans(x, 12, seed=5)
    b = spherical_kmeans(x, 12, seed=5)
    assert np.array_equal(a, b)
    assert len(set((x @ a.T).argmax(axis=1))) == 12
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
