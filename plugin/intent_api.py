"""`GET /_shoprank/intent?q=...&index=...`: what shoprank understands of a query.

Answers the `Intent` as JSON (categories with probabilities, attributes, price range,
query type, SKUs, residual text), the rewrite it would apply to a plain text search, and
the model's metadata. Errors use the ES error shape.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from shoprank.errors import BadRequestError, es_error_body, http_status

if TYPE_CHECKING:
    from shoprank.plugin.search import SearchService

MAX_QUERY_CHARS = 2048


class _JSON(Response):
    media_type = "application/json"

    def __init__(self, content: Any, status_code: int = 200) -> None:
        super().__init__(orjson.dumps(content), status_code=status_code)
        self.headers["X-Elastic-Product"] = "Elasticsearch"


def make_intent_router(service: SearchService) -> APIRouter:
    """Routes over a `SearchService` (its query encoder and query understanding)."""
    router = APIRouter()

    @router.get("/_shoprank/intent")
    def intent(request: Request) -> Response:
        try:
            params = request.query_params
            unknown = set(params) - {"q", "index", "pretty"}
            if unknown:
                raise BadRequestError(
                    f"unknown parameter(s) {sorted(unknown)} for /_shoprank/intent; "
                    "use q (the query) and index"
                )
            text = params.get("q")
            if text is None or not text.strip():
                raise BadRequestError("/_shoprank/intent needs a non-empty [q] parameter")
            if len(text) > MAX_QUERY_CHARS:
                raise BadRequestError(
                    f"[q] is {len(text)} characters; at most {MAX_QUERY_CHARS} are accepted"
                )
            index = params.get("index") or service.settings.product_index
            embed = service.embed_query if service.vectors.has_text else None
            result = service.understanding.explain(index, text, embed=embed)
        except Exception as exc:  # noqa: BLE001 - every failure answers in the ES shape
            return _JSON(es_error_body(exc), http_status(exc))
        return _JSON(result)

    return router
