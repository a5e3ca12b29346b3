"""Process-wide Prometheus metrics, exposed at `/_shoprank/metrics`.

Every stage that degrades instead of failing counts it here with `degrade()`.
"""

from __future__ import annotations

import threading
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

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
)
QUEUE_DEPTH = Gauge(
    "shoprank_queue_depth",
    "Work waiting: search_log (searches to log), event_spool (events kept while Redis was "
    "down), event_stream (events not yet folded; -1 when Redis cannot be read)",
    ["queue"],
)
SEARCH_LOG_LOST = Gauge(
    "shoprank_search_log_lost",
    "Searches not logged since start: failed (the event log was down) or dropped (queue full)",
    ["reason"],
)
EVENTS = Counter(
    "shoprank_events_total",
    "Behaviour events by outcome: accepted, duplicate, rejected, spooled, unavailable",
    ["outcome"],
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
                MODEL_VERSION.remove(_last_model[0])
                _last_model.clear()
            _last_model.append(str(model))
            MODEL_VERSION.labels(version=str(model)).set(1)


def render() -> tuple[bytes, str]:
    """The Prometheus exposition of every metric of this process."""
    return generate_latest(), CONTENT_TYPE_LATEST
