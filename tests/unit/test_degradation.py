"""Optional stages degrade under the search's deadline instead of failing the search, and
the response and the metrics say so.

The stage runner's clock stands still here (`StoppedClock`) unless a stuck stage moves it
past the deadline, so no outcome depends on how fast the machine happens to be.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from shoprank.plugin.backends.embedded.backend import EmbeddedBackend
from shoprank.plugin.stages import load_extra_rerankers
from shoprank.rerankers.protocol import Candidate, RerankContext
from tests.unit._apps import make_client

BODY = {
    "query": {"match": {"title": "laptop mouse"}},
    "size": 8,
    "ext": {"shoprank": {"mode": "full"}},
}


class StoppedClock:
    """A stage clock that moves only when told to: the budget is never spent by slow
    retrieval on a busy machine, and a stage is late exactly when it moves the clock."""

    def __init__(self) -> None:
        self._now = time.perf_counter()  # deadlines are perf_counter values from before
        self._changed = threading.Condition()

    def now(self) -> float:
        with self._changed:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._changed:
            self._now += seconds
            self._changed.notify_all()

    def _notify(self, _: Future[Any]) -> None:
        with self._changed:
            self._changed.notify_all()

    def wait(self, future: Future[Any], deadline: float) -> bool:
        future.add_done_callback(self._notify)
        with self._changed:
            while not future.done() and self._now < deadline:
                self._changed.wait()
        return future.done()


class StuckReranker:
    """Overruns the budget (moves the clock past the deadline), then blocks until released
    (or 30 s), like a ranker stuck on a dead dependency."""

    name = "stuck"

    def __init__(self, clock: StoppedClock) -> None:
        self.clock = clock
        self.release = threading.Event()
        self.returned = threading.Event()

    def rerank(self, context: RerankContext, candidates: list[Candidate]) -> list[Candidate]:
        self.clock.advance(3600)
        self.release.wait(30)
        self.returned.set()
        return list(reversed(candidates))


class Reverse:
    name = "reverse"

    def rerank(self, context: RerankContext, candidates: list[Candidate]) -> list[Candidate]:
        return list(reversed(candidates))


class Broken:
    name = "broken"

    def rerank(self, context: RerankContext, candidates: list[Candidate]) -> list[Candidate]:
        raise RuntimeError("model file vanished")


class Dropper:
    name = "dropper"

    def rerank(self, context: RerankContext, candidates: list[Candidate]) -> list[Candidate]:
        return candidates[1:]


def degradations(client: TestClient, stage: str, reason: str) -> float:
    text = client.get("/_shoprank/metrics").text
    pattern = (
        r'shoprank_degradations_total\{reason="'
        + re.escape(reason)
        + r'",stage="'
        + re.escape(stage)
        + r'"\} ([0-9.e+]+)'
    )
    match = re.search(pattern, text)
    return float(match.group(1)) if match else 0.0


def ids(response: dict[str, object]) -> list[str]:
    return [h["_id"] for h in response["hits"]["hits"]]  # type: ignore[index]


def stopped_client(clock: StoppedClock, *args: Any, **kwargs: Any) -> TestClient:
    """`make_client` whose optional stages are timed on `clock`."""
    client = make_client(*args, **kwargs)
    client.service.stages.clock = clock  # type: ignore[attr-defined]
    return client


@pytest.fixture()
def clock() -> StoppedClock:
    return StoppedClock()


@pytest.fixture()
def retrieval_order(
    tmp_path: Path, corpus_backend: EmbeddedBackend, clock: StoppedClock
) -> list[str]:
    client = stopped_client(clock, tmp_path, corpus_backend)
    return ids(client.post("/products/_search", json=BODY).json())


@pytest.fixture()
def stuck(clock: StoppedClock) -> Iterator[StuckReranker]:
    reranker = StuckReranker(clock)
    yield reranker
    reranker.release.set()


def test_stuck_ranker_is_skipped_at_the_deadline(
    tmp_path: Path,
    corpus_backend: EmbeddedBackend,
    clock: StoppedClock,
    stuck: StuckReranker,
    retrieval_order: list[str],
) -> None:
    client = stopped_client(
        clock, tmp_path, corpus_backend, rerankers=(stuck,), search_budget_ms=100
    )
    before = degradations(client, "rerank:stuck", "timeout")
    response = client.post("/products/_search", json=BODY)
    # Answered while the stuck stage still blocks: it is released only after this.
    assert not stuck.returned.is_set()
    assert response.status_code == 200
    body = response.json()
    assert body["_shoprank"]["degraded"] == ["rerank:stuck: timeout"]
    assert ids(body) == retrieval_order  # retrieval order kept
    assert isinstance(body["took"], int) and body["took"] >= 0
    assert degradations(client, "rerank:stuck", "timeout") == before + 1


def test_failing_ranker_keeps_retrieval_order(
    tmp_path: Path, corpus_backend: EmbeddedBackend, clock: StoppedClock, retrieval_order: list[str]
) -> None:
    client = stopped_client(clock, tmp_path, corpus_backend, rerankers=(Broken(), Dropper()))
    body = client.post("/products/_search", json=BODY).json()
    assert body["_shoprank"]["degraded"] == [
        "rerank:broken: error: RuntimeError",
        "rerank:dropper: invalid output",
    ]
    assert ids(body) == retrieval_order


def test_healthy_ranker_still_applies(
    tmp_path: Path, corpus_backend: EmbeddedBackend, clock: StoppedClock, retrieval_order: list[str]
) -> None:
    client = stopped_client(clock, tmp_path, corpus_backend, rerankers=(Reverse(),))
    body = client.post("/products/_search", json=BODY).json()
    assert "degraded" not in body.get("_shoprank", {})
    assert ids(body) == list(reversed(retrieval_order))


def test_stages_after_a_spent_budget_are_skipped(
    tmp_path: Path, corpus_backend: EmbeddedBackend, clock: StoppedClock, stuck: StuckReranker
) -> None:
    client = stopped_client(
        clock, tmp_path, corpus_backend, rerankers=(stuck, Reverse()), search_budget_ms=50
    )
    body = client.post("/products/_search", json=BODY).json()
    assert body["_shoprank"]["degraded"] == ["rerank:stuck: timeout", "rerank:reverse: deadline"]


def test_search_metrics_per_stage_and_mode(tmp_path: Path, corpus_backend: EmbeddedBackend) -> None:
    client = make_client(tmp_path, corpus_backend)
    client.post("/products/_search", json={**BODY, "ext": {"shoprank": {"mode": "lexical"}}})
    text = client.get("/_shoprank/metrics").text
    assert 'shoprank_search_stage_seconds_count{mode="lexical",stage="total"}' in text
    assert 'shoprank_searches_total{mode="lexical"}' in text
    assert re.search(
        r'shoprank_http_requests_total\{method="POST",route="search",status="200"\}', text
    )


def test_extra_rerankers_load_from_import_paths() -> None:
    loaded = load_extra_rerankers(["tests.unit.test_degradation:Reverse"])
    assert [r.name for r in loaded] == ["reverse"]
    window = [Candidate("a", 2.0), Candidate("b", 1.0)]
    reranked = loaded[0].rerank(
        RerankContext(index="i", query_text="q", user_id=None, body={}), window
    )
    assert [c.id for c in reranked] == ["b", "a"]
    from shoprank.errors import ConfigError

    with pytest.raises(ConfigError, match="cannot import"):
        load_extra_rerankers(["tests.unit.test_degradation:Nope"])


def test_late_query_understanding_is_skipped(
    tmp_path: Path, corpus_backend: EmbeddedBackend, clock: StoppedClock, retrieval_order: list[str]
) -> None:
    """Query understanding runs on the search's own thread (it bounds its own work); one that
    finishes after the budget is spent is discarded: no rewrite from a late prediction."""
    client = stopped_client(clock, tmp_path, corpus_backend, search_budget_ms=100)
    service = client.service  # type: ignore[attr-defined]
    understand = service.understanding.understand
    threads: list[str] = []

    def late(*args: object, **kwargs: object) -> object:
        threads.append(threading.current_thread().name)
        clock.advance(3600)  # overruns the budget
        return understand(*args, **kwargs)

    service.understanding.understand = late
    before = degradations(client, "intent", "timeout")
    response = client.post("/products/_search", json=BODY)
    assert response.status_code == 200
    body = response.json()
    assert "intent: timeout" in body["_shoprank"]["degraded"]
    assert "rewrite" not in body["_shoprank"]  # no rewrite from a late prediction
    assert ids(body) == retrieval_order
    assert degradations(client, "intent", "timeout") == before + 1
    assert threads and not threads[0].startswith("stage-")


def test_built_in_ranker_runs_on_the_search_thread_and_extras_on_stage_threads(
    tmp_path: Path, corpus_backend: EmbeddedBackend
) -> None:
    """The learned ranker bounds its own work (a CPU-time budget), so it is not handed to a
    stage thread and back; a stage of unknown cost (`SHOPRANK_EXTRA_RERANKERS`) still is."""
    seen: dict[str, str] = {}

    class Named(Reverse):
        def __init__(self, name: str) -> None:
            self.name = name

        def rerank(self, context: RerankContext, candidates: list[Candidate]) -> list[Candidate]:
            seen[self.name] = threading.current_thread().name
            return super().rerank(context, candidates)

    client = make_client(tmp_path, corpus_backend, rerankers=(Named("ltr"), Named("extra")))
    response = client.post("/products/_search", json=BODY)
    assert response.status_code == 200
    assert "degraded" not in response.json().get("_shoprank", {})
    assert not seen["ltr"].startswith("stage-")
    assert seen["extra"].startswith("stage-")
