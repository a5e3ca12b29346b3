"""From a query string to an `Intent`: categories, attributes, price, SKUs, query type.

Attribute values and price bands come from the catalog (the trained model's vocabulary,
or the live index's values when no model was trained); categories need the trained head.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .attributes import AttributeMatch, AttributeMatcher
from .model import BOW_DIMS, IntentHead, Vocabulary
from .price import PriceMatch, parse_price
from .product_types import ProductTypes
from .text import Token, hashed_bag, remove_spans, tokenize
from .types import Intent, QueryType

MIN_CATEGORY_PROB = 0.05
MAX_CATEGORIES = 8
PRODUCT_TYPE_PROB = 0.4
_SKU = re.compile(r"^(?=.*\d)(?=.*[a-z])[a-z0-9][a-z0-9\-./]{4,}$|^\d{8,14}$", re.IGNORECASE)
_UNIT_TOKEN = re.compile(
    r"^\d+(?:[.,]\d+)?-?(?:gb|tb|mb|mah|mm|cm|m|w|kw|kg|g|ml|l|hz|mhz|ghz|mp|k|p|in|inch|"
    r"inches|v|a|x|pcs|pack|piece|pieces|s|st|nd|rd|th|ft|feet|foot|meter|metre|pages|port|"
    r"ports|way|seater|person|people|year|years|day|days)$",
    re.IGNORECASE,
)


@dataclass
class Understanding:
    """An `Intent` plus what the rewriter needs to edit the query text."""

    intent: Intent
    matches: list[AttributeMatch] = field(default_factory=list)
    price: PriceMatch = field(default_factory=PriceMatch)


def looks_like_sku(word: str) -> bool:
    return bool(_SKU.match(word)) and not _UNIT_TOKEN.match(word)


class IntentPredictor:
    """Stateless per query; build once per model (and per catalog vocabulary)."""

    def __init__(
        self,
        vocab: Vocabulary,
        head: IntentHead | None = None,
        *,
        types: ProductTypes | None = None,
        model_version: str | None = None,
    ) -> None:
        self.vocab = vocab
        self.head = head
        self.types = types
        self.matcher = AttributeMatcher(vocab.attributes)
        self.model_version = model_version

    @property
    def embedding_dims(self) -> int | None:
        if self.head is not None:
            return self.head.embedding_dims
        return self.types.dims if self.types is not None else None

    @property
    def wants_embedding(self) -> bool:
        """Whether a prediction reads the query's embedding (a head or induced types)."""
        return self.head is not None or self.types is not None

    def predict(self, text: str, *, embedding: Sequence[float] | None = None) -> Understanding:
        text = text or ""
        tokens = tokenize(text)
        price = parse_price(text)
        price_tokens = {
            i
            for i, t in enumerate(tokens)
            for start, end in price.spans
            if t.start < end and t.end > start
        }
        matches = self.matcher.match(tokens, skip=price_tokens)
        claimed = set(price_tokens)
        for m in matches:
            claimed.update(range(*m.token_span))
        skus = self._skus(text, tokens, claimed)
        # Price words say nothing about the category: the bag of words leaves them out.
        words = [t for i, t in enumerate(tokens) if i not in price_tokens]
        categories = self._categories(words or tokens, embedding)
        product_types = self.types.predict(embedding) if self.types is not None and words else []
        attributes: dict[str, list[str]] = {}
        for m in matches:
            values = attributes.setdefault(m.field, [])
            if m.value not in values:
                values.append(m.value)
        price_range = dict(price.range) if price.range else None
        if price_range is None and price.band is not None:
            price_range = self._band(price.band, categories or product_types)
        residual = remove_spans(
            text[:512],
            [(m.start, m.end) for m in matches if m.confidence >= 1.0] + price.spans,
        )
        intent = Intent(
            query=text,
            categories=categories,
            attributes=attributes,
            price=price_range,
            query_type=self._query_type(
                tokens, claimed, matches, skus, categories or product_types
            ),
            skus=skus,
            residual_text=residual,
            model_version=self.model_version,
            product_types=product_types,
            types=self.types if product_types else None,
        )
        return Understanding(intent, matches, price)

    @staticmethod
    def _skus(text: str, tokens: Sequence[Token], claimed: set[int]) -> list[str]:
        """Whitespace-separated chunks shaped like a SKU ("006R90321", "TN-2420") whose
        words were not taken by a price or an attribute."""
        out: list[str] = []
        for match in re.finditer(r"\S+", text[:512]):
            chunk = match.group(0).strip(",;:!?()[]{}\"'")
            inside = [i for i, t in enumerate(tokens) if match.start() <= t.start < match.end()]
            taken = claimed.intersection(inside) or chunk in out
            if chunk and looks_like_sku(chunk) and not taken:
                out.append(chunk)
        return out

    def _categories(
        self, tokens: Sequence[Token], embedding: Sequence[float] | None
    ) -> list[tuple[str, float]]:
        head = self.head
        if head is None or not tokens:
            return []
        keys = [t.key for t in tokens]
        bow = hashed_bag(keys, head.bow_dims or BOW_DIMS)
        if embedding is not None and len(embedding) == head.embedding_dims:
            emb = np.asarray(embedding, dtype=np.float32)
        else:
            emb = np.zeros(head.embedding_dims, dtype=np.float32)
        probs = head.level_probs(head.leaf_probs(emb, bow))
        order = np.argsort(-probs)[: MAX_CATEGORIES * 2]
        out = [
            (head.levels[i], round(float(probs[i]), 4))
            for i in order
            if probs[i] >= MIN_CATEGORY_PROB
        ]
        return out[:MAX_CATEGORIES]

    def _band(self, band: str, categories: list[tuple[str, float]]) -> dict[str, float] | None:
        # The deepest confident category decides what "cheap" means.
        best = None
        for name, prob in categories:
            if prob >= 0.5 and (best is None or name.count(">") > best.count(">")):
                best = name
        value = self.vocab.band(best, band)
        if value is None:
            return None
        return {"lte": value} if band == "low" else {"gte": value}

    @staticmethod
    def _query_type(
        tokens: Sequence[Token],
        claimed: set[int],
        matches: list[AttributeMatch],
        skus: list[str],
        categories: list[tuple[str, float]],
    ) -> QueryType:
        if skus:
            return "navigational"
        rest = [t for i, t in enumerate(tokens) if i not in claimed]
        has_brand = any(m.field == "brand" for m in matches)
        if has_brand and all(any(c.isdigit() for c in t.text) for t in rest):
            return "navigational"  # "hp", "hp 305", "sony wh 1000"
        leaves = [p for name, p in categories if name]
        if leaves and max(leaves) >= PRODUCT_TYPE_PROB:
            return "product_type"
        return "exploratory"
