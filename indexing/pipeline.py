"""The re-index pipeline: plan → (embed chunk → write chunk)* → finalise.

The step functions here are the whole logic; Celery tasks (`shoprank.workers.tasks`) are
thin wrappers around them, and the embedded default runs the very same steps in-process.
A step receives a `PipelineContext` (backend, encoders, cache, job store) so tests and the
Python API can inject their own parts.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import orjson

from shoprank.errors import CatalogError, ShoprankError
from shoprank.indexing.cache import EmbeddingCache, encode_with_cache
from shoprank.indexing.catalog import CatalogReport, FieldRoles, embedding_text, read_catalog
from shoprank.indexing.diskspace import cleaned_up_when_full, free_bytes
from shoprank.indexing.encoders.protocol import TextEncoder
from shoprank.indexing.jobs import Job, JobStore, file_fingerprint
from shoprank.indexing.mapping import (
    IMAGE_VECTOR_FIELD,
    TEXT_VECTOR_FIELD,
    product_mapping,
    text_language,
)
from shoprank.plugin.backends.protocol import Backend


class RejectedCatalogError(CatalogError):
    """More bad rows than the load allows; `row_errors` lists them ({line, reason})."""

    def __init__(self, reason: str, *, row_errors: list[dict[str, Any]]) -> None:
        super().__init__(reason)
        self.row_errors = row_errors


class ImageEmbedder(Protocol):
    """Embeds the images of products; failures are per product, never per chunk."""

    @property
    def model_id(self) -> str: ...

    @property
    def dims(self) -> int: ...

    def embed_products(
        self,
        docs: list[dict[str, Any]],
        cache: EmbeddingCache | None,
        *,
        base_dir: Path | None = None,
    ) -> tuple[dict[int, np.ndarray], list[dict[str, str]], int]:
        """(row → vector for products whose image loaded, [{id, reason}], embedded count)."""
        ...


@dataclass
class PipelineContext:
    """What the steps work with; the backend both serves (`resolve`, `mget`) and stores."""

    backend: Backend
    jobs: JobStore
    encoder: TextEncoder | None = None
    images: ImageEmbedder | None = None
    cache: EmbeddingCache | None = None


def cache_suffix(encoder: TextEncoder) -> str:
    """The embedding-cache key suffix of `encoder`'s vectors (truncation changes them)."""
    return f"/len{encoder.max_length}"


@dataclass
class Plan:
    job: Job
    catalog: CatalogReport
    duplicates: int = 0
    dry_run: bool = False
    notes: list[str] = field(default_factory=list)


