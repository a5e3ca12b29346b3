"""Running a re-index job: in-process (eager) or as a Celery chord on the workers."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from shoprank.errors import ShoprankError
from shoprank.indexing.jobs import Job, JobStore
from shoprank.settings import Settings

TERMINAL = ("done", "failed", "aborted", "abandoned")
Progress = Callable[[dict[str, Any]], None]


def pending(jobs: JobStore, job: Job) -> list[int]:
    done = jobs.done(job)
    return [n for n in range(1, job.chunks + 1) if n not in done]


def run_job(
    settings: Settings,
    job: Job,
    *,
    wait: bool = True,
    progress: Progress | None = None,
    poll_s: float = 0.5,
    timeout_s: float | None = None,
) -> dict[str, Any] | None:
    """Run the pending chunks of `job` and its finalise step; returns the final report
    (None when not waiting)."""
    from celery import chain, chord

    from shoprank.workers import tasks

    jobs = JobStore(settings.data_dir / "jobs")
    todo = pending(jobs, job)
    if settings.eager:
        for number in todo:
            embedded = tasks.embed_chunk.apply(args=(job.id, number)).get()
            tasks.write_chunk.apply(args=(embedded, job.id, number)).get()
            if progress:
                progress(jobs.progress(jobs.load(job.id)))
        report: dict[str, Any] = tasks.finalise.apply(args=(job.id,)).get()
        return report
    legs = [chain(tasks.embed_chunk.si(job.id, n), tasks.write_chunk.s(job.id, n)) for n in todo]
    if legs:
        chord(legs)(tasks.finalise.si(job.id))
    else:
        tasks.finalise.delay(job.id)
    if not wait:
        return None
    started = time.monotonic()
    while True:
        current = jobs.load(job.id)
        if progress:
            progress(jobs.progress(current))
        if current.state in TERMINAL:
            return dict(current.report)
        if timeout_s is not None and time.monotonic() - started > timeout_s:
            raise ShoprankError(
                f"job [{job.id}] is still running after {timeout_s:.0f}s; follow it with "
                f"`shoprank index status {job.id}`, or resume it with --resume if its "
                "workers died"
            )
        time.sleep(poll_s)


def submit_upsert(
    settings: Settings, index: str, docs: list[dict[str, Any]], *, timeout_s: float = 300
) -> dict[str, Any]:
    """Upsert normalised products through the `upsert_products` task and wait for it."""
    from shoprank.workers import tasks

    if settings.eager:
        result: dict[str, Any] = tasks.upsert_products.apply(args=(index, docs)).get()
        return result
    out: dict[str, Any] = tasks.upsert_products.delay(index, docs).get(timeout=timeout_s)
    return out


def submit_delete(
    settings: Settings, index: str, ids: list[str], *, timeout_s: float = 300
) -> dict[str, Any]:
    from shoprank.workers import tasks

    if settings.eager:
        result: dict[str, Any] = tasks.delete_products.apply(args=(index, ids)).get()
        return result
    out: dict[str, Any] = tasks.delete_products.delay(index, ids).get(timeout=timeout_s)
    return out
