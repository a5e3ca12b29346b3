"""Operations routes and the hardening of the app: metrics, readiness, ES-shaped routing errors.

    GET /_shoprank/metrics   Prometheus text (requests, stage latencies, degradations,
                             model version, queue depths, events by outcome)
    GET /_shoprank/ready     200 `ready` / `degraded` (Redis down: searches still served),
                             503 `unavailable` when the search backend cannot answer

`install(app, service)` adds these routes, the guard middleware and, outermost, admission
control (`shoprank.plugin.admission`) to the app (unmatched routes and their 404/405 are the
proxy's, `shoprank.plugin.proxy`).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from shoprank.errors import BadRequestError, es_error_body
from shoprank.metrics import QUEUE_DEPTH, SEARCH_LOG_LOST, render
from shoprank.plugin.admission import Admission, AdmissionMiddleware
from shoprank.plugin.limits import TokenBucketLimiter, make_limiter
from shoprank.plugin.middleware import GuardMiddleware
from shoprank.plugin.openapi import shoprank_openapi
from shoprank.plugin.shared_limits import make_shared_limiter
from shoprank.settings import Settings
from shoprank.spool import EventSpool

if TYPE_CHECKING:
    from shoprank.plugin.search import SearchService

log = logging.getLogger("shoprank.ops")
STREAM = "shoprank:events"
GROUP = "folders"


def _json(content: Any, status: int = 200) -> Response:
    response = Response(orjson.dumps(content), status_code=status, media_type="application/json")
    response.headers["X-Elastic-Product"] = "Elasticsearch"
    return response


def _redis(settings: Settings) -> Any:
    import redis

    assert settings.redis_url
    return redis.Redis.from_url(settings.redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)


def check_redis(settings: Settings, client: Any = None) -> dict[str, Any]:
    if not settings.redis_url:
        return {"ok": True, "configured": False}
    started = time.perf_counter()
    try:
        (client or _redis(settings)).ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "down"
        return {"ok": False, "reason": f"{type(exc).__name__}: {exc}"[:200]}
    return {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 3)}


def stream_lag(client: Any) -> int:
    """Events in the Redis stream not yet folded (delivered-but-unacked included)."""
    from shoprank.events.redis_log import GROUP as FOLD_GROUP
    from shoprank.events.redis_log import STREAM as EVENTS_STREAM

    for group in client.xinfo_groups(EVENTS_STREAM):
        name = group.get("name")
        if (name.decode() if isinstance(name, bytes) else name) == FOLD_GROUP:
            return int(group.get("lag") or 0) + int(group.get("pending") or 0)
    return int(client.xlen(EVENTS_STREAM))


def install(app: FastAPI, service: SearchService, *, one_of_workers: bool = False) -> None:
    """Guard and admission middleware, ES-shaped 422, and the metrics and readiness routes;
    `one_of_workers`: one of several worker processes on one port (rate-limit buckets
    shared by every worker of the data directory; busy connections closed)."""
    settings: Settings = service.settings
    spool = (
        EventSpool(settings.event_spool_dir, max_bytes=settings.event_spool_max_bytes)
        if settings.event_spool_dir
        else None
    )
    redis_client: list[Any] = []

    def client() -> Any:
        if not redis_client:
            redis_client.append(_redis(settings))
        return redis_client[0]

    limiter: TokenBucketLimiter | None = (
        make_shared_limiter(settings) if one_of_workers else make_limiter(settings)
    )
    app.add_middleware(GuardMiddleware, settings=settings, limiter=limiter)
    # Added last, so outermost: every request's arrival is stamped before anything else.
    app.state.admission = Admission.from_settings(
        settings, shed_connections=one_of_workers and settings.shed_busy_connections
    )
    app.add_middleware(AdmissionMiddleware, admission=app.state.admission)
    app.openapi = lambda: shoprank_openapi(app)  # type: ignore[method-assign]

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        error = BadRequestError(
            f"invalid request: {first.get('msg', 'validation failed')} at {first.get('loc')}",
            es_type="illegal_argument_exception",
        )
        return _json(es_error_body(error), 400)

    def queue_depths() -> None:
        logger = service.search_logger
        pending, failed, dropped = (
            (logger.pending, logger.failed, logger.dropped) if logger is not None else (0, 0, 0)
        )
        QUEUE_DEPTH.labels(queue="search_log").set(float(pending))
        SEARCH_LOG_LOST.labels(reason="failed").set(float(failed))
        SEARCH_LOG_LOST.labels(reason="dropped").set(float(dropped))
        if spool is not None:
            QUEUE_DEPTH.labels(queue="event_spool").set(spool.depth())
        if settings.redis_url:
            try:
                lag = stream_lag(client())
            except Exception:  # noqa: BLE001 - Redis down: say so in the metric
                lag = -1
            QUEUE_DEPTH.labels(queue="event_stream").set(lag)

    @app.get("/_shoprank/metrics", tags=["operations"])
    async def metrics() -> Response:
        """Prometheus metrics of this process."""
        await run_in_threadpool(queue_depths)
        body, content_type = render()
        return Response(body, media_type=content_type)

    @app.get("/_shoprank/ready", tags=["operations"])
    async def ready() -> Response:
        """Readiness: checks the search backend and Redis (and the event spool)."""

        def checks() -> dict[str, Any]:
            out: dict[str, Any] = {}
            try:
                service.backend.info()
                out["backend"] = {"ok": True, "name": service.backend.name}
            except Exception as exc:  # noqa: BLE001
                out["backend"] = {"ok": False, "reason": f"{type(exc).__name__}: {exc}"[:200]}
            out["redis"] = check_redis(settings, client() if settings.redis_url else None)
            if spool is not None:
                out["event_spool"] = {"ok": True, "events": spool.depth()}
            return out

        result = await run_in_threadpool(checks)
        if not result["backend"]["ok"]:
            status, code = "unavailable", 503
        elif not result["redis"]["ok"]:
            status, code = "degraded", 200
        else:
            status, code = "ready", 200
        if status == "degraded":
            result["redis"]["impact"] = "searches are served unpersonalised; events are " + (
                "spooled to disk" if spool is not None else "refused with 503"
            )
        return _json({"status": status, "checks": result}, code)
