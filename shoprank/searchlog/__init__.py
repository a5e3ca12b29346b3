"""The search log: one document per search plus the shoppers' events joined by query id,
written off the hot path to the embedded store (the inspector) and to Elasticsearch /
OpenSearch (`shoprank-searches-*`, for Kibana / OpenSearch Dashboards).

`record` is what the search pipeline builds (`SearchRecord`); `logger.SearchLogger` writes
it in the background to the behaviour log and to every `SearchLogSink` (`protocol`);
`sinks` holds the embedded and cluster sinks, `store` the embedded store, `documents` and
`mapping` the documents and the index template.
"""

from __future__ import annotations

from typing import Any

from shoprank.searchlog.mapping import DEFAULT_PREFIX, index_template
from shoprank.searchlog.protocol import SearchEventWriter, SearchLogSink
from shoprank.searchlog.record import SearchRecord, WindowItem
from shoprank.searchlog.sinks import ClusterSearchLogSink, EmbeddedSearchLogSink
from shoprank.searchlog.store import SearchLogStore, search_log_store
from shoprank.settings import Settings

__all__ = [
    "DEFAULT_PREFIX",
    "ClusterSearchLogSink",
    "EmbeddedSearchLogSink",
    "SearchEventWriter",
    "SearchLogSink",
    "SearchLogStore",
    "SearchRecord",
    "WindowItem",
    "cluster_client",
    "index_template",
    "make_sinks",
    "search_log_store",
]


def cluster_client(settings: Settings) -> Any:
    """The official client for `SHOPRANK_SEARCH_LOG_URL` (imported only when configured)."""
    url = settings.search_log_url
    if settings.search_log_engine == "opensearch":
        from opensearchpy import OpenSearch

        return OpenSearch(url, timeout=10)
    from elasticsearch import Elasticsearch

    return Elasticsearch(url, request_timeout=10)


def make_sinks(settings: Settings, *, client: Any = None) -> list[SearchLogSink]:
    """The search-log sinks the settings ask for (none when `SHOPRANK_SEARCH_LOG=false`)."""
    if not settings.search_log:
        return []
    from shoprank.events.privacy import resolve_secret
    from shoprank.events.stores import make_event_log

    def secret() -> str:
        return resolve_secret(settings)

    sinks: list[SearchLogSink] = [
        EmbeddedSearchLogSink(
            search_log_store(settings), secret=secret, batch_size=settings.search_log_batch
        )
    ]
    if settings.search_log_url or client is not None:
        sinks.append(
            ClusterSearchLogSink(
                client if client is not None else cluster_client(settings),
                secret=secret,
                prefix=settings.search_log_prefix,
                batch_size=settings.search_log_batch,
                event_log=make_event_log(settings),
                offset_path=settings.data_dir / "searchlog" / "cluster-events-offset",
            )
        )
    return sinks
