"""`shoprank schedule run|status`: one training cycle now, and what the schedule did
(`shoprank.scheduled`)."""

from __future__ import annotations

import json
import time

import click

from shoprank.cli_common import current_settings, fail


@click.group()
def schedule() -> None:
    """Scheduled training: retention, a ranker candidate gated and proposed as a challenger,
    the intent model (run by `shoprank serve`, or Celery beat with Redis)."""


@schedule.command("run")
@click.option("--force", is_flag=True, help="Train even with few new labelled searches.")
@click.option(
    "--trigger",
    default="manual",
    show_default=True,
    type=click.Choice(["manual", "schedule", "beat"]),
    help="Who asked (recorded with the cycle).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the cycle's report as JSON.")
def schedule_run(force: bool, trigger: str, as_json: bool) -> None:
    """Run one training cycle now."""
    from shoprank.scheduled import CycleBusyError, TrainingCycle

    try:
        report = TrainingCycle(current_settings()).run(trigger=trigger, force=force)
    except CycleBusyError as exc:
        fail(str(exc), 3)
        return
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
        return
    click.echo(_describe(report.as_dict()))


@schedule.command("status")
@click.option("--json", "as_json", is_flag=True)
def schedule_status(as_json: bool) -> None:
    """When cycles ran, what each did, and when the next is due."""
    from shoprank.scheduled import read_state

    settings = current_settings()
    state = read_state(settings)
    runs = state["runs"]
    interval = settings.retrain_interval_s
    next_at = (float(runs[-1]["at"]) + interval) if runs and interval > 0 else None
    if as_json:
        click.echo(json.dumps({**state, "interval_s": interval, "next_at": next_at}, indent=2))
        return
    if interval <= 0:
        click.echo("scheduled training is off (SHOPRANK_RETRAIN_INTERVAL_S=0)")
    else:
        click.echo(f"a cycle every {interval:.0f} s (SHOPRANK_RETRAIN_INTERVAL_S)")
    if not runs:
        click.echo("no cycle has run yet")
        return
    for run in runs[-10:]:
        click.echo(_describe(run))
    if next_at is not None:
        wait = max(0.0, next_at - time.time())
        click.echo(f"next cycle due in {wait:.0f} s")


def _describe(run: dict[str, object]) -> str:
    at = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(str(run["at"]))))
    lines = [f"{at} UTC ({run['trigger']})"]
    retention = run.get("retention")
    if isinstance(retention, dict):
        lines.append(
            f"  retention: {retention.get('events_deleted', 0)} events, "
            f"{retention.get('profiles_deleted', 0)} profiles deleted"
        )
    for look in run.get("experiments") or []:  # type: ignore[attr-defined]
        if isinstance(look, dict):
            applied = f" → {look['applied']}" if look.get("applied") else ""
            lines.append(
                f"  experiment {look.get('experiment')}: {look.get('action')} "
                f"({look.get('message')}){applied}"
            )
    ranker = run.get("ranker")
    if isinstance(ranker, dict):
        proposed = ranker.get("proposed")
        outcome = f"proposed: {proposed}" if proposed else "not proposed"
        lines.append(f"  ranker: {ranker['version']} - {ranker['gate']} - {outcome}")
    intent = run.get("intent")
    if isinstance(intent, dict):
        lines.append(f"  intent: {intent.get('version')} ({intent.get('click_pairs')} click pairs)")
    for step, why in dict(run.get("skipped") or {}).items():  # type: ignore[call-overload]
        lines.append(f"  {step}: skipped - {why}")
    for step, error in dict(run.get("errors") or {}).items():  # type: ignore[call-overload]
        lines.append(f"  {step}: FAILED - {error}")
    return "\n".join(lines)
