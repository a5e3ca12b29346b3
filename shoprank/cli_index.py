"""`shoprank index ...`: re-index jobs (load, status, resume), generations, rollback,
incremental upsert/delete."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any

import click

from shoprank.cli_common import fail
from shoprank.errors import ShoprankError
from shoprank.progress import Progress, rate
from shoprank.settings import Settings


def _settings(ctx: click.Context) -> Settings:
    overrides: dict[str, Any] = {}
    data_dir = ctx.find_root().params.get("data_dir")
    if data_dir:
        overrides["data_dir"] = Path(data_dir)
    return Settings(**overrides)


def _fail(exc: ShoprankError) -> None:
    fail(exc.reason, 2 if exc.status == 400 else 1)


@click.group()
def index() -> None:
    """Load catalogs into index generations; follow, resume and roll back loads."""


def _show(progress: Progress, snapshot: dict[str, Any]) -> None:
    """Feed the load's bar (products/s, ETA, failures) from a job progress snapshot."""
    failures = int(snapshot.get("failures", 0)) + int(snapshot.get("image_failures", 0))
    progress.update(
        int(snapshot["products_done"]),
        total=int(snapshot["products"]),
        note=f"{failures} failures" if failures else "",
    )


@index.command("load")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--index", "index_name", required=True, help="Alias to load into, e.g. products.")
@click.option("--fields", default="", help="Column roles: id=sku,title=name,brand=supplier,...")
@click.option(
    "--price-multiplier",
    default=1.0,
    show_default=True,
    type=float,
    help="Multiply prices by this (0.01 for prices in cents).",
)
@click.option(
    "--batch-size",
    default=None,
    type=click.IntRange(1, 100_000),
    help="Products per task (default SHOPRANK_CHUNK_SIZE).",
)
@click.option(
    "--keep",
    default=None,
    type=click.IntRange(0, 100),
    help="Previous generations to keep (default SHOPRANK_KEEP_GENERATIONS).",
)
@click.option(
    "--max-failure-rate",
    default=None,
    type=click.FloatRange(0.0, 1.0),
    help="Abort before the swap when more products than this share are bad "
    "(default SHOPRANK_MAX_FAILURE_RATE).",
)
@click.option("--no-vectors", is_flag=True, help="Lexical only: skip embeddings.")
@click.option("--dry-run", is_flag=True, help="Validate the catalog and report; write nothing.")
@click.option(
    "--full",
    is_flag=True,
    help="Rebuild every product instead of applying only what changed since the live "
    "generation (embeddings still come from the cache).",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue this alias's unfinished load (after a crash or Ctrl-C).",
)
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Wait for the workers to finish (with a broker configured).",
)
@click.option("--timeout", default=None, type=float, help="Give up waiting after N seconds.")
@click.option(
    "--train-intent/--no-train-intent",
    default=True,
    show_default=True,
    help="After a successful load, train the query-intent model for this index "
    "(what `shoprank train intent --index NAME` does).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def index_load(
    ctx: click.Context,
    path: Path,
    index_name: str,
    fields: str,
    price_multiplier: float,
    batch_size: int | None,
    keep: int | None,
    max_failure_rate: float | None,
    no_vectors: bool,
    dry_run: bool,
    full: bool,
    resume: bool,
    wait: bool,
    timeout: float | None,
    train_intent: bool,
    as_json: bool,
) -> None:
    """Load a JSONL or CSV catalog into a new generation and swap the alias to it, then
    train the intent model for it and print how to serve and search it.

    With SHOPRANK_REDIS_URL set the chunks run on Celery workers (`shoprank worker`);
    otherwise the same tasks run in this process.
    """
    from shoprank.indexing.catalog import FieldRoles
    from shoprank.indexing.loader import alias_lock
    from shoprank.indexing.pipeline import RejectedCatalogError, check_resumable, plan_job
    from shoprank.wiring import pipeline_context
    from shoprank.workers.dispatch import run_job

    settings = _settings(ctx)
    try:
        pctx = pipeline_context(settings, vectors=not no_vectors)
        with alias_lock(settings.data_dir / "locks", index_name):
            errors: list[dict[str, Any]] = []
            already = 0
            if resume:
                job = pctx.jobs.unfinished(index_name)
                if job is None:
                    raise ShoprankError(f"no unfinished load of [{index_name}] to resume")
                check_resumable(pctx, job, path)
                already = int(pctx.jobs.progress(job)["products_done"])
                click.echo(
                    f"resuming {job.id}: {len(pctx.jobs.done(job))} of {job.chunks} "
                    "chunks already written",
                    err=True,
                )
            else:
                plan = plan_job(
                    pctx,
                    path,
                    alias=index_name,
                    roles=FieldRoles.parse(fields),
                    price_multiplier=price_multiplier,
                    chunk_size=batch_size or settings.chunk_size,
                    keep=settings.keep_generations if keep is None else keep,
                    max_failure_rate=(
                        settings.max_failure_rate if max_failure_rate is None else max_failure_rate
                    ),
                    dry_run=dry_run,
                    incremental=not full,
                )
                errors = [{"line": e.line, "reason": e.reason} for e in plan.catalog.errors]
                _print_errors(errors)
                if dry_run:
                    summary = {
                        "dry_run": True,
                        "products": plan.job.total,
                        "rows": plan.catalog.rows,
                        "chunks": plan.job.chunks,
                        "duplicates": plan.duplicates,
                        "notes": plan.notes,
                        "errors": errors,
                    }
                    click.echo(
                        json.dumps(summary)
                        if as_json
                        else f"dry run: {plan.catalog.summary()}; {plan.job.chunks} chunks"
                        + "".join(f"\n  {n}" for n in plan.notes)
                    )
                    return
                job = plan.job
            label = f"loading {index_name}"
            with Progress(label, unit="products", enabled=not as_json, initial=already) as bar:
                report = run_job(
                    settings,
                    job,
                    wait=wait,
                    progress=lambda snapshot: _show(bar, snapshot),
                    timeout_s=timeout,
                )
    except RejectedCatalogError as exc:
        _print_errors(exc.row_errors)
        _fail(exc)
        return
    except ShoprankError as exc:
        _fail(exc)
        return
    except OSError as exc:
        _fail_if_disk_full(exc, index_name)
        raise
    if report is None:
        click.echo(
            json.dumps({"job": job.id, "state": "running"})
            if as_json
            else f"job {job.id} dispatched; follow it with `shoprank index status {job.id}`"
        )
        return
    report = {**report, "errors": errors}
    done = report.get("state") == "done"
    if done and not as_json:
        click.echo(
            f"{index_name} → {report['job']}: {report['documents']} products in "
            f"{report['elapsed_s']}s ({rate(report['documents'], report['elapsed_s'])} "
            f"products/s; embedded {report['embedded']}, cache hits "
            f"{report['cache_hits']}, unchanged {report.get('unchanged', 0)}, removed "
            f"{report.get('removed', 0)}; embed {report['embed_s']}s, write {report['write_s']}s)"
            + (f"; previous {report['previous']}" if report.get("previous") else "")
        )
    if done:
        report["intent"] = after_load(
            settings, index_name, report, train=train_intent, as_json=as_json
        )
    if as_json:
        click.echo(json.dumps(report))
    if not done:
        click.echo(
            f"error: load {report.get('state')}: {report.get('error')}; "
            f"the alias [{index_name}] was left unchanged",
            err=True,
        )
        sys.exit(1)