def plan_job(
    ctx: PipelineContext,
    path: Path,
    *,
    alias: str,
    roles: FieldRoles | None = None,
    price_multiplier: float = 1.0,
    chunk_size: int = 256,
    keep: int = 2,
    max_failure_rate: float = 0.05,
    dry_run: bool = False,
    incremental: bool = True,
) -> Plan:
    """Read and validate the catalog, then (unless `dry_run`) create the generation and
    write the chunks. Nothing is served from the new generation until `finalise`.

    With `incremental` (the default), when the live generation of `alias` was built by a
    re-index with the same mapping and models, the new generation starts as a clone of it
    and only products whose content hash changed are embedded and written; products the
    catalog no longer has are deleted. The result is the same as a full rebuild."""
    report = CatalogReport()
    products: dict[str, dict[str, Any]] = {}
    for doc in read_catalog(path, roles=roles, price_multiplier=price_multiplier, report=report):
        if doc["id"] in products:
            report.duplicates += 1
        products[doc["id"]] = doc
    rate = len(report.errors) / report.rows if report.rows else 0.0
    with_vectors = ctx.encoder is not None
    job = Job(
        id="(dry-run)",
        alias=alias,
        generation="",
        catalog=str(path.resolve()),
        fingerprint=file_fingerprint(path),
        total=len(products),
        chunk_size=chunk_size,
        chunks=(len(products) + chunk_size - 1) // chunk_size,
        rejected_rows=len(report.errors),
        rows=report.rows,
        with_vectors=with_vectors,
        keep=keep,
        max_failure_rate=max_failure_rate,
    )
    plan = Plan(job=job, catalog=report, duplicates=report.duplicates, dry_run=dry_run)
    if not products:
        raise CatalogError(
            f"no valid products in {str(path)!r} ({report.summary()}); "
            f"the alias [{alias}] was left unchanged"
        )
    if rate > max_failure_rate:
        plan.notes.append(
            f"{len(report.errors)} of {report.rows} rows are bad ({rate:.1%} > "
            f"{max_failure_rate:.1%}): the load would abort"
        )
    if dry_run:
        return plan
    if rate > max_failure_rate:
        bad = [{"line": e.line, "reason": e.reason} for e in report.errors]
        report_dir = ctx.jobs.root / f"{alias}-rejected-{time.strftime('%Y%m%dT%H%M%S')}"
        report_dir.mkdir(parents=True, exist_ok=True)
        report_path = report_dir / "bad-products.jsonl"
        report_path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in bad))
        raise RejectedCatalogError(
            f"{len(report.errors)} of {report.rows} rows are bad ({rate:.1%}, over the "
            f"{max_failure_rate:.1%} limit); the alias [{alias}] was left unchanged; "
            f"bad products: {report_path}",
            row_errors=bad,
        )
    for stale in ctx.jobs.all(alias):
        if stale.state in ("planned", "running"):
            stale.state, stale.error = "abandoned", "superseded by a new load"
            ctx.jobs.save(stale)
    ctx.backend.prune(alias, keep=keep)  # sweep generations of crashed or abandoned loads
    job.free_bytes = free_bytes(ctx.jobs.root)
    dims = ctx.encoder.dims if ctx.encoder is not None else 0
    image_dims = ctx.images.dims if ctx.images is not None else 0
    mapping = product_mapping(
        text_dims=dims,
        image_dims=image_dims,
        language=text_language(products.values()),
        docs=products.values(),
    )
    signature = _signature(ctx, mapping, with_vectors=with_vectors)
    hashes = {
        pid: _content_hash(doc, Path(job.catalog).parent, images=ctx.images is not None)
        for pid, doc in products.items()
    }
    base = _incremental_base(ctx, alias, signature) if incremental else None
    changed = list(products)
    removed: list[str] = []
    if base is not None:
        name, old_hashes = base
        changed = [pid for pid, h in hashes.items() if old_hashes.get(pid) != h]
        removed = [pid for pid in old_hashes if pid not in products]
        job.generation = ctx.backend.clone_generation(alias, name)
        job.base, job.unchanged, job.removed = name, len(products) - len(changed), len(removed)
        job.chunks = (len(changed) + chunk_size - 1) // chunk_size
        plan.notes.append(
            f"incremental: {len(changed)} new or changed, {job.unchanged} unchanged, "
            f"{len(removed)} removed (base {name})"
        )
    else:
        job.generation = ctx.backend.create_generation(alias, mapping)
    job.id = job.generation
    job_dir = ctx.jobs.dir(job.id)
    with cleaned_up_when_full(ctx.backend, ctx.jobs, job, what="writing the load's chunks"):
        job_dir.mkdir(parents=True, exist_ok=True)
        manifest = {"signature": signature, "hashes": hashes}
        (job_dir / "manifest.json").write_bytes(orjson.dumps(manifest))
        (job_dir / "removed.json").write_bytes(orjson.dumps(removed))
        docs = [{"_id": pid, **products[pid]} for pid in changed]
        for number in range(1, job.chunks + 1):
            chunk = docs[(number - 1) * chunk_size : number * chunk_size]
            ctx.jobs.write_chunk(job, number, chunk)
        job.state = "running"
        ctx.jobs.save(job)
    if report.errors:
        _write_bad_products(
            ctx.jobs, job, [{"line": e.line, "reason": e.reason} for e in report.errors]
        )
    return plan


