"""HTTP routes for behaviour events and user profiles, mounted on the shoprank app.

    POST   /_shoprank/events                  one event, a JSON array, or NDJSON
    GET    /_shoprank/users/{user_id}/profile the user's profile, decayed to now
    DELETE /_shoprank/users/{user_id}         forget the user: events and profiles

Mount with `app.include_router(make_events_router(settings))`. Errors use the ES error
shape; a body over `SHOPRANK_MAX_EVENT_BODY_BYTES` is a 413. When the log is down the POST
answers 503 (the client retries), or with `SHOPRANK_EVENT_SPOOL_DIR` keeps the events on disk
and answers 200 with `spooled` (they are replayed when the log is back). On a full disk it
answers 507 and nothing of the request is stored. Events the log has stored are never
answered with an error (a retry would store them twice).
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from shoprank.errors import (
    BackendUnavailableError,
    BadRequestError,
    DocumentNotFoundError,
    ShoprankError,
    es_error_body,
    http_status,
    is_disk_full,
)
from shoprank.events.embedded import disk_full
from shoprank.events.model import Event, PayloadTooLargeError, parse_events
from shoprank.events.service import EventService
from shoprank.metrics import EVENTS
from shoprank.settings import Settings
from shoprank.spool import EventSpool, prepare, start_replayer


class JSONResponse(Response):
    media_type = "application/json"

    def __init__(self, content: Any, status_code: int = 200) -> None:
        super().__init__(orjson.dumps(content), status_code=status_code)
        self.headers["X-Elastic-Product"] = "Elasticsearch"


def _error(exc: BaseException) -> JSONResponse:
    return JSONResponse(es_error_body(exc), http_status(exc))


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refusing (413) past `limit` bytes without buffering more than that."""
    declared = request.headers.get("content-length")
    too_big = PayloadTooLargeError(
        f"request body is larger than {limit} bytes (SHOPRANK_MAX_EVENT_BODY_BYTES): "
        "send the events in smaller batches"
    )
    if declared and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise too_big
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def make_events_router(settings: Settings, *, service: EventService | None = None) -> APIRouter:
    """The events/profile routes; `service` defaults to the wired one for `settings`."""
    router = APIRouter()
    if service is None:
        from shoprank.wiring import event_service

        service = event_service(settings)
    events = service

    spool = (
        EventSpool(settings.event_spool_dir, max_bytes=settings.event_spool_max_bytes)
        if settings.event_spool_dir
        else None
    )
    if spool is not None and spool.files():
        start_replayer(spool, events)  # left over from a previous run

    def _spool(parsed: list[Event]) -> dict[str, Any]:
        assert spool is not None
        kept, too_old = prepare(events, parsed, now=time.time())
        # Positions of too-old events are lost here; they are reported as a count.
        errors = (
            [{"index": -1, "reason": f"{too_old} events older than the retention period"}]
            if too_old
            else []
        )
        spooled = spool.put(kept)
        EVENTS.labels(outcome="spooled").inc(spooled)
        start_replayer(spool, events)
        return {"accepted": spooled, "duplicates": 0, "errors": errors, "spooled": spooled}

    def _unavailable(exc: Exception) -> ShoprankError:
        return BackendUnavailableError(
            f"the event log or profile store is unavailable ({type(exc).__name__}); retry"
        )

    @router.post("/_shoprank/events")
    async def post_events(request: Request) -> JSONResponse:
        started = time.perf_counter()
        try:
            raw = await _read_body(request, settings.max_event_body_bytes)
            parsed, errors = await run_in_threadpool(
                parse_events,
                raw,
                request.headers.get("content-type"),
                max_events=settings.max_events_per_request,
                now=time.time(),
            )
        except ShoprankError as exc:
            return _error(exc)
        try:
            result = await run_in_threadpool(events.ingest, parsed)
        except ShoprankError as exc:  # e.g. a full disk (507): nothing was stored
            EVENTS.labels(outcome="unavailable").inc(len(parsed))
            return _error(exc)
        except Exception as exc:  # noqa: BLE001 - Redis or disk failure: the client retries
            if is_disk_full(exc):
                EVENTS.labels(outcome="unavailable").inc(len(parsed))
                return _error(disk_full())
            if spool is None:
                EVENTS.labels(outcome="unavailable").inc(len(parsed))
                return _error(_unavailable(exc))
            try:  # keep them on disk; the replayer appends them when the log is back
                result = await run_in_threadpool(_spool, parsed)
            except ShoprankError as spool_exc:
                EVENTS.labels(outcome="unavailable").inc(len(parsed))
                return _error(spool_exc)
        errors = sorted(errors + result["errors"], key=lambda e: int(e["index"]))
        body = {
            "took": int((time.perf_counter() - started) * 1000),
            "accepted": result["accepted"],
            "duplicates": result["duplicates"],
            "rejected": len(errors),
            "errors": errors,
        }
        if "spooled" in result:
            body["spooled"] = result["spooled"]
        EVENTS.labels(outcome="accepted").inc(result["accepted"])
        EVENTS.labels(outcome="duplicate").inc(result["duplicates"])
        EVENTS.labels(outcome="rejected").inc(len(errors))
        if errors and not result["accepted"] and not result["duplicates"]:
            reason = errors[0]["reason"] if len(errors) == 1 else f"{len(errors)} invalid events"
            return _error(
                BadRequestError(
                    f"no valid event: {reason}", es_type="illegal_argument_exception", errors=errors
                )
            )
        return JSONResponse(body)

    @router.get("/_shoprank/users/{user_id}/profile")
    async def get_profile(user_id: str) -> JSONResponse:
        try:
            profile = await run_in_threadpool(events.profile, user_id)
        except Exception as exc:  # noqa: BLE001
            return _error(_unavailable(exc))
        if profile is None:
            return _error(DocumentNotFoundError("no profile for this user"))
        return JSONResponse(profile)

    @router.delete("/_shoprank/users/{user_id}")
    async def forget_user(user_id: str) -> JSONResponse:
        try:
            result = await run_in_threadpool(events.forget, user_id)
        except Exception as exc:  # noqa: BLE001
            return _error(_unavailable(exc))
        return JSONResponse({"acknowledged": True, **result})

    return router
