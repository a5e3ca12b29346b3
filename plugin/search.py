"""The search pipeline behind the drop-in `_search`: mode → legs → fusion → page.

Modes (`ext.shoprank.mode`): `lexical` runs the body as the backend would; `vector` runs a
kNN leg built from the query text; `hybrid` fuses both over a top-N window; `full` is
hybrid plus every configured reranking stage. The client's filters apply to every leg,
and aggregations always come from the lexical query with its filters.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from shoprank import logs, metrics
from shoprank.errors import BadRequestError, ShoprankError, UnsupportedQueryError
from shoprank.events.search_record import SearchRecord, WindowItem
from shoprank.indexing.encoders.protocol import TextEncoder
from shoprank.indexing.mapping import IMAGE_VECTOR_FIELD, TEXT_VECTOR_FIELD
from shoprank.plugin.backends.protocol import SearchBackend
from shoprank.plugin.fusion import FusedHit, LegHit, fuse
from shoprank.plugin.shapes import int_param, search_response, total_hits
from shoprank.plugin.stages import StageRunner
from shoprank.rerankers.intent.service import QueryUnderstanding
from shoprank.rerankers.protocol import Candidate, RerankContext, Reranker
from shoprank.settings import Settings
from shoprank.types import MODES, Mode

EXT_KEYS = {
    "mode",
    "user_id",
    "session_id",
    "explain",
    "fusion",
    "window",
    "query",
    "vector_field",
    "image",
}
TEXT_QUERIES = ("match", "match_phrase", "multi_match")


def extract_query_text(query: Any) -> str | None:
    """The shopper's words in an ES query: the text of its match/multi_match clauses."""
    parts: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
            return
        if not isinstance(node, dict):
            return
        for name, body in node.items():
            if name in ("filter", "must_not", "post_filter"):
                continue
            if name == "multi_match" and isinstance(body, dict):
                if isinstance(body.get("query"), str):
                    parts.append(body["query"])
            elif name in ("match", "match_phrase") and isinstance(body, dict):
                for value in body.values():
                    text = value.get("query") if isinstance(value, dict) else value
                    if isinstance(text, str):
                        parts.append(text)
            elif isinstance(body, dict | list) and name not in TEXT_QUERIES:
                walk(body)

    walk(query)
    text = " ".join(p.strip() for p in parts if p.strip())
    return text or None


def extract_filters(query: Any) -> list[dict[str, Any]]:
    """The hard constraints of a query (its top-level bool filter / must_not)."""
    if not isinstance(query, dict) or "bool" not in query or not isinstance(query["bool"], dict):
        return []
    body = query["bool"]
    filters: list[dict[str, Any]] = []
    for clause in _listify(body.get("filter")):
        filters.append(clause)
    must_not = _listify(body.get("must_not"))
    if must_not:
        filters.append({"bool": {"must_not": must_not}})
    return filters


