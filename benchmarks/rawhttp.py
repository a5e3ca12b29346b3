"""A lean HTTP/1.1 client for open-loop load on loopback: keep-alive connections over raw
asyncio streams, request bytes written in one call, responses read by `Content-Length`.

The load generator shares the machine's cores with the server it measures; a full client
library (httpx: request/response models, header normalisation, pool bookkeeping) spends
CPU per request that the server then lacks, and at overload rates the generator itself
becomes the bottleneck. This client does the least a correct HTTP/1.1 exchange needs, so
more of the machine is the server's. It speaks only what `shoprank serve` answers: a
status line, headers with `content-length` (no chunked bodies), keep-alive.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson


class RawHTTPError(Exception):
    """A connection that failed, closed early or answered something unreadable."""


class _Unanswered(Exception):
    """The connection failed before the server's answer began."""


class PoolTimeout(RawHTTPError):
    """No connection became free (nor could one be opened) in time."""


@dataclass
class RawResponse:
    status_code: int
    content: bytes
    # The answering worker process (`X-Shoprank-Worker`), when the server names it.
    worker: str | None = None

    def json(self) -> Any:
        return orjson.loads(self.content)


class RawClient:
    """`await client.post(path, json=...)` over at most `max_connections` keep-alive
    connections to one host; a request waits for a free connection (that wait is part of
    its latency, as a real client's would be)."""

    def __init__(self, base_url: str, *, max_connections: int = 200, timeout: float = 30) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.timeout = timeout
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._slots = asyncio.Semaphore(max_connections)
        self._host_header = f"{self.host}:{self.port}".encode()

    async def __aenter__(self) -> RawClient:
        return self

    async def __aexit__(self, *_: Any) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()

    async def post(self, path: str, *, json: Any) -> RawResponse:
        body = orjson.dumps(json)
        head = (
            b"POST " + path.encode() + b" HTTP/1.1\r\nhost: " + self._host_header
            + b"\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\n\r\n"
        )  # fmt: skip
        try:
            await asyncio.wait_for(self._slots.acquire(), self.timeout)
        except TimeoutError:
            raise PoolTimeout("no free connection") from None
        try:
            return await asyncio.wait_for(self._exchange(head + body), self.timeout)
        except TimeoutError:
            raise RawHTTPError("read timeout") from None
        finally:
            self._slots.release()

    async def _exchange(self, request: bytes) -> RawResponse:
        if self._idle:
            # A kept-alive connection the server has closed meanwhile (its keep-alive
            # timeout) fails before any answer: the request is sent again on a new one,
            # as HTTP clients do for idempotent retries of unanswered requests.
            reader, writer = self._idle.pop()
            try:
                return await self._on(reader, writer, request)
            except _Unanswered:
                pass
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            return await self._on(reader, writer, request)
        except _Unanswered as exc:
            raise RawHTTPError(str(exc)) from exc

    async def _on(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
    ) -> RawResponse:
        try:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            writer.close()
            raise _Unanswered(type(exc).__name__) from exc
        return await self._answer(reader, writer, head)

    async def _answer(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes
    ) -> RawResponse:
        keep = False
        try:
            lines = head.split(b"\r\n")
            status = int(lines[0].split(b" ", 2)[1])
            length = 0
            close = False
            worker = None
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
                elif name == b"x-shoprank-worker":
                    worker = value.strip().decode()
                elif name == b"transfer-encoding":
                    raise RawHTTPError("chunked responses are not supported")
            content = await reader.readexactly(length) if length else b""
            # Only a connection whose whole answer was read is reused (a cancelled read
            # leaves bytes on it).
            keep = not close
            return RawResponse(status, content, worker)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            raise RawHTTPError(type(exc).__name__) from exc
        finally:
            if keep:
                self._idle.append((reader, writer))
            else:
                writer.close()