def after_load(
    settings: Settings, alias: str, report: dict[str, Any], *, train: bool, as_json: bool
) -> dict[str, Any]:
    """What a user expects after a load: the intent model trained for the index (so `full`
    mode understands its queries), then the commands to serve and search it. Returns what
    happened to the intent model (the `intent` key of `--json`)."""
    from shoprank.cli_common import example_query, next_commands
    from shoprank.cli_train import train_intent_after_load

    intent = train_intent_after_load(settings, alias, report, train=train, quiet=as_json)
    if not as_json:
        click.echo(next_commands(settings, alias, query=example_query(settings, alias)))
    return intent


def _fail_if_disk_full(exc: OSError, alias: str) -> None:
    """A full disk outside the steps that clean up after it (e.g. before the job exists)."""
    from shoprank.errors import is_disk_full
    from shoprank.indexing.diskspace import disk_full_reason

    if is_disk_full(exc):
        reason = disk_full_reason(
            alias=alias, what="preparing the load", free_at_start=None, needed=None, cleaned=False
        )
        fail(reason, 1)


def _print_errors(errors: list[dict[str, Any]]) -> None:
    for err in errors[:20]:
        click.echo(f"skipped line {err['line']}: {err['reason']}", err=True)
    if len(errors) > 20:
        click.echo(f"… and {len(errors) - 20} more skipped rows", err=True)


