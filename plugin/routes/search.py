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
from shoprank.plugin.search import SearchService
from shoprank.plugin.shapes import SHARDS

SEARCH_PARAMS = {"size", "from", "q", "_source", "track_total_hits", "sort"}

# Documented by Elasticsearch itself: left out of shoprank's OpenAPI document.
router = APIRouter(include_in_schema=False)


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


def hits_as_int(response: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    if params.get("rest_total_hits_as_int", "").lower() == "true":
        total = response.get("hits", {}).get("total")
        if isinstance(total, dict):
            response["hits"]["total"] = total["value"]
    return response


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
        body = apply_search_params(await json_body(request), params)
    except ShoprankError as exc:
        return error_response(exc, accept)
    return await respond(
        lambda: hits_as_int(
            guarded_search(service, index, body, user_id=user, session_id=session), params
        ),
        accept,
    )


@router.api_route("/_search", methods=["GET", "POST"])
async def search_no_index(accept: AcceptDep) -> ESResponse:
    return error_response(
        BadRequestError("shoprank searches one index or alias at a time: use /{index}/_search"),
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
