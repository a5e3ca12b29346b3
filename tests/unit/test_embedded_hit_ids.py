"""Hits without `_source` (shoprank's own legs ask for ids only) name their documents from
the document key's fast field and a key → id map instead of reading stored documents. The
ids must be the stored ones through updates, deletes, re-indexes into a new generation, and
in a second process's backend over the same directory."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from shoprank.indexing.mapping import product_mapping
from shoprank.plugin.backends.embedded.backend import EmbeddedBackend

from .conftest import DIMS, build_index

WORDS = ["drill", "saw", "toilet", "seat", "vacuum", "lamp", "hose", "paint"]


def _doc(pid: str, rng: random.Random) -> dict[str, Any]:
    title = " ".join(rng.sample(WORDS, 3))
    return {"_id": pid, "id": pid, "title": title, "price": rng.randint(1, 99)}


def _ids(backend: EmbeddedBackend, word: str, source: Any) -> list[tuple[str, float]]:
    body = {"query": {"match": {"title": word}}, "size": 50, "_source": source}
    return [(h["_id"], h["_score"]) for h in backend.search("products", body)["hits"]["hits"]]


def _same(backend: EmbeddedBackend) -> None:
    for word in WORDS:
        stored = _ids(backend, word, True)
        assert _ids(backend, word, False) == stored
        # the title each id names really has the word: the ids are not shifted
        for pid, _ in stored:
            (doc,) = backend.mget("products", [pid]).values()
            assert word in doc["title"].split()


def test_ids_only_hits_name_the_stored_documents_through_updates_and_reindexes(
    tmp_path: Path,
) -> None:
    rng = random.Random(7)
    docs = [_doc(f"p{i}", rng) for i in range(40)]
    backend, gen = build_index(tmp_path / "data", docs)
    _same(backend)
    for _ in range(3):  # updates (each gets a new key), deletes and new products
        changed = [_doc(f"p{rng.randrange(60)}", rng) for _ in range(15)]
        backend.bulk_upsert(gen, changed, None)
        backend.delete(gen, [f"p{rng.randrange(60)}" for _ in range(5)])
        backend.commit(gen, ready=True)
        _same(backend)
    # A re-index: a new generation behind the alias numbers its keys from 1 again.
    fresh = backend.create_generation("products", product_mapping(text_dims=DIMS))
    backend.bulk_upsert(fresh, [_doc(f"q{i}", rng) for i in range(30)], None)
    backend.commit(fresh, ready=True)
    backend.swap_alias("products", fresh)
    _same(backend)
    assert all(pid.startswith("q") for pid, _ in _ids(backend, "saw", False))
    # Another process's backend over the same data directory.
    _same(EmbeddedBackend(tmp_path / "data"))
