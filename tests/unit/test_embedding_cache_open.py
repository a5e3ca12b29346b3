"""The SQLite embedding cache opened by several processes at once (a shared
SHOPRANK_EMBEDDING_CACHE_PATH, or `serve --workers 2` beside a load on a fresh data dir)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import numpy as np

from shoprank.indexing.cache import SqliteEmbeddingCache


def _open_and_write(path: str, worker: int, barrier: Any, failures: Any) -> None:
    barrier.wait()  # every process opens the brand-new file at the same moment
    try:
        cache = SqliteEmbeddingCache(Path(path))
        cache.put_many("m", [(f"w{worker}-{k}", np.full(8, worker, np.float32)) for k in range(50)])
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        failures.put(f"{worker}: {exc!r}")


def test_processes_opening_a_new_cache_file_at_once_all_succeed(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    failures = ctx.Queue()
    for trial in range(12):
        path = tmp_path / f"cache-{trial}.sqlite"
        barrier = ctx.Barrier(3)
        procs = [
            ctx.Process(target=_open_and_write, args=(str(path), w, barrier, failures))
            for w in range(3)
        ]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join()
        assert failures.empty(), failures.get()
        cache = SqliteEmbeddingCache(path)
        assert cache.count("m") == 150
        got = cache.get_many("m", ["w2-7"])
        assert got["w2-7"].tolist() == [2.0] * 8
