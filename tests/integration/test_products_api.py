"""`POST /_shoprank/products`: validated incremental updates, visible to search."""

from __future__ import annotations

from pathlib import Path

import httpx

from shoprank.indexing.demo import write_demo_catalog

from .conftest import Server, cli


def test_products_endpoint_upserts_and_deletes(tmp_path: Path) -> None:
    catalog = write_demo_catalog(tmp_path / "c.jsonl", n=60, seed=9)
    cli("index", "load", "--no-train-intent", str(catalog), "--index", "shop", data_dir=tmp_path)
    server = Server(tmp_path).start()
    try:
        resp = httpx.post(
            server.url + "/_shoprank/products",
            timeout=60,
            json={
                "index": "shop",
                "upsert": [
                    {
                        "id": "NEW-1",
                        "title": "Quokka plush toy",
                        "brand": "Wombat & Co",
                        "price": "12,50",
                        "category": "Toys > Plush",
                    },
                    {"title": "no id here"},
                    "not an object",
                ],
            },
        )
        body = resp.json()
        assert resp.status_code == 200, body
        assert body["upserted"] == 1
        assert [
            (e["index"], "id" in e["reason"] or "object" in e["reason"]) for e in body["errors"]
        ] == [(1, True), (2, True)]

        doc = httpx.get(server.url + "/shop/_doc/NEW-1").json()
        assert doc["_source"]["price"] == 12.5
        assert doc["_source"]["category_levels"] == ["Toys", "Toys > Plush"]
        lexical = httpx.post(
            server.url + "/shop/_search",
            json={
                "query": {"match": {"title": "quokka"}},
                "ext": {"shoprank": {"mode": "lexical"}},
            },
        ).json()
        assert [h["_id"] for h in lexical["hits"]["hits"]] == ["NEW-1"]
        vector = httpx.post(
            server.url + "/shop/_search",
            json={
                "query": {"match": {"title": "quokka plush toy"}},
                "size": 1,
                "ext": {"shoprank": {"mode": "vector"}},
            },
        ).json()
        assert vector["hits"]["hits"][0]["_id"] == "NEW-1"

        deleted = httpx.post(
            server.url + "/_shoprank/products", json={"index": "shop", "delete": ["NEW-1", "NOPE"]}
        ).json()
        assert deleted["deleted"] == 1 and deleted["not_found"] == ["NOPE"]
        assert httpx.get(server.url + "/shop/_doc/NEW-1").status_code == 404

        for bad, fragment in [
            ({"upsert": []}, "index"),
            ({"index": "shop"}, "nothing to do"),
            ({"index": "shop", "upsert": {}}, "list"),
            ({"index": "shop", "bogus": 1, "delete": ["x"]}, "bogus"),
        ]:
            err = httpx.post(server.url + "/_shoprank/products", json=bad)
            assert err.status_code == 400 and fragment in err.json()["error"]["reason"]
        missing = httpx.post(
            server.url + "/_shoprank/products", json={"index": "nope", "delete": ["x"]}
        )
        assert missing.status_code == 404
    finally:
        server.stop()
