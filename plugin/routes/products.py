"""`POST /_shoprank/products`: incremental product updates (`shoprank.plugin.products`)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from shoprank.errors import ShoprankError
from shoprank.plugin import products as updates
from shoprank.plugin.routes.common import (
    AcceptDep,
    ESResponse,
    SettingsDep,
    check_params,
    error_response,
    json_body,
    respond,
)

router = APIRouter()


@router.post("/_shoprank/products")
async def products(request: Request, settings: SettingsDep, accept: AcceptDep) -> ESResponse:
    """Upsert and delete products of the live index; embedding runs in a worker task."""
    try:
        params = check_params(request, {"wait"})
        body = await json_body(request) or {}
    except ShoprankError as exc:
        return error_response(exc, accept)
    wait = params.get("wait", "true").lower() != "false"
    # Validating up to 10,000 items and applying them both block: off the event loop.
    return await respond(
        lambda: updates.apply_product_update(
            settings, updates.parse_product_update(body), wait=wait
        ),
        accept,
    )
