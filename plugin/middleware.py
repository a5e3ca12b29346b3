"""The ASGI guard in front of every route: request id and JSON access log, API-key scopes,
per-client rate limit, body-size limit, and the request metrics.

Order per request: message framing (both `Content-Length` and `Transfer-Encoding`, or two
different lengths, is a 400: the shape of request smuggling) → classify the route →
authenticate (a valid key names the rate-limit bucket, anything else the client address) →
rate limit (429 + `Retry-After`) → scope check (401 / 403) → body size (413) → the app.
Every refusal is an ES error body.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from shoprank import logs
from shoprank.errors import (
    BadRequestError,
    PayloadTooLargeError,
    ShoprankError,
    TooManyRequestsError,
    es_error_body,
)
from shoprank.metrics import REQUEST_LATENCY, REQUESTS
from shoprank.plugin.limits import TokenBucketLimiter
from shoprank.plugin.security import PUBLIC, authenticate, authorize, classify
from shoprank.settings import Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

access_log = logging.getLogger("shoprank.access")
BULK_ROUTES = ("events", "products", "msearch")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def check_framing(scope: Scope) -> None:
    """Refuse a request whose body length is ambiguous. h11 lets `Transfer-Encoding` win
    over `Content-Length`; a proxy in front may pick the other, so both together (or two
    different lengths) is a 400, as RFC 9112 allows and Elasticsearch answers."""
    lengths: set[bytes] = set()
    chunked = False
    for key, value in scope.get("headers", ()):
        name = key.lower()
        if name == b"content-length":
            lengths.add(value.strip())
        elif name == b"transfer-encoding":
            chunked = True
    if lengths and chunked:
        raise BadRequestError(
            "a request must not carry both Content-Length and Transfer-Encoding; send one",
            es_type="illegal_argument_exception",
        )
    if len(lengths) > 1:
        raise BadRequestError(
            "the request carries conflicting Content-Length headers; send one",
            es_type="illegal_argument_exception",
        )


async def _error(send: Send, exc: ShoprankError, request_id: str) -> int:
    status = exc.status
    headers = [
        (b"content-type", b"application/json"),
        (b"x-elastic-product", b"Elasticsearch"),
        (b"x-request-id", request_id.encode()),
    ]
    if isinstance(exc, TooManyRequestsError):
        headers.append((b"retry-after", str(exc.retry_after_s).encode()))
    if status == 401:
        headers.append((b"www-authenticate", b'ApiKey realm="shoprank"'))
    body = orjson.dumps(es_error_body(exc))
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    return status


async def _buffer_body(receive: Receive, limit: int, declared: str | None) -> Receive:
    """Read the body (refusing past `limit` bytes) and hand it on as one message."""
    too_big = PayloadTooLargeError(
        f"request body is larger than {limit} bytes; send less per request "
        "(SHOPRANK_MAX_BODY_BYTES, or SHOPRANK_MAX_EVENT_BODY_BYTES for events, products "
        "and _msearch)"
    )
    if declared and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise too_big
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return receive  # client went away; let the app see it
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class GuardMiddleware:
    """Wraps the ASGI app; see the module docstring."""

    def __init__(
        self, app: ASGIApp, *, settings: Settings, limiter: TokenBucketLimiter | None
    ) -> None:
        self.app = app
        self.settings = settings
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method = str(scope.get("method", "GET"))
        path = str(scope.get("path", "/"))
        route = classify(method, path)
        request_id = (_header(scope, b"x-request-id") or uuid.uuid4().hex)[:64]
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        with logs.request_context(request_id=request_id) as ctx:
            try:
                try:
                    receive = await self._guard(scope, receive, route)
                except ShoprankError as exc:
                    status = await _error(send, exc, request_id)
                    return
                await self.app(scope, receive, send_wrapper)
            finally:
                elapsed = time.perf_counter() - started
                REQUESTS.labels(route=route.name, method=method, status=str(status)).inc()
                REQUEST_LATENCY.labels(route=route.name).observe(elapsed)
                if access_log.isEnabledFor(logging.INFO):
                    access_log.info(
                        "%s %s %d",
                        method,
                        path,
                        status,
                        extra={
                            "route": route.name,
                            "status": status,
                            "duration_ms": round(elapsed * 1000, 3),
                            "client": (scope.get("client") or ("-",))[0],
                            **({"query_id": ctx["query_id"]} if "query_id" in ctx else {}),
                        },
                    )

    async def _guard(self, scope: Scope, receive: Receive, route: Any) -> Receive:
        settings = self.settings
        check_framing(scope)
        identity = authenticate(_header(scope, b"authorization"), settings)
        if self.limiter is not None and route.scope != PUBLIC:
            client = (
                f"key:{identity.key_id}"
                if identity.key_id
                else f"ip:{(scope.get('client') or ('unknown',))[0]}"
            )
            self.limiter.check(client)
        # Script and rewrite paths need an admin key; past that the proxy's read-only
        # allowlist (shoprank.plugin.proxy) refuses them.
        authorize(route, identity, settings, client_host=(scope.get("client") or (None,))[0])
        if scope.get("method") not in ("HEAD", "OPTIONS"):
            limit = (
                max(settings.max_event_body_bytes, settings.max_body_bytes)
                if route.name in BULK_ROUTES
                else settings.max_body_bytes
            )
            return await _buffer_body(receive, limit, _header(scope, b"content-length"))
        return receive
