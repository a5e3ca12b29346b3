"""Training the intent model on a small catalog slice (+ click logs) and serving it in
onnxruntime; a deterministic bag-of-words encoder stands in for MiniLM to stay fast."""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from shoprank.events.model import Event
from shoprank.events.stores import make_event_log
from shoprank.indexing.demo import write_demo_catalog
from shoprank.rerankers.intent.model import load_artefacts
from shoprank.rerankers.intent.predictor import IntentPredictor
from shoprank.rerankers.intent.training import train_intent
from shoprank.settings import Settings

pytestmark = pytest.mark.ml
DIMS = 32


def encode(texts: Sequence[str]) -> npt.NDArray[np.float32]:
    out = np.zeros((len(texts), DIMS), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in text.lower().split():
            out[i, zlib.crc32(word.encode()) % DIMS] += 1.0
        out[i] /= max(float(np.linalg.norm(out[i])), 1e-6)
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, dict[str, Any]]:
    root = tmp_path_factory.mktemp("intent-train")
    catalog = write_demo_catalog(root / "demo.jsonl", n=600, seed=3)
    settings = Settings(data_dir=root)
    # A shopper vocabulary the catalog never uses: "bruschetta" searches led to clicks on
    # frying pans. Only the click log can teach that.
    pans = [
        json.loads(line)["id"]
        for line in catalog.read_text().splitlines()
        if "Frying Pans" in json.loads(line)["category"]
    ]
    log = make_event_log(settings)
    now = time.time()
    events = []
    for i, pid in enumerate(pans[:10]):
        qid = f"q{i}"
        events.append(Event("search", now, f"s{i}", user_id="u", query="bruschetta", query_id=qid))
        events.append(Event("click", now, f"c{i}", user_id="u", product_id=pid, query_id=qid))
    log.append(events)
    meta = train_intent(settings, catalog=catalog, epochs=20, encode=encode, holdout=0.25)
    return settings, meta


def test_held_out_accuracy_beats_chance_by_far(trained: tuple[Settings, dict[str, Any]]) -> None:
    _, meta = trained
    chance = 1.0 / meta["categories"]
    assert meta["categories"] >= 30
    assert meta["held_out_examples"] > 100
    assert meta["accuracy"]["title"]["top1"] > 0.8 > 10 * chance
    assert meta["accuracy"]["all"]["top3"] >= meta["accuracy"]["all"]["top1"]


def test_served_model_predicts_categories_with_ancestors(
    trained: tuple[Settings, dict[str, Any]],
) -> None:
    settings, meta = trained
    artefacts = load_artefacts(settings.data_dir / "models" / "intent")
    assert artefacts is not None and artefacts.head is not None
    predictor = IntentPredictor(artefacts.vocab, artefacts.head, model_version="t")
    intent = predictor.predict("espresso machine", embedding=encode(["espresso machine"])[0]).intent
    names = [c for c, _ in intent.categories]
    assert names[0] in ("Home & Kitchen", "Home & Kitchen > Coffee")
    assert "Home & Kitchen > Coffee > Espresso Machines" in names
    probs = dict(intent.categories)
    assert probs["Home & Kitchen"] >= probs["Home & Kitchen > Coffee > Espresso Machines"]
    assert intent.query_type == "product_type"
    # Catalog attribute values are part of the model's vocabulary.
    assert "brand" in artefacts.vocab.attributes and "colour" in artefacts.vocab.attributes
    # "cheap" means the low band of the predicted category, not of the whole shop.
    cheap = predictor.predict("cheap espresso machine", embedding=encode(["espresso machine"])[0])
    assert cheap.intent.price is not None
    assert cheap.intent.price["lte"] == artefacts.vocab.band(
        "Home & Kitchen > Coffee > Espresso Machines", "low"
    )


def test_click_logs_teach_shopper_words(trained: tuple[Settings, dict[str, Any]]) -> None:
    settings, meta = trained
    assert meta["click_pairs"] == 10
    artefacts = load_artefacts(settings.data_dir / "models" / "intent")
    assert artefacts is not None
    predictor = IntentPredictor(artefacts.vocab, artefacts.head)
    intent = predictor.predict("bruschetta", embedding=encode(["bruschetta"])[0]).intent
    assert intent.categories[0][0].startswith("Home & Kitchen")
    assert "Home & Kitchen > Cookware > Frying Pans" in dict(intent.categories)


def test_too_few_categories_is_a_clear_error(tmp_path: Path) -> None:
    from shoprank.errors import ConfigError

    catalog = tmp_path / "c.jsonl"
    catalog.write_text('{"id": "1", "title": "a thing", "category": "Only"}\n')
    with pytest.raises(ConfigError, match="at least 2 categories"):
        train_intent(Settings(data_dir=tmp_path), catalog=catalog, encode=encode)


def test_serving_picks_up_a_retrained_model(trained: tuple[Settings, dict[str, Any]]) -> None:
    import os

    from shoprank.plugin.backends.embedded.backend import EmbeddedBackend
    from shoprank.rerankers.intent.service import QueryUnderstanding, intent_dir

    settings, meta = trained
    backend = EmbeddedBackend(settings.data_dir / "index")
    understanding = QueryUnderstanding(backend=backend, settings=settings)
    notes: list[str] = []
    first = understanding.predictor("any-index", notes)
    assert first.head is not None and first.model_version == meta["model_version"]
    assert notes == []
    meta_path = intent_dir(settings) / "metadata.json"
    data = json.loads(meta_path.read_text())
    data["model_version"] = "intent-retrained"
    meta_path.write_text(json.dumps(data))
    stat = meta_path.stat()
    os.utime(meta_path, (stat.st_atime, stat.st_mtime + 5))
    assert understanding.predictor("any-index", notes).model_version == "intent-retrained"
