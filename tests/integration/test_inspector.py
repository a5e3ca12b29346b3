"""The inspector against a running demo server: its JSON API over HTTP, and its pages in
headless Chromium (Debian `chromium`, driven by Playwright through `executable_path`).

Screenshots are saved to `$SHOPRANK_TEST_ARTIFACTS` (default `test-artifacts/`)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Server

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("SHOPRANK_TEST_ARTIFACTS", ROOT / "test-artifacts"))


def search(server: Server, text: str, *, user: str | None = None) -> dict[str, Any]:
    headers = {"X-Shoprank-User": user} if user else {}
    body = {"query": {"multi_match": {"query": text, "fields": ["title", "description"]}}}
    resp = httpx.post(f"{server.url}/demo/_search", json=body, headers=headers, timeout=60)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def test_logged_search_shows_its_click_and_rank(server: Server) -> None:
    result = search(server, "noise cancelling headphones", user="shopper-1")
    query_id = result["_shoprank"]["query_id"]
    clicked = result["hits"]["hits"][2]["_id"]
    event = {
        "type": "click",
        "user_id": "shopper-1",
        "product_id": clicked,
        "query_id": query_id,
        "position": 3,
    }
    assert httpx.post(f"{server.url}/_shoprank/events", json=event).status_code == 200
    # The log is written off the hot path: poll for it (the bound only ends a broken run).
    for _ in range(1200):
        resp = httpx.get(f"{server.url}/_shoprank/inspect/api/searches/{query_id}")
        if resp.status_code == 200:
            break
        import time

        time.sleep(0.1)
    assert resp.status_code == 200, resp.text
    logged = resp.json()
    assert logged["user_query"] == "noise cancelling headphones"
    assert "shopper-1" not in resp.text  # pseudonymous
    assert logged["query_response_object_ids"] == [h["_id"] for h in result["hits"]["hits"]]
    assert [(e["type"], e["product_id"], e["position"]) for e in logged["events"]] == [
        ("click", clicked, 3)
    ]
    window = {w["object_id"]: w for w in logged["window"]}
    assert logged["events"][0]["rank_before"] == window[clicked]["rank_before"]
    recent = httpx.get(f"{server.url}/_shoprank/inspect/api/searches", params={"q": "cancelling"})
    assert query_id in [s["query_id"] for s in recent.json()["searches"]]


def _logged_running_shoes(server: Server) -> int:
    logged = httpx.get(f"{server.url}/_shoprank/inspect/api/searches", params={"q": "running"})
    return sum(1 for s in logged.json()["searches"] if s["user_query"] == "running shoes")


def test_compare_api_explains_three_modes(server: Server) -> None:
    # Other test files search the same session server (in any order, or at the same time
    # under pytest-xdist): what is checked is that the compare adds nothing to the log.
    before = _logged_running_shoes(server)
    resp = httpx.get(
        f"{server.url}/_shoprank/inspect/api/compare",
        params={"q": "running shoes", "size": 5, "index": "demo"},
        timeout=60,
    )
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert [c["mode"] for c in data["columns"]] == ["lexical", "hybrid", "full"]
    for column in data["columns"]:
        assert 0 < len(column["hits"]) <= 5
        assert all(h["title"] for h in column["hits"])
    hybrid = data["columns"][1]["hits"]
    assert all(h["legs"] for h in hybrid)  # explained: rank and score in each leg
    # Inspecting is not logged: no new search with this text appears in the log.
    assert _logged_running_shoes(server) == before


@pytest.mark.parametrize(
    ("params", "status", "needle"),
    [
        ({}, 400, "[q] is required"),
        ({"q": "shoes", "size": "many", "index": "demo"}, 400, "[size] must be an integer"),
        ({"q": "shoes", "index": "no-such-index"}, 404, "no-such-index"),
    ],
)
def test_compare_api_bad_input(
    server: Server, params: dict[str, str], status: int, needle: str
) -> None:
    resp = httpx.get(f"{server.url}/_shoprank/inspect/api/compare", params=params, timeout=60)
    assert resp.status_code == status
    assert needle in resp.json()["error"]["reason"]
    assert httpx.get(f"{server.url}/_shoprank/health").status_code == 200


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


def test_inspector_page_in_chromium(server: Server, browser: Any) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{server.url}/_shoprank/inspect")
    page.fill("#index", "demo")  # the server's SHOPRANK_PRODUCT_INDEX is not the demo's
    page.fill("#q", "wireless headphones")
    page.click("#search-btn")
    page.wait_for_selector(".column[data-mode=full] .hit", timeout=60_000)
    columns = page.locator(".column")
    assert columns.count() == 3
    assert [columns.nth(i).get_attribute("data-mode") for i in range(3)] == [
        "lexical",
        "hybrid",
        "full",
    ]
    for mode in ("lexical", "hybrid", "full"):
        titles = page.locator(f".column[data-mode={mode}] .hit .title").all_inner_texts()
        assert titles and any("Headphones" in t or "headphones" in t for t in titles)
    # Hybrid shows how each product moved against the lexical column.
    moves = page.locator(".column[data-mode=hybrid] .move").all_inner_texts()
    assert any(m.startswith(("▲", "▼")) or m == "new" for m in moves)
    first = page.locator(".column[data-mode=full] .hit").first
    first.click()
    explain = first.locator(".explain")
    explain.wait_for()
    text = explain.inner_text()
    assert "rank before reranking" in text and "lexical" in text and "vector" in text
    assert page.locator("#intent").inner_text().startswith("query")
    page.screenshot(path=str(ARTIFACTS / "inspector-compare.png"), full_page=True)
    assert errors == []
    page.close()


def test_recent_searches_and_judgments_pages(server: Server, browser: Any, tmp_path: Path) -> None:
    result = search(server, "espresso machine", user="shopper-2")
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(f"{server.url}/_shoprank/inspect/searches")
    row = page.locator(f"tr[data-query-id='{result['_shoprank']['query_id']}']")
    for _ in range(20):  # written off the hot path
        if row.count():
            break
        page.click("#searches-form button")
        page.wait_for_timeout(200)
    row.click()
    assert page.locator("#window tbody tr").count() == len(result["hits"]["hits"])
    page.screenshot(path=str(ARTIFACTS / "inspector-searches.png"), full_page=True)

    compared = httpx.get(
        f"{server.url}/_shoprank/inspect/api/compare",
        params={"q": "espresso machine", "index": "demo"},
        timeout=60,
    ).json()
    top = [h["id"] for h in compared["columns"][2]["hits"][:2]]
    judgments = tmp_path / "judgments.csv"
    judgments.write_text(
        f"query,product_id,grade\nespresso machine,{top[0]},3\nespresso machine,{top[1]},1\n"
    )
    page.goto(f"{server.url}/_shoprank/inspect/judgments?index=demo")
    page.set_input_files("#j-file", str(judgments))
    page.click("#judgments-form button")
    page.wait_for_selector("#judgment-summary tbody tr[data-mode=full]", timeout=60_000)
    modes = page.locator("#judgment-summary tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.mode)"
    )
    assert modes == ["lexical", "vector", "hybrid", "full"]
    # Full mode ranks exactly these two first (the compare API said so): nDCG is perfect.
    full = page.locator("#judgment-summary tr[data-mode=full] td").all_inner_texts()
    assert full[1] == "1.0000"
    page.screenshot(path=str(ARTIFACTS / "inspector-judgments.png"), full_page=True)
    page.close()
