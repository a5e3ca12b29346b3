"""Unit tests for the seeded demo catalog generator."""

from __future__ import annotations

import json
import re
import statistics
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from shoprank.indexing.demo import (
    CATEGORY_PATHS,
    REFERENCE_DATE,
    generate_demo_catalog,
    write_demo_catalog,
)

REQUIRED_FIELDS: dict[str, type | tuple[type, ...]] = {
    "id": str,
    "title": str,
    "description": str,
    "brand": str,
    "category": str,
    "colour": str,
    "price": float,
    "rating": float,
    "review_count": int,
    "in_stock": bool,
    "released": str,
}


@pytest.fixture(scope="module")
def catalog() -> list[dict[str, Any]]:
    products: list[dict[str, Any]] = generate_demo_catalog()
    return products


def _leaf(product: dict[str, Any]) -> str:
    return str(product["category"]).split(" > ")[-1]


def _prices_for_leaf(catalog: list[dict[str, Any]], leaf: str) -> list[float]:
    return [p["price"] for p in catalog if _leaf(p) == leaf]


def test_same_seed_is_deterministic() -> None:
    assert generate_demo_catalog(n=500, seed=11) == generate_demo_catalog(n=500, seed=11)


def test_default_call_matches_explicit_defaults(catalog: list[dict[str, Any]]) -> None:
    assert catalog == generate_demo_catalog(n=3000, seed=7)


def test_different_seed_differs() -> None:
    a = generate_demo_catalog(n=200, seed=1)
    b = generate_demo_catalog(n=200, seed=2)
    assert a != b
    assert [p["title"] for p in a] != [p["title"] for p in b]


@pytest.mark.parametrize("n", [0, 1, 7, 39, 40, 123, 1000])
def test_n_is_honoured(n: int) -> None:
    assert len(generate_demo_catalog(n=n, seed=3)) == n


def test_negative_n_rejected() -> None:
    with pytest.raises(ValueError):
        generate_demo_catalog(n=-1)


def test_ids_unique_and_well_formed(catalog: list[dict[str, Any]]) -> None:
    ids = [p["id"] for p in catalog]
    assert len(set(ids)) == len(ids) == 3000
    assert all(re.fullmatch(r"SR-\d{6}", i) for i in ids)


def test_required_fields_and_types(catalog: list[dict[str, Any]]) -> None:
    for product in catalog:
        for field, typ in REQUIRED_FIELDS.items():
            assert field in product, (field, product["id"])
            value = product[field]
            assert isinstance(value, typ), (field, value)
            if typ is not bool:
                assert not isinstance(value, bool), (field, value)
        assert product["title"].strip() and product["brand"] in product["title"]
        assert product["price"] == round(product["price"], 2)
        assert 1.0 <= product["rating"] <= 5.0
        assert product["rating"] == round(product["rating"], 1)
        assert product["review_count"] >= 0
        released = date.fromisoformat(product["released"])
        assert REFERENCE_DATE.replace(year=REFERENCE_DATE.year - 4) <= released
        assert released <= REFERENCE_DATE


def test_descriptions_have_two_or_three_sentences(catalog: list[dict[str, Any]]) -> None:
    counts = Counter(len(re.findall(r"[.!?](?:\s|$)", p["description"])) for p in catalog)
    assert set(counts) <= {2, 3}, counts
    assert counts[2] > 0 and counts[3] > 0
    assert len({p["description"] for p in catalog}) > 0.9 * len(catalog)


def test_category_tree_breadth(catalog: list[dict[str, Any]]) -> None:
    paths = {p["category"] for p in catalog}
    assert paths <= set(CATEGORY_PATHS)
    assert len(paths) >= 30
    tops = {path.split(" > ")[0] for path in paths}
    assert len(tops) >= 8
    assert all(2 <= len(path.split(" > ")) <= 3 for path in paths)


def test_category_sizes_are_skewed(catalog: list[dict[str, Any]]) -> None:
    sizes = Counter(p["category"] for p in catalog)
    assert max(sizes.values()) >= 150
    assert min(sizes.values()) <= 40
    assert min(sizes.values()) >= 20


def test_prices_positive_and_category_bands(catalog: list[dict[str, Any]]) -> None:
    assert all(p["price"] > 0 for p in catalog)
    laptops = statistics.median(_prices_for_leaf(catalog, "Laptops"))
    cables = statistics.median(_prices_for_leaf(catalog, "USB Cables"))
    assert laptops > 10 * cables
    tvs = statistics.median(_prices_for_leaf(catalog, "Televisions"))
    cases = statistics.median(_prices_for_leaf(catalog, "Phone Cases"))
    assert tvs > 10 * cases


def test_colours_usually_in_title(catalog: list[dict[str, Any]]) -> None:
    hits = sum(p["colour"] in p["title"] for p in catalog)
    assert hits / len(catalog) >= 0.8


def test_brands_per_leaf_and_shared_brands(catalog: list[dict[str, Any]]) -> None:
    brands_by_leaf: dict[str, set[str]] = {}
    for p in catalog:
        brands_by_leaf.setdefault(p["category"], set()).add(p["brand"])
    assert all(2 <= len(b) <= 10 for b in brands_by_leaf.values())
    leaves_per_brand = Counter(b for bs in brands_by_leaf.values() for b in bs)
    assert any(count >= 2 for count in leaves_per_brand.values())
    assert any(" " in brand for brand in leaves_per_brand)


def test_titles_use_synonyms(catalog: list[dict[str, Any]]) -> None:
    laptop_titles = [p["title"] for p in catalog if _leaf(p) == "Laptops"]
    assert any("Laptop" in t for t in laptop_titles)
    assert any("Notebook" in t for t in laptop_titles)
    shoe_titles = [p["title"] for p in catalog if _leaf(p) == "Running Shoes"]
    assert any("Sneakers" in t for t in shoe_titles)


def test_category_specific_attributes(catalog: list[dict[str, Any]]) -> None:
    for p in catalog:
        leaf = _leaf(p)
        if leaf in ("Laptops", "Monitors", "Televisions"):
            assert isinstance(p["screen_inches"], float)
        if leaf in ("Laptops", "External Drives", "Smartphones"):
            assert isinstance(p["capacity_gb"], int)
        if leaf in ("Running Shoes", "Boots", "T-Shirts", "Jackets", "Jeans"):
            assert isinstance(p["size"], str)
            assert isinstance(p["material"], str)


def test_write_round_trips(tmp_path: Path) -> None:
    out = write_demo_catalog(tmp_path / "nested" / "demo.jsonl", n=250, seed=5)
    assert out == tmp_path / "nested" / "demo.jsonl"
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 250
    parsed = [json.loads(line) for line in lines]
    assert parsed == generate_demo_catalog(n=250, seed=5)


def test_write_is_utf8_and_deterministic(tmp_path: Path) -> None:
    a = write_demo_catalog(tmp_path / "a.jsonl")
    b = write_demo_catalog(tmp_path / "b.jsonl")
    assert a.read_bytes() == b.read_bytes()
    text = a.read_text(encoding="utf-8")
    assert "–" in text  # en dash kept as UTF-8, not \u escapes
    assert "\\u" not in text
