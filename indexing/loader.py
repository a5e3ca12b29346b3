"""Catalog → new index generation → alias swap, with nothing half-done ever served.

The load builds a fresh generation, embeds and writes it chunk by chunk, checks the
document count, and only then swaps the alias in one atomic step. A load that fails or is
killed leaves the alias on the previous generation; its partial generation is swept by the
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

from shoprank.errors import CatalogError, ShoprankError
from shoprank.indexing.catalog import CatalogReport, FieldRoles, embedding_text, read_catalog
from shoprank.indexing.encoders.protocol import TextEncoder
from shoprank.indexing.mapping import TEXT_VECTOR_FIELD, product_mapping
from shoprank.plugin.backends.protocol import SearchBackend

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
    backend: SearchBackend,
    encoder: TextEncoder | None,
    lock_dir: Path,
    roles: FieldRoles | None = None,
    price_multiplier: float = 1.0,
    batch_size: int = 256,
    keep: int = 2,
    progress: Progress | None = None,
) -> LoadReport:
    """Load a catalog into a new generation of `index` and point the alias at it."""
    report = LoadReport(index=index)
    started = time.perf_counter()
    with alias_lock(lock_dir, index):
        t0 = time.perf_counter()
        products: dict[str, dict[str, Any]] = {}
        for doc in read_catalog(
            path, roles=roles, price_multiplier=price_multiplier, report=report.catalog
        ):
            if doc["id"] in products:
                report.catalog.duplicates += 1
            products[doc["id"]] = doc
        report.read_s = time.perf_counter() - t0
        if not products:
            raise CatalogError(
                f"no valid products in {str(path)!r} ({report.catalog.summary()}); "
                f"the alias [{index}] was left unchanged"
            )
        backend.prune(index, keep=keep)  # sweep generations left by crashed loads
        dims = encoder.dims if encoder is not None else 0
        mapping = product_mapping(text_dims=dims) if dims else _without_vectors(product_mapping())
        report.generation = backend.create_generation(index, mapping)
        docs = list(products.values())
        done = 0
        if progress:
            progress(0, len(docs))
        for start in range(0, len(docs), batch_size):
            chunk = docs[start : start + batch_size]
            vectors = None
            if encoder is not None:
                t0 = time.perf_counter()
                matrix = encoder.encode([embedding_text(d) for d in chunk])
                report.embed_s += time.perf_counter() - t0
                vectors = {TEXT_VECTOR_FIELD: matrix}
            t0 = time.perf_counter()
            backend.bulk_upsert(report.generation, [{"_id": d["id"], **d} for d in chunk], vectors)
            report.write_s += time.perf_counter() - t0
            done += len(chunk)
            if progress:
                progress(done, len(docs))
        t0 = time.perf_counter()
        count = backend.commit(report.generation, ready=False)
        if count != len(docs):
            raise ShoprankError(
                f"generation [{report.generation}] holds {count} documents, expected "
                f"{len(docs)}; the alias [{index}] was left unchanged"
            )
        backend.commit(report.generation, ready=True)
        report.previous = backend.swap_alias(index, report.generation)
        report.commit_s = time.perf_counter() - t0
        report.documents = count
        report.pruned = backend.prune(index, keep=keep)
    report.total_s = time.perf_counter() - started
    return report


def _without_vectors(mapping: dict[str, Any]) -> dict[str, Any]:
    mapping["properties"].pop(TEXT_VECTOR_FIELD, None)
    return mapping


def upsert_catalog(
    path: Path,
    *,
    index: str,
    backend: SearchBackend,
    encoder: TextEncoder | None,
    roles: FieldRoles | None = None,
    price_multiplier: float = 1.0,
    batch_size: int = 256,
) -> LoadReport:
    """Add or replace products of a catalog file in the live generation of `index`."""
    report = LoadReport(index=index)
    started = time.perf_counter()
    generation = backend.resolve(index)
    report.generation = generation
    wants_vectors = TEXT_VECTOR_FIELD in backend.vector_fields(generation)
    products: dict[str, dict[str, Any]] = {}
    for doc in read_catalog(
        path, roles=roles, price_multiplier=price_multiplier, report=report.catalog
    ):
        if doc["id"] in products:
            report.catalog.duplicates += 1
        products[doc["id"]] = doc
    docs = list(products.values())
    for start in range(0, len(docs), batch_size):
        chunk = docs[start : start + batch_size]
        vectors = None
        if encoder is not None and wants_vectors:
            t0 = time.perf_counter()
            vectors = {TEXT_VECTOR_FIELD: encoder.encode([embedding_text(d) for d in chunk])}
            report.embed_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        backend.bulk_upsert(generation, [{"_id": d["id"], **d} for d in chunk], vectors)
        report.write_s += time.perf_counter() - t0
    t0 = time.perf_counter()
    backend.commit(generation)
    report.commit_s = time.perf_counter() - t0
    report.documents = len(docs)
    report.total_s = time.perf_counter() - started
    return report
