"""The drop-in HTTP endpoint: the Elasticsearch search API, served by shoprank.

Point a frontend (or the official `elasticsearch` / `opensearch-py` client) here instead of
the cluster. Search-side APIs only; writes go through `shoprank index ...`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from shoprank import __version__
from shoprank.errors import (
    BackendUnavailableError,
    BadRequestError,
    ShoprankError,
    es_error_body,
    http_status,
)
from shoprank.plugin.limits import check_response_buckets, check_search_body
from shoprank.plugin.products import apply_product_update, parse_product_update
from shoprank.plugin.search import SearchService
from shoprank.plugin.shapes import SHARDS

ES_VERSION = "9.0.0"
# Query-string parameters that do not change what shoprank returns.
HARMLESS_PARAMS = {
    "pretty",
    "human",
    "error_trace",
    "filter_path",
    "ignore_unavailable",
    "allow_no_indices",
    "expand_wildcards",
    "preference",
    "routing",
    "request_cache",
    "timeout",
    "typed_keys",
    "batched_reduce_size",
    "ccs_minimize_roundtrips",
    "max_concurrent_shard_requests",
    "pre_filter_shard_size",
    "search_type",
    "allow_partial_search_results",
    "source",
    "rest_total_hits_as_int",
    "max_concurrent_searches",
    "realtime",
    "refresh",
}
SEARCH_PARAMS = {"size", "from", "q", "_source", "track_total_hits", "sort"}


class ESResponse(Response):
    """JSON with the headers the official clients check (`X-Elastic-Product`)."""

    media_type = "application/json"

    def __init__(self, content: Any, status_code: int = 200, *, accept: str = "") -> None:
        super().__init__(
            orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY), status_code=status_code
        )
        self.headers["X-Elastic-Product"] = "Elasticsearch"
        if "vnd.elasticsearch+json" in accept:
            version = (
                accept.split("compatible-with=")[-1][:1] if "compatible-with" in accept else "9"
            )
            self.headers["content-type"] = (
                f"application/vnd.elasticsearch+json;compatible-with={version}"
            )


def _accept(request: Request) -> str:
    return request.headers.get("accept", "")


def _error(exc: BaseException, request: Request) -> ESResponse:
    return ESResponse(es_error_body(exc), http_status(exc), accept=_accept(request))


async def _json_body(request: Request) -> dict[str, Any] | None:
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequestError("request body must be a JSON object")
    return body


def _check_params(request: Request, allowed: set[str]) -> dict[str, str]:
    params = dict(request.query_params)
    unknown = set(params) - allowed - HARMLESS_PARAMS
    if unknown:
        raise BadRequestError(
            f"request [{request.url.path}] contains unrecognized parameter(s): "
            f"[{', '.join(sorted(unknown))}]",
            es_type="illegal_argument_exception",
        )
    return params


def _apply_search_params(body: dict[str, Any] | None, params: dict[str, str]) -> dict[str, Any]:
    """URL parameters (`size`, `from`, `q`, …) as ES merges them into the body."""
    body = dict(body or {})
    for key in ("size", "from"):
        if key in params:
            body[key] = params[key]
    if "q" in params:
        body["query"] = {"multi_match": {"query": params["q"]}}
    if "_source" in params:
        value = params["_source"]
        body["_source"] = (
            value.lower() != "false" if value.lower() in ("true", "false") else value.split(",")
        )
    if "track_total_hits" in params:
        value = params["track_total_hits"].lower()
        if value in ("true", "false"):
            body["track_total_hits"] = value == "true"
        else:
            try:
                body["track_total_hits"] = int(value)
            except ValueError:
                raise BadRequestError(
                    f"[track_total_hits] must be true, false or a number, got [{value}]",
                    es_type="illegal_argument_exception",
                ) from None
    if "sort" in params:
        sorts = []
        for item in params["sort"].split(","):
            field, _, order = item.partition(":")
            sorts.append({field: order or "asc"})
        body["sort"] = sorts
    return body


def _hits_as_int(response: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    if params.get("rest_total_hits_as_int", "").lower() == "true":
        total = response.get("hits", {}).get("total")
        if isinstance(total, dict):
            response["hits"]["total"] = total["value"]
    return response


def create_app(
    service: SearchService,
    *,
    cluster_name: str = "shoprank",
    health: Callable[[], Any] | None = None,
) -> FastAPI:
    """The ASGI app serving `service`; cheap to build, nothing is loaded until used."""
    app = FastAPI(
        title="shoprank",
        version=__version__,
        docs_url="/_shoprank/docs",
        openapi_url="/_shoprank/openapi.json",
        redoc_url=None,
    )
    cluster_uuid = uuid.uuid5(uuid.NAMESPACE_URL, f"shoprank:{cluster_name}").hex[:22]

    @app.exception_handler(ShoprankError)
    async def _shoprank_error(request: Request, exc: ShoprankError) -> ESResponse:
        return _error(exc, request)

    @app.exception_handler(Exception)
    async def _any_error(request: Request, exc: Exception) -> ESResponse:
        return _error(exc, request)

    def run(request: Request, fn: Callable[[], Any], status: int = 200) -> ESResponse:
        try:
            result = fn()
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - tantivy panics are BaseException
            return _error(exc, request)
        return ESResponse(result, status, accept=_accept(request))

    def guarded_search(index: str, body: dict[str, Any] | None, **kw: Any) -> dict[str, Any]:
        # Limits and the script refusal (shoprank.plugin.limits), before and after the search.
        check_search_body(body, service.settings)
        try:
            result = service.search(index, body, **kw)
        except (ConnectionError, TimeoutError, OSError) as exc:
            # The backend (a cluster, or the embedded index's disk) cannot answer: 503, retry.
            raise BackendUnavailableError(
                f"the search backend cannot answer ({type(exc).__name__}: {exc}); retry later"
            ) from exc
        check_response_buckets(result, service.settings)
        return dict(result)

    def user_of(request: Request) -> str | None:
        return request.headers.get("x-shoprank-user")

    @app.api_route("/", methods=["GET", "HEAD"])
    def root(request: Request) -> ESResponse:
        return ESResponse(
            {
                "name": "shoprank",
                "cluster_name": cluster_name,
                "cluster_uuid": cluster_uuid,
                "version": {
                    "number": ES_VERSION,
                    "build_flavor": "default",
                    "build_type": "shoprank",
                    "lucene_version": "10.0.0",
                    "minimum_wire_compatibility_version": "8.18.0",
                    "minimum_index_compatibility_version": "8.0.0",
                    "shoprank": __version__,
                    "backend": service.backend.name,
                },
                "tagline": "You Know, for Search",
            },
            accept=_accept(request),
        )

    @app.get("/_shoprank/health")
    def shoprank_health(request: Request) -> ESResponse:
        info = health() if health else {}
        return ESResponse(
            {
                "status": "green",
                "version": __version__,
                "backend": service.backend.name,
                **(info or {}),
            },
            accept=_accept(request),
        )

    async def _search(request: Request, index: str) -> ESResponse:
        params = _check_params(request, SEARCH_PARAMS)
        body = _apply_search_params(await _json_body(request), params)
        user = user_of(request)
        session = request.headers.get("x-shoprank-session")
        response = run(
            request,
            lambda: _hits_as_int(
                guarded_search(index, body, user_id=user, session_id=session), params
            ),
        )
        return response

    @app.api_route("/{index}/_search", methods=["GET", "POST"])
    async def search(request: Request, index: str) -> ESResponse:
        try:
            return await _search(request, index)
        except ShoprankError as exc:
            return _error(exc, request)

    @app.api_route("/_search", methods=["GET", "POST"])
    async def search_no_index(request: Request) -> ESResponse:
        return _error(
            BadRequestError("shoprank searches one index or alias at a time: use /{index}/_search"),
            request,
        )

    async def _msearch(request: Request, default_index: str | None) -> ESResponse:
        _check_params(request, set())
        raw = await request.body()
        lines = [ln for ln in raw.split(b"\n") if ln.strip()]
        if len(lines) % 2:
            return _error(
                BadRequestError(
                    "msearch body must be header/body line pairs (NDJSON), got an odd line count"
                ),
                request,
            )
        user = user_of(request)

        def one(header_raw: bytes, body_raw: bytes) -> dict[str, Any]:
            try:
                header = orjson.loads(header_raw)
                body = orjson.loads(body_raw)
                if not isinstance(header, dict) or not isinstance(body, dict):
                    raise BadRequestError("msearch header and body lines must be JSON objects")
                index = header.get("index", default_index)
                if isinstance(index, list):
                    if len(index) != 1:
                        raise BadRequestError("shoprank searches one index per msearch item")
                    index = index[0]
                if not index:
                    raise BadRequestError("msearch item without an index")
                result = guarded_search(str(index), body, user_id=user)
                return {**result, "status": 200}
            except (KeyboardInterrupt, SystemExit):
                raise
            except orjson.JSONDecodeError as exc:
                return es_error_body(BadRequestError(f"msearch line is not valid JSON: {exc}"))
            except BaseException as exc:  # noqa: BLE001
                return es_error_body(exc)

        def run_all() -> dict[str, Any]:
            responses = [one(lines[i], lines[i + 1]) for i in range(0, len(lines), 2)]
            took = sum(int(r.get("took", 0)) for r in responses)
            return {"took": took, "responses": responses}

        return run(request, run_all)

    @app.api_route("/_msearch", methods=["GET", "POST"])
    async def msearch(request: Request) -> ESResponse:
        try:
            return await _msearch(request, None)
        except ShoprankError as exc:
            return _error(exc, request)

    @app.api_route("/{index}/_msearch", methods=["GET", "POST"])
    async def msearch_index(request: Request, index: str) -> ESResponse:
        try:
            return await _msearch(request, index)
        except ShoprankError as exc:
            return _error(exc, request)

    @app.api_route("/{index}/_count", methods=["GET", "POST"])
    async def count(request: Request, index: str) -> ESResponse:
        try:
            params = _check_params(request, {"q"})
            body = await _json_body(request)
            if "q" in params:
                body = {"query": {"multi_match": {"query": params["q"]}}}
            check_search_body(body, service.settings)
        except ShoprankError as exc:
            return _error(exc, request)
        return run(
            request, lambda: {"count": service.backend.count(index, body), "_shards": dict(SHARDS)}
        )

    @app.post("/_shoprank/products")
    async def products(request: Request) -> ESResponse:
        """Upsert and delete products of the live index; embedding runs in a worker task."""
        try:
            params = _check_params(request, {"wait"})
            body = await _json_body(request) or {}
            update = parse_product_update(body)
        except ShoprankError as exc:
            return _error(exc, request)
        wait = params.get("wait", "true").lower() != "false"
        return run(request, lambda: apply_product_update(service.settings, update, wait=wait))

    @app.api_route("/{index}/_doc/{doc_id}", methods=["GET", "HEAD"])
    def get_doc(request: Request, index: str, doc_id: str) -> ESResponse:
        try:
            params = _check_params(
                request, {"_source", "_source_includes", "_source_excludes", "stored_fields"}
            )
            result = service.backend.get(index, doc_id)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001
            return _error(exc, request)
        if result.get("found") and "_source" in result:
            from shoprank.plugin.shapes import filter_source

            spec: Any = True
            if params.get("_source", "").lower() == "false":
                spec = False
            elif "_source_includes" in params or "_source_excludes" in params:
                spec = {
                    "includes": [p for p in params.get("_source_includes", "").split(",") if p],
                    "excludes": [p for p in params.get("_source_excludes", "").split(",") if p],
                }
            elif params.get("_source") and params["_source"].lower() != "true":
                spec = params["_source"].split(",")
            filtered = filter_source(result["_source"], spec)
            if filtered is None:
                result.pop("_source")
            else:
                result["_source"] = filtered
        return ESResponse(result, 200 if result.get("found") else 404, accept=_accept(request))

    from shoprank.plugin.events_api import make_events_router

    app.include_router(make_events_router(service.settings))
    from shoprank.plugin.inspector import make_inspector_router

    app.include_router(make_inspector_router(service))
    from shoprank.plugin.intent_api import make_intent_router

    app.include_router(make_intent_router(service))
    from shoprank.plugin.proxy import install_proxy

    # Requests no route serves: forwarded to a cluster if allowlisted, refused otherwise.
    install_proxy(app, service.backend, service.settings.proxy_allowlist)
    from shoprank.plugin.ops import install

    install(app, service)  # access control, limits, metrics, readiness (plugin/ops.py)
    return app
