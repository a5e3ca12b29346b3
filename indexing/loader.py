"""Catalog → new index generation → alias swap, with nothing half-done ever served.

The load plans a job (validated catalog in chunks, a fresh generation), embeds and writes
it chunk by chunk, checks the document count, and only then swaps the alias in one atomic
step (`shoprank.indexing.pipeline`). A load that fails or is killed leaves the alias on the
previous generation; its partial generation is resumable (CLI `--resume`) or swept by the
next load. One load per alias at a time (a lock file enforces it).
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoprank.errors import ShoprankError
from shoprank.indexing.cache import EmbeddingCache
from shoprank.indexing.catalog import CatalogReport, FieldRoles, read_catalog
from shoprank.indexing.encoders.protocol import TextEncoder
from shoprank.indexing.incremental import upsert_products
from shoprank.indexing.jobs import JobStore
from shoprank.indexing.pipeline import ImageEmbedder, PipelineContext, plan_job, run_local
from shoprank.plugin.backends.protocol import Backend
from shoprank.plugin.bounds import check_alias_name

Progress = Callable[[int, int], None]


@dataclass
class LoadReport:
    index: str
    generation: str = ""
    previous: str | None = None
    catalog: CatalogReport = field(default_factory=CatalogReport)
    documents: int = 0
    read_s: float = 0.0
    embed_s: float = 0.0
    write_s: float = 0.0
    commit_s: float = 0.0
    total_s: float = 0.0
    pruned: list[str] = field(default_factory=list)

    @property
    def products_per_s(self) -> float:
        return self.documents / self.total_s if self.total_s else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "generation": self.generation,
            "previous": self.previous,
            "documents": self.documents,
            "rows": self.catalog.rows,
            "skipped": len(self.catalog.errors),
            "duplicates": self.catalog.duplicates,
            "seconds": {
                "read": round(self.read_s, 3),
                "embed": round(self.embed_s, 3),
                "write": round(self.write_s, 3),
                "commit": round(self.commit_s, 3),
                "total": round(self.total_s, 3),
            },
            "products_per_s": round(self.products_per_s, 1),
            "pruned": self.pruned,
        }


@contextmanager
def alias_lock(lock_dir: Path, alias: str) -> Iterator[None]:
    check_alias_name(alias)  # before the alias becomes a file name
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f"{alias}.lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ShoprankError(
                f"another load of [{alias}] is running; wait for it to finish"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def load_catalog(
    path: Path,
    *,
    index: str,
    backend: Backend,
    encoder: TextEncoder | None,
    lock_dir: Path,
    roles: FieldRoles | None = None,
    price_multiplier: float = 1.0,
    batch_size: int = 256,
    keep: int = 2,
    progress: Progress | None = None,
    max_failure_rate: float = 0.05,
    cache: EmbeddingCache | None = None,
    images: ImageEmbedder | None = None,
    jobs_dir: Path | None = None,
    incremental: bool = True,
) -> LoadReport:
    """Load a catalog into a new generation of `index` and point the alias at it, running
    the pipeline's steps in this process (the Python API; the CLI can use Celery).

    `incremental=False` rebuilds every product instead of starting from the live
    generation (embeddings still come from the cache)."""
    report = LoadReport(index=index)
    started = time.perf_counter()
    ctx = PipelineContext(
        backend=backend,
        jobs=JobStore(jobs_dir or lock_dir.parent / "jobs"),
        encoder=encoder,
        images=images,
        cache=cache,
    )
    with alias_lock(lock_dir, index):
        t0 = time.perf_counter()
        plan = plan_job(
            ctx,
            path,
            alias=index,
            roles=roles,
            price_multiplier=price_multiplier,
            chunk_size=batch_size,
            keep=keep,
            max_failure_rate=max_failure_rate,
            incremental=incremental,
        )
        report.read_s = time.perf_counter() - t0
        report.catalog = plan.catalog
        report.generation = plan.job.generation
        total = plan.job.total
        if progress:
            progress(0, total)
        final = run_local(
            ctx,
            plan.job,
            progress=(lambda p: progress(int(p["products_done"]), total)) if progress else None,
        )
    if final.get("state") != "done":
        raise ShoprankError(
            f"{final.get('error', 'the load failed')}; the alias [{index}] was left unchanged"
        )
    report.previous = final.get("previous")
    report.pruned = list(final.get("pruned", []))
    report.documents = int(final["documents"])
    report.embed_s = float(final.get("embed_s", 0.0))
    report.write_s = float(final.get("write_s", 0.0))
    report.total_s = time.perf_counter() - started
    report.commit_s = max(0.0, report.total_s - report.read_s - report.embed_s - report.write_s)
    return report


def upsert_catalog(
    path: Path,
    *,
    index: str,
    backend: Backend,
    encoder: TextEncoder | None,
    roles: FieldRoles | None = None,
    price_multiplier: float = 1.0,
    batch_size: int = 256,
    cache: EmbeddingCache | None = None,
    images: ImageEmbedder | None = None,
) -> LoadReport:
    """Add or replace products of a catalog file in the live generation of `index`."""
    report = LoadReport(index=index)
    started = time.perf_counter()
    ctx = PipelineContext(
        backend=backend,
        jobs=JobStore(Path("/nonexistent")),
        encoder=encoder,
        images=images,
        cache=cache,
    )
    products: dict[str, dict[str, Any]] = {}
    for doc in read_catalog(
        path, roles=roles, price_multiplier=price_multiplier, report=report.catalog
    ):
        if doc["id"] in products:
            report.catalog.duplicates += 1
        products[doc["id"]] = doc
    docs = list(products.values())
    for start in range(0, len(docs), batch_size):
        result = upsert_products(ctx, index, docs[start : start + batch_size])
        report.generation = result["generation"]
        report.documents += int(result["upserted"])
    report.total_s = time.perf_counter() - started
    return report
