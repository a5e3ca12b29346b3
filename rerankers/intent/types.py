"""The prediction query understanding hands to the rewriter, the ranker and the search log."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
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
    """

    query: str
    categories: list[tuple[str, float]] = field(default_factory=list)
    attributes: dict[str, list[str]] = field(default_factory=dict)
    price: dict[str, float] | None = None
    query_type: QueryType = "exploratory"
    skus: list[str] = field(default_factory=list)
    residual_text: str = ""
    model_version: str | None = None

    def category_probability(self, category: str | None) -> float:
        if not category:
            return 0.0
        for value, prob in self.categories:
            if value == category:
                return prob
        return 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["categories"] = [{"category": c, "probability": p} for c, p in self.categories]
        return out
