"""Optional search stages under the search's deadline: late or failing stages are skipped.

`StageRunner.rerank` runs one reranking stage in a worker thread and waits at most until
the search's deadline (`SHOPRANK_SEARCH_BUDGET_MS` after it started). A stage that overruns,
raises or returns a window that is not a reordering of its input is skipped: the order it was
given is kept and the degradation is counted and reported under `_shoprank.degraded`. A stuck
stage keeps its thread; while every thread is stuck the stage is skipped at once ("busy").
Lateness is measured on a `StageClock` (the real `perf_counter` unless one is injected).

Stages named in `inline` bound their own work (the learned ranker's CPU-time budget, query
understanding's backend calls under the request's deadline) and run on the search's own
thread: the hand-off to a worker thread and back cost more than they do at the tail (p99
of `full` 22.0 → 17.0 ms on Home Depot, `benchmarks/bench_stage_handoff.py`). One that
finishes after the deadline is skipped as late all the same; one that starts after it is
not run.

`load_extra_rerankers` builds the stages named in `SHOPRANK_EXTRA_RERANKERS`.
"""

from __future__ import annotations

import importlib
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures import wait as wait_for_future
from typing import Any, Protocol, TypeVar

from shoprank.errors import ConfigError
from shoprank.metrics import degrade
from shoprank.rerankers.protocol import RANKER_NAME, Candidate, RerankContext, Reranker

T = TypeVar("T")
# The built-in stages, which bound their own work and so run on the search's thread: query
# understanding and the learned ranker. Extra rerankers (`SHOPRANK_EXTRA_RERANKERS`) run on
# the stage threads, cut off at the deadline.
INLINE_STAGES = frozenset({"intent", f"rerank:{RANKER_NAME}"})


class _DaemonPool:
    """Worker threads that never hold up interpreter exit (a stuck stage must not block
    shutdown, which `ThreadPoolExecutor`'s joined workers would)."""

    def __init__(self, workers: int) -> None:
        self._queue: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]]] = queue.SimpleQueue()
        for i in range(workers):
            threading.Thread(target=self._work, name=f"stage-{i}", daemon=True).start()

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        self._queue.put((future, fn))
        return future

    def _work(self) -> None:
        while True:
            future, fn = self._queue.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting search
                future.set_exception(exc)


class StageClock(Protocol):
    """The time deadlines are measured in (`time.perf_counter` values)."""

    def now(self) -> float: ...

    def wait(self, future: Future[Any], deadline: float) -> bool:
        """Block until `future` is done (True) or `deadline` has passed (False)."""
        ...


class PerfCounterClock:
    """The real clock: `time.perf_counter`, waiting in real time."""

    def now(self) -> float:
        return time.perf_counter()

    def wait(self, future: Future[Any], deadline: float) -> bool:
        done, _ = wait_for_future([future], timeout=max(0.0, deadline - time.perf_counter()))
        return bool(done)


class StageRunner:
    """A small thread pool for deadline-bound stages; cheap until first used."""

    def __init__(
        self,
        *,
        workers: int = 8,
        clock: StageClock | None = None,
        inline: frozenset[str] = frozenset(),
    ) -> None:
        self.workers = workers
        # Stages run on the caller's thread (they bound their own work).
        self.inline = inline
        self.clock: StageClock = clock or PerfCounterClock()
        self._pool: _DaemonPool | None = None
        self._lock = threading.Lock()
        self._in_flight = 0

    def _submit(self, fn: Callable[[], T]) -> Future[T] | None:
        with self._lock:
            if self._in_flight >= self.workers:
                return None
            if self._pool is None:
                self._pool = _DaemonPool(self.workers)
            self._in_flight += 1
        future = self._pool.submit(fn)
        future.add_done_callback(self._done)
        return future

    def _done(self, _: Future[Any]) -> None:
        with self._lock:
            self._in_flight -= 1

    def call(
        self, stage: str, fn: Callable[[], T], *, deadline: float | None, notes: list[str]
    ) -> T | None:
        """`fn()` if it finishes before `deadline` (a `perf_counter` value), else None with
        the degradation recorded in `notes` (`stage: reason`) and the metric."""
        if deadline is not None and deadline - self.clock.now() <= 0:
            degrade(notes, stage, "deadline")
            return None
        if stage in self.inline:
            return self._call_inline(stage, fn, deadline=deadline, notes=notes)
        future = self._submit(fn)
        if future is None:
            degrade(notes, stage, "busy")
            return None
        try:
            if deadline is not None and not self.clock.wait(future, deadline):
                raise FutureTimeout
            return future.result()
        except FutureTimeout:
            future.cancel()
            degrade(notes, stage, "timeout")
        except Exception as exc:  # noqa: BLE001 - an optional stage must not fail the search
            degrade(notes, stage, f"error: {type(exc).__name__}")
        return None

    def _call_inline(
        self, stage: str, fn: Callable[[], T], *, deadline: float | None, notes: list[str]
    ) -> T | None:
        try:
            result = fn()
        except Exception as exc:  # noqa: BLE001 - an optional stage must not fail the search
            degrade(notes, stage, f"error: {type(exc).__name__}")
            return None
        if deadline is not None and deadline - self.clock.now() <= 0:
            degrade(notes, stage, "timeout")  # finished, but late: skipped like a late thread
            return None
        return result

    def rerank(
        self,
        reranker: Reranker,
        context: RerankContext,
        candidates: list[Candidate],
        *,
        notes: list[str],
    ) -> list[Candidate] | None:
        """The reranked window, or None (skipped and recorded) when late, failing or invalid."""
        stage = f"rerank:{reranker.name}"
        # The stage works on copies, so a late one cannot change what the search returns.
        copies = [
            Candidate(
                c.id,
                c.score,
                dict(c.features),
                dict(c.legs),
                c.retrieval_rank,
                dict(c.contributions),
            )
            for c in candidates
        ]
        result = self.call(
            stage, lambda: reranker.rerank(context, copies), deadline=context.deadline, notes=notes
        )
        if result is None:
            return None
        if sorted(c.id for c in result) != sorted(c.id for c in candidates):
            degrade(notes, stage, "invalid output")
            return None
        return list(result)


def load_extra_rerankers(paths: list[str]) -> list[Reranker]:
    """Rerankers from `module:attr` (or `module.attr`) paths; `attr` is a Reranker instance,
    a Reranker class, or a zero-argument factory returning one."""
    out: list[Reranker] = []
    for path in paths:
        module_name, sep, attr = path.partition(":")
        if not sep:
            module_name, _, attr = path.rpartition(".")
        try:
            target: Any = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError, ValueError) as exc:
            raise ConfigError(
                f"SHOPRANK_EXTRA_RERANKERS: cannot import [{path}] ({exc}); use `module:attr`"
            ) from None
        # A class or a factory is called; an instance is used as it is.
        is_instance = isinstance(target, Reranker) and not isinstance(target, type)
        reranker = target if is_instance else target()
        if not isinstance(reranker, Reranker) or isinstance(reranker, type):
            raise ConfigError(
                f"SHOPRANK_EXTRA_RERANKERS: [{path}] is not a reranker (needs `name` and "
                "`rerank(context, candidates)`)"
            )
        out.append(reranker)
    return out
