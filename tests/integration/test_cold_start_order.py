"""With no trained ranker, `full` keeps `hybrid`'s order for a shopper without a profile,
through the real `shoprank serve` - even once behaviour events have given products
statistics (popularity, click-through rates), which are not strong evidence."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx

from shoprank.simulate import search_body

from .conftest import Server

# Queries that name no brand, colour or price: no strong intent evidence ("black jeans"
# is rewritten by query understanding, which may rightly reorder it).
QUERIES = ["running shoes", "laptops", "headphones", "tents", "jeans", "office chairs"]


def ids(srv: Server, query: str, mode: str, user: str | None) -> list[str]:
    resp = httpx.post(
        f"{srv.url}/demo/_search",
        json=search_body(query, mode=mode, user_id=user, session_id=None, size=30),
        timeout=60,
    ).json()
    assert not [d for d in resp.get("_shoprank", {}).get("degraded", []) if "rerank" in d], resp
    return [h["_id"] for h in resp["hits"]["hits"]]


def test_full_equals_hybrid_without_a_trained_ranker_or_profile(
    demo_data_dir: Path, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(demo_data_dir, data_dir)
    env = {"SHOPRANK_PRODUCT_INDEX": "demo", "SHOPRANK_WORKERS": "1"}
    srv = Server(data_dir, env=env).start()
    try:
        # Other shoppers click and buy deep in the windows: products gain statistics.
        events = []
        for n, query in enumerate(QUERIES):
            hits = ids(srv, query, "hybrid", None)
            assert len(hits) >= 10, (query, hits)
            for rank, pid in enumerate(hits[5:15], start=6):
                kind = "purchase" if rank % 3 == 0 else "click"
                event = {"type": kind, "user_id": f"other-{n}", "product_id": pid}
                if kind == "purchase":
                    event["price"] = 10.0
                events.append(event)
        accepted = httpx.post(f"{srv.url}/_shoprank/events", json=events, timeout=60).json()
        assert accepted["accepted"] == len(events), accepted

        explained = httpx.post(
            f"{srv.url}/demo/_search",
            json={
                **search_body("tents", mode="full", user_id=None, session_id=None),
                "ext": {"shoprank": {"mode": "full", "explain": True}},
            },
            timeout=60,
        ).json()["_shoprank"]
        assert explained["model_version"] == "default-v1"

        for query in QUERIES:
            hybrid = ids(srv, query, "hybrid", None)
            assert ids(srv, query, "full", None) == hybrid, query
            assert ids(srv, query, "full", "no-history-yet") == hybrid, query
    finally:
        srv.stop()
