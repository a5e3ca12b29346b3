"""Scroll, point in time, `_mget`, `_mapping` and `_field_caps`.

The embedded backend answers them itself (`PointInTime`); a cluster backend passes them
through unchanged (`Forwarding`) — `_mget`, `_mapping` and `_field_caps` only while they
are on `SHOPRANK_PROXY_ALLOWLIST`, as the proxy would.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request

from shoprank.errors import BadRequestError, ShoprankError
from shoprank.plugin.allowlist import Allowlist
from shoprank.plugin.backends.protocol import Forwarding, PointInTime
from shoprank.plugin.bounds import check_index_name
from shoprank.plugin.routes.cluster import DOC_PARAMS, source_spec
from shoprank.plugin.routes.common import (
    AcceptDep,
    ESResponse,
    ServiceDep,
    check_params,
    error_response,
    json_body,
    respond,
)
from shoprank.plugin.search import SearchService

router = APIRouter(include_in_schema=False)
SCROLL_PARAMS = {"scroll", "scroll_id", "rest_total_hits_as_int"}


class NotOnAllowlistError(ShoprankError):
    status = 403
    es_type = "security_exception"


def hits_as_int(response: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    if params.get("rest_total_hits_as_int", "").lower() == "true":
        total = response.get("hits", {}).get("total")
        if isinstance(total, dict):
            response["hits"]["total"] = total["value"]
    return response


async def forwarded(
    request: Request, service: SearchService, accept: str, *, allowlisted: bool = False
) -> ESResponse:
    """The request as the cluster answers it, unchanged."""
    backend = service.backend
    assert isinstance(backend, Forwarding)
    method, path = request.method.upper(), request.url.path
    if allowlisted and not Allowlist(service.settings.proxy_allowlist).allows(method, path):
        return error_response(
            NotOnAllowlistError(
                f"[{method} {path}] is not on shoprank's read-only proxy allowlist "
                "(SHOPRANK_PROXY_ALLOWLIST)"
            ),
            accept,
        )
    body = await request.body()
    params = dict(request.query_params)

    def call() -> Any:
        status, payload = backend.forward(method, path, params=params, body=body or None)
        return status, payload

    try:
        from starlette.concurrency import run_in_threadpool

        status, payload = await run_in_threadpool(call)
    except ShoprankError as exc:
        return error_response(exc, accept)
    return ESResponse(payload, status, accept=accept)


def _paging(service: SearchService) -> PointInTime:
    backend = service.backend
    if not isinstance(backend, PointInTime):
        raise BadRequestError(f"the {backend.name} backend does not support this API")
    return backend


async def _body(request: Request) -> dict[str, Any]:
    return await json_body(request) or {}


# -- scroll ----------------------------------------------------------------------------------


@router.api_route("/_search/scroll", methods=["GET", "POST", "DELETE"])
@router.api_route("/_search/scroll/{scroll_id}", methods=["GET", "POST", "DELETE"])
async def scroll(
    request: Request, service: ServiceDep, accept: AcceptDep, scroll_id: str | None = None
) -> ESResponse:
    if isinstance(service.backend, Forwarding):
        return await forwarded(request, service, accept)
    try:
        params = check_params(request, SCROLL_PARAMS)
        body = await _body(request)
        backend = _paging(service)
        ids: Any = body.get("scroll_id", params.get("scroll_id", scroll_id))
        if ids is None:
            raise BadRequestError(
                "scrollId is missing", es_type="action_request_validation_exception"
            )
    except ShoprankError as exc:
        return error_response(exc, accept)
    if request.method.upper() == "DELETE":
        cleared = await respond(lambda: backend.clear_scroll(ids), accept)
        if ids not in ("_all", ["_all"]) and _freed_none(cleared):
            cleared.status_code = 404  # ES answers unknown or expired ids with 404
        return cleared
    keep = body.get("scroll", params.get("scroll"))
    if isinstance(ids, list):
        return error_response(BadRequestError("[scroll_id] must be one id"), accept)
    return await respond(lambda: hits_as_int(backend.scroll(str(ids), keep), params), accept)


# -- point in time ---------------------------------------------------------------------------


@router.post("/{index}/_pit")
async def open_pit(
    request: Request, index: str, service: ServiceDep, accept: AcceptDep
) -> ESResponse:
    if isinstance(service.backend, Forwarding):
        return await forwarded(request, service, accept)
    try:
        params = check_params(request, {"keep_alive", "allow_partial_search_results"})
        check_index_name(index)
        if "keep_alive" not in params:
            raise BadRequestError(
                "[keep_alive] is required", es_type="action_request_validation_exception"
            )
        backend = _paging(service)
    except ShoprankError as exc:
        return error_response(exc, accept)
    return await respond(lambda: backend.open_pit(index, params["keep_alive"]), accept)


@router.delete("/_pit")
async def close_pit(request: Request, service: ServiceDep, accept: AcceptDep) -> ESResponse:
    if isinstance(service.backend, Forwarding):
        return await forwarded(request, service, accept)
    try:
        check_params(request, set())
        body = await _body(request)
        backend = _paging(service)
        if not isinstance(body.get("id"), str):
            raise BadRequestError("[id] is required", es_type="action_request_validation_exception")
    except ShoprankError as exc:
        return error_response(exc, accept)

    def close() -> dict[str, Any]:
        return backend.close_pit(str(body["id"]))

    result = await respond(close, accept)
    if _freed_none(result):
        result.status_code = 404  # ES answers an unknown or expired id with 404
    return result


def _freed_none(response: ESResponse) -> bool:
    return response.status_code == 200 and orjson.loads(response.body).get("num_freed") == 0


@router.post("/{index}/_search/point_in_time")
async def open_pit_opensearch(
    request: Request, index: str, service: ServiceDep, accept: AcceptDep
) -> ESResponse:
    """OpenSearch's form of opening a point in time (`opensearch-py` `create_pit`)."""
    if isinstance(service.backend, Forwarding):
        return await forwarded(request, service, accept)
    try:
        params = check_params(
            request, {"keep_alive", "allow_partial_pit_creation", "allow_partial_search_results"}
        )
        check_index_name(index)
        backend = _paging(service)
    except ShoprankError as exc:
        return error_response(exc, accept)

    def create() -> dict[str, Any]:
        opened = backend.open_pit(index, params.get("keep_alive", "1m"))
        return {"pit_id": opened["id"], "_shards": opened["_shards"], "creation_time": 0}

    return await respond(create, accept)


