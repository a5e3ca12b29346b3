"""Process-wide Prometheus metrics, exposed at `/_shoprank/metrics`.

Every stage that degrades instead of failing counts it here with `degrade()`.
"""

from __future__ import annotations

from prometheus_client import Counter

DEGRADATIONS = Counter(
    "shoprank_degradations_total",
    "Searches where a stage degraded instead of failing",
    ["stage", "reason"],
)


def degrade(notes: list[str], stage: str, reason: str) -> None:
    """Record that `stage` degraded: counted, and listed under `_shoprank.degraded`."""
    DEGRADATIONS.labels(stage=stage, reason=reason).inc()
    notes.append(f"{stage}: {reason}")
