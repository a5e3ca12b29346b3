"""The inspector's landing page in headless Chromium against a real `shoprank serve`: a bare
open shows recent searches, example queries from the catalog (for the demo shop and for an
Icecat index) that open the compare view, and the compare link.

Screenshots go to `$SHOPRANK_TEST_ARTIFACTS` (default `test-artifacts/`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from tests.integration.conftest import ICECAT, Server
from tests.integration.icecat_subset import load_subset
from tests.integration.test_inspector import ARTIFACTS, browser, search

__all__ = ["browser"]  # the Chromium fixture, shared with the other inspector tests

ICECAT_ROWS = 400


def logged(server: Server, query_id: str) -> None:
    """Wait until the search log holds `query_id` (written off the hot path; the bound only
    ends a broken run)."""
    for _ in range(1200):
        if httpx.get(f"{server.url}/_shoprank/inspect/api/searches/{query_id}").status_code == 200:
            return
        time.sleep(0.1)
    raise AssertionError(f"search {query_id} never reached the search log")


def open_landing(browser: Any, url: str, errors: list[str] | None = None) -> Any:
    """A new page on `url`, once its examples and recent searches have loaded; script
    errors go to `errors`."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    if errors is not None:
        page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url)
    page.wait_for_selector("#example-list a.example", timeout=60_000)
    page.wait_for_selector("#recent-list li", timeout=60_000)
    return page


def examples(page: Any) -> list[dict[str, Any]]:
    return list(
        page.locator("#example-list li").evaluate_all(
            """items => items.map(li => ({shows: li.dataset.shows,
                 text: li.querySelector('a').textContent,
                 href: li.querySelector('a').getAttribute('href')}))"""
        )
    )


def params(href: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlparse(href).query).items()}


def test_bare_open_shows_recent_searches_and_examples(server: Server, browser: Any) -> None:
    result = search(server, "gaming headphones", user="shopper-7")
    query_id = result["_shoprank"]["query_id"]
    logged(server, query_id)
    # The server's SHOPRANK_PRODUCT_INDEX (`products`) does not exist: the page says so and
    # shows the index that does.
    errors: list[str] = []
    page = open_landing(browser, f"{server.url}/_shoprank/inspect", errors)
    assert "[products] does not exist" in page.locator("#landing-status").inner_text()
    assert page.locator("#index").input_value() == "demo"
    recent = page.locator(f"#recent-list li[data-query-id='{query_id}'] a")
    assert recent.inner_text() == "gaming headphones"
    assert params(recent.get_attribute("href")) == {"q": "gaming headphones", "index": "demo"}
    found = examples(page)
    shows = [e["shows"] for e in found]
    assert shows[:4] == ["brand", "price", "colour", "category"], found
    assert all(params(e["href"]) == {"q": e["text"], "index": "demo"} for e in found)
    assert " under " in found[1]["text"]
    assert errors == []
    page.close()

    # A recent search, clicked, opens the compare view on it.
    page = open_landing(browser, f"{server.url}/_shoprank/inspect?index=demo")
    page.locator(f"#recent-list li[data-query-id='{query_id}'] a").click()
    page.wait_for_selector(".column[data-mode=full] .hit", timeout=60_000)
    assert page.locator("#q").input_value() == "gaming headphones"
    assert page.locator("#landing").is_hidden()
    titles = page.locator(".column[data-mode=lexical] .hit .title").all_inner_texts()
    assert any("Headphones" in t for t in titles), titles
    page.close()


