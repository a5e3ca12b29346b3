"""The real HTTP app over the shared 8-product corpus, for the hardening and fuzz tests."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi.testclient import TestClient

from shoprank.plugin.app import create_app
from shoprank.plugin.backends.embedded.backend import EmbeddedBackend
from shoprank.plugin.search import SearchService
from shoprank.rerankers.protocol import Reranker
from shoprank.settings import Settings

KEYS = {"k-read": "read", "k-write": "write", "k-admin": "admin"}


def make_client(
    data_dir: Path,
    backend: EmbeddedBackend,
    *,
    rerankers: tuple[Reranker, ...] = (),
    search_log: bool = False,
    client: tuple[str, int] = ("127.0.0.1", 50000),
    **overrides: Any,
) -> TestClient:
    settings = Settings(data_dir=data_dir, **overrides)
    logger = None
    if search_log:
        from shoprank.searchlog.logger import SearchLogger

        logger = SearchLogger(settings)
    service = SearchService(
        backend=backend, settings=settings, rerankers=rerankers, search_logger=logger
    )
    test_client = TestClient(create_app(service), raise_server_exceptions=False, client=client)
    test_client.service = service  # type: ignore[attr-defined]  # for tests that poke a stage
    return test_client


def key(name: str) -> dict[str, str]:
    return {"Authorization": f"ApiKey {name}"}


@contextmanager
def loopback_server(
    service: SearchService,
    *,
    wait_s: float,
    before_stop: Callable[[], None] | None = None,
    one_of_workers: bool = False,
) -> Iterator[str]:
    """The real app served by uvicorn on a free loopback port, in a thread; yields its URL
    once it accepts connections. `before_stop` runs first on the way out (e.g. releasing
    requests a test holds, so the server can finish them); `one_of_workers` builds the app
    as one worker of several would be."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app(service, one_of_workers=one_of_workers)
    config = uvicorn.Config(app, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=wait_s) as client:
            for _ in range(int(wait_s * 20)):  # until the server accepts connections
                try:
                    client.get("/_shoprank/health")
                    break
                except httpx.TransportError:
                    threading.Event().wait(0.05)
        yield url
    finally:
        if before_stop is not None:
            before_stop()
        server.should_exit = True
        thread.join(wait_s)
        sock.close()
