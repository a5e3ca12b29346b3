"""The first rows of the Icecat sample, loaded through the CLI, and what a test can compute
from the rows themselves (the expected side of the frontend and DSL-client tests)."""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tests.osa import damerau

from .conftest import ICECAT, cli

ROWS = 2000
INDEX = "icecat"


def load_subset(data_dir: Path, rows: int = ROWS) -> list[dict[str, Any]]:
    """Write the first `rows` Icecat rows, load them as `icecat` (brand = supplier,
    description = short_description, prices in cents) and return them as the index holds
    them (brand, description, price in display units)."""
    raw = []
    with gzip.open(ICECAT, "rt", encoding="utf-8") as fh:
        for line in fh:
            raw.append(json.loads(line))
            if len(raw) == rows:
                break
    subset = data_dir / "icecat-subset.jsonl"
    subset.write_text("".join(json.dumps(r) + "\n" for r in raw))
    cli(
        "index",
        "load",
        "--no-train-intent",
        str(subset),
        "--index",
        INDEX,
        "--fields",
        "brand=supplier,description=short_description",
        "--price-multiplier",
        "0.01",
        data_dir=data_dir,
    )
    docs: dict[str, dict[str, Any]] = {}
    for r in raw:
        price = r.get("price")
        docs[str(r["id"])] = {
            "id": str(r["id"]),
            "title": r.get("title") or "",
            "brand": r.get("supplier"),
            "description": r.get("short_description") or "",
            "price": None if price is None else round(float(price) * 0.01, 6),
            "date_released": r.get("date_released"),
        }
    return list(docs.values())


def tokens(text: str | None) -> list[str]:
    return re.findall(r"\w+", (text or "").lower())


def matching(
    docs: Iterable[dict[str, Any]],
    word: str,
    fields: tuple[str, ...] = ("title", "description", "brand"),
) -> list[dict[str, Any]]:
    """Documents where one of `fields` holds `word` as a whole word (case-insensitive)."""
    word = word.lower()
    return [d for d in docs if any(word in tokens(d.get(f)) for f in fields)]


def near_tokens(docs: Iterable[dict[str, Any]], word: str, fields: tuple[str, ...]) -> set[str]:
    """Every token of `fields` that a prefix or one-edit fuzzy match of `word` could reach;
    a test uses it to check that its query word is unambiguous in the catalog."""
    found = set()
    for d in docs:
        for f in fields:
            for t in tokens(d.get(f)):
                if t.startswith(word) or damerau(t, word) <= 1:
                    found.add(t)
    return found


def brand_counts(docs: Iterable[dict[str, Any]]) -> Counter[str]:
    return Counter(d["brand"] for d in docs if d.get("brand"))


def top_terms(counts: Counter[str], size: int) -> list[int]:
    """The doc counts a `terms` aggregation of `size` shows, most frequent first."""
    return sorted(counts.values(), reverse=True)[:size]


def in_range(
    docs: Iterable[dict[str, Any]], lo: float | None, hi: float | None
) -> list[dict[str, Any]]:
    """Documents with lo <= price <= hi (either bound open when None)."""
    return [
        d
        for d in docs
        if d["price"] is not None
        and (lo is None or d["price"] >= lo)
        and (hi is None or d["price"] <= hi)
    ]
