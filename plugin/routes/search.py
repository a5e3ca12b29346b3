"""The Elasticsearch search API: `_search`, `_msearch` and `_count`, as the official clients
call them. Each search runs on a worker thread (`respond`), under the request limits of
`shoprank.plugin.limits` and the index-name rules, work caps and time budget of
`shoprank.plugin.bounds` (one budget per request: an `_msearch` shares it among its items).
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request

from shoprank.errors import (
    BackendUnavailableError,
    BadRequestError,
    ShoprankError,
    es_error_body,
)
from shoprank.plugin.backends.protocol import Forwarding, PointInTime
from shoprank.plugin.bounds import (
    bounded,
    check_index_name,
    check_msearch_items,
    current_deadline,
    request_deadline,
    timeout_error,
)
from shoprank.plugin.limits import check_response_buckets, check_search_body
from shoprank.plugin.routes.common import (
    AcceptDep,
    ESResponse,
    ServiceDep,
    SessionDep,
    UserDep,
    check_params,
    error_response,
    json_body,
    respond,
)
from shoprank.plugin.routes.paging import forwarded, hits_as_int
from shoprank.plugin.routes.paging import router as paging_router
from shoprank.plugin.search import SearchService
from shoprank.plugin.shapes import SHARDS

SEARCH_PARAMS = {"size", "from", "q", "_source", "track_total_hits", "sort", "scroll"}

# Documented by Elasticsearch itself: left out of shoprank's OpenAPI document.
router = APIRouter(include_in_schema=False)
router.include_router(paging_router)


def apply_search_params(body: dict[str, Any] | None, params: dict[str, str]) -> dict[str, Any]:
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


def guarded_search(
    service: SearchService, index: str, body: dict[str, Any] | None, **kw: Any
) -> dict[str, Any]:
    """One search under the limits (before and after it), the script refusal and the
    request's time budget (the caller's, else a fresh SHOPRANK_REQUEST_TIMEOUT_MS)."""
    check_index_name(index)
    check_search_body(body, service.settings)
    outer = current_deadline()
    deadline = outer if outer is not None else request_deadline(service.settings)
    try:
        with bounded(deadline):
            result = service.search(index, body, **kw)
    except (ConnectionError, TimeoutError, OSError) as exc:
        # The backend (a cluster, or the embedded index's disk) cannot answer: 503, retry.
        # Named by its type and errno text only: an OSError's message holds a file name.
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise BackendUnavailableError(
            f"the search backend cannot answer ({type(exc).__name__}: {detail}); retry later"
        ) from exc
    check_response_buckets(result, service.settings)
    if deadline is not None and deadline.expired:
        result["timed_out"] = True
    return dict(result)


@router.api_route("/{index}/_search", methods=["GET", "POST"])
async def search(
    request: Request,
    index: str,
    service: ServiceDep,
    user: UserDep,
    session: SessionDep,
    accept: AcceptDep,
) -> ESResponse:
    try:
        params = check_params(request, SEARCH_PARAMS)
        check_index_name(index)
        if "scroll" in params and isinstance(service.backend, Forwarding):
            return await forwarded(request, service, accept)
        body = apply_search_params(await json_body(request), params)
    except ShoprankError as exc:
        return error_response(exc, accept)
    scroll = params.get("scroll")
    if scroll is None:
        return await respond(
            lambda: hits_as_int(
                guarded_search(service, index, body, user_id=user, session_id=session), params
            ),
            accept,
        )
    return await respond(
        lambda: hits_as_int(scroll_search(service, index, body, scroll, user=user), params),
        accept,
    )


def scroll_search(
    service: SearchService, index: str, body: dict[str, Any], scroll: str, *, user: str | None
) -> dict[str, Any]:
    """The first page of a scroll: a point-in-time search through the pipeline (which runs
    it as the backend's lexical search), answered with a `_scroll_id`."""
    backend = service.backend
    if not isinstance(backend, PointInTime):
        raise BadRequestError(f"the {backend.name} backend does not scroll")
    start = backend.scroll_body(index, body, scroll)
    response = guarded_search(service, index, start, user_id=user, scroll=scroll)
    return backend.scroll_response(response, body, scroll)


@router.api_route("/_search", methods=["GET", "POST"])
async def search_no_index(
    request: Request, service: ServiceDep, user: UserDep, accept: AcceptDep
) -> ESResponse:
    """A search without an index: only with a point in time (`pit` in the body), which
    names its index itself."""
    if isinstance(service.backend, Forwarding):
        return await forwarded(request, service, accept)
    try:
        params = check_params(request, SEARCH_PARAMS - {"scroll"})
        body = apply_search_params(await json_body(request), params)
        pit = body.get("pit")
        backend = service.backend
        if pit is None or not isinstance(backend, PointInTime):
            raise BadRequestError(
                "shoprank searches one index or alias at a time: use /{index}/_search "
                "(or a point in time: `pit` in the body)"
            )
        if not isinstance(pit, dict) or not isinstance(pit.get("id"), str):
            raise BadRequestError("[pit] must be an object with an [id]")
        pit_id = str(pit["id"])
    except ShoprankError as exc:
        return error_response(exc, accept)
    return await respond(
        lambda: hits_as_int(
            guarded_search(service, backend.pit_index(pit_id), body, user_id=user), params
        ),
        accept,
    )


def msearch_item(
    service: SearchService,
    header_raw: bytes,
    body_raw: bytes,
    *,
    default_index: str | None,
    user: str | None,
) -> dict[str, Any]:
    """One header/body pair of an `_msearch`: its response, or its error in the ES shape."""
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
        deadline = current_deadline()
        if deadline is not None and deadline.passed():
            raise timeout_error()
        result = guarded_search(service, str(index), body, user_id=user)
        return {**result, "status": 200}
    except (KeyboardInterrupt, SystemExit):
        raise
    except orjson.JSONDecodeError as exc:
        return es_error_body(BadRequestError(f"msearch line is not valid JSON: {exc}"))
    except BaseException as exc:  # noqa: BLE001
        return es_error_body(exc)


async def _msearch(
    request: Request,
    default_index: str | None,
    service: SearchService,
    user: str | None,
    accept: str,
) -> ESResponse:
    try:
        check_params(request, set())
        raw = await request.body()
    except ShoprankError as exc:
        return error_response(exc, accept)
    lines = [ln for ln in raw.split(b"\n") if ln.strip()]
    try:
        if default_index is not None:
            check_index_name(default_index)
        if len(lines) % 2:
            raise BadRequestError(
                "msearch body must be header/body line pairs (NDJSON), got an odd line count"
            )
        check_msearch_items(len(lines) // 2, service.settings)
    except ShoprankError as exc:
        return error_response(exc, accept)

    def run_all() -> dict[str, Any]:
        with bounded(request_deadline(service.settings)):
            responses = [
                msearch_item(
                    service, lines[i], lines[i + 1], default_index=default_index, user=user
                )
                for i in range(0, len(lines), 2)
            ]
        took = sum(int(r.get("took", 0)) for r in responses)
        return {"took": took, "responses": responses}

    return await respond(run_all, accept)


@router.api_route("/_msearch", methods=["GET", "POST"])
async def msearch(
    request: Request, service: ServiceDep, user: UserDep, accept: AcceptDep
) -> ESResponse:
    return await _msearch(request, None, service, user, accept)


@router.api_route("/{index}/_msearch", methods=["GET", "POST"])
async def msearch_index(
    request: Request, index: str, service: ServiceDep, user: UserDep, accept: AcceptDep
) -> ESResponse:
    return await _msearch(request, index, service, user, accept)


@router.api_route("/{index}/_count", methods=["GET", "POST"])
async def count(request: Request, index: str, service: ServiceDep, accept: AcceptDep) -> ESResponse:
    try:
        params = check_params(request, {"q"})
        check_index_name(index)
        body = await json_body(request)
        if "q" in params:
            body = {"query": {"multi_match": {"query": params["q"]}}}
        check_search_body(body, service.settings)
    except ShoprankError as exc:
        return error_response(exc, accept)
    return await respond(
        lambda: {"count": service.backend.count(index, body), "_shards": dict(SHARDS)}, accept
    )
