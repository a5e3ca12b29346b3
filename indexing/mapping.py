"""The product index mapping, written once in Elasticsearch's own mapping language.

Every backend reads this: ES/OpenSearch receive it as-is (OpenSearch translates
`dense_vector`), the embedded backend builds its tantivy schema and vector stores from it.
Fields not listed are mapped dynamically (strings as keywords, numbers as numbers).
"""

from __future__ import annotations

from typing import Any

TEXT_VECTOR_FIELD = "text_vector"
IMAGE_VECTOR_FIELD = "image_vector"


def product_mapping(*, text_dims: int = 384, image_dims: int = 0) -> dict[str, Any]:
    """The mapping of a shoprank product index; a vector field with 0 dims is left out."""
    english = {"type": "text", "analyzer": "english"}
    mapping: dict[str, Any] = {
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
    properties = mapping["properties"]
    if not text_dims:
        properties.pop(TEXT_VECTOR_FIELD)
    if image_dims:
        properties[IMAGE_VECTOR_FIELD] = {
            "type": "dense_vector",
            "dims": image_dims,
            "similarity": "cosine",
        }
    return mapping
