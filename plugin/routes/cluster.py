"""`GET /` (what the official clients check before their first call), the health route and
document GETs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from shoprank import __version__
from shoprank.plugin.bounds import check_index_name
from shoprank.plugin.routes.common import (
    ES_VERSION,
    AcceptDep,
    ClusterDep,
    ESResponse,
    ServiceDep,
    check_params,
    error_response,
)
from shoprank.plugin.shapes import filter_source

router = APIRouter()
DOC_PARAMS = {"_source", "_source_includes", "_source_excludes", "stored_fields"}


# The ES routes are documented by Elasticsearch: left out of shoprank's OpenAPI document.
@router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
def root(service: ServiceDep, cluster: ClusterDep, accept: AcceptDep) -> ESResponse:
    return ESResponse(
        {
            "name": "shoprank",
            "cluster_name": cluster.name,
            "cluster_uuid": cluster.uuid,
            "version": {
                "number": ES_VERSION,
                "build_flavor": "default",
                "build_type": "shoprank",
                "lucene_version": "10.0.0",
                "minimum_wire_compatibility_version": "8.18.0",
                "minimum_index_compatibility_version": "8.0.0",
                "shoprank": __version__,
                "backend": service.backend.name,
            },
            "tagline": "You Know, for Search",
        },
        accept=accept,
    )


@router.get("/_shoprank/health")
def shoprank_health(service: ServiceDep, cluster: ClusterDep, accept: AcceptDep) -> ESResponse:
    info = cluster.health() if cluster.health else {}
    return ESResponse(
        {
            "status": "green",
            "version": __version__,
            "backend": service.backend.name,
            **(info or {}),
        },
        accept=accept,
    )


def source_spec(params: dict[str, str]) -> Any:
    """The `_source` filter of a document GET's query string."""
    if params.get("_source", "").lower() == "false":
        return False
    if "_source_includes" in params or "_source_excludes" in params:
        return {
            "includes": [p for p in params.get("_source_includes", "").split(",") if p],
            "excludes": [p for p in params.get("_source_excludes", "").split(",") if p],
        }
    if params.get("_source") and params["_source"].lower() != "true":
        return params["_source"].split(",")
    return True


@router.api_route("/{index}/_doc/{doc_id}", methods=["GET", "HEAD"], include_in_schema=False)
def get_doc(
    request: Request, index: str, doc_id: str, service: ServiceDep, accept: AcceptDep
) -> ESResponse:
    # A sync route: FastAPI runs it on a worker thread.
    try:
        params = check_params(request, DOC_PARAMS)
        check_index_name(index)
        result = service.backend.get(index, doc_id)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001
        return error_response(exc, accept)
    if result.get("found") and "_source" in result:
        filtered = filter_source(result["_source"], source_spec(params))
        if filtered is None:
            result.pop("_source")
        else:
            result["_source"] = filtered
    return ESResponse(result, 200 if result.get("found") else 404, accept=accept)
