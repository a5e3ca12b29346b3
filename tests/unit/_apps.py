"""The real HTTP app over the shared 8-product corpus, for the hardening and fuzz tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
