"""Query understanding: what the shopper means (categories, attributes, price, query type)."""

from shoprank.rerankers.intent.types import Intent

__all__ = ["Intent"]