def _content_hash(doc: dict[str, Any], base_dir: Path, *, images: bool) -> str:
    """What decides whether a product must be re-embedded and re-written: its normalised
    document, plus, for a local image file, the file's size and modification time. A
    remote image URL can change behind the same address, so such products always go
    through the pipeline (the embedding cache still skips unchanged pixels)."""
    digest = hashlib.blake2b(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS), digest_size=16)
    image = doc.get("image") if images else None
    if isinstance(image, str) and image:
        if image.startswith(("http://", "https://")):
            digest.update(os.urandom(8))
        elif not image.startswith("data:"):
            path = Path(image[7:] if image.startswith("file://") else image)
            path = path if path.is_absolute() else base_dir / path
            try:
                st = path.stat()
                digest.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
            except OSError:
                digest.update(b"missing")
    return digest.hexdigest()


def _signature(ctx: PipelineContext, mapping: dict[str, Any], *, with_vectors: bool) -> str:
    """Two generations with the same signature hold the same documents for the same input."""
    text = ctx.encoder if with_vectors else None
    parts = {
        "mapping": mapping,
        "text": text.model_id if text is not None else None,
        "text_len": text.max_length if text is not None else None,
        "image": ctx.images.model_id if ctx.images is not None else None,
    }
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _incremental_base(
    ctx: PipelineContext, alias: str, signature: str
) -> tuple[str, dict[str, str]] | None:
    """The live generation of `alias` and its content hashes, when it can be the base."""
    try:
        live = ctx.backend.resolve(alias)
        manifest = ctx.backend.read_manifest(live)
    except ShoprankError:
        return None
    if not manifest or manifest.get("signature") != signature:
        return None
    return live, dict(manifest.get("hashes", {}))


def _finished(ctx: PipelineContext, job: Job) -> bool:
    return ctx.jobs.load(job.id).state in ("done", "failed", "aborted", "abandoned")


def _write_bad_products(jobs: JobStore, job: Job, rows: list[dict[str, Any]]) -> Path:
    path: Path = jobs.dir(job.id) / "bad-products.jsonl"
    with open(path, "ab") as fh:
        for row in rows:
            fh.write(orjson.dumps(row) + b"\n")
    return path


def embed_chunk(ctx: PipelineContext, job: Job, number: int) -> dict[str, Any]:
    """Embed chunk `number` (text, and images where configured) into its vectors file."""
    if ctx.jobs.is_done(job, number) or _finished(ctx, job):
        return {"chunk": number, "skipped": True}
    docs = ctx.jobs.read_chunk(job, number)
    started = time.perf_counter()
    arrays: dict[str, np.ndarray] = {}
    embedded = hits = 0
    image_failures: list[dict[str, str]] = []
    failures: list[dict[str, str]] = []
    if job.with_vectors and ctx.encoder is not None:
        matrix, embedded = encode_with_cache(
            ctx.encoder,
            [embedding_text(d) for d in docs],
            ctx.cache,
            key_suffix=cache_suffix(ctx.encoder),
        )
        hits = len(docs) - embedded
        arrays[TEXT_VECTOR_FIELD] = matrix
        broken = ~np.isfinite(matrix).all(axis=1) if len(matrix) else np.zeros(0, dtype=bool)
        failures = [
            {"id": str(docs[i]["_id"]), "reason": "the text encoder returned a non-finite vector"}
            for i in np.flatnonzero(broken)
        ]
    if ctx.images is not None:
        # Relative image paths in a catalog are relative to the catalog file.
        rows, image_failures, _ = ctx.images.embed_products(
            docs, ctx.cache, base_dir=Path(job.catalog).parent
        )
        if rows:
            arrays[f"{IMAGE_VECTOR_FIELD}.rows"] = np.asarray(sorted(rows), dtype=np.int64)
            arrays[IMAGE_VECTOR_FIELD] = np.vstack([rows[r] for r in sorted(rows)])
    path = ctx.jobs.vectors_path(job, number)
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    what = f"saving the vectors of chunk {number}"
    with cleaned_up_when_full(ctx.backend, ctx.jobs, job, what=what):
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(tmp, **(arrays or {"empty": np.zeros(0)}))  # type: ignore[arg-type]
        tmp.replace(path)
    return {
        "chunk": number,
        "embedded": embedded,
        "cache_hits": hits,
        "failures": failures,
        "image_failures": image_failures,
        "embed_s": round(time.perf_counter() - started, 4),
    }


