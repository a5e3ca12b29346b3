"""Structured logs: one JSON object per line, carrying the request id and the search's query id.

The HTTP middleware opens a request context (`request_context()`); code deeper down adds to
it (`note(query_id=...)`), and every log line written while it is open carries those fields.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import orjson

# A mutable dict per request, so threads that copied the context still share it.
_CONTEXT: ContextVar[dict[str, Any] | None] = ContextVar("shoprank_request", default=None)
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}


@contextmanager
def request_context(**fields: Any) -> Iterator[dict[str, Any]]:
    """Fields (request_id, …) attached to every log line written inside the block."""
    ctx = dict(fields)
    token = _CONTEXT.set(ctx)
    try:
        yield ctx
    finally:
        _CONTEXT.reset(token)


def note(**fields: Any) -> None:
    """Add fields (e.g. `query_id`) to the current request's context, if there is one."""
    ctx = _CONTEXT.get()
    if ctx is not None:
        ctx.update({k: v for k, v in fields.items() if v is not None})


def current() -> dict[str, Any]:
    return dict(_CONTEXT.get() or {})


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "msg", request_id, query_id, …extra}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(_CONTEXT.get() or {})
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


def configure(fmt: str = "json", level: str = "info") -> None:
    """Route shoprank's and uvicorn's logs to stderr, as JSON lines or plain text."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
