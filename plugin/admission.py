"""Admission control: a bounded number of searches in flight per worker process.

A search that finds `limit` others already admitted (running, or waiting for a worker
thread) is refused at once with a 429 `es_rejected_execution_exception` and `Retry-After`,
as Elasticsearch refuses work past a full search queue, instead of queueing work nobody
will wait for. An admitted search is still dropped before it runs when its client has gone
(checked before it is handed to the thread pool) or when it waited past `max_queue_s`
(checked first thing on the worker thread).

With several worker processes on one port (`shoprank serve --workers N`), a connection
belongs to the worker that accepted it, and a client's keep-alive pool reuses the
connections that answered last: in a 2x overload step of the load benchmark one worker
answered all 1,220 searches (659 refusals) while the other answered none. So a busy worker
(`shed_connections`) closes the connections it answers (`Connection: close`) while its
running slots are all taken: the client's next request opens a new connection, which the
worker with a free event loop accepts first. An idle worker keeps its connections alive,
and so does a refusal (429).

`AdmissionMiddleware` (outermost, `shoprank.plugin.ops.install`) records when each request
arrived and names the worker process in `X-Shoprank-Worker`; `respond`
(`shoprank.plugin.routes.common`) asks `current()` for the request it runs under.
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import anyio

from shoprank.errors import ShoprankError, TooManyRequestsError
from shoprank.metrics import ADMISSION_REJECTED, INFLIGHT
from shoprank.settings import Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

WORKER_HEADER = b"x-shoprank-worker"
# Searches on the embedded backend are CPU-bound: a worker runs this many at once.
EMBEDDED_SEARCH_THREADS = 2


class ClientClosedError(ShoprankError):
    """The client disconnected before its search ran (nginx's 499: nobody reads it)."""

    status = 499
    es_type = "task_cancelled_exception"


class Admission:
    """The in-flight count of one worker (normally touched on its event loop only; locked
    all the same, for apps driven from several loops, as test clients do)."""

    def __init__(
        self,
        limit: int,
        max_queue_s: float,
        *,
        running: int = 0,
        shed_connections: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.max_queue_s = max_queue_s
        # Admitted searches that run at once (0: all of them); the others wait for one of
        # these threads, at most `max_queue_s`, instead of sharing the cores with them.
        self.running = running
        # One of several workers on a port: close the connections of a busy worker.
        self.shed_connections = shed_connections
        self.clock = clock
        self.inflight = 0
        self._lock = threading.Lock()
        self._limiters: weakref.WeakKeyDictionary[Any, anyio.CapacityLimiter] = (
            weakref.WeakKeyDictionary()
        )

    @classmethod
    def from_settings(cls, settings: Settings, *, shed_connections: bool = False) -> Admission:
        return cls(
            settings.max_inflight,
            settings.max_queue_ms / 1000.0,
            running=(
                settings.search_threads
                if settings.search_threads is not None
                else EMBEDDED_SEARCH_THREADS
                if settings.backend == "embedded"
                else 0
            ),
            shed_connections=shed_connections,
        )

    def limiter(self) -> anyio.CapacityLimiter | None:
        """The running-search slots of the calling event loop (None: unbounded); one per
        loop, since a limiter belongs to the loop it was made on."""
        if not self.running:
            return None
        loop = asyncio.get_running_loop()
        with self._lock:
            found = self._limiters.get(loop)
            if found is None:
                found = self._limiters[loop] = anyio.CapacityLimiter(self.running)
        return found

    def enter(self) -> TooManyRequestsError | None:
        """Admit one search, or the 429 to answer when `limit` are already in flight."""
        with self._lock:
            full = bool(self.limit) and self.inflight >= self.limit
            if not full:
                self.inflight += 1
        if full:
            ADMISSION_REJECTED.labels(reason="full").inc()
            return TooManyRequestsError(
                f"rejected execution: {self.limit} searches are in flight on this worker, "
                "the most it takes (SHOPRANK_MAX_INFLIGHT); retry later",
                retry_after_s=1,
            )
        INFLIGHT.inc()
        return None

    def busy(self) -> bool:
        """Whether a search arriving now would wait for a running slot, or be refused."""
        with self._lock:
            if self.running and self.inflight >= self.running:
                return True
            return bool(self.limit) and self.inflight >= self.limit

    def closes(self, status: int) -> bool:
        """Whether the connection of a response with `status` is to be closed now (see the
        module docstring): with `shed_connections`, an answer given while busy. Never a
        refusal's: a refused client retries later anyway, and reconnecting after every
        refusal cost both sides the CPU that overload lacks (at 4x overload it halved the
        goodput; `benchmarks/README.md`, "Connections of a busy worker")."""
        return self.shed_connections and status != 429 and self.busy()

    def leave(self) -> None:
        with self._lock:
            self.inflight -= 1
        INFLIGHT.dec()

    def expired(self, arrived: float) -> TooManyRequestsError | None:
        """The 429 for a search that waited past `max_queue_s` since `arrived`, else None."""
        waited = self.clock() - arrived
        if waited <= self.max_queue_s:
            return None
        ADMISSION_REJECTED.labels(reason="expired").inc()
        return TooManyRequestsError(
            f"rejected execution: the search waited {waited * 1000:.0f} ms for a worker "
            f"thread, longer than {self.max_queue_s * 1000:g} ms (SHOPRANK_MAX_QUEUE_MS); "
            "retry later",
            retry_after_s=max(1, math.ceil(self.max_queue_s)),
        )

    @staticmethod
    def client_closed() -> ClientClosedError:
        ADMISSION_REJECTED.labels(reason="disconnected").inc()
        return ClientClosedError("the client disconnected before the search ran")


@dataclass(frozen=True)
class Incoming:
    """The request a route runs under: its admission, its arrival, its connection."""

    admission: Admission
    arrived: float
    receive: Receive

    async def disconnected(self) -> bool:
        """Whether the client has gone, without waiting (its body is read by now)."""
        message: Message = {}
        with anyio.CancelScope() as scope:
            scope.cancel()
            message = await self.receive()
        return message.get("type") == "http.disconnect"


_incoming: ContextVar[Incoming | None] = ContextVar("shoprank_incoming", default=None)


def current() -> Incoming | None:
    """The request being served, when the app runs behind `AdmissionMiddleware`."""
    return _incoming.get()


class AdmissionMiddleware:
    """Outermost ASGI layer: arrival time and admission for `respond`, worker pid header."""

    def __init__(self, app: ASGIApp, *, admission: Admission) -> None:
        self.app = app
        self.admission = admission
        self.worker = str(os.getpid()).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        gate = self.admission
        token = _incoming.set(Incoming(gate, gate.clock(), receive))
        worker = self.worker

        async def named(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", ()), (WORKER_HEADER, worker)]
                if gate.closes(int(message["status"])):
                    headers.append((b"connection", b"close"))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, named)
        finally:
            _incoming.reset(token)
