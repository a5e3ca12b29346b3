"""OpenSearch (2.x/3.x) through the official `opensearch-py` client.

shoprank speaks the Elasticsearch DSL; the differences are translated here:
- a `dense_vector` field becomes `knn_vector` with an HNSW `method` (engine `faiss` by
  default) and the index gets `index.knn: true`;
- ES's top-level `knn` section becomes OpenSearch's `knn` query (`vector`, `k`, `filter`,
  `num_candidates` → `method_parameters.ef_search`); with a `query` next to it, the two are
  the `should` clauses of one `bool`, which is ES's union-with-summed-scores semantics.
"""

from __future__ import annotations

import copy
import time
from typing import Any, Literal

from shoprank.errors import BadRequestError, ShoprankError, UnsupportedQueryError

from .remote import Clock, RemoteBackend, cluster_error, knn_specs, unavailable, walk_properties

VectorEngine = Literal["faiss", "lucene", "nmslib"]
KNN_KEYS = {"field", "query_vector", "k", "num_candidates", "filter", "boost", "_name"}
# The normalization-processor search pipeline used by native hybrid fusion.
HYBRID_PIPELINE = "shoprank-hybrid"


class OpenSearchBackend(RemoteBackend):
    """`Backend`, `NativeHybrid` (the `hybrid` query), `Forwarding` and `ClusterClient`."""

    name = "opensearch"
    vector_types = ("knn_vector", "dense_vector")

    def __init__(
        self,
        client: Any,
        *,
        url: str = "",
        vector_engine: VectorEngine = "faiss",
        hnsw_m: int = 16,
        hnsw_ef_construction: int = 128,
        bulk_chunk_size: int = 500,
        clock: Clock = time.monotonic,
    ) -> None:
        from opensearchpy.helpers import streaming_bulk

        super().__init__(client, bulk=streaming_bulk, bulk_chunk_size=bulk_chunk_size, clock=clock)
        self.url = url
        self.vector_engine = vector_engine
        self.hnsw_m = hnsw_m
        self.hnsw_ef_construction = hnsw_ef_construction
        self._pipeline_weight: float | None = None

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        ca_certs: str | None = None,
        verify_certs: bool = True,
        timeout_s: float = 10.0,
        vector_engine: VectorEngine = "faiss",
    ) -> OpenSearchBackend:
        """A backend on a cluster; nothing is sent until the first call."""
        from opensearchpy import OpenSearch

        options: dict[str, Any] = {"timeout": timeout_s}
        if username:
            options["http_auth"] = (username, password or "")
        if url.startswith("https"):
            options["use_ssl"] = True
            options["verify_certs"] = verify_certs
            if ca_certs:
                options["ca_certs"] = ca_certs
            if not verify_certs:
                options["ssl_show_warn"] = False
        client = OpenSearch([url], **options)
        return cls(client, url=url, vector_engine=vector_engine)

    def translate_error(self, exc: Exception) -> ShoprankError | None:
        from opensearchpy import ConnectionError as OSConnectionError
        from opensearchpy import TransportError

        if isinstance(exc, OSConnectionError):
            return unavailable(self.url or "the configured URL", exc)
        if isinstance(exc, TransportError):
            status = exc.status_code if isinstance(exc.status_code, int) else 503
            return cluster_error(status, exc.info if exc.info is not None else exc.error)
        return None

    # -- mapping ---------------------------------------------------------------------------

    def index_body(self, mapping: dict[str, Any]) -> dict[str, Any]:
        mapping = copy.deepcopy(mapping)
        has_vectors = False
        for spec in walk_properties(mapping.get("properties", {})):
            if spec.get("type") != "dense_vector":
                continue
            has_vectors = True
            dims = int(spec.pop("dims"))
            similarity = spec.pop("similarity", "cosine")
            for key in ("index", "index_options", "element_type"):
                spec.pop(key, None)
            spec.update(
                {
                    "type": "knn_vector",
                    "dimension": dims,
                    "method": {
                        "name": "hnsw",
                        "engine": self.vector_engine,
                        "space_type": _space_type(similarity),
                        "parameters": {
                            "m": self.hnsw_m,
                            "ef_construction": self.hnsw_ef_construction,
                        },
                    },
                }
            )
        body: dict[str, Any] = {"mappings": mapping}
        if has_vectors:
            body["settings"] = {"index": {"knn": True}}
        return body

    def clone_body(self, mapping: dict[str, Any]) -> dict[str, Any]:
        body = super().clone_body(mapping)
        if any(s.get("type") == "knn_vector" for s in walk_properties(mapping["properties"])):
            body["settings"] = {"index": {"knn": True}}
        return body

    # -- searching -------------------------------------------------------------------------

    def search_body(self, body: dict[str, Any]) -> dict[str, Any]:
        body = super().search_body(body)
        specs = knn_specs(body)
        if not specs:
            return body
        out = {k: v for k, v in body.items() if k != "knn"}
        clauses = [self.knn_query(spec) for spec in specs]
        if out.get("query") is not None:
            out["query"] = {"bool": {"should": [out["query"], *clauses]}}
        elif len(clauses) == 1:
            out["query"] = clauses[0]
        else:
            out["query"] = {"bool": {"should": clauses}}
        return out

    def knn_query(self, spec: dict[str, Any]) -> dict[str, Any]:
        """One ES `knn` section as OpenSearch's `knn` query."""
        if "query_vector_builder" in spec:
            raise BadRequestError(
                "[query_vector_builder] must be resolved before the backend; "
                "send it through shoprank's endpoint"
            )
        if "similarity" in spec:
            raise UnsupportedQueryError(
                "[knn.similarity] has no OpenSearch equivalent next to [k]; "
                "drop it or filter on the returned scores",
                construct="knn.similarity",
            )
        unknown = set(spec) - KNN_KEYS
        if unknown:
            raise UnsupportedQueryError(
                f"[knn] option(s) {sorted(unknown)} cannot be translated for OpenSearch",
                construct="knn",
            )
        field, vector = spec.get("field"), spec.get("query_vector")
        if not isinstance(field, str) or not isinstance(vector, list):
            raise BadRequestError("[knn] needs [field] and [query_vector] (a list of numbers)")
        query: dict[str, Any] = {"vector": vector, "k": int(spec.get("k", 10))}
        filters = spec.get("filter")
        if isinstance(filters, list):
            if filters:
                query["filter"] = filters[0] if len(filters) == 1 else {"bool": {"filter": filters}}
        elif isinstance(filters, dict):
            query["filter"] = filters
        if spec.get("num_candidates") is not None:
            query["method_parameters"] = {"ef_search": int(spec["num_candidates"])}
        if spec.get("boost") is not None:
            query["boost"] = float(spec["boost"])
        if spec.get("_name") is not None:
            query["_name"] = str(spec["_name"])
        return {"knn": {field: query}}

    # -- native fusion ---------------------------------------------------------------------

    def hybrid_pipeline(self, *, vector_weight: float) -> dict[str, Any]:
        """The search pipeline whose normalization processor fuses a `hybrid` query's legs."""
        return {
            "description": "shoprank: min-max normalised lexical + kNN scores",
            "phase_results_processors": [
                {
                    "normalization-processor": {
                        "normalization": {"technique": "min_max"},
                        "combination": {
                            "technique": "arithmetic_mean",
                            "parameters": {"weights": [1.0 - vector_weight, vector_weight]},
                        },
                    }
                }
            ],
        }

    def ensure_hybrid_pipeline(self, *, vector_weight: float) -> str:
        """Create (or update) the pipeline once per process; returns its id."""
        if self._pipeline_weight != vector_weight:
            self._call(
                self.client.search_pipeline.put,
                id=HYBRID_PIPELINE,
                body=self.hybrid_pipeline(vector_weight=vector_weight),
            )
            self._pipeline_weight = vector_weight
        return HYBRID_PIPELINE

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
        """Lexical + kNN fused by OpenSearch's `hybrid` query and min-max normalization
        pipeline (weighted by `vector_weight`; `rrf_k` is Elasticsearch's); `num_candidates`
        becomes the HNSW `ef_search`."""
        pipeline = self.ensure_hybrid_pipeline(vector_weight=vector_weight)
        knn: dict[str, Any] = {"field": field, "query_vector": vector, "k": window}
        knn["filter"] = filters
        if num_candidates is not None:
            knn["num_candidates"] = num_candidates
        lexical = body.get("query") if body.get("query") is not None else {"match_none": {}}
        out = {k: v for k, v in super().search_body(body).items() if k not in ("query", "knn")}
        out["query"] = {"hybrid": {"queries": [lexical, self.knn_query(knn)]}}
        result = self._call(
            self.client.search, index=index, body=out, params={"search_pipeline": pipeline}
        )
        return dict(result)

    # -- the proxy -------------------------------------------------------------------------

    def forward(
        self, method: str, path: str, *, params: dict[str, str], body: bytes | None
    ) -> tuple[int, Any]:
        from opensearchpy import TransportError

        try:
            result = self.client.transport.perform_request(
                method,
                path,
                params=params or None,
                body=body or None,
                headers={"content-type": "application/json"} if body else None,
            )
        except TransportError as exc:
            if isinstance(exc.status_code, int):
                return exc.status_code, exc.info if exc.info is not None else str(exc.error)
            mapped = self.translate_error(exc)
            raise (mapped or exc) from exc
        if isinstance(result, bool):  # HEAD
            return (200 if result else 404), ""
        return 200, result


def _space_type(similarity: str) -> str:
    spaces = {"cosine": "cosinesimil", "dot_product": "innerproduct", "l2_norm": "l2"}
    if similarity not in spaces:
        raise BadRequestError(
            f"dense_vector similarity [{similarity}] has no OpenSearch space type; "
            f"use one of {sorted(spaces)}"
        )
    return spaces[similarity]
