"""The backend behaviour suite (`shoprank.testing.backend_suite`) run against every backend.

The embedded backend always runs. Elasticsearch and OpenSearch run against a live cluster
when `SHOPRANK_TEST_ES_URL` / `SHOPRANK_TEST_OS_URL` point at one (e.g. the docker/ stacks'
`http://localhost:9200`), and are skipped otherwise. Every test uses its own alias and
deletes its generations afterwards, so a shared cluster is left as it was.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from shoprank.plugin.backends.protocol import Backend, ClusterClient
from shoprank.testing.backend_suite import TEST_ALIAS_PREFIX, BackendBehaviour

LIVE = {"elasticsearch": "SHOPRANK_TEST_ES_URL", "opensearch": "SHOPRANK_TEST_OS_URL"}


def _live(engine: str, tmp_path: Path) -> Iterator[Backend]:
    url = os.environ.get(LIVE[engine])
    if not url:
        pytest.skip(f"set {LIVE[engine]} to a live {engine} cluster to run this")
    from shoprank.plugin.backends.connect import cluster_backend
    from shoprank.settings import Settings

    live = cluster_backend(Settings(data_dir=tmp_path, backend=engine, backend_url=url))
    yield live
    assert isinstance(live, ClusterClient)
    for gen in live.generations():
        if str(gen["alias"]).startswith(TEST_ALIAS_PREFIX):
            live.client.indices.delete(index=gen["name"])


class TestEmbedded(BackendBehaviour):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[Backend]:
        from shoprank.plugin.backends.embedded.backend import EmbeddedBackend

        yield EmbeddedBackend(tmp_path / "embedded")


class TestElasticsearch(BackendBehaviour):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[Backend]:
        yield from _live("elasticsearch", tmp_path)


class TestOpenSearch(BackendBehaviour):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[Backend]:
        yield from _live("opensearch", tmp_path)
