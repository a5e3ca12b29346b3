"""The relevance inspector: `/_shoprank/inspect`, a small page served by shoprank itself.

    GET  /_shoprank/inspect                     landing page (?q= compares lexical / hybrid /
                                                full side by side; ?user= ?index= ?size=)
    GET  /_shoprank/inspect/searches            recent searches from the search log
    GET  /_shoprank/inspect/judgments           nDCG / MRR / recall per mode on judgments
    GET  /_shoprank/inspect/diversity           one query with and without diversity
    GET  /_shoprank/inspect/assets/{name}       the page's own JS and CSS (no CDN)
    GET  /_shoprank/inspect/api/compare         ?q=&index=&user_id=&size=
    GET  /_shoprank/inspect/api/diversity       ?q=&mode=&type=&lambda=&field=&max=&size=
    GET  /_shoprank/inspect/api/examples        ?index=  example queries from the catalog
    GET  /_shoprank/inspect/api/indices         the indices (aliases) there are to inspect
    GET  /_shoprank/inspect/api/searches        ?limit=&index=&q=&zero_results=
    GET  /_shoprank/inspect/api/searches/{id}   one logged search with its events
    GET  /_shoprank/inspect/api/judgments       ?index=&k=  (POST a CSV body to load one)

Works on every backend: it calls the same `SearchService` as `_search` (with explanations
on, and without logging, so inspecting does not pollute the search log or the training
data). Mount with `app.include_router(make_inspector_router(service))`.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from shoprank.errors import (
    BadRequestError,
    DocumentNotFoundError,
    ShoprankError,
    es_error_body,
    http_status,
)
from shoprank.plugin.backends.protocol import GenerationStore
from shoprank.plugin.inspector_examples import EventProfiles, ExampleCache
from shoprank.plugin.search import SearchService
from shoprank.rerankers.diversity import parse_diversity
from shoprank.types import MODES

STATIC = Path(__file__).parent / "static"
ASSETS = {"inspect.js": "text/javascript", "inspect.css": "text/css"}
COMPARED_MODES = ("lexical", "hybrid", "full")
JUDGED_MODES = MODES
IMAGE_FIELDS = ("image", "image_url", "imageUrl", "thumbnail", "images")
MAX_JUDGED_QUERIES = 500


class JSONResponse(Response):
    media_type = "application/json"

    def __init__(self, content: Any, status_code: int = 200) -> None:
        super().__init__(orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY), status_code)


def _error(exc: BaseException) -> JSONResponse:
    return JSONResponse(es_error_body(exc), http_status(exc))


def _int(params: dict[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequestError(f"[{name}] must be an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise BadRequestError(f"[{name}] must be between {lo} and {hi}, got {value}")
    return value


def _diversity_args(params: dict[str, str], default_index: str) -> dict[str, Any]:
    """`compare_diversity`'s arguments from the API's query parameters."""
    query = (params.get("q") or "").strip()
    if not query:
        raise BadRequestError("[q] is required: the query text to diversify")
    mode = params.get("mode") or "hybrid"
    if mode not in ("hybrid", "full", "vector"):
        raise BadRequestError(f"[mode] must be hybrid, full or vector, got {mode!r}")
    spec: dict[str, Any] = {"type": params.get("type") or "mmr"}
    # The form sends every parameter; each type takes its own.
    if spec["type"] == "mmr" and params.get("lambda"):
        try:
            spec["lambda"] = float(params["lambda"])
        except ValueError:
            raise BadRequestError(f"[lambda] must be a number, got {params['lambda']!r}") from None
    if spec["type"] == "cap" and params.get("field"):
        spec["field"] = params["field"]
    if spec["type"] == "cap" and params.get("max"):
        spec["max"] = _int(params, "max", 2, 1, 1000)
    return {
        "index": params.get("index") or default_index,
        "query": query,
        "diversity": spec,
        "mode": mode,
        "user_id": params.get("user_id") or None,
        "size": _int(params, "size", 10, 1, 100),
    }


def _image(source: dict[str, Any]) -> str | None:
    for name in IMAGE_FIELDS:
        value = source.get(name)
        if isinstance(value, list):
            value = value[0] if value else None
        if isinstance(value, str) and value.startswith(("http://", "https://", "data:image/")):
            return value
    return None


def _hit(hit: dict[str, Any]) -> dict[str, Any]:
    src = hit.get("_source") or {}
    info = hit.get("_shoprank") or {}
    return {
        "id": hit["_id"],
        "title": src.get("title"),
        "brand": src.get("brand"),
        "price": src.get("price"),
        "category": src.get("category"),
        "image": _image(src),
        "score": hit.get("_score"),
        "rank": info.get("rank"),
        "rank_before": info.get("rank_before"),
        "rank_before_diversity": info.get("rank_before_diversity"),
        "legs": info.get("legs"),
        "features": info.get("features"),
        "contributions": info.get("contributions"),
    }


def compare_modes(
    service: SearchService,
    *,
    index: str,
    query: str,
    user_id: str | None = None,
    size: int = 10,
    modes: tuple[str, ...] = COMPARED_MODES,
) -> dict[str, Any]:
    """The same query in each mode, explained, with each hit's move against the previous
    column (`delta`: positive = moved up, None = not in the previous column)."""
    fields = service.settings.default_text_fields.split(",")
    columns = []
    previous: dict[str, int] | None = None
    for mode in modes:
        body = {
            "query": {"multi_match": {"query": query, "fields": fields}},
            "size": size,
            "ext": {"shoprank": {"mode": mode, "explain": True}},
        }
        started = time.perf_counter()
        response = service.search(index, body, user_id=user_id)
        took = (time.perf_counter() - started) * 1000
        meta = response.get("_shoprank", {})
        hits = [_hit(h) for h in response["hits"]["hits"]]
        for rank, hit in enumerate(hits, start=1):
            hit["rank"] = hit["rank"] or rank
            if previous is not None:
                before = previous.get(hit["id"])
                hit["delta"] = None if before is None else before - rank
        previous = {h["id"]: i for i, h in enumerate(hits, start=1)}
        total = response["hits"].get("total")
        columns.append(
            {
                "mode": mode,
                "mode_applied": meta.get("mode_applied", mode),
                "took_ms": round(took, 2),
                "total": total.get("value") if isinstance(total, dict) else total,
                "stages": meta.get("stages", []),
                "notes": meta.get("notes", []),
                "timings_ms": meta.get("timings_ms", {}),
                "degraded": meta.get("degraded", []),
                "intent": meta.get("intent"),
                "rewrite": meta.get("rewrite"),
                "relaxation": meta.get("relaxation"),
                "model_version": meta.get("model_version"),
                "hits": hits,
            }
        )
    understood = next(
        (c for c in reversed(columns) if c["intent"] or c["rewrite"] or c["relaxation"]), None
    )
    return {
        "index": index,
        "query": query,
        "user_id": user_id,
        "intent": understood["intent"] if understood else None,
        "rewrite": understood["rewrite"] if understood else None,
        "relaxation": understood["relaxation"] if understood else None,
        "columns": columns,
    }


def compare_diversity(
    service: SearchService,
    *,
    index: str,
    query: str,
    diversity: Any,
    mode: str = "hybrid",
    user_id: str | None = None,
    size: int = 10,
) -> dict[str, Any]:
    """The same query without and with `diversity` (a request's `ext.shoprank.diversity`),
    each column with its intra-list diversity (text vectors) and distinct brands and
    categories; a diversified hit's `delta` is its move against the first column."""
    spec = parse_diversity(diversity, service.settings, where="diversity")
    fields = service.settings.default_text_fields.split(",")
    columns = []
    for label, asked in (("without", "none"), ("with", spec.to_dict())):
        body = {
            "query": {"multi_match": {"query": query, "fields": fields}},
            "size": size,
            "ext": {"shoprank": {"mode": mode, "explain": True, "diversity": asked}},
        }
        response = service.search(index, body, user_id=user_id)
        meta = response.get("_shoprank", {})
        hits = [_hit(h) for h in response["hits"]["hits"]]
        for rank, hit in enumerate(hits, start=1):
            before = hit["rank_before_diversity"]
            hit["rank"] = hit["rank"] or rank
            hit["delta"] = None if before is None else before - rank
        ids = [h["id"] for h in hits]
        total = response["hits"].get("total")
        columns.append(
            {
                "column": label,
                "diversity": asked,
                "mode_applied": meta.get("mode_applied", mode),
                "total": total.get("value") if isinstance(total, dict) else total,
                "stages": meta.get("stages", []),
                "notes": meta.get("notes", []),
                "degraded": meta.get("degraded", []),
                "ild": round(service.diversity.ild(index, ids), 4),
                "distinct": {
                    name: len({str(h[name]) for h in hits if h.get(name) is not None})
                    for name in ("brand", "category")
                },
                "hits": hits,
            }
        )
    return dict(index=index, query=query, mode=mode, spec=spec.to_dict(), columns=columns)


def judge_modes(
    service: SearchService,
    judgments: dict[str, dict[str, float]],
    *,
    index: str,
    k: int = 10,
    modes: tuple[str, ...] = JUDGED_MODES,
) -> dict[str, Any]:
    """nDCG@k, MRR and recall@k of each mode, averaged over the judged queries."""
    from shoprank.evaluation.metrics import mrr, ndcg_at_k, recall_at_k

    fields = service.settings.default_text_fields.split(",")
    queries = sorted(judgments)[:MAX_JUDGED_QUERIES]
    per_query = []
    sums = {m: {"ndcg": 0.0, "mrr": 0.0, "recall": 0.0} for m in modes}
    for text in queries:
        grades = judgments[text]
        row: dict[str, Any] = {"query": text, "judged": len(grades), "ndcg": {}}
        for mode in modes:
            body = {
                "query": {"multi_match": {"query": text, "fields": fields}},
                "size": k,
                "_source": False,
                "ext": {"shoprank": {"mode": mode}},
            }
            ranked = [h["_id"] for h in service.search(index, body)["hits"]["hits"]]
            ndcg = ndcg_at_k(ranked, grades, k)
            row["ndcg"][mode] = round(ndcg, 4)
            sums[mode]["ndcg"] += ndcg
            sums[mode]["mrr"] += mrr(ranked, grades, k)
            sums[mode]["recall"] += recall_at_k(ranked, grades, k)
        per_query.append(row)
    n = max(len(queries), 1)
    return {
        "index": index,
        "k": k,
        "queries": len(queries),
        "modes": {m: {name: round(total / n, 4) for name, total in sums[m].items()} for m in modes},
        "per_query": per_query,
    }


def make_inspector_router(service: SearchService) -> APIRouter:
    """The inspector's page and JSON API for `service`."""
    router = APIRouter(prefix="/_shoprank/inspect")
    settings = service.settings
    # Inspecting runs real searches but must not log them.
    quiet = service.without_log()
    state: dict[str, Any] = {"judgments": None, "judgments_source": None}
    examples = ExampleCache(
        service.backend, attributes=settings.intent_attributes, profiles=EventProfiles(settings)
    )

    def store() -> Any:
        from shoprank.searchlog import search_log_store

        return search_log_store(settings)

    def sync_events(log_store: Any) -> None:
        from shoprank.events.stores import make_event_log

        # If the event log cannot be read, searches still show, without fresh events.
        with contextlib.suppress(Exception):
            log_store.sync_events(make_event_log(settings))

    def page(view: str) -> Response:
        html = (STATIC / "inspect.html").read_text(encoding="utf-8")
        html = html.replace("{{view}}", view).replace("{{index}}", _escape(settings.product_index))
        return Response(html, media_type="text/html; charset=utf-8")

    @router.get("")
    def inspect_page() -> Response:
        return page("compare")

    @router.get("/searches")
    def searches_page() -> Response:
        return page("searches")

    @router.get("/judgments")
    def judgments_page() -> Response:
        return page("judgments")

    @router.get("/diversity")
    def diversity_page() -> Response:
        return page("diversity")

    @router.get("/assets/{name}")
    def asset(name: str) -> Response:
        if name not in ASSETS:
            return _error(DocumentNotFoundError(f"no inspector asset [{name}]"))
        return Response((STATIC / name).read_bytes(), media_type=ASSETS[name])

    @router.get("/api/compare")
    def compare(request: Request) -> JSONResponse:
        params = dict(request.query_params)
        try:
            query = (params.get("q") or "").strip()
            if not query:
                raise BadRequestError("[q] is required: the query text to compare")
            size = _int(params, "size", 10, 1, 100)
            result = compare_modes(
                quiet,
                index=params.get("index") or settings.product_index,
                query=query,
                user_id=params.get("user_id") or None,
                size=size,
            )
        except Exception as exc:  # noqa: BLE001 - every failure answers in the ES error shape
            return _error(exc)
        return JSONResponse(result)

    @router.get("/api/diversity")
    def diversity(request: Request) -> JSONResponse:
        try:
            args = _diversity_args(dict(request.query_params), settings.product_index)
            result = compare_diversity(quiet, **args)
        except Exception as exc:  # noqa: BLE001 - every failure answers in the ES error shape
            return _error(exc)
        return JSONResponse(result)

    @router.get("/api/examples")
    def example_queries(request: Request) -> JSONResponse:
        index = request.query_params.get("index") or settings.product_index
        try:
            return JSONResponse(examples.examples(index))
        except Exception as exc:  # noqa: BLE001
            return _error(exc)

    @router.get("/api/indices")
    def indices() -> JSONResponse:
        try:
            found = _indices(service)
        except Exception as exc:  # noqa: BLE001 - a cluster that cannot list answers its error
            return _error(exc)
        return JSONResponse({"default": settings.product_index, "indices": found})

    @router.get("/api/searches")
    def searches(request: Request) -> JSONResponse:
        params = dict(request.query_params)
        try:
            limit = _int(params, "limit", 50, 1, 1000)
            zero = params.get("zero_results")
            log_store = store()
            sync_events(log_store)
            found = log_store.recent(
                limit=limit,
                index=params.get("index") or None,
                query=params.get("q") or None,
                zero_results=None if zero in (None, "") else zero.lower() == "true",
            )
        except Exception as exc:  # noqa: BLE001
            return _error(exc)
        return JSONResponse(
            {"enabled": settings.search_log, "searches": found, "total": log_store.count()}
        )

    @router.get("/api/searches/{query_id}")
    def search_detail(query_id: str) -> JSONResponse:
        log_store = store()
        sync_events(log_store)
        found = log_store.get(query_id)
        if found is None:
            return _error(DocumentNotFoundError(f"no logged search with query_id [{query_id}]"))
        return JSONResponse(found)

    def judgments() -> dict[str, dict[str, float]] | None:
        if state["judgments"] is None and settings.judgments_file is not None:
            from shoprank.evaluation.metrics import load_judgments

            state["judgments"] = load_judgments(settings.judgments_file)
            state["judgments_source"] = str(settings.judgments_file)
        return state["judgments"]  # type: ignore[no-any-return]

    @router.post("/api/judgments")
    async def load(request: Request) -> JSONResponse:
        import tempfile

        from shoprank.evaluation.metrics import load_judgments

        raw = await request.body()
        try:
            if not raw.strip():
                raise BadRequestError("POST a judgments CSV (query,product_id,grade) as the body")
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "judgments.csv"
                path.write_bytes(raw)
                loaded = load_judgments(path)
        except Exception as exc:  # noqa: BLE001
            return _error(exc)
        state["judgments"] = loaded
        state["judgments_source"] = "uploaded"
        return JSONResponse(
            {"queries": len(loaded), "judgments": sum(len(v) for v in loaded.values())}
        )

    @router.get("/api/judgments")
    def judged(request: Request) -> JSONResponse:
        params = dict(request.query_params)
        try:
            k = _int(params, "k", 10, 1, 100)
            loaded = judgments()
            if not loaded:
                return JSONResponse({"loaded": False, "source": None})
            result = judge_modes(
                quiet, loaded, index=params.get("index") or settings.product_index, k=k
            )
        except Exception as exc:  # noqa: BLE001
            return _error(exc)
        return JSONResponse({"loaded": True, "source": state["judgments_source"], **result})

    return router


def _indices(service: SearchService) -> list[dict[str, Any]]:
    """The aliases with a live generation, and its document count (empty when the backend
    keeps no generations, e.g. a cluster whose indices shoprank did not build)."""
    backend = service.backend
    if not isinstance(backend, GenerationStore):
        return []
    found: dict[str, dict[str, Any]] = {}
    for meta in backend.generations():
        alias = meta.get("alias")
        if not alias or meta.get("status") != "ready":
            continue
        try:
            if backend.resolve(str(alias)) != meta.get("name"):
                continue
        except ShoprankError:  # a broken alias is simply not listed
            continue
        found[str(alias)] = {
            "index": str(alias),
            "generation": meta.get("name"),
            "doc_count": meta.get("doc_count"),
        }
    return sorted(found.values(), key=lambda i: i["index"])


def _escape(text: str) -> str:
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#39;")
    )
