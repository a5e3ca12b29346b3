"""Celery tasks: thin wrappers over the pipeline steps in `shoprank.indexing.pipeline`.

embed_chunk(job, n) → write_chunk(job, n)   one chain per chunk, in a chord whose
finalise(job)                               callback checks, swaps the alias, prunes
upsert_products(index, docs) / delete_products(index, ids)   incremental updates
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from shoprank.settings import get_settings
from shoprank.workers.app import app

if TYPE_CHECKING:
    from shoprank.indexing.pipeline import PipelineContext


@lru_cache(maxsize=2)
def _context(vectors: bool) -> PipelineContext:
    from shoprank.wiring import pipeline_context

    return pipeline_context(get_settings(), vectors=vectors)


def context_for(job_id: str) -> tuple[PipelineContext, Any]:
    from shoprank.indexing.jobs import JobStore

    job = JobStore(get_settings().data_dir / "jobs").load(job_id)
    return _context(job.with_vectors), job


@app.task(name="shoprank.embed_chunk")
def embed_chunk(job_id: str, number: int) -> dict[str, Any]:
    from shoprank.indexing import pipeline

    ctx, job = context_for(job_id)
    return dict(pipeline.embed_chunk(ctx, job, number))


@app.task(name="shoprank.write_chunk")
def write_chunk(embedded: dict[str, Any], job_id: str, number: int) -> dict[str, Any]:
    from shoprank.indexing import pipeline

    ctx, job = context_for(job_id)
    return dict(pipeline.write_chunk(ctx, job, number, embedded))


@app.task(name="shoprank.finalise")
def finalise(job_id: str) -> dict[str, Any]:
    from shoprank.indexing import pipeline

    ctx, _ = context_for(job_id)
    return dict(pipeline.finalise(ctx, job_id))


@app.task(name="shoprank.upsert_products")
def upsert_products(index: str, docs: list[dict[str, Any]]) -> dict[str, Any]:
    from shoprank.indexing.incremental import upsert_products as run

    return dict(run(_context(True), index, docs))


@app.task(name="shoprank.delete_products")
def delete_products(index: str, ids: list[str]) -> dict[str, Any]:
    from shoprank.indexing.incremental import delete_products as run

    return dict(run(_context(False), index, ids))
