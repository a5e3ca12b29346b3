"""`shoprank demo` builds a searchable demo index from its own generated catalog."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import cli


def test_demo_builds_and_searches(tmp_path: Path) -> None:
    out = cli("demo", "--no-serve", "--products", "120", "--seed", "3", data_dir=tmp_path)
    assert "indexed 120 products into demo" in out.stdout
    aliases = json.loads((tmp_path / "embedded" / "aliases.json").read_text())
    assert aliases["demo"].startswith("demo-")
    catalog = [json.loads(line) for line in (tmp_path / "demo" / "catalog.jsonl").open()]
    brand = catalog[0]["brand"]
    search = cli("search", "demo", brand, "--mode", "lexical", data_dir=tmp_path)
    assert f"[{brand}]" in search.stdout
