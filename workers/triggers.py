"""Enqueueing worker tasks by name, for callers that must not import the task modules
(the task modules import the wiring, which hands these triggers out)."""

from __future__ import annotations

FOLD_TASK = "shoprank.fold_events"


def enqueue_fold() -> None:
    """Enqueue one `shoprank.fold_events` task (the fold worker drains the event log)."""
    from shoprank.workers.app import app

    app.send_task(FOLD_TASK)
