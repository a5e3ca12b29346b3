"""The rest of the cluster's API behind shoprank's drop-in endpoint, read-only and opt-in.

shoprank answers the search API itself (`_search`, `_msearch`, `_count`, `_doc`). Any other
request is forwarded unchanged to the cluster only when it is on `SHOPRANK_PROXY_ALLOWLIST`
(entries `METHOD[,METHOD] /path`, `*` = one path segment) and refused otherwise with an ES
error body (403), so a public search endpoint never exposes index deletion or writes. On the
embedded backend there is no cluster and nothing is forwarded.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from shoprank.errors import ShoprankError, es_error_body
from shoprank.plugin.allowlist import Allowlist
from shoprank.plugin.backends.protocol import Forwarding, SearchBackend


class ProxyRefusedError(ShoprankError):
    """A request shoprank neither handles nor may forward."""

    status = 403
    es_type = "security_exception"


class NoHandlerError(ShoprankError):
    status = 405
    es_type = "method_not_allowed_exception"


def _json(payload: Any, status: int) -> Response:
    if isinstance(payload, str | bytes):
        response = Response(payload, status_code=status, media_type="text/plain")
    else:
        response = Response(
            orjson.dumps(payload), status_code=status, media_type="application/json"
        )
    response.headers["X-Elastic-Product"] = "Elasticsearch"
    return response


def _refusal(exc: ShoprankError) -> Response:
    return _json(es_error_body(exc), exc.status)


def install_proxy(app: FastAPI, backend: SearchBackend, allowlist: list[str]) -> None:
    """Serve requests no route matches: forward allowlisted ones (a `Forwarding` backend),
    refuse the rest. Routes added to `app` later still take precedence (this is the
    router's fallback)."""
    rules = Allowlist(allowlist)
    forward = backend.forward if isinstance(backend, Forwarding) else None

    async def handle(request: Request) -> Response:
        method, path = request.method.upper(), request.url.path
        where = f"[{method} {path}]"
        if forward is None:
            return _refusal(
                NoHandlerError(
                    f"{where} is not part of shoprank's search API and the "
                    f"{backend.name} backend has no cluster to forward "
                    "it to; index writes go through `shoprank index ...`"
                )
            )
        if not rules.allows(method, path):
            return _refusal(
                ProxyRefusedError(
                    f"{where} is not on shoprank's read-only proxy allowlist "
                    "(SHOPRANK_PROXY_ALLOWLIST); send writes and admin calls to the cluster "
                    "directly"
                )
            )
        body = await request.body()
        try:
            status, payload = await run_in_threadpool(
                forward, method, path, params=dict(request.query_params), body=body or None
            )
        except ShoprankError as exc:
            return _refusal(exc)
        return _json(payload if method != "HEAD" else "", status)

    async def fallback(scope: Scope, receive: Receive, send: Send) -> None:
        response = await handle(Request(scope, receive))
        await response(scope, receive, send)

    app.router.default = fallback

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # A path shoprank serves with another method (`DELETE /{index}/_doc/1`).
        if exc.status_code == 405:
            return await handle(request)
        error = ShoprankError(str(exc.detail))
        error.status = exc.status_code
        return _refusal(error)
