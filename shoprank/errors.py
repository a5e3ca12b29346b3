"""shoprank's exception tree, and the one place that maps it to HTTP statuses.

    ShoprankError                      500  generic failure
    ├── ConfigError                    500  a setting or model path is wrong
    ├── CatalogError                   400  a catalog file cannot be read at all
    ├── BadRequestError                400  the request is malformed (ES `parsing_exception`)
    │   └── UnsupportedQueryError      400  valid ES DSL outside what the backend implements
    ├── AuthenticationError            401  no or unknown API key (ES `security_exception`)
    ├── ForbiddenError                 403  the key's scope does not allow this route
    ├── PayloadTooLargeError           413  a request body over its limit
    ├── TooManyRequestsError           429  the client's rate limit is spent (`Retry-After`)
    ├── IndexNotFoundError             404  no index or alias of that name
    ├── DocumentNotFoundError          404  no document of that id
    └── BackendUnavailableError        503  the search backend cannot answer

Every error renders as an Elasticsearch error body (`{"error": {...}, "status": N}`) so the
official clients raise their usual exceptions.
"""

from __future__ import annotations

from typing import Any


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


def http_status(exc: BaseException) -> int:
    """The HTTP status an exception is answered with (500 for anything unexpected)."""
    return exc.status if isinstance(exc, ShoprankError) else 500


def es_error_body(exc: BaseException) -> dict[str, Any]:
    """An ES-shaped error body for any exception, hiding internals of unexpected ones."""
    if isinstance(exc, ShoprankError):
        return exc.to_es_body()
    reason = f"internal error: {type(exc).__name__}"
    cause = {"type": "exception", "reason": reason}
    return {"error": {"root_cause": [cause], **cause}, "status": 500}
