"""The Icecat sample (real products) loaded through the CLI, searched through the server."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import elasticsearch
import pytest

from .conftest import ICECAT, Server, cli

ROWS = 2000
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not ICECAT.exists(), reason=f"Icecat sample not found at {ICECAT}"),
]


@pytest.fixture(scope="module")
def icecat(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    data_dir = tmp_path_factory.mktemp("icecat")
    rows = []
    with gzip.open(ICECAT, "rt", encoding="utf-8") as fh:
        for line in fh:
            rows.append(json.loads(line))
            if len(rows) == ROWS:
                break
    subset = data_dir / "icecat-subset.jsonl"
    subset.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = cli(
        "index",
        "load",
        "--no-train-intent",
        str(subset),
        "--index",
        "icecat",
        "--fields",
        "brand=supplier,description=short_description",
        "--price-multiplier",
        "0.01",
        "--json",
        data_dir=data_dir,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["documents"] == len({r["id"] for r in rows})
    return data_dir, rows


@pytest.fixture(scope="module")
def es(icecat: tuple[Path, list[dict[str, Any]]]) -> Iterator[elasticsearch.Elasticsearch]:
    server = Server(icecat[0]).start()
    yield elasticsearch.Elasticsearch(server.url, request_timeout=60)
    server.stop()


@pytest.mark.parametrize("mode", ["lexical", "hybrid", "full"])
def test_toner_cartridge_black_returns_toner_cartridges(
    es: elasticsearch.Elasticsearch, mode: str
) -> None:
    resp = es.search(
        index="icecat",
        query={
            "multi_match": {
                "query": "toner cartridge black",
                "fields": ["title^3", "brand.text", "description"],
            }
        },
        size=10,
        ext={"shoprank": {"mode": mode}},
    )
    titles = [h["_source"]["title"].lower() for h in resp["hits"]["hits"]]
    assert len(titles) == 10
    toner = [t for t in titles if "toner" in t or "cartridge" in t]
    assert len(toner) >= 9, titles
    assert "toner" in titles[0] or "cartridge" in titles[0]


def test_vector_mode_finds_products_by_meaning(es: elasticsearch.Elasticsearch) -> None:
    # No title in the subset says "cordless"; the mice are found by meaning.
    resp = es.search(
        index="icecat",
        query={"match": {"title": "cordless mouse"}},
        size=5,
        ext={"shoprank": {"mode": "vector"}},
    )
    titles = [h["_source"]["title"].lower() for h in resp["hits"]["hits"]]
    assert sum("mouse" in t for t in titles) >= 4, titles


def test_brand_terms_aggregation_counts_match_the_file(
    es: elasticsearch.Elasticsearch, icecat: tuple[Path, list[dict[str, Any]]]
) -> None:
    rows = {r["id"]: r for r in icecat[1]}.values()
    expected = Counter(r["supplier"] for r in rows if r.get("supplier"))
    resp = es.search(
        index="icecat", size=0, aggs={"brands": {"terms": {"field": "brand", "size": 15}}}
    )
    buckets = resp["aggregations"]["brands"]["buckets"]
    assert len(buckets) == 15
    for bucket in buckets:
        assert bucket["doc_count"] == expected[bucket["key"]], bucket
    counts = [b["doc_count"] for b in buckets]
    assert counts == sorted(counts, reverse=True)
    assert counts[0] == max(expected.values())


def test_price_is_converted_from_cents(
    es: elasticsearch.Elasticsearch, icecat: tuple[Path, list[dict[str, Any]]]
) -> None:
    row = next(r for r in icecat[1] if isinstance(r.get("price"), int) and r["price"] > 0)
    doc = es.get(index="icecat", id=str(row["id"]))
    assert doc["_source"]["price"] == pytest.approx(row["price"] / 100)
    assert doc["_source"]["brand"] == row["supplier"]
    cheap = es.search(
        index="icecat",
        size=50,
        query={"bool": {"filter": [{"range": {"price": {"lte": 10}}}]}},
        ext={"shoprank": {"mode": "lexical"}},
    )
    assert cheap["hits"]["hits"]
    assert all(h["_source"]["price"] <= 10 for h in cheap["hits"]["hits"])
