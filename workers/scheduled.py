"""The Celery beat side of scheduled training: `shoprank.training_cycle` runs one cycle
(`shoprank.scheduled.TrainingCycle`) in a worker, every `SHOPRANK_RETRAIN_INTERVAL_S`
when beat runs (`shoprank worker --beat`, or `celery -A shoprank.workers.app beat`)."""

from __future__ import annotations

from typing import Any

from shoprank.settings import get_settings
from shoprank.workers.app import TRAINING_CYCLE as TASK
from shoprank.workers.app import app, beat_schedule

__all__ = ["TASK", "beat_schedule", "training_cycle"]


@app.task(name=TASK)
def training_cycle(force: bool = False) -> dict[str, Any]:
    from shoprank.scheduled import CycleBusyError, TrainingCycle

    try:
        report = TrainingCycle(get_settings()).run(trigger="beat", force=force)
    except CycleBusyError as exc:
        return {"skipped": str(exc)}
    return report.as_dict()
