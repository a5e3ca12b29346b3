"""Searches carry a `query_id`; events that cite it fold into the user's profile with the
product facts of the index (category and brand affinities)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from shoprank.indexing.demo import write_demo_catalog

from .conftest import Server, cli


def test_search_query_id_and_click_reach_the_profile(tmp_path: Path) -> None:
    catalog = write_demo_catalog(tmp_path / "c.jsonl", n=80, seed=12)
    products = {p["id"]: p for p in map(json.loads, catalog.read_text().splitlines())}
    cli(
        "index",
        "load",
        "--no-train-intent",
        str(catalog),
        "--index",
        "shop",
        "--no-vectors",
        data_dir=tmp_path,
    )
    server = Server(tmp_path, env={"SHOPRANK_PRODUCT_INDEX": "shop"}).start()
    try:
        anonymous = httpx.post(
            server.url + "/shop/_search", json={"query": {"match_all": {}}}
        ).json()
        assert "query_id" not in anonymous.get("_shoprank", {})

        resp = httpx.post(
            server.url + "/shop/_search",
            headers={"X-Shoprank-User": "alice"},
            json={"query": {"match_all": {}}, "size": 5, "ext": {"shoprank": {"mode": "lexical"}}},
        ).json()
        query_id = resp["_shoprank"]["query_id"]
        clicked = resp["hits"]["hits"][1]["_id"]
        event = {
            "type": "click",
            "user_id": "alice",
            "product_id": clicked,
            "query_id": query_id,
            "position": 2,
        }
        accepted = httpx.post(server.url + "/_shoprank/events", json=event).json()
        assert accepted["accepted"] == 1

        deadline = time.monotonic() + 120  # only reached if the click is never folded
        profile: dict = {}
        while time.monotonic() < deadline:
            got = httpx.get(server.url + "/_shoprank/users/alice/profile")
            if got.status_code == 200:
                profile = got.json()
                if profile.get("counts", {}).get("click"):
                    break
            time.sleep(0.1)
        assert profile["counts"]["click"] == 1, profile
        text = json.dumps(profile)
        assert products[clicked]["brand"] in text
        assert products[clicked]["category"].split(" > ")[0] in text
        assert "alice" not in text  # stored pseudonymised
    finally:
        server.stop()
