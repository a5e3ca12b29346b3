"""The OpenAPI document of shoprank's own API (`/_shoprank/*`), at `/_shoprank/openapi.json`.

FastAPI generates the paths; the routes read raw bodies (one event, an array or NDJSON), so
their request bodies and ES-shaped error responses are described here. The Elasticsearch
routes (`_search`, …) are documented by Elasticsearch itself and left out.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

ES_ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error", "status"],
    "properties": {
        "status": {"type": "integer"},
        "error": {
            "type": "object",
            "required": ["type", "reason", "root_cause"],
            "properties": {
                "type": {"type": "string"},
                "reason": {"type": "string"},
                "root_cause": {"type": "array", "items": {"type": "object"}},
            },
        },
    },
}
EVENT: dict[str, Any] = {
    "type": "object",
    "required": ["type"],
    "properties": {
        "type": {"type": "string", "enum": ["view", "click", "add_to_cart", "purchase", "search"]},
        "user_id": {"type": "string"},
        "session_id": {"type": "string"},
        "product_id": {"type": "string"},
        "query_id": {"type": "string"},
        "position": {"type": "integer", "minimum": 1},
        "timestamp": {"oneOf": [{"type": "number"}, {"type": "string"}]},
        "event_id": {"type": "string"},
        "quantity": {"type": "integer", "minimum": 1},
        "price": {"type": "number", "minimum": 0},
    },
}
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("/_shoprank/events", "post"): {
        "required": True,
        "content": {
            "application/json": {"schema": {"oneOf": [EVENT, {"type": "array", "items": EVENT}]}},
            "application/x-ndjson": {"schema": {"type": "string"}},
        },
    },
    ("/_shoprank/products", "post"): {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["index"],
                    "properties": {
                        "index": {"type": "string"},
                        "upsert": {"type": "array", "items": {"type": "object"}},
                        "delete": {"type": "array", "items": {"type": "string"}},
                    },
                }
            }
        },
    },
}
ERRORS = {
    "400": "bad request",
    "401": "no or unknown API key",
    "403": "the key's scope is too low",
    "404": "not found",
    "413": "body too large",
    "429": "rate limited (Retry-After)",
    "503": "a dependency is down; retry",
}


def _documented(route: BaseRoute) -> bool:
    """shoprank's own routes; a route without a path (an included router) is kept and its
    paths are filtered after the schema is built."""
    if isinstance(route, Route | Mount | WebSocketRoute):
        return route.path.startswith("/_shoprank/")
    return True


def shoprank_openapi(app: FastAPI) -> dict[str, Any]:
    """Build (once) the document for the `/_shoprank/*` routes."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(
        title="shoprank API",
        version=app.version,
        description="shoprank's own routes: events, products, profiles, health, metrics. "
        "Errors use the Elasticsearch error shape. Protected routes take "
        "`Authorization: ApiKey <key>`.",
        # Only shoprank's routes (and included routers): the ES routes are documented by ES.
        routes=[r for r in app.routes if _documented(r)],
    )
    doc["paths"] = {
        path: ops
        for path, ops in doc.get("paths", {}).items()
        if path.startswith("/_shoprank/") and "docs" not in path and "openapi" not in path
    }
    doc.setdefault("components", {}).setdefault("schemas", {})["ESError"] = ES_ERROR
    doc["components"]["securitySchemes"] = {
        "ApiKey": {"type": "apiKey", "in": "header", "name": "Authorization"}
    }
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if (path, method) in BODIES:
                op["requestBody"] = BODIES[(path, method)]
            responses = op.setdefault("responses", {})
            responses.pop("422", None)
            for status, text in ERRORS.items():
                responses.setdefault(
                    status,
                    {
                        "description": text,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/ESError"}}
                        },
                    },
                )
    app.openapi_schema = doc
    return doc