@router.delete("/_search/point_in_time")
@router.delete("/_search/point_in_time/_all")
async def close_pit_opensearch(
    request: Request, service: ServiceDep, accept: AcceptDep
) -> ESResponse:
    """OpenSearch's form of closing points in time (`pit_id`: a list of ids)."""
    if isinstance(service.backend, Forwarding):
        return await forwarded(request, service, accept)
    try:
        check_params(request, set())
        body = await _body(request)
        backend = _paging(service)
        ids = body.get("pit_id", [])
        ids = ids if isinstance(ids, list) else [ids]
    except ShoprankError as exc:
        return error_response(exc, accept)

    def close() -> dict[str, Any]:
        pits = []
        for pit_id in ids:
            freed = backend.close_pit(str(pit_id))["num_freed"]
            pits.append({"pit_id": pit_id, "successful": bool(freed)})
        return {"pits": pits}

    return await respond(close, accept)


# -- documents and mappings ------------------------------------------------------------------


@router.api_route("/_mget", methods=["GET", "POST"])
@router.api_route("/{index}/_mget", methods=["GET", "POST"])
async def mget(
    request: Request, service: ServiceDep, accept: AcceptDep, index: str | None = None
) -> ESResponse:
    if isinstance(service.backend, Forwarding):
        return await forwarded(request, service, accept, allowlisted=True)
    try:
        params = check_params(request, DOC_PARAMS)
        if index is not None:
            check_index_name(index)
        body = await _body(request)
        backend = _paging(service)
    except ShoprankError as exc:
        return error_response(exc, accept)
    return await respond(lambda: backend.mget_docs(index, body, source_spec(params)), accept)


@router.get("/{index}/_mapping")
async def mapping(
    request: Request, index: str, service: ServiceDep, accept: AcceptDep
) -> ESResponse:
    if isinstance(service.backend, Forwarding):
        return await forwarded(request, service, accept, allowlisted=True)
    try:
        check_params(request, {"master_timeout", "local"})
        check_index_name(index)
        backend = _paging(service)
    except ShoprankError as exc:
        return error_response(exc, accept)
    return await respond(lambda: backend.mapping(index), accept)


@router.api_route("/{index}/_field_caps", methods=["GET", "POST"])
async def field_caps(
    request: Request, index: str, service: ServiceDep, accept: AcceptDep
) -> ESResponse:
    if isinstance(service.backend, Forwarding):
        return await forwarded(request, service, accept, allowlisted=True)
    try:
        params = check_params(request, {"fields", "include_unmapped", "filters", "types"})
        check_index_name(index)
        body = await _body(request)
        unknown = set(body) - {"fields"}
        if unknown:
            raise BadRequestError(
                f"[_field_caps] body option(s) {sorted(unknown)} are not supported"
            )
        fields = body.get("fields", params.get("fields"))
        if isinstance(fields, list):
            fields = ",".join(str(f) for f in fields)
        if not fields:
            raise BadRequestError(
                "specified fields can't be empty", es_type="illegal_argument_exception"
            )
        backend = _paging(service)
    except ShoprankError as exc:
        return error_response(exc, accept)
    return await respond(lambda: backend.field_caps(index, str(fields)), accept)
