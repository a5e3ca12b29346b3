"""A disk that fills up during `index load`: a clear error, nothing half-built left behind,
and the previous generation still serving (full-disk writes are injected, never real)."""

from __future__ import annotations

import errno
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from shoprank.indexing.diskspace import DiskFullError, needed_estimate
from shoprank.indexing.jobs import JobStore
from shoprank.indexing.loader import load_catalog
from shoprank.plugin.backends.embedded.backend import EmbeddedBackend
from shoprank.plugin.backends.embedded.generation import Generation

INDEX = "products"
ROWS = [{"id": f"p{i}", "title": f"Trail running shoe {i}", "price": 10 + i} for i in range(8)]


def _catalog(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _load(backend: EmbeddedBackend, tmp_path: Path, path: Path, **kwargs: Any) -> Any:
    return load_catalog(
        path,
        index=INDEX,
        backend=backend,
        encoder=None,
        lock_dir=tmp_path / "locks",
        jobs_dir=tmp_path / "jobs",
        **kwargs,
    )


def _fill_disk_on_call(monkeypatch: pytest.MonkeyPatch, call: int) -> list[int]:
    """Make the `call`-th `write_batch` (and every later one) fail as a full disk does,
    after it has really written its documents (the space is taken, then it runs out)."""
    calls: list[int] = []
    real = EmbeddedBackend.write_batch

    def write_batch(self: EmbeddedBackend, index: str, docs: Any, *a: Any, **kw: Any) -> int:
        calls.append(len(docs))
        if len(calls) >= call:
            self.store.generation(index).upsert(docs)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, index, docs, *a, **kw)

    monkeypatch.setattr(EmbeddedBackend, "write_batch", write_batch)
    return calls


def _assert_previous_serves(backend: EmbeddedBackend, tmp_path: Path, previous: str) -> None:
    assert backend.resolve(INDEX) == previous
    result = backend.search(INDEX, {"query": {"match": {"title": "shoe"}}, "size": 20})
    assert result["hits"]["total"]["value"] == 3
    assert {h["_index"] for h in result["hits"]["hits"]} == {previous}
    # No building generation stays on disk, neither in the store nor as a stray folder.
    assert [g["name"] for g in backend.generations(INDEX)] == [previous]
    assert sorted(p.name for p in (tmp_path / "embedded" / "indices").iterdir()) == [previous]


@pytest.mark.parametrize("incremental", [True, False])
def test_disk_full_mid_load_removes_the_partial_generation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, incremental: bool
) -> None:
    backend = EmbeddedBackend(tmp_path / "embedded")
    first = _load(backend, tmp_path, _catalog(tmp_path / "v1.jsonl", ROWS[:3]))
    calls = _fill_disk_on_call(monkeypatch, call=2)

    with pytest.raises(DiskFullError) as caught:
        _load(
            backend,
            tmp_path,
            _catalog(tmp_path / "v2.jsonl", ROWS),
            batch_size=2,
            incremental=incremental,
        )
    assert len(calls) == 2  # the load stopped at the first full-disk write
    reason = caught.value.reason
    assert "the disk is full" in reason
    assert "partial generation was removed" in reason
    assert f"alias [{INDEX}] was left unchanged" in reason
    _assert_previous_serves(backend, tmp_path, first.generation)

    job = JobStore(tmp_path / "jobs").all(INDEX)[-1]
    assert job.state == "failed" and job.error == reason
    assert not (tmp_path / "jobs" / job.id / "chunks").exists()  # the chunk files are gone too

    monkeypatch.undo()  # space freed: the next load works and gets a fresh number
    again = _load(backend, tmp_path, _catalog(tmp_path / "v3.jsonl", ROWS))
    assert backend.resolve(INDEX) == again.generation
    assert backend.count(INDEX, None) == len(ROWS)


def test_a_full_disk_inside_the_tantivy_writer_is_recognised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tantivy reports I/O errors as ValueError with the OS message inside."""
    backend = EmbeddedBackend(tmp_path / "embedded")
    first = _load(backend, tmp_path, _catalog(tmp_path / "v1.jsonl", ROWS[:3]))
    real = Generation._get_writer
    seen = {"docs": 0}

    class FillingWriter:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def add_document(self, doc: Any) -> None:
            seen["docs"] += 1
            if seen["docs"] > 3:
                raise ValueError("An IO error occurred: 'No space left on device (os error 28)'")
            self.inner.add_document(doc)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    def filling_writer(self: Generation) -> Any:
        return FillingWriter(real(self))

    monkeypatch.setattr(Generation, "_get_writer", filling_writer)
    with pytest.raises(DiskFullError, match="the disk is full"):
        _load(
            backend,
            tmp_path,
            _catalog(tmp_path / "v2.jsonl", ROWS),
            batch_size=2,
            incremental=False,
        )
    monkeypatch.undo()
    _assert_previous_serves(backend, tmp_path, first.generation)


def test_the_message_says_how_much_the_load_needed() -> None:
    # 100 MB were free, and it ran out while writing the 3rd of 10 chunks.
    assert needed_estimate(free_at_start=100, done=2, total=10) == 333
    assert needed_estimate(free_at_start=100, done=0, total=10) is None
    assert needed_estimate(free_at_start=None, done=5, total=10) is None


@pytest.fixture()
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    from shoprank.settings import get_settings
    from shoprank.workers import tasks

    monkeypatch.setenv("SHOPRANK_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("SHOPRANK_REDIS_URL", raising=False)
    for cached in (get_settings, tasks._context):
        cached.cache_clear()
    yield tmp_path
    for cached in (get_settings, tasks._context):
        cached.cache_clear()


def test_cli_load_on_a_full_disk_is_a_clear_error(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shoprank.cli import main

    data = cli_env
    runner = CliRunner()
    args = ["--data-dir", str(data), "index", "load", "--index", INDEX, "--no-vectors"]
    ok = runner.invoke(main, [*args, str(_catalog(data / "v1.jsonl", ROWS[:3]))])
    assert ok.exit_code == 0, ok.output
    _fill_disk_on_call(monkeypatch, call=2)

    full = runner.invoke(
        main, [*args, "--batch-size", "2", "--full", str(_catalog(data / "v2.jsonl", ROWS))]
    )
    assert full.exit_code == 1
    assert full.exception is None or isinstance(full.exception, SystemExit)
    assert "error: the disk is full" in full.output
    assert "Traceback" not in full.output and "OSError" not in full.output
    monkeypatch.undo()
    _assert_previous_serves(EmbeddedBackend(data / "embedded"), data, f"{INDEX}-000001")
