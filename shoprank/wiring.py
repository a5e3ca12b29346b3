"""Building the parts from settings: one place that knows which backend and encoder to use."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from functools import cache, lru_cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from shoprank.errors import ConfigError, ShoprankError
from shoprank.indexing.encoders.protocol import TextEncoder
from shoprank.plugin.backends.protocol import Backend, ClusterClient, SearchBackend
from shoprank.plugin.search import SearchService
from shoprank.settings import Settings

if TYPE_CHECKING:
    from shoprank.events.service import EventService
    from shoprank.experiments.store import RunningAssigners
    from shoprank.indexing.cache import EmbeddingCache
    from shoprank.indexing.encoders.auto_export import Choice
    from shoprank.indexing.pipeline import ImageEmbedder, PipelineContext
    from shoprank.profiles.folding import ProductFacts


def make_backend(settings: Settings) -> Backend:
    if settings.backend == "embedded":
        from shoprank.plugin.backends.embedded.backend import EmbeddedBackend

        return EmbeddedBackend(settings.embedded_dir, max_result_window=settings.max_result_window)
    if settings.backend in ("elasticsearch", "opensearch"):
        from shoprank.plugin.backends.connect import cluster_backend

        return cluster_backend(settings)
    raise ConfigError(
        f"unknown SHOPRANK_BACKEND {settings.backend!r}; available: embedded, elasticsearch, "
        "opensearch"
    )


def text_encoder_backend(settings: Settings) -> Literal["numpy", "onnx", "torch"]:
    """The backend `text_encoder` (indexing, training) uses; `auto` is onnx when the model is
    exported or the `[ml]` extra can export it, else numpy. Exports nothing itself."""
    if settings.encoder_backend != "auto":
        return settings.encoder_backend
    from shoprank.indexing.encoders.auto_export import is_exported, ml_available

    return "onnx" if is_exported(settings.onnx_text_dir) or ml_available() else "numpy"


def text_encoder(settings: Settings) -> TextEncoder:
    """The text encoder for indexing and training (`index load`, `train intent`, the demo).

    With `auto` it is the int8 ONNX model, exported once under the data dir when the `[ml]`
    extra is installed (a one-line notice on stderr), else numpy. The choice is recorded, so
    `query_text_encoder` embeds queries with the same model id.
    """
    from shoprank.indexing.encoders.auto_export import choose_for_indexing, write_record

    backend: Literal["numpy", "onnx", "torch"]
    if settings.encoder_backend == "auto":
        choice = choose_for_indexing(settings.onnx_text_dir, export=partial(_export_onnx, settings))
        _log_choice("indexing", choice.backend, choice.reason)
        backend = choice.backend
    else:
        backend = settings.encoder_backend
    encoder = _build_encoder(settings, backend)
    # No weights or a read-only data dir: the encoder reports it when it is used.
    with contextlib.suppress(ShoprankError, OSError):
        write_record(
            settings.onnx_text_dir,
            backend="onnx" if backend == "onnx" else "numpy",  # torch and numpy share an id
            model_id=encoder.model_id,
            max_length=encoder.max_length,
        )
    return encoder


def query_text_encoder(settings: Settings) -> TextEncoder:
    """The text encoder for queries (`shoprank serve`, `search`): never exports, never
    imports torch (unless SHOPRANK_ENCODER_BACKEND=torch). With `auto` it is the encoder
    indexing recorded, so query vectors share the products' model id."""
    if settings.encoder_backend != "auto":
        from shoprank.indexing.encoders.auto_export import RECORD_FILE

        directory = settings.onnx_text_dir
        record = _stat(directory.parent / RECORD_FILE)
        _check_explicit(str(directory), record, settings.encoder_backend)
        return _build_encoder(settings, settings.encoder_backend)
    choice = query_text_choice(settings)
    onnx_dir = str(choice.onnx_dir) if choice.onnx_dir else None
    return _build_encoder(settings, choice.backend, onnx_dir=onnx_dir)


