"""Re-index jobs on disk: the plan, its chunks, and a marker per finished chunk.

`<data_dir>/jobs/<generation>/`:
    job.json            the plan and state (planned → running → done | failed | aborted)
    chunks/000001.jsonl products of chunk 1 (normalised, with `_id`)
    vectors/000001.npz  embeddings of chunk 1 (written by the embed task)
    done/000001.json    written by the write task once chunk 1 is committed
    report.json         the final report; bad-products.jsonl lists every rejected product

Every file is written once by one task (or atomically replaced), so any number of worker
processes and a watching CLI can share the folder without coordination; progress is the
number of markers, which makes a job observable and resumable.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from shoprank.errors import BadRequestError, ShoprankError


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def file_fingerprint(path: Path) -> str:
    """sha256 of a catalog file, to tell whether a resumed job reads the same catalog."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Job:
    id: str
    alias: str
    generation: str
    catalog: str
    fingerprint: str
    total: int
    chunk_size: int
    chunks: int
    rejected_rows: int
    rows: int
    with_vectors: bool
    keep: int
    max_failure_rate: float
    # Incremental re-index: the generation the new one was cloned from, and how many of
    # its products are carried over unchanged / removed because the catalog dropped them.
    base: str | None = None
    unchanged: int = 0
    removed: int = 0
    # Free bytes on the data directory's disk when the load began (how much a load that
    # ran out of space needed is estimated from it).
    free_bytes: int | None = None
    state: str = "planned"
    created: float = field(default_factory=time.time)
    finished: float | None = None
    error: str | None = None
    report: dict[str, Any] = field(default_factory=dict)


class JobStore:
    """All jobs of one data directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def dir(self, job_id: str) -> Path:
        return self.root / job_id

    def save(self, job: Job) -> None:
        directory = self.dir(job.id)
        directory.mkdir(parents=True, exist_ok=True)
        _write_atomic(directory / "job.json", orjson.dumps(asdict(job), option=orjson.OPT_INDENT_2))

    def load(self, job_id: str) -> Job:
        path = self.dir(job_id) / "job.json"
        if not path.exists():
            raise BadRequestError(f"no re-index job [{job_id}] (see `shoprank index status`)")
        return Job(**orjson.loads(path.read_bytes()))

    def all(self, alias: str | None = None) -> list[Job]:
        jobs = []
        for path in sorted(self.root.glob("*/job.json")):
            job = Job(**orjson.loads(path.read_bytes()))
            if alias is None or job.alias == alias:
                jobs.append(job)
        return jobs

    def unfinished(self, alias: str) -> Job | None:
        pending = [j for j in self.all(alias) if j.state in ("planned", "running")]
        return pending[-1] if pending else None

    # -- chunks ----------------------------------------------------------------------------

    def chunk_path(self, job: Job, number: int) -> Path:
        return self.dir(job.id) / "chunks" / f"{number:06d}.jsonl"

    def vectors_path(self, job: Job, number: int) -> Path:
        return self.dir(job.id) / "vectors" / f"{number:06d}.npz"

    def write_chunk(self, job: Job, number: int, docs: list[dict[str, Any]]) -> None:
        path = self.chunk_path(job, number)
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(path, b"".join(orjson.dumps(d) + b"\n" for d in docs))

    def read_chunk(self, job: Job, number: int) -> list[dict[str, Any]]:
        path = self.chunk_path(job, number)
        if not path.exists():
            raise ShoprankError(f"chunk {number} of job [{job.id}] is missing ({path})")
        return [orjson.loads(line) for line in path.read_bytes().splitlines() if line]

    def mark_done(self, job: Job, number: int, result: dict[str, Any]) -> None:
        path = self.dir(job.id) / "done" / f"{number:06d}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(path, orjson.dumps(result))

    def is_done(self, job: Job, number: int) -> bool:
        return (self.dir(job.id) / "done" / f"{number:06d}.json").exists()

    def done(self, job: Job) -> dict[int, dict[str, Any]]:
        out = {}
        for path in (self.dir(job.id) / "done").glob("*.json"):
            out[int(path.stem)] = orjson.loads(path.read_bytes())
        return out

    def progress(self, job: Job) -> dict[str, Any]:
        done = self.done(job)
        written = sum(int(r.get("written", 0)) for r in done.values())
        return {
            "job": job.id,
            "alias": job.alias,
            "state": job.state,
            "chunks_done": len(done),
            "chunks": job.chunks,
            "products_done": written + job.unchanged,
            "unchanged": job.unchanged,
            "removed": job.removed,
            "products": job.total,
            "embedded": sum(int(r.get("embedded", 0)) for r in done.values()),
            "cache_hits": sum(int(r.get("cache_hits", 0)) for r in done.values()),
            "failures": job.rejected_rows + sum(len(r.get("failures", [])) for r in done.values()),
            "image_failures": sum(len(r.get("image_failures", [])) for r in done.values()),
            "elapsed_s": round((job.finished or time.time()) - job.created, 1),
        }
