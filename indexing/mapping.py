"""The product index mapping, written once in Elasticsearch's own mapping language.

Every backend reads this: ES/OpenSearch receive it as-is (OpenSearch translates
`dense_vector`), the embedded backend builds its tantivy schema and vector stores from it.
Fields not listed are mapped dynamically (strings as keywords, numbers as numbers); top-level
catalog fields whose values are ISO dates (`"2006-07-01T00:00:00Z"`) are mapped as `date`, as
ES's dynamic date detection would (`date_fields`). Nested or later-added date strings stay
keywords on the embedded backend.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from shoprank.plugin.backends.embedded.dates import is_iso_date

TEXT_VECTOR_FIELD = "text_vector"
IMAGE_VECTOR_FIELD = "image_vector"
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")


def text_language(docs: Iterable[dict[str, Any]], *, sample: int = 500) -> str:
    """`cjk` when at least a fifth of the sampled titles contain Chinese/Japanese/Korean
    characters (ES/OpenSearch then analyse text with their `cjk` analyzer), else `english`."""
    seen = cjk = 0
    for doc in docs:
        seen += 1
        if _CJK.search(str(doc.get("title") or "")):
            cjk += 1
        if seen >= sample:
            break
    return "cjk" if seen and cjk * 5 >= seen else "english"


def date_fields(docs: Iterable[dict[str, Any]], *, sample: int = 500) -> list[str]:
    """The top-level fields whose sampled values are all ISO date strings (ES would detect
    them as `date`); a field with any other value among the sample is not a date."""
    dates: dict[str, bool] = {}
    for seen, doc in enumerate(docs):
        if seen >= sample:
            break
        for name, value in doc.items():
            if value is None or name.startswith("_"):
                continue
            dates[name] = dates.get(name, True) and is_iso_date(value)
    return sorted(name for name, is_date in dates.items() if is_date)


def product_mapping(
    *,
    text_dims: int = 384,
    image_dims: int = 0,
    language: str = "english",
    docs: Iterable[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The mapping of a shoprank product index; a vector field with 0 dims is left out.

    `language` names the text analyzer (`english`, or `cjk` for CJK catalogs); the fields of
    `docs` holding ISO dates are mapped as `date` (see `date_fields`).
    """
    english = {"type": "text", "analyzer": language}
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
    for name in date_fields(docs):
        properties.setdefault(name, {"type": "date"})
    if not text_dims:
        properties.pop(TEXT_VECTOR_FIELD)
    if image_dims:
        properties[IMAGE_VECTOR_FIELD] = {
            "type": "dense_vector",
            "dims": image_dims,
            "similarity": "cosine",
        }
    return mapping
