"""Searches, counts, msearches and product updates run off the event loop: while one of
them is in flight (held inside the backend until the test lets it go), the same server
still answers `/_shoprank/health`.

The real app is served by uvicorn on a loopback port in a thread; the test knows the slow
request is still running because the backend has signalled it entered the held call and
has not been released yet, so no timing is asserted.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shoprank.plugin import products as product_updates
from shoprank.plugin.backends.embedded.backend import EmbeddedBackend
from shoprank.plugin.search import SearchService
from shoprank.settings import Settings
from tests.unit._apps import loopback_server
from tests.unit.conftest import CORPUS, CORPUS_VECTORS, build_index

WAIT_S = 30  # upper bound on each wait, only reached when the code under test is broken


class Gate:
    """Holds the calls that pass through it until `release`; `entered` says one is held."""

    def __init__(self) -> None:
        self.armed = False
        self.entered = threading.Event()
        self.released = threading.Event()

    def hold(self) -> None:
        if self.armed:
            self.entered.set()
            self.released.wait(WAIT_S)


class GatedBackend(EmbeddedBackend):
    """The embedded backend whose searches and counts wait at the gate."""

    def __init__(self, root: Path, gate: Gate) -> None:
        super().__init__(root)
        self.gate = gate

    def search(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        self.gate.hold()
        return super().search(index, body)

    def count(self, index: str, body: dict[str, Any] | None) -> int:
        self.gate.hold()
        return super().count(index, body)


@pytest.fixture(scope="module")
def gate() -> Gate:
    return Gate()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, gate: Gate) -> Iterator[str]:
    root = tmp_path_factory.mktemp("event-loop")
    build_index(root / "index", CORPUS, CORPUS_VECTORS)
    settings = Settings(data_dir=root, default_mode="lexical")
    service = SearchService(backend=GatedBackend(root / "index", gate), settings=settings)
    with loopback_server(service, wait_s=WAIT_S, before_stop=gate.released.set) as url:
        yield url


def _held_product_update(
    settings: Settings, update: product_updates.ProductUpdate, *, wait: bool = True
) -> dict[str, Any]:
    return {"index": update.index, "accepted": len(update.delete), "errors": []}


REQUESTS: dict[str, Callable[[httpx.Client], httpx.Response]] = {
    "search": lambda c: c.post("/products/_search", json={"query": {"match": {"title": "hp"}}}),
    "count": lambda c: c.post("/products/_count", json={"query": {"match": {"title": "hp"}}}),
    "msearch": lambda c: c.post(
        "/_msearch",
        content=b'{"index": "products"}\n{"query": {"match_all": {}}}\n',
        headers={"content-type": "application/x-ndjson"},
    ),
    "products": lambda c: c.post(
        "/_shoprank/products", json={"index": "products", "delete": ["no-such-product"]}
    ),
}


@pytest.mark.parametrize("route", sorted(REQUESTS))
def test_health_answers_while_a_slow_request_is_in_flight(
    server: str, gate: Gate, route: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if route == "products":
        # A product update held the same way: the update itself, not the backend, blocks.
        def held(*args: Any, **kwargs: Any) -> dict[str, Any]:
            gate.hold()
            return _held_product_update(*args, **kwargs)

        monkeypatch.setattr(product_updates, "apply_product_update", held)
    gate.entered.clear()
    gate.released.clear()
    gate.armed = True
    results: list[httpx.Response] = []

    def slow() -> None:
        with httpx.Client(base_url=server, timeout=WAIT_S * 2) as client:
            results.append(REQUESTS[route](client))

    worker = threading.Thread(target=slow)
    worker.start()
    try:
        assert gate.entered.wait(WAIT_S), f"the {route} request never reached the backend"
        with httpx.Client(base_url=server, timeout=WAIT_S) as client:
            health = client.get("/_shoprank/health")
        # Still held: health was answered while the slow request was running.
        assert not gate.released.is_set() and worker.is_alive() and not results
        assert health.status_code == 200
        assert health.json()["status"] == "green"
    finally:
        gate.armed = False
        gate.released.set()
        worker.join(WAIT_S * 2)
    assert len(results) == 1 and results[0].status_code == 200, results
