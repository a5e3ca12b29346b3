"""The prediction query understanding hands to the rewriter, the ranker and the search log."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from typing import Any, Literal

QueryType = Literal["navigational", "product_type", "exploratory"]


@dataclass
class Intent:
    """What a query asks for.

    - `categories`: (category value as stored in the product's `category` /
      `category_levels`, probability), most probable first; leaves and their ancestors.
    - `attributes`: facet field (`brand`, `color`, …) → catalog values found in the query,
      spelled as in the catalog.
    - `price`: an explicit or implied price range, `{"gte": x}`, `{"lte": y}` or both.
    - `skus`: tokens that look like a model number / SKU.
    - `residual_text`: the query with matched attribute and price words removed.
    - `product_types`: (induced product type, probability) for a catalog without
      categories (`product_types.py`); `types` tells the type of a product id. No product
      carries a type in the index, so they are ranking evidence, never a filter.
    """

    query: str
    categories: list[tuple[str, float]] = field(default_factory=list)
    attributes: dict[str, list[str]] = field(default_factory=dict)
    price: dict[str, float] | None = None
    query_type: QueryType = "exploratory"
    skus: list[str] = field(default_factory=list)
    residual_text: str = ""
    model_version: str | None = None
    product_types: list[tuple[str, float]] = field(default_factory=list)
    types: Any = field(default=None, repr=False, compare=False)

    def category_probability(self, category: str | None) -> float:
        if not category:
            return 0.0
        for value, prob in self.categories:
            if value == category:
                return prob
        return 0.0

    def type_probability(self, product_id: str) -> float | None:
        """The query's probability of the product's induced type (None: no types, or a
        product without one)."""
        if self.types is None or not self.product_types:
            return None
        name = self.types.of(product_id)
        if name is None:
            return None
        return next((p for value, p in self.product_types if value == name), 0.0)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self)}
        out.pop("types")
        out["categories"] = [{"category": c, "probability": p} for c, p in self.categories]
        out["product_types"] = [{"type": t, "probability": p} for t, p in self.product_types]
        return out