def write_chunk(
    ctx: PipelineContext, job: Job, number: int, embedded: dict[str, Any]
) -> dict[str, Any]:
    """Write chunk `number` and its vectors into the job's generation, then mark it done."""
    if embedded.get("skipped") or ctx.jobs.is_done(job, number) or _finished(ctx, job):
        # A duplicate (a resumed job and a redelivered task both ran): already written.
        return {"chunk": number, "skipped": True}
    started = time.perf_counter()
    docs = ctx.jobs.read_chunk(job, number)
    vectors: dict[str, np.ndarray] = {}
    with np.load(ctx.jobs.vectors_path(job, number)) as data:
        if TEXT_VECTOR_FIELD in data:
            vectors[TEXT_VECTOR_FIELD] = data[TEXT_VECTOR_FIELD]
        partial = {}
        if IMAGE_VECTOR_FIELD in data:
            rows, matrix = data[f"{IMAGE_VECTOR_FIELD}.rows"], data[IMAGE_VECTOR_FIELD]
            partial[IMAGE_VECTOR_FIELD] = (rows, matrix)
    # Products whose embedding failed are left out (and reported), never half-written.
    failures: list[dict[str, str]] = list(embedded.get("failures", []))
    failed = {f["id"] for f in failures}
    if failed:
        keep = [i for i, d in enumerate(docs) if str(d["_id"]) not in failed]
        docs = [docs[i] for i in keep]
        vectors = {f: m[keep] for f, m in vectors.items()}
        partial = _drop_rows(partial, keep)
    what = f"writing chunk {number} of {job.chunks} into [{job.generation}]"
    with cleaned_up_when_full(ctx.backend, ctx.jobs, job, what=what):
        written = ctx.backend.write_batch(job.generation, docs, vectors, partial_vectors=partial)
        result = {
            **embedded,
            "chunk": number,
            "written": written,
            "failures": failures,
            "write_s": round(time.perf_counter() - started, 4),
        }
        ctx.jobs.mark_done(job, number, result)
    return result


def _drop_rows(
    partial: dict[str, tuple[Any, np.ndarray]], keep: list[int]
) -> dict[str, tuple[Any, np.ndarray]]:
    """Renumber partial vector rows after dropping documents (old row → new row)."""
    new_row = {old: new for new, old in enumerate(keep)}
    out = {}
    for name, (rows, matrix) in partial.items():
        pairs = [(new_row[int(r)], j) for j, r in enumerate(rows) if int(r) in new_row]
        if pairs:
            out[name] = ([p[0] for p in pairs], matrix[[p[1] for p in pairs]])
    return out