def _listify(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


@dataclass
class Request:
    """One search as shoprank sees it, after peeling off `ext.shoprank`."""

    index: str
    body: dict[str, Any]
    mode: Mode
    user_id: str | None
    explain: bool
    fusion: Literal["rrf", "linear"]
    window: int
    query_text: str | None
    vector_field: str
    image: bool = True
    session_id: str | None = None
    notes: list[str] = field(default_factory=list)
    # Stages that degraded instead of failing (`shoprank.metrics.degrade`); always reported.
    degraded: list[str] = field(default_factory=list)
    # The returned page as the logs see it (ranks before/after reranking, logged features).
    logged: list[WindowItem] = field(default_factory=list)
    # What reranking stages report (model version, …) under `_shoprank`.
    rerank_info: dict[str, Any] = field(default_factory=dict)
    # `time.perf_counter()` after which optional stages are skipped (SHOPRANK_SEARCH_BUDGET_MS).
    deadline: float | None = None
    # Query understanding (`full` mode): the Intent, the rewrite actions, the relaxation
    # that recovered an empty result, and what recovery needs (original body, prediction).
    intent: Any = None
    rewrite: list[dict[str, Any]] = field(default_factory=list)
    relaxation: str | None = None
    intent_plan: Any = None


class SearchService:
    """Runs searches against one backend; safe to share between threads."""

    def __init__(
        self,
        *,
        backend: SearchBackend,
        settings: Settings,
        encoder: Callable[[], TextEncoder] | None = None,
        image_text_encoder: Callable[[], TextEncoder] | None = None,
        rerankers: Sequence[Reranker] = (),
        search_logger: Any = None,
    ) -> None:
        self.search_logger = search_logger
        self.backend = backend
        self.settings = settings
        self._encoder_factory = encoder
        self._image_text_factory = image_text_encoder
        self.rerankers = list(rerankers)
        self._vector_cache: OrderedDict[str, list[float]] = OrderedDict()
        self.vector_cache_size = 1024
        self._cache_lock = threading.Lock()
        # Runs optional stages under the search's deadline (shoprank.plugin.stages).
        self.stages = StageRunner()
        self.understanding = QueryUnderstanding(backend=backend, settings=settings)

    # -- request parsing -------------------------------------------------------------------

    def parse(
        self,
        index: str,
        body: dict[str, Any] | None,
        *,
        user_id: str | None,
        session_id: str | None = None,
    ) -> Request:
        body = copy.deepcopy(body) if body else {}
        if not isinstance(body, dict):
            raise BadRequestError("the search body must be a JSON object")
        ext = body.pop("ext", None) or {}
        if not isinstance(ext, dict):
            raise BadRequestError("[ext] must be an object")
        unknown_ext = set(ext) - {"shoprank"}
        if unknown_ext:
            raise UnsupportedQueryError(
                f"search [ext] section(s) {sorted(unknown_ext)} are not "
                "supported; shoprank reads ext.shoprank"
            )
        opts = ext.get("shoprank") or {}
        if not isinstance(opts, dict):
            raise BadRequestError("[ext.shoprank] must be an object")
        unknown = set(opts) - EXT_KEYS
        if unknown:
            raise BadRequestError(
                f"unknown ext.shoprank option(s) {sorted(unknown)}; known: {sorted(EXT_KEYS)}"
            )
        mode = opts.get("mode", self.settings.default_mode)
        if mode not in MODES:
            raise BadRequestError(
                f"ext.shoprank.mode must be one of {', '.join(MODES)}, got {mode!r}"
            )
        fusion = opts.get("fusion", self.settings.fusion)
        if fusion not in ("rrf", "linear"):
            raise BadRequestError(f"ext.shoprank.fusion must be rrf or linear, got {fusion!r}")
        window = int_param(opts, "window", self.settings.window_size, minimum=1)
        if window > self.settings.max_window_size:
            raise BadRequestError(
                f"ext.shoprank.window must be at most {self.settings.max_window_size}, got {window}"
            )
        user = opts.get("user_id", user_id)
        if user is not None and not isinstance(user, str | int):
            raise BadRequestError(f"ext.shoprank.user_id must be a string, got {user!r}")
        if opts.get("query") is not None and not isinstance(opts["query"], str):
            raise BadRequestError(f"ext.shoprank.query must be a string, got {opts['query']!r}")
        text = opts.get("query") or extract_query_text(body.get("query"))
        return Request(
            index=index,
            body=body,
            mode=mode,
            user_id=str(user) if user is not None else None,
            explain=bool(opts.get("explain", False)),
            fusion=fusion,
            window=window,
            query_text=text,
            vector_field=str(opts.get("vector_field", TEXT_VECTOR_FIELD)),
            image=bool(opts.get("image", True)),
            session_id=str(opts["session_id"]) if opts.get("session_id") else session_id,
        )

    # -- embeddings ------------------------------------------------------------------------

    def warm_up(self) -> None:
        """Load the query encoder (and the intent model) now rather than on the first search."""
        if self._encoder_factory is not None:
            self._encoder_factory().warm_up()
        for reranker in self.rerankers:  # load models, open stores: not on the first search
            warm = getattr(reranker, "warm_up", None)
            if warm is not None:
                warm()
        self.understanding.warm_up()

    def embed_query(self, text: str, *, space: Literal["text", "image"] = "text") -> list[float]:
        """The query's vector in the text space (MiniLM) or the image space (CLIP text
        tower), from an LRU cache of recent queries."""
        key = f"{space}\x00{text}"
        with self._cache_lock:  # stages on worker threads embed too
            cached = self._vector_cache.get(key)
            if cached is not None:
                self._vector_cache.move_to_end(key)
                return cached
        factory = self._encoder_factory if space == "text" else self._image_text_factory
        if factory is None:
            raise ShoprankError(f"no {space} query encoder is configured")
        vector = factory().encode([text])[0]
        values = [float(x) for x in np.asarray(vector, dtype=np.float32)]
        if self.vector_cache_size > 0:
            with self._cache_lock:
                self._vector_cache[key] = values
                while len(self._vector_cache) > self.vector_cache_size:
                    self._vector_cache.popitem(last=False)
        return values

    def _resolve_vector_builders(self, body: dict[str, Any]) -> None:
        """ES's `query_vector_builder.text_embedding` is computed by shoprank itself."""
        for spec in _listify(body.get("knn")):
            if not isinstance(spec, dict) or "query_vector_builder" not in spec:
                continue
            builder = spec.pop("query_vector_builder")
            embedding = builder.get("text_embedding") if isinstance(builder, dict) else None
            text = embedding.get("model_text") if isinstance(embedding, dict) else None
            if not isinstance(text, str) or not text.strip():
                raise BadRequestError(
                    "[query_vector_builder] needs text_embedding.model_text (a non-empty string)"
                )
            spec["query_vector"] = self.embed_query(text)

    # -- search ----------------------------------------------------------------------------

    def search(
        self,
        index: str,
        body: dict[str, Any] | None,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> dict[str, Any]:
        started = time.perf_counter()
        request = self.parse(index, body, user_id=user_id, session_id=session_id)
        request.deadline = started + self.settings.search_budget_ms / 1000.0
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        self._resolve_vector_builders(request.body)
        timings["embed_ms"] = (time.perf_counter() - t0) * 1000
        embed = self.embed_query if self._encoder_factory is not None else None
        self.understanding.prepare(request, embed, timings, runner=self.stages)
        applied = self._effective_mode(request)

        def retrieve() -> tuple[dict[str, Any], list[str]]:
            if applied == "lexical":
                return self.backend.search(index, request.body), ["lexical"]
            if applied == "hybrid" and self._native_fusion(request):
                return self._native(request), [f"native:{self.backend.name}"]
            return self._fused(request, applied, timings)

        response, stages = self.understanding.recover(request, *retrieve(), retrieve)
        if request.explain:
            response["_shoprank"] = {
                "mode": request.mode,
                "mode_applied": applied,
                "query_text": request.query_text,
                "fusion": request.fusion if applied != "lexical" else None,
                "window": request.window,
                "user_id": request.user_id,
                "stages": stages,
                "notes": request.notes,
                "intent": request.intent.to_dict() if request.intent is not None else None,
                "rewrite": request.rewrite,
                "relaxation": request.relaxation,
                "timings_ms": {k: round(v, 3) for k, v in timings.items()},
            }
            if request.rerank_info.get("model_version"):
                response["_shoprank"]["model_version"] = request.rerank_info["model_version"]
        if request.degraded:
            response.setdefault("_shoprank", {})["degraded"] = request.degraded
        if self.search_logger is not None:
            query_id = self.search_logger.log(self._record(request, applied, response, timings))
            if query_id:
                response.setdefault("_shoprank", {})["query_id"] = query_id
                logs.note(query_id=query_id)
        elapsed = time.perf_counter() - started
        metrics.observe_search(applied, timings, elapsed, request.rerank_info.get("model_version"))
        response["took"] = int(elapsed * 1000)
        return dict(response)

    @staticmethod
    def _record(
        request: Request, applied: Mode, response: dict[str, Any], timings: dict[str, float]
    ) -> SearchRecord:
        window = request.logged
        if not window:  # lexical: the backend's order is the final order
            window = [
                WindowItem(h["_id"], rank, rank, float(h.get("_score") or 0.0))
                for rank, h in enumerate(response.get("hits", {}).get("hits", []), start=1)
            ]
        total = response.get("hits", {}).get("total")
        return SearchRecord(
            index=request.index,
            query=request.query_text,
            mode=applied,
            user_id=request.user_id,
            session_id=request.session_id,
            model_version=request.rerank_info.get("model_version"),
            timings_ms={k: round(v, 3) for k, v in timings.items()},
            total_hits=int(total["value"]) if isinstance(total, dict) else 0,
            window=window,
            degraded=list(request.degraded),
            intent=request.intent.to_dict() if request.intent is not None else None,
            rewrite=list(request.rewrite),
            relaxation=request.relaxation,
        )

    def _effective_mode(self, request: Request) -> Mode:
        body = request.body
        if request.mode == "lexical":
            return "lexical"
        sort = body.get("sort")
        if sort and _listify(sort) not in (
            ["_score"],
            [{"_score": "desc"}],
            [{"_score": {"order": "desc"}}],
        ):
            request.notes.append("explicit sort: results follow the sort, fusion skipped")
            return "lexical"
        if body.get("min_score") is not None:
            request.notes.append("min_score applies to lexical scores: fusion skipped")
            return "lexical"
        if request.query_text is None and not body.get("knn"):
            request.notes.append("no query text to embed: lexical only")
            return "lexical"
        return request.mode

    def _fused(
        self, request: Request, mode: Mode, timings: dict[str, float]
    ) -> tuple[dict[str, Any], list[str]]:
        body = request.body
        start = int_param(body, "from", 0)
        size = int_param(body, "size", 10)
        window = max(request.window, start + size)
        if window > self.settings.max_window_size:
            raise BadRequestError(
                f"from + size [{start + size}] is beyond shoprank's {mode} window "
                f"[{self.settings.max_window_size}]; page with mode lexical for deep pages",
                es_type="illegal_argument_exception",
            )
        legs: dict[str, list[LegHit]] = {}
        aggs = body.get("aggs", body.get("aggregations"))
        has_query = body.get("query") is not None

        t0 = time.perf_counter()
        # The lexical leg carries every client option shoprank does not manage itself, so
        # the backend validates them (an unsupported option is a 400, never dropped).
        managed = {"from", "size", "knn", "_source", "track_total_hits", "sort"}
        lexical_body: dict[str, Any] = {k: v for k, v in body.items() if k not in managed}
        lexical_body.update(
            {"size": window if mode != "vector" else 0, "_source": False, "track_total_hits": True}
        )
        # Backends that can batch (`msearch`: the clusters) get both legs in one round trip.
        batch = callable(getattr(self.backend, "msearch", None))
        lexical = None if batch else self.backend.search(request.index, lexical_body)
        timings["lexical_ms"] = (time.perf_counter() - t0) * 1000

        t0 = time.perf_counter()
        knn_specs = _listify(body.get("knn"))
        vector: list[float] | None = None
        if not knn_specs and request.query_text:
            t1 = time.perf_counter()
            try:
                vector = self.embed_query(request.query_text)
            except ShoprankError as exc:
                # No encoder (or it failed to load): degrade to the lexical leg, say so.
                request.notes.append(f"vector leg skipped: {exc.reason}")
            timings["embed_ms"] += (time.perf_counter() - t1) * 1000
        if vector is not None:
            spec: dict[str, Any] = {
                "field": request.vector_field,
                "query_vector": vector,
                "k": window,
                "num_candidates": max(2 * window, 100),
            }
            filters = extract_filters(body.get("query"))
            if filters:
                spec["filter"] = filters
            knn_specs = [spec]
        else:
            for spec in knn_specs:
                if not isinstance(spec, dict):
                    raise BadRequestError("[knn] must be an object or a list of objects")
                spec["k"] = max(int_param(spec, "k", window, minimum=1), window)
                spec["num_candidates"] = max(int_param(spec, "num_candidates", 0), spec["k"])
        vector_hits: list[dict[str, Any]] = []
        if knn_specs:
            vector_body: dict[str, Any] = {
                "knn": knn_specs,
                "size": window,
                "_source": False,
                "track_total_hits": True,
            }
            if body.get("post_filter") is not None:
                vector_body["post_filter"] = body["post_filter"]
            if batch:
                t1 = time.perf_counter()
                lexical, vector_result = self._both_legs(request.index, lexical_body, vector_body)
                timings["msearch_ms"] = (time.perf_counter() - t1) * 1000
            try:
                if batch:
                    if isinstance(vector_result, ShoprankError):
                        raise vector_result
                    vector_hits = vector_result["hits"]["hits"]
                else:
                    vector_hits = self.backend.search(request.index, vector_body)["hits"]["hits"]
            except BadRequestError as exc:
                if body.get("knn"):
                    raise
                request.notes.append(f"vector leg skipped: {exc.reason}")
            legs["vector"] = [
                LegHit(h["_id"], float(h["_score"] or 0.0), i + 1)
                for i, h in enumerate(vector_hits)
            ]
        timings["vector_ms"] = (time.perf_counter() - t0) * 1000
        if lexical is None:  # batching backend, but no vector leg to batch with
            lexical = self.backend.search(request.index, lexical_body)
        if mode != "vector" and has_query:
            lexical_leg = [
                LegHit(h["_id"], float(h["_score"] or 0.0), i + 1)
                for i, h in enumerate(lexical["hits"]["hits"])
            ]
            legs = {"lexical": lexical_leg, **legs}
        if request.image and request.query_text and not body.get("knn"):
            t0 = time.perf_counter()
            image_hits = self._image_leg(request, window)
            if image_hits is not None:
                legs["image"] = image_hits
            timings["image_ms"] = (time.perf_counter() - t0) * 1000

        fused = fuse(
            legs,
            method=request.fusion,
            rrf_k=self.settings.rrf_k,
            vector_weight=self.settings.linear_vector_weight,
        )
        stages = [f"retrieve:{leg}" for leg in legs] + [f"fuse:{request.fusion}"]
        retrieval_rank = {h.id: rank for rank, h in enumerate(fused, start=1)}
        candidates: dict[str, Candidate] = {}
        if mode == "full" and self.rerankers:
            fused, applied, candidates = self._rerank(request, fused, timings)
            stages += applied

        t0 = time.perf_counter()
        page = fused[start : start + size]
        source_spec = body.get("_source", True)
        sources = self.backend.mget(request.index, [h.id for h in page], source=source_spec)
        concrete = self.backend.resolve(request.index)
        hits = []
        for position, hit in enumerate(page, start=start + 1):
            out: dict[str, Any] = {"_index": concrete, "_id": hit.id, "_score": hit.score}
            if source_spec is not False and hit.id in sources:
                out["_source"] = sources[hit.id]
            if request.explain:
                out["_shoprank"] = {
                    "rank": position,
                    "rank_before": retrieval_rank[hit.id],
                    "legs": {
                        leg: {"rank": lh.rank, "score": lh.score} for leg, lh in hit.legs.items()
                    },
                }
                explained = candidates.get(hit.id)
                if explained is not None and explained.features:
                    out["_shoprank"]["features"] = explained.features
                    out["_shoprank"]["contributions"] = explained.contributions
            hits.append(out)
            cand = candidates.get(hit.id)
            request.logged.append(
                WindowItem(
                    hit.id,
                    retrieval_rank[hit.id],
                    position,
                    hit.score,
                    dict(cand.features) if cand is not None and cand.features else None,
                )
            )
        timings["fetch_ms"] = (time.perf_counter() - t0) * 1000

        total = self._total(lexical, legs, fused, has_query, mode)
        response = search_response(
            took_ms=0,
            hits=hits,
            total=total_hits(total[0], body.get("track_total_hits")),
            aggregations=lexical.get("aggregations") if aggs else None,
        )
        if total[1] == "gte" and response["hits"].get("total"):
            response["hits"]["total"]["relation"] = "gte"
        return response, stages

    def _native_fusion(self, request: Request) -> bool:
        """The cluster fuses (`SHOPRANK_NATIVE_FUSION`) when it can and nothing needs ours."""
        return (
            self.settings.native_fusion
            and callable(getattr(self.backend, "native_hybrid", None))
            and request.query_text is not None
            and not request.body.get("knn")
        )

    def _native(self, request: Request) -> dict[str, Any]:
        assert request.query_text is not None
        native = self.backend.native_hybrid
        response = native(
            request.index,
            request.body,
            vector=self.embed_query(request.query_text),
            field=request.vector_field,
            filters=extract_filters(request.body.get("query")),
            window=max(
                request.window,
                int_param(request.body, "from", 0) + int_param(request.body, "size", 10),
            ),
            rrf_k=self.settings.rrf_k,
            vector_weight=self.settings.linear_vector_weight,
        )
        return dict(response)

    def _both_legs(
        self, index: str, lexical_body: dict[str, Any], vector_body: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any] | ShoprankError]:
        """Lexical and vector leg in one `msearch`; a lexical failure is the search's."""
        msearch = self.backend.msearch
        lexical, vector = msearch(index, [lexical_body, vector_body])
        if isinstance(lexical, ShoprankError):
            raise lexical
        return dict(lexical), vector

    def _image_leg(self, request: Request, window: int) -> list[LegHit] | None:
        """Text → image kNN: the query's CLIP text vector against product image vectors."""
        if self._image_text_factory is None:
            return None
        try:
            if IMAGE_VECTOR_FIELD not in self.backend.vector_fields(request.index):
                return None
            assert request.query_text is not None
            vector = self.embed_query(request.query_text, space="image")
        except ShoprankError as exc:
            request.notes.append(f"image leg skipped: {exc.reason}")
            return None
        spec: dict[str, Any] = {
            "field": IMAGE_VECTOR_FIELD,
            "query_vector": vector,
            "k": window,
            "num_candidates": max(2 * window, 100),
        }
        filters = extract_filters(request.body.get("query"))
        if filters:
            spec["filter"] = filters
        body: dict[str, Any] = {"knn": spec, "size": window, "_source": False}
        if request.body.get("post_filter") is not None:
            body["post_filter"] = request.body["post_filter"]
        hits = self.backend.search(request.index, body)["hits"]["hits"]
        return [LegHit(h["_id"], float(h["_score"] or 0.0), i + 1) for i, h in enumerate(hits)]

    @staticmethod
    def _total(
        lexical: dict[str, Any],
        legs: dict[str, list[LegHit]],
        fused: list[FusedHit],
        has_query: bool,
        mode: Mode,
    ) -> tuple[int, str]:
        """Matches of the lexical query plus vector-only hits of the window."""
        if mode == "vector" or not has_query:
            return len(fused), "eq"
        lexical_total = int(lexical["hits"]["total"]["value"])
        lexical_ids = {h.id for h in legs.get("lexical", [])}
        vector_only = sum(1 for h in legs.get("vector", []) if h.id not in lexical_ids)
        if len(lexical_ids) >= lexical_total:
            # Every lexical match is in the window, so vector-only hits are new documents.
            return lexical_total + vector_only, "eq"
        # Vector-only hits may be lexical matches beyond the window: a lower bound only.
        return max(lexical_total, len(fused)), "gte"

    def _rerank(
        self, request: Request, fused: list[FusedHit], timings: dict[str, float]
    ) -> tuple[list[FusedHit], list[str], dict[str, Candidate]]:
        context = RerankContext(
            index=request.index,
            query_text=request.query_text,
            user_id=request.user_id,
            body=request.body,
            session_id=request.session_id,
            explain=request.explain,
            deadline=request.deadline,
            intent=request.intent,
        )
        by_id = {h.id: h for h in fused}
        candidates = [
            Candidate(
                h.id,
                h.score,
                legs={leg: (lh.rank, lh.score) for leg, lh in h.legs.items()},
                retrieval_rank=rank,
            )
            for rank, h in enumerate(fused, start=1)
        ]
        applied = []
        for reranker in self.rerankers:
            t0 = time.perf_counter()
            # Late, failing or invalid stages are skipped (order kept) and reported degraded.
            reranked = self.stages.rerank(reranker, context, candidates, notes=request.degraded)
            timings[f"{reranker.name}_ms"] = (time.perf_counter() - t0) * 1000
            if reranked is not None:
                candidates = reranked
                applied.append(f"rerank:{reranker.name}")
        request.degraded.extend(context.info.pop("degraded", []))
        request.rerank_info.update(context.info)
        out = []
        for cand in candidates:
            hit = by_id[cand.id]
            hit.score = cand.score
            out.append(hit)
        return out, applied, {c.id: c for c in candidates}