def test_example_queries_open_the_compare_view(server: Server, browser: Any) -> None:
    page = open_landing(browser, f"{server.url}/_shoprank/inspect?index=demo")
    found = {e["shows"]: e for e in examples(page)}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "inspector-landing-demo.png"), full_page=True)
    page.close()
    for shows in ("brand", "price", "colour", "category"):
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{server.url}/_shoprank/inspect?index=demo")
        page.locator(f"#example-list li[data-shows='{shows}'] a").click()
        page.wait_for_selector(".column[data-mode=full] .hit", timeout=60_000)
        assert page.locator("#q").input_value() == found[shows]["text"]
        assert params(page.url)["q"] == found[shows]["text"]
        understood = page.locator("#intent").inner_text()
        if shows == "brand":
            brand = page.locator("#intent dt:text-is('brand') + dd").inner_text()
            assert found[shows]["text"].startswith(brand)
            subs = page.locator(".column[data-mode=full] .hit .sub").all_inner_texts()
            assert subs and all(s.startswith(brand) for s in subs), (understood, subs)
        elif shows == "price":
            assert "price" in understood and "lte" in understood, understood
        elif shows == "colour":
            assert "colour" in understood, understood
        page.close()


def test_compare_link_and_personalised_example(server: Server, browser: Any) -> None:
    product = search(server, "wireless headphones")["hits"]["hits"][0]["_id"]
    event = {"type": "click", "user_id": "sim-0042", "product_id": product}
    assert httpx.post(f"{server.url}/_shoprank/events", json=event).status_code == 200
    page = open_landing(browser, f"{server.url}/_shoprank/inspect?index=demo")
    personal = page.locator("#example-list li[data-shows='personalisation'] a")
    href = personal.get_attribute("href")
    assert params(href)["user"] == "sim-0042"
    assert "sim-0042" in page.locator("#example-list li[data-shows='personalisation']").inner_text()
    first = examples(page)[0]["text"]
    link = page.locator("#compare-link")
    assert first in link.inner_text()
    link.click()
    page.wait_for_selector(".column[data-mode=full] .hit", timeout=60_000)
    assert [page.locator(".column").nth(i).get_attribute("data-mode") for i in range(3)] == [
        "lexical",
        "hybrid",
        "full",
    ]
    assert page.locator("#q").input_value() == first
    # The personalised example runs as that user (`?user=` fills the user field).
    page.goto(f"{server.url}{href}")
    page.wait_for_selector(".column[data-mode=full] .hit", timeout=60_000)
    assert page.locator("#user").input_value() == "sim-0042"
    page.close()


@pytest.fixture(scope="module")
def icecat_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if not ICECAT.is_file():
        pytest.skip(f"Icecat sample data not found at {ICECAT}")
    data_dir = tmp_path_factory.mktemp("icecat-inspector")
    load_subset(data_dir, rows=ICECAT_ROWS)
    srv = Server(data_dir, env={"SHOPRANK_PRODUCT_INDEX": "icecat"}).start()
    yield srv
    srv.stop()


def test_icecat_landing_examples_find_products(icecat_server: Server, browser: Any) -> None:
    server = icecat_server
    errors: list[str] = []
    page = open_landing(browser, f"{server.url}/_shoprank/inspect", errors)
    assert page.locator("#landing-status").inner_text() == ""  # the configured index exists
    assert "No searches logged yet" in page.locator("#recent-list").inner_text()
    found = examples(page)
    assert [e["shows"] for e in found][:2] == ["brand", "price"], found
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "inspector-landing-icecat.png"), full_page=True)
    for example in found:
        page.goto(f"{server.url}{example['href']}")
        page.wait_for_selector(".column[data-mode=lexical] .hit", timeout=60_000)
        assert page.locator(".column[data-mode=full] .hit").count() > 0, example
    assert errors == []
    page.close()


def test_examples_api_names_a_missing_index(server: Server) -> None:
    resp = httpx.get(f"{server.url}/_shoprank/inspect/api/examples", params={"index": "nope"})
    assert resp.status_code == 404
    assert "nope" in resp.json()["error"]["reason"]
    listed = httpx.get(f"{server.url}/_shoprank/inspect/api/indices").json()
    assert listed["default"] == "products"
    assert [i["index"] for i in listed["indices"]] == ["demo"]
    assert listed["indices"][0]["doc_count"] == 400
