"""Diversity against a running demo server: `ext.shoprank.diversity` on `_search` over
HTTP, the inspector's side-by-side JSON API, and its diversity page in headless Chromium.

The demo catalog (400 products, seed 11) has 16 headphones from five brands, six of them
from one brand: an undiversified page of headphones repeats brands, a capped one cannot.
Screenshots go to `$SHOPRANK_TEST_ARTIFACTS` (default `test-artifacts/`)."""

from __future__ import annotations

import os
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Server

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("SHOPRANK_TEST_ARTIFACTS", ROOT / "test-artifacts"))
QUERY = "wireless headphones"


def diversity_api(server: Server, **params: Any) -> httpx.Response:
    return httpx.get(
        f"{server.url}/_shoprank/inspect/api/diversity",
        params={"q": QUERY, "index": "demo", **params},
        timeout=120,
    )


def search(server: Server, **ext: Any) -> dict[str, Any]:
    body = {
        "query": {"multi_match": {"query": QUERY, "fields": ["title", "description"]}},
        "size": 8,
        "aggs": {"brands": {"terms": {"field": "brand"}}},
        "ext": {"shoprank": {"mode": "hybrid", **ext}},
    }
    resp = httpx.post(f"{server.url}/demo/_search", json=body, timeout=120)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def test_search_over_http_diversifies_the_page_only(server: Server) -> None:
    plain = search(server)
    capped = search(server, diversity={"type": "cap", "field": "brand", "max": 2})
    brands = Counter(h["_source"]["brand"] for h in plain["hits"]["hits"])
    assert max(brands.values()) > 2  # the precondition: a brand repeats on the plain page
    capped_brands = Counter(h["_source"]["brand"] for h in capped["hits"]["hits"])
    assert max(capped_brands.values()) <= 2
    assert len(capped["hits"]["hits"]) == len(plain["hits"]["hits"])
    assert capped["hits"]["total"] == plain["hits"]["total"]
    assert capped["aggregations"] == plain["aggregations"]


def test_bad_spec_over_http_is_a_400_in_the_es_shape(server: Server) -> None:
    body = {"query": {"match": {"title": "headphones"}}, "ext": {"shoprank": {"diversity": 7}}}
    resp = httpx.post(f"{server.url}/demo/_search", json=body, timeout=60)
    assert resp.status_code == 400
    assert "[ext.shoprank.diversity]" in resp.json()["error"]["reason"]
    assert resp.json()["status"] == 400


def test_diversity_api_compares_without_and_with(server: Server) -> None:
    resp = diversity_api(server, type="cap", field="brand", max="2", size="8")
    assert resp.status_code == 200, resp.text
    data = resp.json()
    without, with_ = data["columns"]
    assert (without["column"], with_["column"]) == ("without", "with")
    assert with_["diversity"] == {"type": "cap", "field": "brand", "max": 2}
    assert "diversity:cap" in with_["stages"] and "diversity:cap" not in without["stages"]
    assert max(Counter(h["brand"] for h in without["hits"]).values()) > 2
    assert max(Counter(h["brand"] for h in with_["hits"]).values()) <= 2
    assert with_["distinct"]["brand"] > without["distinct"]["brand"]
    assert with_["total"] == without["total"]
    assert all(h["rank_before_diversity"] for h in with_["hits"])

    mmr = diversity_api(server, type="mmr", **{"lambda": "0.3"}).json()
    plain, spread = mmr["columns"]
    assert 0.0 < plain["ild"] < spread["ild"]  # the page's products are less alike


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"type": "shuffle"}, "[diversity.type] must be one of ['none', 'mmr', 'cap']"),
        ({"type": "mmr", "lambda": "2"}, "[diversity.lambda]"),
        ({"q": ""}, "[q] is required"),
        ({"mode": "lexical"}, "[mode] must be hybrid, full or vector"),
    ],
)
def test_diversity_api_bad_input(server: Server, params: dict[str, str], needle: str) -> None:
    resp = diversity_api(server, **params)
    assert resp.status_code == 400
    assert needle in resp.json()["error"]["reason"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("chromium is not installed (apt-get install chromium; `make test` installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield instance
        instance.close()


def test_diversity_page_shows_both_lists_side_by_side(server: Server, browser: Any) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{server.url}/_shoprank/inspect/diversity")
    page.fill("#d-q", QUERY)
    page.fill("#d-index", "demo")
    page.select_option("#d-type", "cap")
    page.fill("#d-max", "2")
    page.fill("#d-size", "8")
    page.click("#diversity-btn")
    page.wait_for_selector(".column[data-column=with] .hit", timeout=120_000)
    columns = page.locator(".column")
    assert [columns.nth(i).get_attribute("data-column") for i in range(2)] == ["without", "with"]
    assert page.locator(".column[data-column=with] h2").inner_text() == "with cap: ≤ 2 per brand"
    lists = {}
    for name in ("without", "with"):
        hits = page.locator(f".column[data-column={name}] .hit")
        lists[name] = [hits.nth(i).get_attribute("data-brand") for i in range(hits.count())]
        assert len(lists[name]) == 8
        facets = page.locator(f".column[data-column={name}] .hit .facets").all_inner_texts()
        assert all("brand " in f and "category " in f for f in facets)
        ild = page.locator(f".column[data-column={name}] .ild")
        assert ild.inner_text().startswith("ILD ")
        assert float(ild.get_attribute("data-ild") or "nan") > 0
    assert max(Counter(lists["without"]).values()) > 2
    assert max(Counter(lists["with"]).values()) <= 2
    # Moves against the undiversified column show on the diversified one.
    moves = page.locator(".column[data-column=with] .move").all_inner_texts()
    assert any(m.startswith(("▲", "▼")) for m in moves)
    # The page's URL keeps the comparison, so it can be shared and reloaded.
    assert "type=cap" in page.url and "q=wireless" in page.url
    page.screenshot(path=str(ARTIFACTS / "inspector-diversity.png"), full_page=True)
    # The compare view links to the same query here.
    page.goto(f"{server.url}/_shoprank/inspect?q=headphones&index=demo")
    link = page.locator("#diversity-link")
    link.wait_for(timeout=120_000)
    assert "/_shoprank/inspect/diversity?q=headphones" in (link.get_attribute("href") or "")
    assert errors == []
    page.close()
