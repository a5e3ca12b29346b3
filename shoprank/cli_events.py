"""`shoprank events ...` and `shoprank profiles ...`: history import, rebuild, privacy.

Register with `main.add_command(events)` and `main.add_command(profiles)`.
"""

from __future__ import annotations

import gzip
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import click

from shoprank.cli_common import fail
from shoprank.errors import ShoprankError

if TYPE_CHECKING:
    from shoprank.events.service import EventService


def _service() -> EventService:
    from shoprank.settings import get_settings
    from shoprank.wiring import event_service

    return event_service(get_settings())


def _fail(exc: ShoprankError) -> None:
    fail(exc.reason, 2 if exc.status < 500 else 1)


def _open(path: Path) -> BinaryIO:
    if path.suffix == ".gz":
        return cast(BinaryIO, gzip.GzipFile(path, "rb"))
    return open(path, "rb")  # noqa: SIM115


def _chunks(path: Path, size: int) -> Iterator[tuple[int, list[bytes]]]:
    """(first line number, lines) of at most `size` non-empty NDJSON lines."""
    with _open(path) as fh:
        chunk: list[bytes] = []
        first = 1
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            if not chunk:
                first = number
            chunk.append(line.rstrip(b"\n"))
            if len(chunk) >= size:
                yield first, chunk
                chunk = []
        if chunk:
            yield first, chunk


@click.group()
def events() -> None:
    """Behaviour events: import history into the durable event log."""


@events.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def import_events(path: Path, as_json: bool) -> None:
    """Append the events of PATH (NDJSON, optionally .gz) to the log and fold them."""
    from shoprank.events.model import EventError, validate_event

    service = _service()
    now = time.time()
    size = service.settings.max_events_per_request
    report: dict[str, Any] = {"accepted": 0, "duplicates": 0, "errors": []}
    for first, lines in _chunks(path, size):
        parsed = []
        for offset, line in enumerate(lines):
            try:
                parsed.append(validate_event(json.loads(line), now=now))
            except (EventError, ValueError) as exc:
                report["errors"].append({"line": first + offset, "reason": str(exc)})
        try:
            result = service.ingest(parsed, fold=False, now=now)
        except ShoprankError as exc:
            _fail(exc)
            return
        report["accepted"] += result["accepted"]
        report["duplicates"] += result["duplicates"]
        report["errors"] += [{"reason": e["reason"]} for e in result["errors"]]
    if service.settings.redis_url:
        service.trigger()
    else:
        report["folded"] = service.fold()
    if as_json:
        click.echo(json.dumps(report))
        return
    click.echo(
        f"accepted {report['accepted']}, duplicates {report['duplicates']}, "
        f"rejected {len(report['errors'])}"
    )
    for error in report["errors"][:20]:
        where = f"line {error['line']}: " if "line" in error else ""
        click.echo(f"  {where}{error['reason']}", err=True)


@click.group()
def profiles() -> None:
    """User profiles: rebuild from the event log, show, forget."""


@profiles.command()
def rebuild() -> None:
    """Clear every profile and statistic and fold the whole event log again."""
    report = _service().rebuild()
    click.echo(
        f"rebuilt {report['profiles']} profiles from {report['events']} events "
        f"in {report['took_s']:.1f} s"
    )


@profiles.command()
@click.argument("user")
def show(user: str) -> None:
    """Print USER's profile (decayed to now) as JSON."""
    profile = _service().profile(user)
    if profile is None:
        click.echo("error: no profile for this user", err=True)
        sys.exit(1)
    click.echo(json.dumps(profile, indent=2))


@profiles.command()
@click.argument("user")
def forget(user: str) -> None:
    """Erase USER's events and profiles from every store shoprank owns."""
    result = _service().forget(user)
    click.echo(
        f"forgot {result['user']}: {result['events_deleted']} events, "
        f"{result['profiles_deleted']} profiles deleted"
    )


@profiles.command()
def retention() -> None:
    """Delete events and profiles older than SHOPRANK_RETENTION_DAYS now."""
    result = _service().enforce_retention()
    click.echo(
        f"deleted {result['events_deleted']} events and {result['profiles_deleted']} profiles"
    )
