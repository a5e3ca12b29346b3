"""Query understanding on the real Icecat catalog (19k products, lexical only, no trained
model): brand/colour/price/SKU come from the catalog's own values."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import ICECAT, Server, cli

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not ICECAT.exists(), reason=f"Icecat sample not found at {ICECAT}"),
]


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    with gzip.open(ICECAT, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir: Path = tmp_path_factory.mktemp("intent-icecat")
    cli(
        "index", "load", str(ICECAT), "--index", "icecat", "--no-vectors",
        "--fields", "brand=supplier,description=short_description",
        "--price-multiplier", "0.01",
        data_dir=data_dir,
    )  # fmt: skip
    srv = Server(data_dir).start()
    yield srv
    srv.stop()


def _search(server: Server, text: str) -> dict[str, Any]:
    body = {
        "query": {"multi_match": {"query": text, "fields": ["title^3", "description"]}},
        "size": 10,
        "ext": {"shoprank": {"mode": "full", "explain": True}},
    }
    response = httpx.post(f"{server.url}/icecat/_search", json=body, timeout=60)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_hp_toner_under_40(server: Server, rows: list[dict[str, Any]]) -> None:
    hp_toner_under_40 = {
        r["id"]
        for r in rows
        if r["supplier"] == "HP" and "toner" in r["title"].lower() and r["price"] / 100 <= 40
    }
    assert hp_toner_under_40, "the sample holds cheap HP toner"
    result = _search(server, "hp toner under 40")
    hits = result["hits"]["hits"]
    assert all(h["_source"]["price"] <= 40 for h in hits)
    assert all(h["_source"]["brand"] == "HP" for h in hits)
    assert hits[0]["_id"] in hp_toner_under_40
    assert result["_shoprank"]["intent"]["attributes"]["brand"] == ["HP"]


def test_sku_lookup_finds_the_product(server: Server, rows: list[dict[str, Any]]) -> None:
    wanted = {r["id"] for r in rows if "006R90321" in r["title"]}
    result = _search(server, "006R90321")
    assert result["_shoprank"]["intent"]["query_type"] == "navigational"
    assert result["hits"]["hits"][0]["_id"] in wanted


def test_impossible_combination_keeps_results(server: Server, rows: list[dict[str, Any]]) -> None:
    assert not any(
        r["supplier"] == "Xerox"
        and r.get("attr_t_product_colour") == "Cyan"
        and "drum" in (r["title"] + " " + r.get("short_description", "")).lower()
        for r in rows
    )
    result = _search(server, "xerox cyan drum")
    hits = result["hits"]["hits"]
    assert hits
    # Few of the top hits that say "cyan" carry the Cyan colour attribute (Xerox's cyan
    # drums do not): the colour is a boost, not a filter, and the brand stays a filter.
    rewrite = result["_shoprank"]["rewrite"]
    colour = next(a for a in rewrite if a.get("field") == "attr_t_product_colour")
    assert colour["action"] == "boost" and colour["reason"].startswith("evidence:")
    assert all(h["_source"]["brand"] == "Xerox" for h in hits)
    assert "drum" in hits[0]["_source"]["title"].lower()
