"""A re-index of a changed catalog starts from the live generation and applies the diff."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shoprank.indexing.mapping import TEXT_VECTOR_FIELD
from shoprank.plugin.backends.embedded.backend import EmbeddedBackend

from .test_loader import INDEX, HashEncoder, _catalog, _load

BASE = [
    {"id": f"p{i}", "title": f"{word} product {i}", "supplier": "Acme", "price": 1000 + i}
    for i, word in enumerate(["kettle", "toaster", "blender", "mixer", "grill", "juicer"] * 5)
]


def _docs(backend: EmbeddedBackend, index: str) -> dict[str, dict[str, Any]]:
    hits = backend.search(index, {"query": {"match_all": {}}, "size": 1000})["hits"]["hits"]
    return {h["_id"]: h["_source"] for h in hits}


def _knn(backend: EmbeddedBackend, index: str, text: str) -> dict[str, float]:
    """Every product's similarity to `text` (ties make the order alone ambiguous)."""
    vector = HashEncoder().encode([text])[0].tolist()
    body = {"knn": {"field": TEXT_VECTOR_FIELD, "query_vector": vector, "k": 100}, "size": 100}
    hits = backend.search(index, body)["hits"]["hits"]
    return {h["_id"]: round(h["_score"], 5) for h in hits}


def _changed_rows() -> list[dict[str, Any]]:
    rows = [dict(r) for r in BASE[:-3]]  # three products dropped
    rows[0]["title"] = "cordless kettle deluxe"  # one changed
    rows[4]["price"] = 999  # a change that does not touch the embedded text
    rows.append({"id": "new1", "title": "espresso grinder", "supplier": "Brew", "price": 5})
    return rows


def test_incremental_equals_full_rebuild_and_leaves_the_old_generation_alone(
    tmp_path: Path,
) -> None:
    backend = EmbeddedBackend(tmp_path / "embedded")
    first = _load(_catalog(tmp_path / "a.jsonl", BASE), backend, tmp_path)
    before = _docs(backend, first.generation)

    encoder = HashEncoder()
    changed = _catalog(tmp_path / "b.jsonl", _changed_rows())
    second = _load(changed, backend, tmp_path, encoder=encoder)
    # Only the changed and new products went through the encoder.
    assert encoder.calls == 1
    assert second.documents == len(BASE) - 3 + 1

    # A full rebuild of the same catalog, in another data dir, is the reference.
    other = EmbeddedBackend(tmp_path / "other")
    full = _load(changed, other, tmp_path / "o", incremental=False)
    assert _docs(backend, INDEX) == _docs(other, INDEX)
    for text in ["cordless kettle", "espresso grinder", "blender product", "grill"]:
        assert _knn(backend, INDEX, text) == _knn(other, INDEX, text)
    assert full.documents == second.documents

    # The previous generation still serves its own content: a rollback target.
    assert _docs(backend, first.generation) == before
    assert backend.rollback(INDEX) == first.generation
    assert _docs(backend, INDEX) == before


def test_unchanged_catalog_writes_nothing(tmp_path: Path) -> None:
    backend = EmbeddedBackend(tmp_path / "embedded")
    path = _catalog(tmp_path / "a.jsonl", BASE)
    _load(path, backend, tmp_path)
    encoder = HashEncoder()
    second = _load(path, backend, tmp_path, encoder=encoder)
    assert encoder.calls == 0 and second.embed_s == 0
    assert second.documents == len(BASE)
    assert _knn(backend, INDEX, "toaster") == _knn(backend, second.previous or "", "toaster")


def test_other_model_or_mapping_forces_a_full_rebuild(tmp_path: Path) -> None:
    backend = EmbeddedBackend(tmp_path / "embedded")
    path = _catalog(tmp_path / "a.jsonl", BASE)
    _load(path, backend, tmp_path)

    class OtherModel(HashEncoder):
        model_id = "hash-bow@v2"

    encoder = OtherModel()
    _load(path, backend, tmp_path, encoder=encoder)
    assert encoder.calls > 0  # new model: every product re-embedded
    no_vectors = _load(path, backend, tmp_path, encoder=None)  # another mapping
    assert no_vectors.documents == len(BASE)
    assert TEXT_VECTOR_FIELD not in backend.vector_fields(INDEX)


def test_a_product_that_fails_is_removed_not_kept_stale(tmp_path: Path) -> None:
    class NanForKettles(HashEncoder):
        def encode(self, texts: Any, *, batch_size: int = 64) -> Any:
            out = super().encode(texts)
            for i, text in enumerate(texts):
                if "kettle" in text:
                    out[i] = np.nan
            return out

    backend = EmbeddedBackend(tmp_path / "embedded")
    _load(_catalog(tmp_path / "a.jsonl", BASE), backend, tmp_path)
    rows = _changed_rows()  # p0 changed to "cordless kettle deluxe"
    report = _load(
        _catalog(tmp_path / "b.jsonl", rows),
        backend,
        tmp_path,
        encoder=NanForKettles(),
        max_failure_rate=0.5,
    )
    docs = _docs(backend, INDEX)
    assert "p0" not in docs  # neither the new nor the stale old version
    assert report.documents == len(rows) - 1
    # The next re-index retries it.
    retry = HashEncoder()
    _load(_catalog(tmp_path / "b.jsonl", rows), backend, tmp_path, encoder=retry)
    assert retry.calls == 1 and "p0" in _docs(backend, INDEX)


@pytest.mark.parametrize("name", ["x.usearch"])
def test_clone_hard_links_immutable_files(tmp_path: Path, name: str) -> None:
    backend = EmbeddedBackend(tmp_path / "embedded")
    first = _load(_catalog(tmp_path / "a.jsonl", BASE), backend, tmp_path)
    clone = backend.clone_generation(INDEX, first.generation)
    src = tmp_path / "embedded" / "indices" / first.generation
    dst = tmp_path / "embedded" / "indices" / clone
    linked = [p.name for p in (src / "tantivy").iterdir() if p.suffix in (".idx", ".store")]
    assert linked and all(
        (src / "tantivy" / n).stat().st_ino == (dst / "tantivy" / n).stat().st_ino for n in linked
    )
    assert backend.count(clone, None) == len(BASE)


def test_data_dirs_sharing_an_embedding_cache_embed_a_catalog_once(tmp_path: Path) -> None:
    """SHOPRANK_EMBEDDING_CACHE_PATH: a second data dir loading the same catalog through the
    same cache file embeds nothing, and its vectors are the first one's."""
    from shoprank.settings import Settings
    from shoprank.wiring import embedding_cache

    shared = tmp_path / "shared" / "embeddings.sqlite"
    path = _catalog(tmp_path / "a.jsonl", BASE)
    backends = []
    for name in ("one", "two"):
        settings = Settings(data_dir=tmp_path / name, embedding_cache_path=shared)
        backend = EmbeddedBackend(settings.data_dir / "embedded")
        encoder = HashEncoder()
        _load(path, backend, settings.data_dir, encoder=encoder, cache=embedding_cache(settings))
        backends.append((backend, encoder.calls))
        assert not (settings.data_dir / "cache" / "embeddings.sqlite").exists()
    (first, first_calls), (second, second_calls) = backends
    assert first_calls > 0 and second_calls == 0
    assert _knn(first, INDEX, "toaster") == _knn(second, INDEX, "toaster")
