"""Incremental updates: upsert or delete single products in the live generation of an alias,
embedding them exactly as a re-index would (same encoders, same cache)."""

from __future__ import annotations

from typing import Any

import numpy as np

from shoprank.indexing.cache import encode_with_cache
from shoprank.indexing.catalog import embedding_text
from shoprank.indexing.mapping import IMAGE_VECTOR_FIELD, TEXT_VECTOR_FIELD
from shoprank.indexing.pipeline import PipelineContext, cache_suffix


def upsert_products(ctx: PipelineContext, index: str, docs: list[dict[str, Any]]) -> dict[str, Any]:
    """Embed and write normalised products (each with `id`) into the live generation."""
    generation = ctx.backend.resolve(index)
    fields = ctx.backend.vector_fields(generation)
    batch = [{"_id": str(d["id"]), **d} for d in docs]
    vectors: dict[str, np.ndarray] = {}
    partial: dict[str, tuple[Any, np.ndarray]] = {}
    embedded = 0
    image_failures: list[dict[str, str]] = []
    if ctx.encoder is not None and TEXT_VECTOR_FIELD in fields and batch:
        matrix, embedded = encode_with_cache(
            ctx.encoder,
            [embedding_text(d) for d in batch],
            ctx.cache,
            key_suffix=cache_suffix(ctx.encoder),
        )
        vectors[TEXT_VECTOR_FIELD] = matrix
    if ctx.images is not None and IMAGE_VECTOR_FIELD in fields and batch:
        rows, image_failures, _ = ctx.images.embed_products(batch, ctx.cache)
        if rows:
            order = sorted(rows)
            partial[IMAGE_VECTOR_FIELD] = (order, np.vstack([rows[r] for r in order]))
    written = ctx.backend.write_batch(generation, batch, vectors, partial_vectors=partial)
    return {
        "index": index,
        "generation": generation,
        "upserted": written,
        "embedded": embedded,
        "image_failures": image_failures,
    }


def delete_products(ctx: PipelineContext, index: str, ids: list[str]) -> dict[str, Any]:
    generation = ctx.backend.resolve(index)
    existing = set(ctx.backend.mget(generation, ids, source=False))
    ctx.backend.write_batch(generation, [], delete_ids=ids)
    return {
        "index": index,
        "generation": generation,
        "deleted": len(existing),
        "not_found": [i for i in ids if i not in existing],
    }