def finalise(ctx: PipelineContext, job_id: str) -> dict[str, Any]:
    """Check the generation is complete and sound, then swap the alias and prune.

    Idempotent: a finished job returns its report again.
    """
    job = ctx.jobs.load(job_id)
    if job.state == "done":
        return dict(job.report)
    done = ctx.jobs.done(job)
    missing = [n for n in range(1, job.chunks + 1) if n not in done]
    if missing:
        return _fail(
            ctx,
            job,
            "failed",
            f"{len(missing)} of {job.chunks} chunks never finished "
            f"(first: {missing[0]}); run the load again with --resume",
        )
    failures = [f for r in done.values() for f in r.get("failures", [])]
    bad = job.rejected_rows + len(failures)
    rate = bad / job.rows if job.rows else 0.0
    if failures:
        _write_bad_products(ctx.jobs, job, failures)
    if rate > job.max_failure_rate:
        return _fail(
            ctx,
            job,
            "aborted",
            f"{bad} of {job.rows} products failed ({rate:.1%} > "
            f"{job.max_failure_rate:.1%}); see bad-products.jsonl",
        )
    failed_ids = {f["id"] for f in failures}
    job_dir = ctx.jobs.dir(job.id)
    what = f"committing [{job.generation}]"
    with cleaned_up_when_full(ctx.backend, ctx.jobs, job, what=what, estimate=False):
        if job.base is not None:
            # The clone still holds products the catalog dropped and the old version of any
            # product that failed this time: remove both, as a full rebuild would not have them.
            removed = orjson.loads((job_dir / "removed.json").read_bytes())
            gone = sorted(set(removed) | failed_ids)
            if gone:
                ctx.backend.write_batch(job.generation, [], delete_ids=gone)
        count = ctx.backend.commit(job.generation, ready=False)
        expected = job.total - len(failed_ids)
        if count != expected:
            return _fail(
                ctx,
                job,
                "failed",
                f"generation [{job.generation}] holds {count} documents, expected {expected}",
            )
        manifest_path = job_dir / "manifest.json"
        if manifest_path.exists():
            manifest = orjson.loads(manifest_path.read_bytes())
            for pid in failed_ids:  # retried by the next re-index
                manifest["hashes"].pop(pid, None)
            ctx.backend.write_manifest(job.generation, manifest)
        ctx.backend.commit(job.generation, ready=True)
    previous = ctx.backend.swap_alias(job.alias, job.generation)
    pruned = ctx.backend.prune(job.alias, keep=job.keep)
    progress = ctx.jobs.progress(job)
    job.state, job.finished = "done", time.time()
    job.report = {
        **progress,
        "state": "done",
        "documents": count,
        "previous": previous,
        "pruned": pruned,
        "embed_s": round(sum(float(r.get("embed_s", 0)) for r in done.values()), 3),
        "write_s": round(sum(float(r.get("write_s", 0)) for r in done.values()), 3),
        "bad_products": bad,
    }
    ctx.jobs.save(job)
    (ctx.jobs.dir(job.id) / "report.json").write_bytes(
        orjson.dumps(job.report, option=orjson.OPT_INDENT_2)
    )
    return dict(job.report)


def _fail(ctx: PipelineContext, job: Job, state: str, reason: str) -> dict[str, Any]:
    job.state, job.error, job.finished = state, reason, time.time()
    job.report = {**ctx.jobs.progress(job), "state": state, "error": reason}
    ctx.jobs.save(job)
    (ctx.jobs.dir(job.id) / "report.json").write_bytes(
        orjson.dumps(job.report, option=orjson.OPT_INDENT_2)
    )
    return dict(job.report)


def pending_chunks(ctx: PipelineContext, job: Job) -> list[int]:
    done = ctx.jobs.done(job)
    return [n for n in range(1, job.chunks + 1) if n not in done]


def run_local(
    ctx: PipelineContext, job: Job, *, progress: Callable[[dict[str, Any]], None] | None = None
) -> dict[str, Any]:
    """Run every pending chunk and the finalise step in this process."""
    for number in pending_chunks(ctx, job):
        write_chunk(ctx, job, number, embed_chunk(ctx, job, number))
        if progress:
            progress(ctx.jobs.progress(job))
    return finalise(ctx, job.id)


def check_resumable(ctx: PipelineContext, job: Job, path: Path) -> None:
    if job.fingerprint != file_fingerprint(path):
        raise ShoprankError(
            f"the catalog {str(path)!r} changed since job [{job.id}] started; "
            "run the load without --resume to start over"
        )
