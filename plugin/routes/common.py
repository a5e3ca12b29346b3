"""What every route of the drop-in endpoint shares: the ES-shaped JSON response, request
parsing helpers, the dependencies (`ServiceDep`, `SettingsDep`, `UserDep`, …) and
`respond`, which runs the synchronous work in the thread pool so the event loop keeps
answering (health, metrics) while a long search runs, under admission control
(`shoprank.plugin.admission`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
import orjson
from fastapi import Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from shoprank.errors import BadRequestError, TooManyRequestsError, es_error_body, http_status
from shoprank.plugin import admission
from shoprank.plugin.search import SearchService
from shoprank.settings import Settings

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


@dataclass(frozen=True)
class Cluster:
    """What `GET /` and the health route say about this endpoint."""

    name: str
    health: Callable[[], Any] | None = None

    @property
    def uuid(self) -> str:
        return uuid.uuid5(uuid.NAMESPACE_URL, f"shoprank:{self.name}").hex[:22]


# -- dependencies ----------------------------------------------------------------------------


def get_service(request: Request) -> SearchService:
    service: SearchService = request.app.state.service
    return service


def get_settings(service: Annotated[SearchService, Depends(get_service)]) -> Settings:
    return service.settings


def get_cluster(request: Request) -> Cluster:
    cluster: Cluster = request.app.state.cluster
    return cluster


def get_user(request: Request) -> str | None:
    return request.headers.get("x-shoprank-user")


def get_session(request: Request) -> str | None:
    return request.headers.get("x-shoprank-session")


def get_accept(request: Request) -> str:
    return request.headers.get("accept", "")


ServiceDep = Annotated[SearchService, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ClusterDep = Annotated[Cluster, Depends(get_cluster)]
UserDep = Annotated[str | None, Depends(get_user)]
SessionDep = Annotated[str | None, Depends(get_session)]
AcceptDep = Annotated[str, Depends(get_accept)]


# -- requests and responses ------------------------------------------------------------------


def error_response(exc: BaseException, accept: str = "") -> ESResponse:
    response = ESResponse(es_error_body(exc), http_status(exc), accept=accept)
    if isinstance(exc, TooManyRequestsError):
        response.headers["Retry-After"] = str(exc.retry_after_s)
    return response


async def json_body(request: Request) -> dict[str, Any] | None:
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


def check_params(request: Request, allowed: set[str]) -> dict[str, str]:
    params = dict(request.query_params)
    unknown = set(params) - allowed - HARMLESS_PARAMS
    if unknown:
        raise BadRequestError(
            f"request [{request.url.path}] contains unrecognized parameter(s): "
            f"[{', '.join(sorted(unknown))}]",
            es_type="illegal_argument_exception",
        )
    return params


def answer(fn: Callable[[], Any], accept: str, status: int = 200) -> ESResponse:
    """`fn()`'s result as an ES response, or its failure in the ES error shape."""
    try:
        result = fn()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - tantivy panics are BaseException
        return error_response(exc, accept)
    return ESResponse(result, status, accept=accept)


async def respond(fn: Callable[[], Any], accept: str, status: int = 200) -> ESResponse:
    """`answer(fn)` on a worker thread: searches, counts and product updates are blocking
    calls, and the event loop must stay free for every other request meanwhile.

    Admitted only while fewer than `SHOPRANK_MAX_INFLIGHT` are in flight on this worker
    (else a 429 at once); not run at all when the client has gone before it is dispatched
    or when it waited past `SHOPRANK_MAX_QUEUE_MS` for a thread."""
    incoming = admission.current()
    if incoming is None:  # an app without the admission layer (embedded in another app)
        response: ESResponse = await run_in_threadpool(answer, fn, accept, status)
        return response
    gate = incoming.admission
    refused = gate.enter()
    if refused is not None:
        return error_response(refused, accept)
    try:
        if await incoming.disconnected():
            return error_response(gate.client_closed(), accept)

        def job() -> ESResponse:
            late = gate.expired(incoming.arrived)
            return error_response(late, accept) if late else answer(fn, accept, status)

        # Past `SHOPRANK_SEARCH_THREADS` running, it waits here (on the loop, costing
        # nothing) for a thread; `job` drops it if that took longer than the queue allows.
        response = await anyio.to_thread.run_sync(job, limiter=gate.limiter())
        return response
    finally:
        gate.leave()
