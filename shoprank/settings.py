"""Typed settings from `SHOPRANK_*` environment variables, built on first use, never at import."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shoprank.types import Mode

# Read-only cluster APIs the drop-in endpoint forwards by default (see plugin/allowlist.py).
DEFAULT_PROXY_ALLOWLIST: tuple[str, ...] = (
    "GET /_cluster/health",
    "GET /*/_mapping",
    "GET /*/_settings",
    "GET /_alias/*",
    "GET /*/_alias",
    "GET,POST /*/_field_caps",
    "GET /_cat/indices",
    "GET /_cat/aliases",
    "GET /_cat/count/*",
    "GET,POST /*/_mget",
)


class Settings(BaseSettings):
    """Everything configurable; each field is `SHOPRANK_<NAME>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="SHOPRANK_", extra="ignore")

    data_dir: Path = Field(
        default=Path("./data"),
        description="Where the embedded backend and every local store live.",
    )
    backend: Literal["embedded", "elasticsearch", "opensearch"] = Field(
        default="embedded",
        description="Search backend: the embedded engine, or a cluster at SHOPRANK_BACKEND_URL.",
    )
    text_model: str = Field(
        default="sentence-transformers/all-MiniLM-L6-v2",
        description="Text encoder: the packaged MiniLM name or a local model directory.",
    )
    encoder_backend: Literal["auto", "numpy", "onnx", "torch"] = Field(
        default="auto",
        description="Text encoder: onnx (int8, from `shoprank models export-text`), numpy "
        "(torch-free fp32), torch; auto = onnx for indexing (exported once to "
        "data_dir/models/text-onnx on first use when the [ml] extra is installed), else numpy, "
        "and queries use the encoder the index was embedded with.",
    )
    onnx_text_model: Path | None = Field(
        default=None,
        description="Directory of the exported ONNX text encoder "
        "(default data_dir/models/text-onnx).",
    )
    image_model: str | None = Field(
        default=None,
        description="CLIP model (local directory) for product images; unset = no image vectors.",
    )
    clip_text_onnx: Path | None = Field(
        default=None,
        description="Exported CLIP text tower for the text→image leg "
        "(default data_dir/models/clip-text-onnx).",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis for the Celery broker/results and the embedding cache; unset = "
        "tasks run in-process and the cache is a local SQLite file.",
    )
    embedding_cache_path: Path | None = Field(
        default=None,
        description="The SQLite embedding cache without Redis (default "
        "data_dir/cache/embeddings.sqlite). Vectors are keyed by encoder model id and content "
        "hash, so data dirs may share one file and embed a product text only once.",
    )
    product_index: str = Field(
        default="products",
        description="Alias whose products events refer to (facts for profiles).",
    )
    chunk_size: int = Field(default=256, ge=1, le=100_000, description="Products per task.")
    max_failure_rate: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description="A load whose share of bad products exceeds this aborts before the swap.",
    )
    max_text_tokens: int = Field(default=128, ge=8, le=512)
    default_mode: Mode = "full"
    fusion: Literal["rrf", "linear"] = "rrf"
    rrf_k: int = Field(default=60, ge=1)
    linear_vector_weight: float = Field(default=0.5, ge=0.0, le=1.0)
    window_size: int = Field(default=100, ge=1, le=10_000, description="Hybrid top-N window.")
    max_window_size: int = Field(default=1_000, ge=1, le=10_000)
    knn_candidates_factor: float = Field(
        default=4.0,
        ge=1.0,
        le=100.0,
        description="`num_candidates` of shoprank's own kNN legs, as a multiple of the window "
        "(at least 100, at most 10,000): how widely HNSW searches. At 2× the vector leg "
        "returned 95 % of the exact top 100 on a 54k-product catalog, at 4× 97–99 %.",
    )
    keep_generations: int = Field(default=2, ge=1, description="Old generations kept for rollback.")
    default_text_fields: str = Field(
        default="title^3,brand.text^2,category.text^1.5,description",
        description="Fields (with ^boost) searched when shoprank builds a lexical query itself.",
    )

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def embedded_dir(self) -> Path:
        return self.data_dir / "embedded"

    @property
    def onnx_text_dir(self) -> Path:
        return self.onnx_text_model or self.data_dir / "models" / "text-onnx"

    @property
    def clip_text_dir(self) -> Path:
        return self.clip_text_onnx or self.data_dir / "models" / "clip-text-onnx"

    @property
    def eager(self) -> bool:
        """Tasks run in-process (no broker configured)."""
        return self.redis_url is None

    # --- behaviour events and user profiles ---
    user_id_secret: str | None = Field(
        repr=False,
        default=None,
        description="Key of the HMAC that pseudonymises user and session ids; unset = a random "
        "key generated once in data_dir/events/secret (set it when several hosts ingest events).",
    )
    retention_days: float = Field(
        default=365.0, gt=0, description="Events and profiles older than this are deleted."
    )
    half_life_days: dict[str, float] = Field(
        default_factory=lambda: {"default": 30.0, "price": 60.0, "vector": 14.0, "session": 0.05},
        description="Half-life of each decayed profile feature (a facet name, `price`, "
        "`vector`, `session`); `default` for the rest. JSON in the environment.",
    )
    event_weights: dict[str, float] = Field(
        default_factory=lambda: {"view": 1.0, "click": 2.0, "add_to_cart": 5.0, "purchase": 10.0},
        description="How much each event type moves a profile (purchase > cart > click > view).",
    )
    profile_facets: list[str] = Field(
        default_factory=lambda: ["category", "brand"],
        description="Product fields whose values get per-user affinities.",
    )
    max_events_per_request: int = Field(default=10_000, ge=1, le=1_000_000)
    max_event_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    event_dedupe_window_s: int = Field(
        default=3600,
        ge=1,
        le=30 * 86_400,
        description="How long a stored batch is remembered (Redis and embedded logs), so "
        "that the same batch sent again (a retry; same events, same timestamps) is answered "
        "as duplicates, not stored twice. Retries later than this "
        "need an `event_id` on each event.",
    )
    ctr_prior_clicks: float = Field(default=1.0, ge=0, description="Beta prior for smoothed CTR.")
    ctr_prior_impressions: float = Field(default=20.0, gt=0)

    # --- security, limits and operations (README "Security, limits and operations") ---
    api_keys: dict[str, Literal["read", "write", "admin"]] = Field(
        repr=False,
        default_factory=dict,
        description="API key → scope (read < write < admin), JSON. Empty = access control off "
        "(bind to loopback only); set = `Authorization: ApiKey <key>` is required by scope.",
    )
    public_search: bool = Field(
        default=True, description="Search routes answer without a key (else they need `read`)."
    )
    allow_scripts: bool = Field(
        default=False,
        description="Accept `script`, `script_score`, `runtime_mappings`… in client bodies.",
    )
    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="Body size of any request except events, products and _msearch (413).",
    )
    max_result_window: int = Field(
        default=10_000, ge=1, description="Largest `from + size` (deeper pagination is a 400)."
    )
    max_page_size: int = Field(default=1_000, ge=1, description="Largest `size` (400).")
    max_query_chars: int = Field(
        default=4_096, ge=1, description="Longest query text (`match`, `q`, …) in characters."
    )
    max_query_depth: int = Field(
        default=32, ge=2, description="Deepest nesting of a search body's JSON (400)."
    )
    max_buckets: int = Field(
        default=10_000, ge=1, description="Most aggregation buckets a search may ask for (400)."
    )
    rate_limit_per_s: float = Field(
        default=0.0, ge=0.0, description="Requests per second per client (0 = no rate limit)."
    )
    rate_limit_burst: int = Field(
        default=0, ge=0, description="Token-bucket size; 0 = twice the rate (at least 1)."
    )
    search_budget_ms: float = Field(
        default=1000.0,
        gt=0,
        description="Time budget of one search: optional stages (rerankers) that would overrun "
        "it are skipped and reported under `_shoprank.degraded`.",
    )
    extra_rerankers: list[str] = Field(
        default_factory=list,
        description="Import paths (`module:attr`) of extra reranking stages appended in `full` "
        "mode; `attr` is a Reranker or a zero-argument factory of one. JSON list.",
    )
    event_spool_dir: Path | None = Field(
        default=None,
        description="With Redis down, accepted events are kept here and replayed when it is "
        "back; unset = events answer 503 while Redis is down.",
    )
    event_spool_max_bytes: int = Field(default=1024**3, ge=1024)
    log_format: Literal["json", "text"] = Field(
        default="json", description="`shoprank serve` logs: JSON lines (with the query id)."
    )
    workers: int = Field(
        default=0,
        ge=0,
        description="`shoprank serve` worker processes sharing the data directory and the "
        "port; 0 = one per core.",
    )
    max_inflight: int = Field(
        default=8,
        ge=0,
        description="Searches (counts, msearches, product updates) in flight per worker; "
        "past it a 429 `es_rejected_execution_exception` with `Retry-After` at once "
        "(0 = unbounded).",
    )
    search_threads: int | None = Field(
        default=None,
        ge=0,
        description="Admitted searches running at once per worker; the rest of "
        "SHOPRANK_MAX_INFLIGHT wait for a thread (at most SHOPRANK_MAX_QUEUE_MS) instead of "
        "sharing the cores. Unset: 2 on the embedded backend (CPU-bound searches), all "
        "admitted on a cluster (they wait on the network); 0 = all admitted.",
    )
    max_queue_ms: float = Field(
        default=1000.0,
        gt=0,
        description="A search that waited longer than this for a worker thread is dropped "
        "with the same 429 instead of being run.",
    )
    shed_busy_connections: bool = Field(
        default=True,
        description="With several worker processes, a busy worker answers `Connection: "
        "close` so the client's next request can reach another worker.",
    )
    max_agg_ranges: int = Field(
        default=1_000, ge=1, description="Most ranges one `range` aggregation may list (400)."
    )
    max_sort_keys: int = Field(default=32, ge=1, description="Most `sort` keys of a search (400).")
    max_msearch_items: int = Field(
        default=100, ge=1, description="Most searches in one `_msearch` request (400)."
    )
    request_timeout_ms: float = Field(
        default=10_000.0,
        ge=0,
        description="Time budget of the embedded backend's work per request (a search body's "
        "`timeout` can narrow it); past it partial results with `timed_out: true`, or 504 "
        "for _msearch items not started. 0 = no budget.",
    )

    # --- learned ranker ---
    rerank_timeout_ms: float = Field(
        default=25.0,
        gt=0,
        description="Feature + model budget of the ranker in CPU time of its thread (load does "
        "not stretch it); past it the retrieval order is returned (and counted).",
    )
    rerank_wall_timeout_ms: float = Field(
        default=250.0,
        gt=0,
        description="Wall-clock bound of the ranker (a slow feature store); past it the "
        "retrieval order is returned (and counted).",
    )
    feature_log_rate: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description="Share of logged searches whose window features are stored for training.",
    )
    ranker_gate_metric: Literal["dcg@10", "ndcg@10", "ndcg@5", "mrr"] = Field(
        default="dcg@10",
        description="Held-out metric a new ranker must improve to go live, engagement "
        "weighted by inverse position propensities (dcg@10: unbiased IPS-DCG@10).",
    )
    ranker_gate_margin: float = Field(
        default=0.0, description="How much the new model must beat the live one by (absolute)."
    )
    ranker_min_searches: int = Field(
        default=50,
        ge=1,
        description="Labelled searches needed before a ranker is trained "
        "(below it the default scorer stays live).",
    )
    ranker_min_gate_searches: int = Field(
        default=100,
        ge=1,
        description="Held-out searches the gate needs to decide; on fewer it refuses the "
        "candidate (too few to tell a better model from noise).",
    )

    # --- scheduled training ---
    retrain_interval_s: float = Field(
        default=6 * 3600.0,
        ge=0,
        description="How often a training cycle runs (retention, ranker candidate + gate + "
        "challenger, intent model): by `shoprank serve` itself without Redis, by Celery beat "
        "(`shoprank worker --beat`) with it; 0 turns scheduled training off.",
    )
    retrain_min_new_searches: int = Field(
        default=200,
        ge=1,
        description="Labelled searches (with clicks, carts or purchases) that must arrive "
        "since the last training before a cycle trains a new ranker candidate.",
    )
    retrain_intent: bool = Field(
        default=True,
        description="Scheduled cycles also retrain the index's intent model (when one exists) "
        "on the new query → click pairs.",
    )
    experiment_method: Literal["interleave", "ab", "off"] = Field(
        default="interleave",
        description="How a scheduled cycle tries a ranker candidate that passed the offline "
        "gate: an online experiment against the live model (team-draft `interleave`, or "
        "`ab`), decided by later cycles; `off` only records it as the registry's challenger.",
    )
    experiment_mde: float = Field(
        default=0.05,
        gt=0,
        lt=0.5,
        description="Smallest difference a scheduled experiment is sized to detect: for "
        "interleaving, in the share of decided queries the challenger wins (0.05 = 55 % vs "
        "45 %); for A/B, in the click rate.",
    )
    experiment_max_searches: int = Field(
        default=0,
        ge=0,
        description="Horizon of a scheduled experiment (searches for A/B, decided queries "
        "for interleaving) after which an inconclusive challenger is rolled back; 0 = twice "
        "the fixed-horizon sample size from SHOPRANK_EXPERIMENT_MDE.",
    )

    # --- recommendations and diversity ---
    trending_half_life_days: float = Field(
        default=1.0,
        gt=0,
        description="Half-life of the decayed event velocity that ranks `trending` "
        "(recent momentum, not all-time popularity).",
    )
    cooccur_session_gap_s: float = Field(
        default=1800.0,
        gt=0,
        description="Interactions of one shopper closer together than this are one session "
        "for co-occurrence statistics (co-viewed, bought together).",
    )
    cooccur_max_items: int = Field(
        default=20,
        ge=1,
        le=200,
        description="How many of a session's latest products each new interaction is paired "
        "with in the co-occurrence statistics (bounds the fold's cost per event).",
    )
    recommend_max_size: int = Field(
        default=100, ge=1, le=1000, description="Largest `size` a recommendation request may ask."
    )
    diversity: Literal["none", "mmr", "cap"] = Field(
        default="none",
        description="Diversity reranking of search and recommendation pages: `mmr` (maximal "
        "marginal relevance over product vectors), `cap` (at most SHOPRANK_DIVERSITY_CAP "
        "products per SHOPRANK_DIVERSITY_FIELD value), or none; `ext.shoprank.diversity` "
        "per request.",
    )
    diversity_lambda: float = Field(
        default=0.7,
        ge=0,
        le=1,
        description="MMR trade-off: 1 keeps the relevance order, 0 picks for dissimilarity only.",
    )
    diversity_field: str = Field(
        default="brand", description="The product field whose values `cap` diversity limits."
    )
    diversity_cap: int = Field(
        default=2, ge=1, description="At most this many products per value of the field."
    )

    # --- search log and inspector ---
    search_log: bool = Field(
        default=True,
        description="Log every search (query, intent, rewrite, timings, window) to the "
        "embedded search log in data_dir/searchlog (the inspector reads it) and, with "
        "SHOPRANK_SEARCH_LOG_URL, to the cluster's shoprank-searches-* indices.",
    )
    search_log_url: str | None = Field(
        default=None,
        description="Elasticsearch / OpenSearch URL for the search log (Kibana / Dashboards); "
        "unset = embedded search log only.",
    )
    search_log_engine: Literal["elasticsearch", "opensearch"] = Field(
        default="elasticsearch", description="Which official client talks to SEARCH_LOG_URL."
    )
    search_log_prefix: str = Field(
        default="shoprank-searches",
        pattern=r"^[a-z0-9][a-z0-9._-]*$",
        description="Index name prefix of the daily search-log indices.",
    )
    search_log_batch: int = Field(
        default=500, ge=1, le=100_000, description="Search-log documents per bulk request."
    )
    judgments_file: Path | None = Field(
        default=None,
        description="Judgments (query,product_id,grade) the inspector compares modes on.",
    )

    # --- query understanding ---
    intent_attributes: list[str] = Field(
        default_factory=lambda: ["brand", "colour", "color", "material", "attr_t_product_colour"],
        description="Facet fields whose catalog values are recognised in queries (JSON).",
    )
    intent_category_filter_threshold: float = Field(
        default=0.9, ge=0.0, le=1.01, description="Category probability that becomes a filter."
    )
    intent_attribute_filter_threshold: float = Field(
        default=0.9, ge=0.0, le=1.01, description="Attribute match confidence that filters."
    )
    intent_boost: float = Field(default=2.0, ge=0.0, description="Boost of a certain match.")
    intent_min_results: int = Field(
        default=1, ge=0, description="Fewer hits than this after a rewrite → relax it."
    )
    intent_sku_fields: list[str] = Field(
        default_factory=lambda: ["id", "sku", "mpn", "ean"],
        description="Fields searched with exact terms for SKU-like query tokens (JSON).",
    )
    spelling: bool = Field(
        default=True,
        description="Correct misspelled query words against the index vocabulary (full mode).",
    )
    spelling_fields: list[str] = Field(
        default_factory=list,
        description="Text fields whose words correct the query (JSON; [] = the default text "
        "fields).",
    )

    # --- Elasticsearch / OpenSearch clusters ---
    backend_url: str = Field(
        default="http://localhost:9200",
        description="URL of the Elasticsearch/OpenSearch cluster (SHOPRANK_BACKEND=elasticsearch"
        "|opensearch).",
    )
    backend_api_key: str | None = Field(
        default=None, repr=False, description="Elasticsearch API key (instead of user/password)."
    )
    backend_username: str | None = Field(default=None, description="Basic-auth user.")
    backend_password: str | None = Field(default=None, repr=False)
    backend_ca_certs: str | None = Field(default=None, description="CA bundle for https URLs.")
    backend_verify_certs: bool = Field(default=True)
    backend_timeout_s: float = Field(default=10.0, gt=0, description="Per-request timeout.")
    es_vector_index_type: Literal[
        "hnsw", "int8_hnsw", "int4_hnsw", "bbq_hnsw", "flat", "int8_flat"
    ] = Field(default="int8_hnsw", description="Elasticsearch dense_vector index_options.type.")
    vector_engine: Literal["faiss", "lucene", "nmslib"] = Field(
        default="faiss", description="OpenSearch knn_vector HNSW engine."
    )
    native_fusion: bool = Field(
        default=False,
        description="hybrid mode fused by the cluster itself (ES `rrf` retriever, OpenSearch "
        "`hybrid` query + normalization pipeline) instead of shoprank; one request, no explain "
        "legs, no reranking.",
    )
    proxy_allowlist: list[str] = Field(
        default_factory=lambda: list(DEFAULT_PROXY_ALLOWLIST),
        description="Requests shoprank forwards unchanged to the cluster: `METHOD /path` with "
        "`*` for one path segment; read-only APIs only (JSON list in the environment).",
    )

    @field_validator("proxy_allowlist")
    @classmethod
    def _read_only(cls, value: list[str]) -> list[str]:
        from shoprank.plugin.allowlist import check_allowlist

        return list(check_allowlist(value))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first call."""
    return Settings()
