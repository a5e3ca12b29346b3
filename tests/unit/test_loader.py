"""Catalog → new generation → alias swap on the embedded backend, with a fake text encoder."""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from shoprank.errors import BadRequestError, CatalogError, ShoprankError
from shoprank.indexing.catalog import FieldRoles
from shoprank.indexing.encoders.protocol import TextEncoder
from shoprank.indexing.loader import alias_lock, load_catalog
from shoprank.indexing.mapping import TEXT_VECTOR_FIELD
from shoprank.plugin.backends.embedded.backend import EmbeddedBackend

INDEX = "products"


class HashEncoder:
    """Bag of words hashed into a few dimensions; deterministic, L2-normalised, no model."""

    model_id = "hash-bow@test"
    dims = 16
    max_length = 128

    def __init__(self, *, fail_on_call: int | None = None) -> None:
        self.calls = 0
        self.fail_on_call = fail_on_call

    def warm_up(self) -> None:
        pass

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> npt.NDArray[np.float32]:
        self.calls += 1
        if self.fail_on_call is not None and self.calls >= self.fail_on_call:
            raise RuntimeError("encoder crashed")
        out = np.zeros((len(texts), self.dims), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                out[i, zlib.crc32(word.encode()) % self.dims] += 1.0
            norm = np.linalg.norm(out[i])
            if norm == 0:
                out[i, 0], norm = 1.0, 1.0
            out[i] /= norm
        return out


def _catalog(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


ROWS = [
    {"id": "p1", "title": "Trail running shoes", "supplier": "Acme", "price": 5990},
    {"id": "p2", "title": "Espresso machine", "supplier": "Brewmaster", "price": 24900},
    {
        "id": "p3",
        "title": "Desk lamp",
        "supplier": "Lumo",
        "price": 1250,
        "category": "Home > Lighting",
    },
]


@pytest.fixture
def backend(tmp_path: Path) -> EmbeddedBackend:
    return EmbeddedBackend(tmp_path / "embedded")


def _load(path: Path, backend: EmbeddedBackend, tmp_path: Path, **kwargs: Any) -> Any:
    kwargs.setdefault("encoder", HashEncoder())
    return load_catalog(
        path,
        index=INDEX,
        backend=backend,
        lock_dir=tmp_path / "locks",
        roles=FieldRoles.parse("brand=supplier"),
        price_multiplier=0.01,
        **kwargs,
    )


def _names(backend: EmbeddedBackend) -> list[str]:
    return [g["name"] for g in backend.generations(INDEX)]


def test_fake_encoder_satisfies_protocol() -> None:
    enc = HashEncoder()
    assert isinstance(enc, TextEncoder)
    vectors = enc.encode(["a b", "c"])
    assert vectors.dtype == np.float32 and vectors.shape == (2, 16)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)


def test_load_creates_generation_swaps_alias_and_counts(
    backend: EmbeddedBackend, tmp_path: Path
) -> None:
    seen: list[tuple[int, int]] = []
    report = _load(
        _catalog(tmp_path / "c.jsonl", ROWS),
        backend,
        tmp_path,
        batch_size=2,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert report.generation == f"{INDEX}-000001"
    assert report.previous is None
    assert report.documents == 3
    assert report.catalog.rows == 3 and report.catalog.products == 3
    assert report.pruned == []
    assert seen == [(0, 3), (2, 3), (3, 3)]
    assert backend.resolve(INDEX) == report.generation
    assert backend.count(INDEX, None) == 3
    meta = backend.generations(INDEX)
    assert [(m["name"], m["status"], m["doc_count"]) for m in meta] == [
        (report.generation, "ready", 3)
    ]
    doc = backend.get(INDEX, "p3")
    assert doc["found"] is True
    assert doc["_source"] == {
        "id": "p3",
        "title": "Desk lamp",
        "brand": "Lumo",
        "price": 12.5,
        "category": "Home > Lighting",
        "category_levels": ["Home", "Home > Lighting"],
    }
    # Role mapping is what the index sees: a term filter on the mapped brand works.
    hits = backend.search(INDEX, {"query": {"term": {"brand": "Brewmaster"}}})["hits"]["hits"]
    assert [h["_id"] for h in hits] == ["p2"]
    as_dict = report.as_dict()
    assert as_dict["documents"] == 3 and as_dict["skipped"] == 0


def test_loaded_vectors_are_the_encoders(backend: EmbeddedBackend, tmp_path: Path) -> None:
    enc = HashEncoder()
    _load(_catalog(tmp_path / "c.jsonl", ROWS), backend, tmp_path, encoder=enc)
    # The vector of p2 is the embedding of its embedding text "Espresso machine. Brewmaster".
    query = enc.encode(["Espresso machine. Brewmaster"])[0].tolist()
    body = {
        "knn": {"field": TEXT_VECTOR_FIELD, "query_vector": query, "k": 1, "num_candidates": 10}
    }
    hits = backend.search(INDEX, body)["hits"]["hits"]
    assert hits[0]["_id"] == "p2"
    assert hits[0]["_score"] == pytest.approx(1.0, abs=1e-5)  # (1 + cos) / 2 with cos = 1


def test_load_without_encoder_has_no_vector_field(backend: EmbeddedBackend, tmp_path: Path) -> None:
    report = _load(_catalog(tmp_path / "c.jsonl", ROWS), backend, tmp_path, encoder=None)
    assert report.documents == 3
    body = {"knn": {"field": TEXT_VECTOR_FIELD, "query_vector": [1.0] * 16, "k": 1}}
    with pytest.raises(BadRequestError, match="not a dense_vector field"):
        backend.search(INDEX, body)


def test_duplicates_are_counted_and_last_row_wins(backend: EmbeddedBackend, tmp_path: Path) -> None:
    rows = [
        {"id": "p1", "title": "Old title", "price": 100},
        {"id": "p2", "title": "Mug", "price": 200},
        {"id": "p1", "title": "New title", "price": 300},
        {"id": "p2", "title": "Mug again", "price": 400},
        {"id": "p3", "title": "Lamp"},
    ]
    report = _load(_catalog(tmp_path / "c.jsonl", rows), backend, tmp_path)
    assert report.catalog.duplicates == 2
    assert report.documents == 3
    assert backend.count(INDEX, None) == 3
    assert backend.get(INDEX, "p1")["_source"]["title"] == "New title"
    assert backend.get(INDEX, "p1")["_source"]["price"] == pytest.approx(3.0)
    assert backend.get(INDEX, "p2")["_source"]["title"] == "Mug again"
    assert "2 duplicate ids (last row wins)" in report.catalog.summary()


def test_bad_rows_are_skipped_and_reported(backend: EmbeddedBackend, tmp_path: Path) -> None:
    rows = [*ROWS, {"id": "p4"}, {"title": "no id"}]
    report = _load(_catalog(tmp_path / "c.jsonl", rows), backend, tmp_path, max_failure_rate=0.5)
    assert report.documents == 3
    assert [e.line for e in report.catalog.errors] == [4, 5]
    assert report.as_dict()["skipped"] == 2
    bad = (tmp_path / "jobs" / report.generation / "bad-products.jsonl").read_text()
    assert [json.loads(line)["line"] for line in bad.splitlines()] == [4, 5]


def test_too_many_bad_rows_abort_before_anything_is_built(
    backend: EmbeddedBackend, tmp_path: Path
) -> None:
    first = _load(_catalog(tmp_path / "c.jsonl", ROWS), backend, tmp_path)
    rows = [*ROWS, {"id": "p4"}, {"title": "no id"}]  # 2 of 5 rows bad: 40 %
    with pytest.raises(CatalogError, match=r"40.0%.*left unchanged"):
        _load(_catalog(tmp_path / "d.jsonl", rows), backend, tmp_path, max_failure_rate=0.2)
    assert backend.resolve(INDEX) == first.generation
    assert [g["name"] for g in backend.generations(INDEX)] == [first.generation]


def test_products_whose_embedding_fails_are_reported_and_can_abort(
    backend: EmbeddedBackend, tmp_path: Path
) -> None:
    class NanOnLamp(HashEncoder):
        def encode(self, texts: Any, *, batch_size: int = 64) -> Any:
            out = super().encode(texts, batch_size=batch_size)
            for i, text in enumerate(texts):
                if "lamp" in text.lower():
                    out[i] = np.nan
            return out

    path = _catalog(tmp_path / "c.jsonl", ROWS)
    first = _load(path, backend, tmp_path, encoder=NanOnLamp(), max_failure_rate=0.5)
    assert first.documents == 2  # the lamp was left out, not written half-way
    assert backend.get(INDEX, "p3")["found"] is False
    bad = (tmp_path / "jobs" / first.generation / "bad-products.jsonl").read_text()
    assert json.loads(bad.splitlines()[0])["id"] == "p3"
    with pytest.raises(ShoprankError, match="1 of 3 products failed"):
        _load(path, backend, tmp_path, encoder=NanOnLamp(), max_failure_rate=0.1)
    assert backend.resolve(INDEX) == first.generation


def test_zero_valid_rows_raises_and_leaves_alias_untouched(
    backend: EmbeddedBackend, tmp_path: Path
) -> None:
    first = _load(_catalog(tmp_path / "good.jsonl", ROWS), backend, tmp_path)
    bad = _catalog(tmp_path / "bad.jsonl", [{"id": "x"}, {"title": "y"}])
    with pytest.raises(CatalogError, match=r"no valid products.*left unchanged"):
        _load(bad, backend, tmp_path)
    assert backend.resolve(INDEX) == first.generation
    assert _names(backend) == [first.generation]
    assert backend.count(INDEX, None) == 3


def test_zero_valid_rows_on_a_fresh_alias_creates_nothing(
    backend: EmbeddedBackend, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(CatalogError):
        _load(empty, backend, tmp_path)
    assert backend.generations(INDEX) == []
    assert INDEX not in backend.info()["indices"]


def test_missing_catalog_file_is_a_catalog_error(backend: EmbeddedBackend, tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="not found"):
        _load(tmp_path / "nope.jsonl", backend, tmp_path)


def test_reloads_swap_keep_previous_and_prune_older(
    backend: EmbeddedBackend, tmp_path: Path
) -> None:
    v1 = _catalog(tmp_path / "v1.jsonl", ROWS)
    v2 = _catalog(tmp_path / "v2.jsonl", ROWS[:2])
    v3 = _catalog(tmp_path / "v3.jsonl", ROWS[:1])

    r1 = _load(v1, backend, tmp_path, keep=1)
    r2 = _load(v2, backend, tmp_path, keep=1)
    assert (r2.generation, r2.previous) == (f"{INDEX}-000002", f"{INDEX}-000001")
    assert r2.pruned == []
    assert _names(backend) == [r1.generation, r2.generation]
    assert backend.resolve(INDEX) == r2.generation
    assert backend.count(INDEX, None) == 2

    r3 = _load(v3, backend, tmp_path, keep=1)
    assert (r3.generation, r3.previous) == (f"{INDEX}-000003", r2.generation)
    assert r3.pruned == [r1.generation]
    assert _names(backend) == [r2.generation, r3.generation]
    assert backend.count(INDEX, None) == 1
    # The kept generation is a working rollback target.
    assert backend.rollback(INDEX) == r2.generation
    assert backend.count(INDEX, None) == 2


def test_default_keep_is_two_previous_generations(backend: EmbeddedBackend, tmp_path: Path) -> None:
    path = _catalog(tmp_path / "c.jsonl", ROWS)
    reports = [_load(path, backend, tmp_path) for _ in range(4)]
    assert reports[-1].pruned == [reports[0].generation]
    assert _names(backend) == [r.generation for r in reports[1:]]


def test_concurrent_load_of_same_alias_is_refused(backend: EmbeddedBackend, tmp_path: Path) -> None:
    path = _catalog(tmp_path / "c.jsonl", ROWS)
    with (
        alias_lock(tmp_path / "locks", INDEX),
        pytest.raises(ShoprankError, match=r"another load of \[products\] is running"),
    ):
        _load(path, backend, tmp_path)
    assert backend.generations(INDEX) == []
    # Once the lock is released, the load goes through.
    assert _load(path, backend, tmp_path).documents == 3


def test_lock_is_per_alias(backend: EmbeddedBackend, tmp_path: Path) -> None:
    path = _catalog(tmp_path / "c.jsonl", ROWS)
    with alias_lock(tmp_path / "locks", "other"):
        assert _load(path, backend, tmp_path).documents == 3


def test_failed_load_leaves_alias_and_is_swept_by_next_load(
    backend: EmbeddedBackend, tmp_path: Path
) -> None:
    path = _catalog(tmp_path / "c.jsonl", ROWS)
    first = _load(path, backend, tmp_path)
    with pytest.raises(RuntimeError, match="encoder crashed"):
        _load(
            path,
            backend,
            tmp_path,
            encoder=HashEncoder(fail_on_call=2),
            batch_size=1,
            incremental=False,
        )
    assert backend.resolve(INDEX) == first.generation
    statuses = {g["name"]: g["status"] for g in backend.generations(INDEX)}
    assert statuses == {first.generation: "ready", f"{INDEX}-000002": "building"}
    assert backend.count(INDEX, None) == 3

    third = _load(path, backend, tmp_path)
    assert third.previous == first.generation
    assert third.generation != first.generation
    statuses = {g["name"]: g["status"] for g in backend.generations(INDEX)}
    assert statuses == {first.generation: "ready", third.generation: "ready"}
    assert backend.resolve(INDEX) == third.generation
