"""A full disk during a load: recognise it, say how much was missing, clean up after it.

A load that runs out of space must not leave its half-built generation (and its chunk
files) behind: they hold the space that everything else on the disk (the event log, the
next load) needs. `DiskFullError` is what the loader raises once it has cleaned up.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson

from shoprank.errors import InsufficientStorageError, ShoprankError, is_disk_full
from shoprank.indexing.jobs import Job, JobStore
from shoprank.plugin.backends.protocol import GenerationStore

MB = 1024 * 1024


class DiskFullError(InsufficientStorageError):
    """The disk filled up during a load; the partial generation was removed."""


def free_bytes(path: Path) -> int | None:
    """Free space on the filesystem holding `path` (its nearest existing parent)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            try:
                return shutil.disk_usage(candidate).free
            except OSError:
                return None
    return None


def needed_estimate(*, free_at_start: int | None, done: int, total: int) -> int | None:
    """About how many bytes the whole load needs, from how far the free space went.

    The load had used up `free_at_start` bytes by the time it had done `done` of `total`
    units (chunks) and failed on the next one; unknown when nothing finished."""
    if not free_at_start or done <= 0 or total <= 0:
        return None
    return int(free_at_start * total / (done + 1))


def disk_full_reason(
    *,
    alias: str,
    what: str,
    free_at_start: int | None,
    needed: int | None,
    cleaned: bool,
) -> str:
    """The operator's message: what failed, how much space was missing, what to do."""
    parts = [f"the disk is full: no space left on the device while {what}"]
    if needed is not None and free_at_start is not None:
        parts.append(
            f"the load needed about {needed / MB:,.0f} MB and {free_at_start / MB:,.0f} MB "
            "were free when it started"
        )
    elif free_at_start is not None:
        parts.append(f"the load needed more than the {free_at_start / MB:,.0f} MB free")
    parts.append(
        ("the partial generation was removed; " if cleaned else "")
        + f"the alias [{alias}] was left unchanged"
    )
    parts.append("free some space (or lower SHOPRANK_KEEP_GENERATIONS) and run the load again")
    return "; ".join(parts)


def abandon_full_load(
    backend: GenerationStore, jobs: JobStore, job: Job, *, what: str, estimate: bool = True
) -> DiskFullError:
    """Remove what a load that hit a full disk wrote (its generation, its chunk and vector
    files), record the job as failed, and return the error to raise.

    The alias is never touched, so the previous generation goes on serving."""
    cleaned = False
    if job.generation:
        try:
            backend.prune(job.alias, keep=job.keep)  # the partial one is not ready: dropped
            cleaned = job.generation not in {g["name"] for g in backend.generations(job.alias)}
        except (ShoprankError, OSError):
            cleaned = False
    directory = jobs.dir(job.id)
    for sub in ("chunks", "vectors"):
        shutil.rmtree(directory / sub, ignore_errors=True)
    done = len(jobs.done(job)) if job.generation else 0
    reason = disk_full_reason(
        alias=job.alias,
        what=what,
        free_at_start=job.free_bytes,
        needed=needed_estimate(free_at_start=job.free_bytes, done=done, total=job.chunks)
        if estimate
        else None,
        cleaned=cleaned,
    )
    if job.generation:
        job.state, job.error, job.finished = "failed", reason, time.time()
        job.report = {**jobs.progress(job), "state": "failed", "error": reason}
        with contextlib.suppress(OSError):  # the space freed above is usually enough
            jobs.save(job)
            (directory / "report.json").write_bytes(
                orjson.dumps(job.report, option=orjson.OPT_INDENT_2)
            )
    return DiskFullError(reason, free_bytes=job.free_bytes)


@contextmanager
def cleaned_up_when_full(
    backend: GenerationStore, jobs: JobStore, job: Job, *, what: str, estimate: bool = True
) -> Iterator[None]:
    """Turn a full disk inside the block into a clean `DiskFullError` (see above)."""
    try:
        yield
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        raise abandon_full_load(backend, jobs, job, what=what, estimate=estimate) from exc
