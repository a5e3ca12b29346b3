"""What the worker processes of one `shoprank serve` share stays correct across them: the
rate-limit buckets (one bucket per client for all workers, not one per worker), the search
log's event offset (never moved back when two workers copy events at once) and the metrics
(every worker's counts in one answer).

Two processes are stood in for by two independent instances over the same files (each with
its own file descriptor and mapping, so the cross-process locking is the one exercised);
the metrics are read from files written by a separate process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from shoprank.events.embedded import EmbeddedEventLog
from shoprank.events.model import Event
from shoprank.plugin.shared_limits import SharedTokenBucketLimiter
from shoprank.searchlog.store import SearchLogStore


def test_workers_draw_from_one_bucket_per_client(tmp_path: Path) -> None:
    path = tmp_path / "run" / "ratelimit.buckets"
    now = [0.0]
    workers = [
        SharedTokenBucketLimiter(path, rate=1.0, burst=3, slots=64, clock=lambda: now[0])
        for _ in range(2)
    ]
    # Three tokens in all, whichever worker the requests land on.
    granted = [workers[i % 2].acquire("ip:10.0.0.1") == 0.0 for i in range(6)]
    assert granted == [True, True, True, False, False, False]
    assert workers[0].acquire("ip:10.0.0.2") == 0.0  # another client has its own bucket
    now[0] = 1.0  # one second later: one token more, for either worker
    assert workers[1].acquire("ip:10.0.0.1") == 0.0
    assert workers[0].acquire("ip:10.0.0.1") > 0.0
    # A new server starts with empty buckets.
    for worker in workers:
        worker.close()
    SharedTokenBucketLimiter.reset(path)
    fresh = SharedTokenBucketLimiter(path, rate=1.0, burst=3, slots=64, clock=lambda: now[0])
    assert fresh.acquire("ip:10.0.0.1") == 0.0
    fresh.close()


def test_the_bucket_table_stays_bounded(tmp_path: Path) -> None:
    path = tmp_path / "buckets"
    limiter = SharedTokenBucketLimiter(path, rate=1.0, burst=1, slots=16, clock=lambda: 0.0)
    for n in range(1000):  # far more clients than slots: the stalest slot is reused
        limiter.acquire(f"ip:{n}")
    assert path.stat().st_size == 16 * 24
    limiter.close()


class Interleaved:
    """An event log whose first read lets another worker copy everything meanwhile."""

    def __init__(self, log: EmbeddedEventLog, other: SearchLogStore) -> None:
        self.name = log.name
        self.log = log
        self.other = other
        self.first = True

    def read(self, after: str | None = None, *, limit: int | None = None) -> Iterator[Any]:
        rows = list(self.log.read(after, limit=limit))
        if self.first:
            self.first = False
            self.log.append([_event(9, "q9")])  # arrives after this worker's read
            assert self.other.sync_events(self.log) == len(rows) + 1
        yield from rows


def _event(n: int, qid: str) -> Event:
    return Event("click", time.time() + n, f"e{n}", user_id="p", query_id=qid, product_id="1")


def test_the_event_offset_never_moves_back_across_workers(tmp_path: Path) -> None:
    log = EmbeddedEventLog(tmp_path / "events")
    log.append([_event(1, "q1"), _event(2, "q2")])
    first = SearchLogStore(tmp_path / "searchlog")
    second = SearchLogStore(tmp_path / "searchlog")
    # `first` reads two events; meanwhile `second` copies all three and moves the offset on.
    first.sync_events(Interleaved(log, second))  # type: ignore[arg-type]
    # Had `first` written its older offset, the third event would be copied again (and
    # counted as new); the offset stayed where `second` left it.
    assert second.sync_events(log) == 0
    assert first.sync_events(log) == 0
    conn = first._conn()
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 3


WORKER = """
import sys
from shoprank.metrics import ADMISSION_REJECTED, QUEUE_DEPTH
ADMISSION_REJECTED.labels(reason="full").inc(int(sys.argv[1]))
QUEUE_DEPTH.labels(queue="event_stream").set(7)
"""


def test_metrics_add_up_every_workers_counts(tmp_path: Path) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    for count in (2, 3):  # two worker processes, each counting its own refusals
        subprocess.run([sys.executable, "-c", WORKER, str(count)], env=env, check=True)
    render = "from shoprank.metrics import render; import sys; sys.stdout.buffer.write(render()[0])"
    out = subprocess.run(
        [sys.executable, "-c", render], env=env, check=True, capture_output=True
    ).stdout.decode()
    assert 'shoprank_admission_rejected_total{reason="full"} 5.0' in out
    # A live gauge of workers that have exited is forgotten; the shared value is not summed.
    assert 'queue="event_stream"' not in out
