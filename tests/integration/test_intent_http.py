"""Query understanding end to end: a catalog loaded and an intent model trained by the real
CLI, then searched through the real HTTP server in `full` mode."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import Server, cli

TONER = "Electronics > Printers & Ink > Toner Cartridges"
EXTRA = [
    {
        "id": "hp-85a",
        "title": "HP 85A Black Original LaserJet Toner Cartridge",
        "brand": "HP",
        "price": 34.99,
        "category": TONER,
        "colour": "Black",
    },
    {
        "id": "hp-26x",
        "title": "HP 26X High Yield Black Toner Cartridge",
        "brand": "HP",
        "price": 129.0,
        "category": TONER,
        "colour": "Black",
    },
    {
        "id": "hp-usb",
        "title": "HP USB-C to USB-A Cable 1m",
        "brand": "HP",
        "price": 9.99,
        "category": "Electronics > Cables & Adapters > USB Cables",
        "colour": "Black",
    },
    {
        "id": "hp-book",
        "title": "HP EliteBook 840 Laptop 14 inch",
        "brand": "HP",
        "price": 899.0,
        "category": "Electronics > Computers > Laptops",
        "colour": "Silver",
    },
    {
        "id": "br-2420",
        "title": "Brother TN-2420 Black Toner Cartridge",
        "brand": "Brother",
        "price": 38.0,
        "category": TONER,
        "colour": "Black",
    },
    {
        "id": "cn-phone",
        "title": "华为手机 Mate 60 Pro 黑色",
        "brand": "Huawei",
        "price": 599.0,
        "category": "Electronics > Phones > Smartphones",
        "colour": "Black",
    },
]


@pytest.fixture(scope="module")
def intent_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("intent-data")
    from shoprank.indexing.demo import generate_demo_catalog

    catalog = data_dir / "catalog.jsonl"
    products = generate_demo_catalog(n=300, seed=11) + EXTRA
    catalog.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in products))
    cli("index", "load", "--no-train-intent", str(catalog), "--index", "shop", data_dir=data_dir)
    trained = cli(
        "train", "intent", "--index", "shop", "--epochs", "15", "--json", data_dir=data_dir
    )
    meta = json.loads(trained.stdout)
    assert meta["categories"] >= 30 and meta["accuracy"]["all"]["top3"] > 0.5
    srv = Server(data_dir).start()
    yield srv
    srv.stop()


def _search(server: Server, text: str, **ext: Any) -> dict[str, Any]:
    body = {
        "query": {
            "multi_match": {"query": text, "fields": ["title^3", "brand.text", "description"]}
        },
        "size": 10,
        "ext": {"shoprank": {"mode": "full", "explain": True, **ext}},
    }
    response = httpx.post(f"{server.url}/shop/_search", json=body, timeout=30)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_hp_toner_under_40(intent_server: Server) -> None:
    result = _search(intent_server, "hp toner under 40")
    hits = result["hits"]["hits"]
    assert hits
    assert all(h["_source"]["price"] <= 40 for h in hits)
    top = hits[0]["_source"]
    assert top["brand"] == "HP" and top["category"] == TONER
    explained = result["_shoprank"]
    assert explained["intent"]["attributes"]["brand"] == ["HP"]
    assert explained["intent"]["price"] == {"lte": 40.0}
    assert explained["intent"]["model_version"].startswith("intent-")
    assert {
        "action": "filter",
        "field": "price",
        "range": {"lte": 40.0},
        "reason": "explicit price",
    } in explained["rewrite"]


def test_same_query_without_understanding_is_worse(intent_server: Server) -> None:
    # The contrast that makes the first test meaningful: plain hybrid retrieval returns
    # products over 40 for the same words.
    result = _search(intent_server, "hp toner under 40", mode="hybrid")
    assert any(h["_source"]["price"] > 40 for h in result["hits"]["hits"])


def test_hard_filter_that_empties_the_result_is_relaxed(intent_server: Server) -> None:
    # Brother makes only black toner here: brand + colour filters match nothing.
    # One constraint relaxes at a time: the one whose removal brings back the most matches.
    result = _search(intent_server, "brother silver toner")
    assert result["hits"]["hits"]
    assert result["_shoprank"]["relaxation"] == "drop_attribute_filter:colour"
    assert result["hits"]["hits"][0]["_id"] == "br-2420"
    assert any("relaxed" in note for note in result["_shoprank"]["notes"])


def test_chinese_query_finds_chinese_product(intent_server: Server) -> None:
    result = _search(intent_server, "华为手机")
    assert result["hits"]["hits"][0]["_id"] == "cn-phone"


def test_intent_endpoint(intent_server: Server) -> None:
    response = httpx.get(
        f"{intent_server.url}/_shoprank/intent",
        params={"q": "hp toner under 40", "index": "shop"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    intent = body["intent"]
    assert intent["attributes"]["brand"] == ["HP"]
    assert intent["price"] == {"lte": 40.0}
    assert TONER in [c["category"] for c in intent["categories"][:3]]
    assert body["model"]["model_version"] == intent["model_version"]


def test_intent_endpoint_errors_keep_the_server_up(intent_server: Server) -> None:
    for params in ({}, {"q": "  "}, {"q": "x" * 5000}, {"q": "toner", "bogus": "1"}):
        response = httpx.get(f"{intent_server.url}/_shoprank/intent", params=params, timeout=30)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["type"]
    missing = httpx.get(
        f"{intent_server.url}/_shoprank/intent", params={"q": "toner", "index": "nope"}, timeout=30
    )
    assert missing.status_code == 404
    assert httpx.get(intent_server.url + "/", timeout=5).status_code == 200


def test_adversarial_queries_through_search(intent_server: Server) -> None:
    for text in ("!!!", "x" * 2000, "hp 305 ink", "Samsung 手机 under 300"):
        result = _search(intent_server, text)
        assert "hits" in result


def test_missing_model_still_extracts_from_catalog(tmp_path: Path, intent_server: Server) -> None:
    # Same index, model folder removed: attributes and price still come from the index.
    model = intent_server.data_dir / "models" / "intent"
    moved = tmp_path / "intent"
    model.rename(moved)
    try:
        result = _search(intent_server, "hp toner under 40")
        assert result["_shoprank"]["intent"]["attributes"]["brand"] == ["HP"]
        assert result["_shoprank"]["intent"]["categories"] == []
        assert all(h["_source"]["price"] <= 40 for h in result["hits"]["hits"])
        assert any("model missing" in n for n in result["_shoprank"]["notes"])
    finally:
        moved.rename(model)
