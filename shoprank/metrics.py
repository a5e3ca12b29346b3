"""Process-wide Prometheus metrics, exposed at `/_shoprank/metrics`.

Every stage that degrades instead of failing counts it here with `degrade()`.

With several `shoprank serve` workers, `PROMETHEUS_MULTIPROC_DIR` is set (by the supervisor,
before any worker imports prometheus_client) and every worker writes its values to files
there; `render()` then answers for all workers together, whichever one is asked. Each gauge
says how its per-worker values combine (`multiprocess_mode`; ignored in one process).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# prometheus_client's multiprocess helpers carry no annotations.
_collect_all: Callable[..., object] = _multiprocess.MultiProcessCollector
_mark_dead: Callable[[int, str], None] = _multiprocess.mark_process_dead

DEGRADATIONS = Counter(
    "shoprank_degradations_total",
    "Searches where a stage degraded instead of failing",
    ["stage", "reason"],
)


def degrade(notes: list[str], stage: str, reason: str) -> None:
    """Record that `stage` degraded: counted, and listed under `_shoprank.degraded`."""
    DEGRADATIONS.labels(stage=stage, reason=reason).inc()
    notes.append(f"{stage}: {reason}")


# --- requests, stages, models, queues, events ---------------------------------

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUESTS = Counter(
    "shoprank_http_requests_total",
    "HTTP requests by route class, method and status",
    ["route", "method", "status"],
)
REQUEST_LATENCY = Histogram(
    "shoprank_http_request_duration_seconds",
    "HTTP request latency by route class",
    ["route"],
    buckets=LATENCY_BUCKETS,
)
SEARCHES = Counter("shoprank_searches_total", "Searches by the mode applied", ["mode"])
STAGE_LATENCY = Histogram(
    "shoprank_search_stage_seconds",
    "Time spent in each search stage (lexical, vector, embed, fetch, rerankers, total) by mode",
    ["stage", "mode"],
    buckets=LATENCY_BUCKETS,
)
MODEL_VERSION = Gauge(
    "shoprank_model_version_info",
    "Model version the last search was ranked with (value 1)",
    ["version"],
    multiprocess_mode="livemostrecent",
)
QUEUE_DEPTH = Gauge(
    "shoprank_queue_depth",
    "Work waiting: search_log (searches to log), event_spool (events kept while Redis was "
    "down), event_stream (events not yet folded; -1 when Redis cannot be read)",
    ["queue"],
    # Set when /metrics is read, by the worker answering: its reading is the newest.
    multiprocess_mode="livemostrecent",
)
SEARCH_LOG_LOST = Gauge(
    "shoprank_search_log_lost",
    "Searches not logged since start: failed (the event log was down) or dropped (queue full)",
    ["reason"],
    multiprocess_mode="sum",
)
EVENTS = Counter(
    "shoprank_events_total",
    "Behaviour events by outcome: accepted, duplicate, rejected, spooled, unavailable",
    ["outcome"],
)
INFLIGHT = Gauge(
    "shoprank_inflight_searches",
    "Searches admitted and not yet answered (all workers together)",
    multiprocess_mode="livesum",
)
ADMISSION_REJECTED = Counter(
    "shoprank_admission_rejected_total",
    "Searches refused by admission control: full (too many in flight, 429), expired (waited "
    "past SHOPRANK_MAX_QUEUE_MS, 429), disconnected (the client left before it ran)",
    ["reason"],
)

_last_model: list[str] = []
_model_lock = threading.Lock()


def observe_search(mode: str, timings: dict[str, float], total_s: float, model: Any) -> None:
    """Count a search and its per-stage latencies (`timings` in ms, as `_shoprank` shows)."""
    SEARCHES.labels(mode=mode).inc()
    for name, ms in timings.items():
        stage = name[:-3] if name.endswith("_ms") else name
        STAGE_LATENCY.labels(stage=stage, mode=mode).observe(ms / 1000.0)
    STAGE_LATENCY.labels(stage="total", mode=mode).observe(total_s)
    if model is not None and (not _last_model or _last_model[0] != str(model)):
        with _model_lock:
            if _last_model:
                # Zeroed first: with several workers the value lives on in a shared file.
                MODEL_VERSION.labels(version=_last_model[0]).set(0)
                MODEL_VERSION.remove(_last_model[0])
                _last_model.clear()
            _last_model.append(str(model))
            MODEL_VERSION.labels(version=str(model)).set(1)


def render() -> tuple[bytes, str]:
    """The Prometheus exposition of every metric of this process, or of every worker's
    when they share `PROMETHEUS_MULTIPROC_DIR`."""
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        return generate_latest(), CONTENT_TYPE_LATEST
    forget_dead_workers(Path(directory))
    registry = CollectorRegistry()
    _collect_all(registry, path=directory)
    return generate_latest(registry), CONTENT_TYPE_LATEST


_LIVE_FILE = re.compile(r"^gauge_live[a-z]+_(\d+)\.db$")


def forget_dead_workers(directory: Path) -> None:
    """Drop the live gauges of workers that are gone (killed ones never say so)."""
    pids = {
        int(m.group(1)) for f in directory.glob("gauge_live*.db") if (m := _LIVE_FILE.match(f.name))
    }
    for pid in pids:
        if not _alive(pid):
            _mark_dead(pid, str(directory))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prepare_multiprocess_dir(directory: Path) -> Path:
    """An empty metrics directory for a fresh set of workers (stale values of an earlier
    run would be summed in); exported so that the workers started next use it."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink(missing_ok=True)
    os.environ[MULTIPROC_ENV] = str(directory)
    return directory


def worker_exited() -> None:
    """A worker's clean exit: its live gauges stop counting."""
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        _mark_dead(os.getpid(), directory)
