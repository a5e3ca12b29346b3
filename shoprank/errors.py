"""shoprank's exception tree, and the one place that maps it to HTTP statuses.

    ShoprankError                      500  generic failure
    ├── ConfigError                    500  a setting or model path is wrong
    ├── CatalogError                   400  a catalog file cannot be read at all
    ├── BadRequestError                400  the request is malformed (ES `parsing_exception`)
    │   ├── UnsupportedQueryError      400  valid ES DSL outside what the backend implements
    │   └── InvalidIndexNameError      400  a name ES would refuse (`invalid_index_name_exception`)
    ├── AuthenticationError            401  no or unknown API key (ES `security_exception`)
    ├── ForbiddenError                 403  the key's scope does not allow this route
    ├── PayloadTooLargeError           413  a request body over its limit
    ├── TooManyRequestsError           429  the client's rate limit is spent (`Retry-After`)
    ├── IndexNotFoundError             404  no index or alias of that name
    ├── DocumentNotFoundError          404  no document of that id
    ├── BackendUnavailableError        503  the search backend cannot answer
    ├── SearchTimeoutError             504  the request's time budget ran out before any result
    └── InsufficientStorageError       507  the data directory's disk is full

Every error renders as an Elasticsearch error body (`{"error": {...}, "status": N}`) so the
official clients raise their usual exceptions. No body carries a filesystem path: the
paths of the OSErrors behind an error (and any quoted absolute path) are replaced by
`<path>` and logged server-side instead.
"""

from __future__ import annotations

import logging
import re
from typing import Any

log = logging.getLogger("shoprank.errors")
_QUOTED_PATH = re.compile(r"""(['"])/(?:[^'"\s/]+/)+[^'"\s]*\1""")


class ShoprankError(Exception):
    """Root of every error shoprank raises on purpose."""

    status: int = 500
    es_type: str = "exception"

    def __init__(self, reason: str, *, es_type: str | None = None, **details: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = details
        if es_type is not None:
            self.es_type = es_type

    def to_es_body(self) -> dict[str, Any]:
        """The error as Elasticsearch would return it."""
        cause: dict[str, Any] = {"type": self.es_type, "reason": self.reason, **self.details}
        return {"error": {"root_cause": [cause], **cause}, "status": self.status}


class ConfigError(ShoprankError):
    es_type = "settings_exception"


class CatalogError(ShoprankError):
    status = 400
    es_type = "catalog_exception"


class BadRequestError(ShoprankError):
    status = 400
    es_type = "parsing_exception"


class UnsupportedQueryError(BadRequestError):
    """A DSL construct the embedded backend does not implement; never silently ignored."""

    es_type = "unsupported_query_exception"


class InvalidIndexNameError(BadRequestError):
    """An index or alias name Elasticsearch would refuse (see `shoprank.plugin.bounds`)."""

    es_type = "invalid_index_name_exception"

    def __init__(self, index: str, why: str) -> None:
        super().__init__(f"Invalid index name [{index}], {why}", index=index, index_uuid="_na_")


class AuthenticationError(ShoprankError):
    status = 401
    es_type = "security_exception"


class ForbiddenError(ShoprankError):
    status = 403
    es_type = "security_exception"


class PayloadTooLargeError(BadRequestError):
    status = 413
    es_type = "content_too_long_exception"


class TooManyRequestsError(ShoprankError):
    """Rate limited; `retry_after_s` becomes the `Retry-After` header."""

    status = 429
    es_type = "es_rejected_execution_exception"

    def __init__(self, reason: str, *, retry_after_s: int) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s


class IndexNotFoundError(ShoprankError):
    status = 404
    es_type = "index_not_found_exception"

    def __init__(self, index: str) -> None:
        super().__init__(f"no such index [{index}]", index=index, **{"resource.id": index})


class DocumentNotFoundError(ShoprankError):
    status = 404
    es_type = "document_missing_exception"


class BackendUnavailableError(ShoprankError):
    status = 503
    es_type = "unavailable_shards_exception"


class SearchTimeoutError(ShoprankError):
    """The request's time budget (SHOPRANK_REQUEST_TIMEOUT_MS or the body's `timeout`) ran
    out before this search started; searches that had begun answer `timed_out: true`."""

    status = 504
    es_type = "search_timeout_exception"


class InsufficientStorageError(ShoprankError):
    """The data directory's disk is full: nothing of the request was stored. The type is
    the one Elasticsearch uses when its disk flood-stage watermark blocks writes."""

    status = 507
    es_type = "cluster_block_exception"


def is_disk_full(exc: BaseException) -> bool:
    """Whether `exc` is a full disk (or quota): an OSError ENOSPC/EDQUOT or SQLite's FULL."""
    import errno
    import sqlite3

    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(exc, sqlite3.Error):
        return exc.sqlite_errorcode == sqlite3.SQLITE_FULL
    return False


def http_status(exc: BaseException) -> int:
    """The HTTP status an exception is answered with (500 for anything unexpected)."""
    return exc.status if isinstance(exc, ShoprankError) else 500


def es_error_body(exc: BaseException) -> dict[str, Any]:
    """An ES-shaped error body for any exception, hiding internals of unexpected ones and
    every filesystem path (logged here instead)."""
    if isinstance(exc, ShoprankError):
        body = exc.to_es_body()
        cause = body["error"]["root_cause"][0]
        clean = {k: _scrub(v, exc) if isinstance(v, str) else v for k, v in cause.items()}
        if clean != cause:
            log.warning("error detail hidden from the response: %s", exc.reason)
            body["error"] = {"root_cause": [clean], **clean}
        return body
    log.error("unexpected %s answered as a 500", type(exc).__name__, exc_info=exc)
    reason = f"internal error: {type(exc).__name__}"
    cause = {"type": "exception", "reason": reason}
    return {"error": {"root_cause": [cause], **cause}, "status": 500}


def _scrub(text: str, exc: BaseException) -> str:
    """`text` without the file names of the OSErrors in `exc`'s chain or quoted paths."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError):
            for name in (current.filename, current.filename2):
                if name is not None and str(name):
                    text = text.replace(str(name), "<path>")
        current = current.__cause__ or current.__context__
    return _QUOTED_PATH.sub(lambda m: f"{m.group(1)}<path>{m.group(1)}", text)