def query_text_choice(settings: Settings) -> Choice:
    """What `auto` picks for queries and why (logged once per decision)."""
    from shoprank.indexing.encoders.auto_export import RECORD_FILE

    directory = settings.onnx_text_dir
    record, model = _stat(directory.parent / RECORD_FILE), _stat(directory / "model.onnx")
    return _query_choice(str(directory), record, model)


def _stat(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except OSError:
        return (0, 0)
    return (st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=8)
def _query_choice(directory: str, record: tuple[int, int], model: tuple[int, int]) -> Choice:
    """The query-side decision, made again only when the record or the model file change."""
    from shoprank.indexing.encoders.auto_export import choose_for_queries

    choice = choose_for_queries(Path(directory), onnx_model_id=_manifest_model_id)
    _log_choice("queries", choice.backend, choice.reason)
    return choice


@lru_cache(maxsize=8)
def _check_explicit(directory: str, record: tuple[int, int], backend: str) -> None:
    """Warn (once per record) when an explicit query backend is not what indexing used."""
    from shoprank.indexing.encoders.auto_export import read_record

    recorded = read_record(Path(directory))
    if recorded is not None and recorded["backend"] != ("onnx" if backend == "onnx" else "numpy"):
        _log_choice(
            "queries",
            backend,
            f"mismatch: SHOPRANK_ENCODER_BACKEND={backend} but the index was embedded with "
            f"{recorded.get('model_id')}; unset it (auto) or reload the index",
        )


def _manifest_model_id(directory: Path) -> str:
    import json

    try:
        return str(json.loads((directory / "manifest.json").read_text())["model_id"])
    except (OSError, ValueError, KeyError, TypeError):
        return "unknown"


def _log_choice(purpose: str, backend: str, reason: str) -> None:
    import logging

    level = logging.WARNING if reason.startswith("mismatch") else logging.INFO
    message = f"text encoder for {purpose}: {backend} ({reason})"
    if message not in _logged:
        _logged.add(message)
        logging.getLogger("shoprank.encoders").log(level, message)


_logged: set[str] = set()


def _export_onnx(settings: Settings, out: Path) -> None:
    from shoprank.indexing.encoders.export_text import export_text_onnx

    export_text_onnx(out, model=settings.text_model, max_length=settings.max_text_tokens)


def _build_encoder(
    settings: Settings, backend: Literal["numpy", "onnx", "torch"], *, onnx_dir: str | None = None
) -> TextEncoder:
    if backend == "onnx":
        return _onnx_encoder(onnx_dir or str(settings.onnx_text_dir), settings.max_text_tokens)
    from shoprank.indexing.encoders import get_text_encoder

    return get_text_encoder(
        backend=backend,
        model=settings.text_model,
        max_length=settings.max_text_tokens,
    )


@lru_cache(maxsize=4)
def _onnx_encoder(model_dir: str, max_length: int) -> TextEncoder:
    from shoprank.indexing.encoders.onnx_text import OnnxTextEncoder

    return OnnxTextEncoder(Path(model_dir), max_length=max_length)


def embedding_cache(settings: Settings) -> EmbeddingCache:
    from shoprank.indexing.cache import RedisEmbeddingCache, SqliteEmbeddingCache

    if settings.redis_url:
        import redis

        return RedisEmbeddingCache(redis.Redis.from_url(settings.redis_url))
    path = settings.embedding_cache_path or settings.data_dir / "cache" / "embeddings.sqlite"
    return SqliteEmbeddingCache(path)


def image_embedder(settings: Settings) -> ImageEmbedder | None:
    if not settings.image_model:
        return None
    from shoprank.indexing.image_pipeline import ClipProductImages

    return ClipProductImages(settings.image_model)


def pipeline_context(settings: Settings, *, vectors: bool = True) -> PipelineContext:
    from shoprank.indexing.jobs import JobStore
    from shoprank.indexing.pipeline import PipelineContext

    return PipelineContext(
        backend=make_backend(settings),
        jobs=JobStore(settings.data_dir / "jobs"),
        encoder=text_encoder(settings) if vectors else None,
        images=image_embedder(settings) if vectors else None,
        cache=embedding_cache(settings),
    )


def clip_text_encoder(settings: Settings) -> TextEncoder:
    """The CLIP text tower in onnxruntime (from `shoprank models export-clip-text`)."""
    return _clip_text(str(settings.clip_text_dir))


@lru_cache(maxsize=2)
def _clip_text(model_dir: str) -> TextEncoder:
    from pathlib import Path

    from shoprank.indexing.encoders.clip_text import ClipTextOnnxEncoder

    return ClipTextOnnxEncoder(Path(model_dir))


def make_service(settings: Settings, backend: SearchBackend | None = None) -> SearchService:
    image_text = None
    if (settings.clip_text_dir / "manifest.json").exists():
        image_text = partial(clip_text_encoder, settings)
    from shoprank.rerankers.ltr import make_ranker
    from shoprank.searchlog import make_sinks
    from shoprank.searchlog.logger import SearchLogger

    backend = backend or make_backend(settings)
    # On a cluster backend the search log goes to that cluster unless another URL is set.
    log_client = None
    if settings.backend != "embedded" and not settings.search_log_url:
        log_client = backend.client if isinstance(backend, ClusterClient) else None
    # The search log: behaviour events, and the inspector, Kibana / OpenSearch Dashboards.
    search_logger = SearchLogger(
        settings, events=event_service(settings), sinks=make_sinks(settings, client=log_client)
    )
    ranker = make_ranker(settings, backend, profiles=event_service(settings).reads)
    service = SearchService(
        backend=backend,
        settings=settings,
        encoder=partial(query_text_encoder, settings),
        image_text_encoder=image_text,
        rerankers=[ranker],
        search_logger=search_logger,
        experiments=running_experiments(settings),
    )
    if settings.extra_rerankers:  # SHOPRANK_EXTRA_RERANKERS, after the built-in stages
        from shoprank.plugin.stages import load_extra_rerankers

        service.rerankers.extend(load_extra_rerankers(settings.extra_rerankers))
    return service


def event_service(settings: Settings) -> EventService:
    """The event service as it runs: folding looks products up in the live index, and
    with Redis each ingest enqueues the `shoprank.fold_events` task."""
    from shoprank.events.service import EventService
    from shoprank.workers.triggers import enqueue_fold

    return EventService(
        settings,
        product_lookup=product_lookup(settings),
        fold_trigger=enqueue_fold if settings.redis_url else None,
    )


def product_lookup(settings: Settings) -> Callable[[Sequence[str]], Mapping[str, ProductFacts]]:
    """Product facts for folding events into profiles: category levels, brand, the
    configured facets, price and text vector, from the live `SHOPRANK_PRODUCT_INDEX`.
    The backend is built on the first lookup (building the event service connects to
    nothing)."""
    from shoprank.errors import ShoprankError
    from shoprank.indexing.mapping import TEXT_VECTOR_FIELD

    backend = cache(partial(make_backend, settings))
    facets = [f for f in settings.profile_facets if f not in ("category", "brand")]

    def lookup(ids: Sequence[str]) -> Mapping[str, ProductFacts]:
        wanted = [str(i) for i in ids]
        live = backend()
        try:
            sources = live.mget(settings.product_index, wanted)
            vectors = live.vectors_of(settings.product_index, wanted, TEXT_VECTOR_FIELD)
        except ShoprankError:
            return {}  # no index yet: profiles keep counts, prices and recent items
        facts: dict[str, Any] = {}
        for pid, src in sources.items():
            fact: dict[str, Any] = {
                "category": src.get("category_levels") or src.get("category"),
                "brand": src.get("brand"),
                "price": src.get("price"),
            }
            for facet in facets:
                if src.get(facet) is not None:
                    fact[facet] = src[facet]
            if pid in vectors:
                fact["vector"] = [float(x) for x in vectors[pid]]
            facts[pid] = fact
        return facts

    return lookup


def running_experiments(settings: Settings) -> RunningAssigners:
    """The running online experiments of the data directory, as searches read them (the
    directory is checked at most once a second)."""
    import time

    from shoprank.experiments.results import experiment_store
    from shoprank.experiments.store import RunningAssigners

    return RunningAssigners(experiment_store(settings), clock=time.monotonic)
