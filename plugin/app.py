"""The drop-in HTTP endpoint: the Elasticsearch search API, served by shoprank.

Point a frontend (or the official `elasticsearch` / `opensearch-py` client) here instead of
the cluster. Search-side APIs only; writes go through `shoprank index ...`.

`create_app` assembles one router per surface (`shoprank.plugin.routes`: the search API,
`GET /` / health / documents, product updates, recommendations; events, the inspector,
intent, operations)
over one `SearchService`, which the routes receive as a dependency (`ServiceDep`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request

from shoprank import __version__
from shoprank.errors import ShoprankError
from shoprank.plugin.routes import cluster, products
from shoprank.plugin.routes import experiments as experiment_routes
from shoprank.plugin.routes import recommend as recommend_routes
from shoprank.plugin.routes import search as search_routes
from shoprank.plugin.routes.common import Cluster, ESResponse, error_response
from shoprank.plugin.search import SearchService

__all__ = ["create_app"]


def create_app(
    service: SearchService,
    *,
    cluster_name: str = "shoprank",
    health: Callable[[], Any] | None = None,
    one_of_workers: bool = False,
) -> FastAPI:
    """The ASGI app serving `service`; cheap to build, nothing is loaded until used.
    `one_of_workers`: this app is one of several worker processes on one port: the
    rate-limit buckets are the ones all workers of this data directory share
    (`shoprank.plugin.shared_limits`), not this process's own, and a busy worker closes
    the connections it answers (`shoprank.plugin.admission`)."""
    app = FastAPI(
        title="shoprank",
        version=__version__,
        docs_url="/_shoprank/docs",
        openapi_url="/_shoprank/openapi.json",
        redoc_url=None,
    )
    app.state.service = service
    app.state.cluster = Cluster(name=cluster_name, health=health)
    from shoprank.plugin.recommend import recommend_service

    app.state.recommend = recommend_service(service)

    async def on_error(request: Request, exc: Exception) -> ESResponse:
        return error_response(exc, request.headers.get("accept", ""))

    app.add_exception_handler(ShoprankError, on_error)
    app.add_exception_handler(Exception, on_error)

    app.include_router(cluster.router)
    app.include_router(search_routes.router)
    app.include_router(products.router)
    app.include_router(recommend_routes.router)
    app.include_router(experiment_routes.router)

    from shoprank.plugin.events_api import make_events_router
    from shoprank.plugin.inspector import make_inspector_router
    from shoprank.plugin.inspector_experiments import make_experiments_inspector_router
    from shoprank.plugin.intent_api import make_intent_router
    from shoprank.plugin.ops import install
    from shoprank.plugin.proxy import install_proxy

    app.include_router(make_events_router(service.settings))
    app.include_router(make_inspector_router(service))
    app.include_router(make_experiments_inspector_router(service))
    app.include_router(make_intent_router(service))
    # Requests no route serves: forwarded to a cluster if allowlisted, refused otherwise.
    install_proxy(app, service.backend, service.settings.proxy_allowlist)
    # Access control, limits, admission, metrics, readiness (plugin/ops.py).
    install(app, service, one_of_workers=one_of_workers)
    return app