@index.command("status")
@click.argument("job_id", required=False)
@click.option("--index", "alias", default=None, help="Only jobs of this alias.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def index_status(ctx: click.Context, job_id: str | None, alias: str | None, as_json: bool) -> None:
    """Show re-index jobs and their progress (all, or one JOB_ID)."""
    from shoprank.indexing.jobs import JobStore

    jobs = JobStore(_settings(ctx).data_dir / "jobs")
    try:
        selected = [jobs.load(job_id)] if job_id else jobs.all(alias)
    except ShoprankError as exc:
        _fail(exc)
        return
    snapshots = [{**jobs.progress(j), "error": j.error} for j in selected]
    if as_json:
        click.echo(json.dumps(snapshots if not job_id else snapshots[0]))
        return
    for s in snapshots:
        click.echo(
            f"{s['job']:<28} {s['state']:<10} {s['products_done']:>7}/{s['products']:<7} "
            f"chunks {s['chunks_done']}/{s['chunks']}  embedded {s['embedded']}  "
            f"cache hits {s['cache_hits']}  failures {s['failures']}"
            + (f"  ({s['error']})" if s["error"] else "")
        )


@index.command("generations")
@click.option("--index", "alias", default=None, help="Only generations of this alias.")
@click.pass_context
def index_generations(ctx: click.Context, alias: str | None) -> None:
    """List index generations; * marks the ones aliases point at."""
    from shoprank.wiring import make_backend

    backend = make_backend(_settings(ctx))
    live = set()
    for gen in backend.generations(alias):
        with contextlib.suppress(ShoprankError):
            live.add(backend.resolve(gen["alias"]))
    for gen in backend.generations(alias):
        marker = "*" if gen["name"] in live else " "
        click.echo(f"{marker} {gen['name']:<28} {gen['status']:<9} {gen['doc_count']:>8} docs")


index.add_command(index_generations, name="list")


@index.command("rollback")
@click.argument("alias")
@click.pass_context
def index_rollback(ctx: click.Context, alias: str) -> None:
    """Point ALIAS back at its previous ready generation."""
    from shoprank.wiring import make_backend

    try:
        target = make_backend(_settings(ctx)).rollback(alias)
    except ShoprankError as exc:
        _fail(exc)
        return
    click.echo(f"{alias} → {target}")


@index.command("upsert")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--index", "index_name", required=True, help="Alias whose live generation to update.")
@click.option("--fields", default="", help="Column roles, as for `index load`.")
@click.option("--price-multiplier", default=1.0, show_default=True, type=float)
@click.pass_context
def index_upsert(
    ctx: click.Context, path: Path, index_name: str, fields: str, price_multiplier: float
) -> None:
    """Add or replace the products of PATH in the live index (no new generation)."""
    from shoprank.indexing.catalog import CatalogReport, FieldRoles, read_catalog
    from shoprank.workers.dispatch import submit_upsert

    settings = _settings(ctx)
    try:
        report = CatalogReport()
        docs = list(
            read_catalog(
                path,
                roles=FieldRoles.parse(fields),
                price_multiplier=price_multiplier,
                report=report,
            )
        )
        _print_errors([{"line": e.line, "reason": e.reason} for e in report.errors])
        result = submit_upsert(settings, index_name, docs)
    except ShoprankError as exc:
        _fail(exc)
        return
    click.echo(f"{index_name} ({result['generation']}): {result['upserted']} products upserted")


@index.command("delete")
@click.option("--index", "index_name", required=True)
@click.argument("ids", nargs=-1, required=True)
@click.pass_context
def index_delete(ctx: click.Context, index_name: str, ids: tuple[str, ...]) -> None:
    """Delete products by id from the live index."""
    from shoprank.workers.dispatch import submit_delete

    try:
        result = submit_delete(_settings(ctx), index_name, list(ids))
    except ShoprankError as exc:
        _fail(exc)
        return
    missing = len(result["not_found"])
    click.echo(
        f"{index_name} ({result['generation']}): {result['deleted']} deleted"
        + (f", {missing} not found" if missing else "")
    )
