"""A write to a generation whose tantivy writer lock is still held by another writer (a
worker process killed a moment ago): it waits for the lock, and fails clearly if it stays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import tantivy

from shoprank.errors import ShoprankError
from shoprank.plugin.backends.embedded import generation as generation_module
from shoprank.plugin.backends.embedded.generation import Generation
from tests.unit.conftest import build_index


def _holder(gen: Generation) -> Any:
    """Another writer on the same tantivy directory, holding its lock."""
    return tantivy.Index.open(str(gen.dir / "tantivy")).writer(heap_size=15_000_000)


def test_a_write_waits_for_a_writer_lock_that_is_released(tmp_path: Path) -> None:
    backend, name = build_index(tmp_path, [{"_id": "a", "id": "a", "title": "kettle"}])
    gen = backend.store.generation(name)
    holder = [_holder(gen)]
    sleeps: list[float] = []

    def release_on_first_wait(seconds: float) -> None:
        sleeps.append(seconds)
        holder.clear()  # the other writer goes away, as a killed process's lock does

    gen._sleep = release_on_first_wait
    written = backend.write_batch(name, [{"_id": "b", "id": "b", "title": "toaster"}])
    assert written == 1 and len(sleeps) == 1
    assert backend.count(name, None) == 2


def test_a_lock_that_stays_held_fails_with_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend, name = build_index(tmp_path, [{"_id": "a", "id": "a", "title": "kettle"}])
    gen = backend.store.generation(name)
    holder = _holder(gen)
    sleeps: list[float] = []
    gen._sleep = sleeps.append
    monkeypatch.setattr(generation_module, "WRITER_LOCK_WAIT_S", 1.0)
    with pytest.raises(ShoprankError, match="being written by another process"):
        backend.write_batch(name, [{"_id": "b", "id": "b", "title": "toaster"}])
    assert sum(sleeps) >= 1.0
    del holder
    assert backend.count(name, None) == 1
