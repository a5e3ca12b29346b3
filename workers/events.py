"""The fold task: drain the event stream into the profile store.

`shoprank.fold_events` is enqueued by the events API after each append (at most one
waiting trigger at a time; `shoprank.workers.triggers` enqueues it by name) and once when
a worker starts, so events left unacknowledged by a killed worker are folded on restart.
Delivery is at-least-once (XREADGROUP/XACK); the profile store's watermark, written in the
same transaction as the profiles, makes each event count exactly once. Without Redis,
`fold_in_process` runs the same drain inline. Either way a fold also enforces retention
when the last pass is over an hour old.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import worker_ready

from shoprank.settings import Settings, get_settings
from shoprank.workers.app import app
from shoprank.workers.triggers import FOLD_TASK

log = logging.getLogger("shoprank.events")


def fold_in_process(settings: Settings | None = None) -> int:
    """Fold every unfolded event now, in this process (the embedded default's path)."""
    from shoprank.wiring import event_service

    return event_service(settings or get_settings()).fold()


@app.task(name=FOLD_TASK, acks_late=True, reject_on_worker_lost=True)
def fold_events() -> dict[str, Any]:
    try:
        folded = fold_in_process()
    except TimeoutError:
        # Another folder is draining; it clears the trigger first, so it will see our events.
        return {"folded": 0, "busy": True}
    return {"folded": folded}


@worker_ready.connect
def _fold_on_start(sender: Any = None, **_: Any) -> None:
    """A restarted worker folds whatever a killed one left pending."""
    if not get_settings().eager:
        fold_events.delay()
