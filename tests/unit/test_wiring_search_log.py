"""On a cluster backend the search log goes to the same cluster by default."""

from __future__ import annotations

from pathlib import Path

from shoprank.searchlog import ClusterSearchLogSink, EmbeddedSearchLogSink
from shoprank.settings import Settings
from shoprank.wiring import make_service


def test_cluster_backend_logs_searches_to_its_own_cluster(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, backend="elasticsearch", backend_url="http://127.0.0.1:1"
    )
    service = make_service(settings)
    sinks = service.search_logger.sinks
    cluster = [s for s in sinks if isinstance(s, ClusterSearchLogSink)]
    assert len(cluster) == 1
    assert cluster[0].client is service.backend.client
    assert any(isinstance(s, EmbeddedSearchLogSink) for s in sinks)


def test_embedded_backend_keeps_the_search_log_local(tmp_path: Path) -> None:
    service = make_service(Settings(data_dir=tmp_path))
    assert not any(isinstance(s, ClusterSearchLogSink) for s in service.search_logger.sinks)
