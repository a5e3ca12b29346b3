"""Elasticsearch (8.x/9.x) through the official `elasticsearch` client.

shoprank's bodies are ES bodies already, so searches go out as they are; the mapping's
`dense_vector` fields gain HNSW `index_options` (`int8_hnsw` by default).
"""

from __future__ import annotations

import copy
import time
from typing import Any

from shoprank.errors import ShoprankError

from .remote import Clock, RemoteBackend, cluster_error, unavailable, walk_properties


class ElasticsearchBackend(RemoteBackend):
    """`Backend`, `NativeHybrid` (the `rrf` retriever), `Forwarding` and `ClusterClient`."""

    name = "elasticsearch"
    vector_types = ("dense_vector",)

    def __init__(
        self,
        client: Any,
        *,
        url: str = "",
        vector_index_type: str = "int8_hnsw",
        bulk_chunk_size: int = 500,
        clock: Clock = time.monotonic,
    ) -> None:
        from elasticsearch.helpers import streaming_bulk

        super().__init__(client, bulk=streaming_bulk, bulk_chunk_size=bulk_chunk_size, clock=clock)
        self.url = url
        self.vector_index_type = vector_index_type
        self._excludes_vectors: bool | None = None

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        api_key: str | None = None,
        username: str | None = None,
        password: str | None = None,
        ca_certs: str | None = None,
        verify_certs: bool = True,
        timeout_s: float = 10.0,
        vector_index_type: str = "int8_hnsw",
    ) -> ElasticsearchBackend:
        """A backend on a cluster; nothing is sent until the first call."""
        from elasticsearch import Elasticsearch

        options: dict[str, Any] = {"request_timeout": timeout_s}
        if api_key:
            options["api_key"] = api_key
        elif username:
            options["basic_auth"] = (username, password or "")
        if url.startswith("https"):
            options["verify_certs"] = verify_certs
            if ca_certs:
                options["ca_certs"] = ca_certs
        client = Elasticsearch(url, **options)
        return cls(client, url=url, vector_index_type=vector_index_type)

    def translate_error(self, exc: Exception) -> ShoprankError | None:
        import elastic_transport
        from elasticsearch import ApiError

        if isinstance(exc, ApiError):
            return cluster_error(int(exc.meta.status), exc.body)
        if isinstance(exc, elastic_transport.TransportError):
            return unavailable(self.url or "the configured URL", exc)
        return None

    def response_body(self, response: Any) -> Any:
        from elastic_transport import ApiResponse

        return response.body if isinstance(response, ApiResponse) else response

    def native_hybrid(
        self,
        index: str,
        body: dict[str, Any],
        *,
        vector: list[float],
        field: str,
        filters: list[dict[str, Any]],
        window: int,
        rrf_k: int = 60,
        vector_weight: float = 0.5,
        num_candidates: int | None = None,
    ) -> dict[str, Any]:
        """Lexical + kNN fused by Elasticsearch's own `rrf` retriever, in one `_search`
        (RRF has no weights: `vector_weight` is OpenSearch's). `num_candidates`: the kNN
        search breadth (default: twice the window, at least 100)."""
        knn: dict[str, Any] = {
            "field": field,
            "query_vector": vector,
            "k": window,
            "num_candidates": num_candidates or max(2 * window, 100),
        }
        if filters:
            knn["filter"] = filters
        retrievers: list[dict[str, Any]] = [{"knn": knn}]
        if body.get("query") is not None:
            retrievers.insert(0, {"standard": {"query": body["query"]}})
        out = {k: v for k, v in body.items() if k not in ("query", "knn")}
        out["retriever"] = {
            "rrf": {"retrievers": retrievers, "rank_window_size": window, "rank_constant": rrf_k}
        }
        return self.search(index, out)

    def vector_source(self, field: str) -> Any:
        # Elasticsearch 9.2+ and serverless leave vectors out of `_source` unless asked.
        if self._excludes_vectors is None:
            version = self.info().get("version", {})
            parts = [
                int(p) for p in str(version.get("number", "0.0")).split(".")[:2] if p.isdigit()
            ]
            self._excludes_vectors = version.get("build_flavor") == "serverless" or (
                tuple(parts) >= (9, 2)
            )
        if self._excludes_vectors:
            return {"includes": [field], "exclude_vectors": False}
        return [field]

    def index_body(self, mapping: dict[str, Any]) -> dict[str, Any]:
        mapping = copy.deepcopy(mapping)
        if isinstance(mapping.get("dynamic"), bool):  # the specification wants the string
            mapping["dynamic"] = "true" if mapping["dynamic"] else "false"
        for spec in walk_properties(mapping.get("properties", {})):
            if spec.get("type") == "dense_vector":
                spec.setdefault("index", True)
                spec.setdefault("index_options", {"type": self.vector_index_type})
        return {"mappings": mapping}

    def forward(
        self, method: str, path: str, *, params: dict[str, str], body: bytes | None
    ) -> tuple[int, Any]:
        from elasticsearch import ApiError

        headers = {"accept": "application/json"}
        if body:
            headers["content-type"] = "application/json"
        try:
            response = self.client.perform_request(
                method, path, params=params or None, headers=headers, body=body or None
            )
        except ApiError as exc:
            return int(exc.meta.status), exc.body
        except Exception as exc:
            mapped = self.translate_error(exc)
            if mapped is None:
                raise
            raise mapped from exc
        return int(response.meta.status), response.body
