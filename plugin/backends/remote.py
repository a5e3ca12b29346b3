"""What the Elasticsearch and OpenSearch backends share: the read side (`cluster_reads`)
and the write side (`cluster_generations`) on one official client (`cluster_base`).

Requests per operation (see README "Run on Elasticsearch / OpenSearch"): a lexical search is
one `_search`; a hybrid search one `_msearch` (both legs) plus one `_mget` for the page.
"""

from __future__ import annotations

from typing import Any

from .cluster_base import RESOLVE_TTL_S, Clock
from .cluster_generations import MANIFESTS, META_KEY, ClusterGenerations
from .cluster_reads import ClusterReads
from .cluster_shapes import (
    BulkWriteError,
    cluster_error,
    knn_specs,
    unavailable,
    walk_properties,
    without_vectors,
)

__all__ = [
    "MANIFESTS",
    "META_KEY",
    "RESOLVE_TTL_S",
    "BulkWriteError",
    "Clock",
    "RemoteBackend",
    "cluster_error",
    "knn_specs",
    "unavailable",
    "walk_properties",
    "without_vectors",
]


class RemoteBackend(ClusterReads, ClusterGenerations):
    """Base of the cluster backends (`Backend`, `Forwarding`, `ClusterClient`); `client` is
    an `Elasticsearch` or `OpenSearch` client. Subclasses add `native_hybrid`."""

    def forward(
        self, method: str, path: str, *, params: dict[str, str], body: bytes | None
    ) -> tuple[int, Any]:
        """Send a request shoprank does not handle itself to the cluster, unchanged."""
        raise NotImplementedError
