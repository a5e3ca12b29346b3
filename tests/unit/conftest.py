"""Shared fixtures for the embedded-backend unit tests: small hand-made product corpora."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shoprank.indexing.mapping import product_mapping
from shoprank.plugin.backends.embedded.backend import EmbeddedBackend

# Wall-clock budgets no busy machine overruns, for every search that does not set its own:
# the tests check behaviour, never speed (the tests of the budgets pass theirs explicitly).
os.environ.setdefault("SHOPRANK_SEARCH_BUDGET_MS", "600000")
os.environ.setdefault("SHOPRANK_RERANK_TIMEOUT_MS", "600000")
os.environ.setdefault("SHOPRANK_REQUEST_TIMEOUT_MS", "600000")
os.environ.setdefault("SHOPRANK_MAX_QUEUE_MS", "600000")
# Tests that do not test the encoder choice embed with the torch-free numpy MiniLM, as before
# `auto` learned to export the int8 ONNX model (~40 s per fresh data dir); the auto-export
# tests set `encoder_backend="auto"` themselves.
os.environ.setdefault("SHOPRANK_ENCODER_BACKEND", "numpy")

DIMS = 4

# The shared corpus. Every expectation in the tests is derived from this table by hand.
#
# id  title                              brand     price  colour  rating  description  vector
# 1   HP Pavilion laptop                 HP         40.0  black   4.5     yes          e1
# 2   HP wireless mouse                  HP         15.0  black   3.9     -            e2
# 3   Dell XPS laptop silver             Dell      120.0  silver  4.8     yes          (.9,.1,0,0)
# 4   Dell wireless keyboard and mouse   Dell       35.0  white   4.1     -            e3
# 5   Lenovo ThinkPad laptop             Lenovo     95.0  black   4.0     yes          (.7,.7,0,0)
# 6   Apple USB-C charger                Apple      55.0  white   -       -            e4
# 7   HP ink cartridge                   HP         25.0  -       3.0     -            (0,.6,.8,0)
# 8   Logitech gaming mouse              Logitech   60.0  black   4.7     -            -e1
CORPUS: list[dict[str, Any]] = [
    {
        "_id": "1",
        "title": "HP Pavilion laptop",
        "brand": "HP",
        "price": 40.0,
        "colour": "black",
        "rating": 4.5,
        "category": "Laptops",
        "description": "Light laptop for students",
    },
    {
        "_id": "2",
        "title": "HP wireless mouse",
        "brand": "HP",
        "price": 15.0,
        "colour": "black",
        "rating": 3.9,
        "category": "Accessories",
    },
    {
        "_id": "3",
        "title": "Dell XPS laptop silver",
        "brand": "Dell",
        "price": 120.0,
        "colour": "silver",
        "rating": 4.8,
        "category": "Laptops",
        "description": "Premium laptop with a bright screen",
    },
    {
        "_id": "4",
        "title": "Dell wireless keyboard and mouse",
        "brand": "Dell",
        "price": 35.0,
        "colour": "white",
        "rating": 4.1,
        "category": "Accessories",
    },
    {
        "_id": "5",
        "title": "Lenovo ThinkPad laptop",
        "brand": "Lenovo",
        "price": 95.0,
        "colour": "black",
        "rating": 4.0,
        "category": "Laptops",
        "description": "Business laptop with a good keyboard",
    },
    {
        "_id": "6",
        "title": "Apple USB-C charger",
        "brand": "Apple",
        "price": 55.0,
        "colour": "white",
        "category": "Accessories",
    },
    {
        "_id": "7",
        "title": "HP ink cartridge",
        "brand": "HP",
        "price": 25.0,
        "rating": 3.0,
        "category": "Printing",
    },
    {
        "_id": "8",
        "title": "Logitech gaming mouse",
        "brand": "Logitech",
        "price": 60.0,
        "colour": "black",
        "rating": 4.7,
        "category": "Accessories",
    },
]

CORPUS_VECTORS = np.array(
    [
        [1.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, 0.0, 0.0],
        [0.9, 0.1, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.0],
        [0.7, 0.7, 0.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
        [0.0, 0.6, 0.8, 0.0],
        [-1.0, 0.0, 0.0, 0.0],
    ],
    dtype=np.float32,
)


def build_index(
    root: Path,
    docs: list[dict[str, Any]],
    vectors: np.ndarray | None = None,
    *,
    alias: str = "products",
    dims: int = DIMS,
) -> tuple[EmbeddedBackend, str]:
    """A backend in `root` with one ready generation holding `docs`, behind `alias`."""
    backend = EmbeddedBackend(root)
    gen = backend.create_generation(alias, product_mapping(text_dims=dims))
    backend.bulk_upsert(gen, docs, None if vectors is None else {"text_vector": vectors})
    backend.commit(gen, ready=True)
    backend.swap_alias(alias, gen)
    return backend, gen


def hit_ids(response: dict[str, Any]) -> list[str]:
    """The `_id`s of the hits, in order."""
    return [h["_id"] for h in response["hits"]["hits"]]


def total(response: dict[str, Any]) -> int:
    return int(response["hits"]["total"]["value"])


@pytest.fixture(scope="session")
def corpus_backend(tmp_path_factory: pytest.TempPathFactory) -> EmbeddedBackend:
    """The shared 8-product corpus, read-only: tests must not write to it."""
    backend, _ = build_index(tmp_path_factory.mktemp("corpus"), CORPUS, CORPUS_VECTORS)
    return backend


@pytest.fixture()
def search(corpus_backend: EmbeddedBackend) -> Any:
    """`search(body)` on the shared corpus, with `size` 100 unless given."""

    def run(body: dict[str, Any]) -> dict[str, Any]:
        return corpus_backend.search("products", {"size": 100, **body})

    return run


ICECAT = Path(__file__).resolve().parents[3] / "shared" / "data" / "icecat-products.jsonl.gz"


def icecat_index(directory: Path, rows: int = 2000) -> tuple[EmbeddedBackend, list[dict[str, Any]]]:
    """The first `rows` Icecat products (brand = supplier, as the README loads them) in an
    embedded index under `directory`, with the normalised rows; skips without the sample."""
    import gzip

    import orjson

    from shoprank.indexing.catalog import FieldRoles, normalise_row

    if not ICECAT.is_file():
        pytest.skip(f"Icecat sample data not found at {ICECAT}")
    roles = FieldRoles.parse("brand=supplier,description=short_description")
    docs: list[dict[str, Any]] = []
    with gzip.open(ICECAT, "rb") as fh:
        for line in fh:
            doc = normalise_row(orjson.loads(line), roles=roles, price_multiplier=0.01)
            docs.append({"_id": doc["id"], **doc})
            if len(docs) >= rows:
                break
    backend, _ = build_index(directory, docs)
    return backend, docs
