"""The Celery app. Configured lazily from `SHOPRANK_*` settings on first use:
with `SHOPRANK_REDIS_URL` set, Redis is broker and result backend; without it, tasks run
in-process (eager) and no server is needed.

Start a worker with `shoprank worker` (or `celery -A shoprank.workers.app worker`); with
`--beat` it also sends the scheduled training cycle (`shoprank.workers.scheduled`).
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from shoprank.settings import get_settings

app = Celery("shoprank", set_as_current=False)


@app.on_configure.connect
def _configure(sender: Celery, **_: Any) -> None:
    settings = get_settings()
    sender.conf.update(
        broker_url=settings.redis_url or "memory://",
        result_backend=settings.redis_url or "cache+memory://",
        task_always_eager=settings.eager,
        task_eager_propagates=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        worker_prefetch_multiplier=1,
        task_acks_late=False,
        broker_connection_retry_on_startup=True,
        result_expires=24 * 3600,
        worker_hijack_root_logger=False,
        imports=["shoprank.workers.tasks", "shoprank.workers.events", "shoprank.workers.scheduled"],
    )
    sender.conf.beat_schedule = beat_schedule()


TRAINING_CYCLE = "shoprank.training_cycle"


def beat_schedule() -> dict[str, Any]:
    """Celery's `beat_schedule` for the settings: the training cycle of
    `shoprank.workers.scheduled` every SHOPRANK_RETRAIN_INTERVAL_S (empty when it is 0)."""
    interval = get_settings().retrain_interval_s
    if interval <= 0:
        return {}
    return {"shoprank-training-cycle": {"task": TRAINING_CYCLE, "schedule": float(interval)}}
