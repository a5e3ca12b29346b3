"""`POST /_shoprank/products`: validated incremental product updates.

    {"index": "products",
     "upsert": [{"id": "sku-1", "title": "...", "price": 12.5, ...}, ...],
     "delete": ["sku-9", ...]}

Each upsert item is read with the catalog's rules (roles by their own names); an invalid
item is rejected with its position and reason while the valid ones are applied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shoprank.errors import BadRequestError
from shoprank.indexing.catalog import FieldRoles, normalise_row
from shoprank.settings import Settings

MAX_ITEMS = 10_000


@dataclass
class ProductUpdate:
    index: str
    upsert: list[dict[str, Any]] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


def parse_product_update(body: dict[str, Any]) -> ProductUpdate:
    unknown = set(body) - {"index", "upsert", "delete"}
    if unknown:
        raise BadRequestError(f"unknown field(s) {sorted(unknown)}; expected index, upsert, delete")
    index = body.get("index")
    if not isinstance(index, str) or not index:
        raise BadRequestError('[index] is required: the alias to update, e.g. "products"')
    upsert = body.get("upsert", [])
    delete = body.get("delete", [])
    if not isinstance(upsert, list) or not isinstance(delete, list):
        raise BadRequestError("[upsert] must be a list of products and [delete] a list of ids")
    if not upsert and not delete:
        raise BadRequestError("nothing to do: give [upsert] products and/or [delete] ids")
    if len(upsert) + len(delete) > MAX_ITEMS:
        raise BadRequestError(f"at most {MAX_ITEMS} items per request; split the update")
    update = ProductUpdate(index=index)
    roles = FieldRoles()
    for position, item in enumerate(upsert):
        if not isinstance(item, dict):
            update.errors.append({"index": position, "reason": "a product must be an object"})
            continue
        try:
            update.upsert.append(normalise_row(item, roles=roles))
        except ValueError as exc:
            update.errors.append({"index": position, "reason": str(exc)})
    for position, pid in enumerate(delete):
        if isinstance(pid, str | int) and not isinstance(pid, bool) and str(pid).strip():
            update.delete.append(str(pid).strip())
        else:
            update.errors.append(
                {"index": position, "reason": f"bad id to delete: {pid!r}", "in": "delete"}
            )
    return update


def apply_product_update(
    settings: Settings, update: ProductUpdate, *, wait: bool = True
) -> dict[str, Any]:
    """Run the update through the worker tasks (in-process without a broker)."""
    from shoprank.workers import tasks
    from shoprank.workers.dispatch import submit_delete, submit_upsert

    out: dict[str, Any] = {
        "index": update.index,
        "errors": update.errors,
        "accepted": len(update.upsert) + len(update.delete),
    }
    if not wait and not settings.eager:
        if update.upsert:
            out["upsert_task"] = tasks.upsert_products.delay(update.index, update.upsert).id
        if update.delete:
            out["delete_task"] = tasks.delete_products.delay(update.index, update.delete).id
        return out
    if update.upsert:
        result = submit_upsert(settings, update.index, update.upsert)
        out.update(
            generation=result["generation"],
            upserted=result["upserted"],
            embedded=result["embedded"],
            image_failures=result["image_failures"],
        )
    if update.delete:
        result = submit_delete(settings, update.index, update.delete)
        out.update(
            generation=result["generation"],
            deleted=result["deleted"],
            not_found=result["not_found"],
        )
    return out
