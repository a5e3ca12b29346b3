"""The product index mapping, written once in Elasticsearch's own mapping language.

Every backend reads this: ES/OpenSearch receive it as-is (OpenSearch translates
`dense_vector`), the embedded backend builds its tantivy schema and vector stores from it.
Fields not listed are mapped dynamically (strings as keywords, numbers as numbers).
"""

from __future__ import annotations

from typing import Any

TEXT_VECTOR_FIELD = "text_vector"


def product_mapping(*, text_dims: int = 384) -> dict[str, Any]:
    """The mapping of a shoprank product index."""
    english = {"type": "text", "analyzer": "english"}
    return {
        "dynamic": True,
        "properties": {
            "id": {"type": "keyword"},
            "title": dict(english),
            "description": dict(english),
            "brand": {"type": "keyword", "fields": {"text": dict(english)}},
            "category": {"type": "keyword", "fields": {"text": dict(english)}},
            "category_levels": {"type": "keyword"},
            "price": {"type": "float"},
            "image": {"type": "keyword", "index": False},
            TEXT_VECTOR_FIELD: {
                "type": "dense_vector",
                "dims": text_dims,
                "similarity": "cosine",
            },
        },
    }
