"""The `shoprank` command: serve the drop-in endpoint, load catalogs, run the demo."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from shoprank.cli_index import _fail, _settings
from shoprank.errors import ShoprankError
from shoprank.settings import Settings
from shoprank.types import MODES


@click.group()
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Overrides SHOPRANK_DATA_DIR (where indices and stores live).",
)
@click.version_option(package_name="shoprank")
def main(data_dir: str | None) -> None:
    """shoprank: shopper-aware product search behind an Elasticsearch-compatible API."""
    if data_dir:
        # Tasks and workers read settings from the environment: make --data-dir theirs too.
        os.environ["SHOPRANK_DATA_DIR"] = str(Path(data_dir).resolve())
        from shoprank.settings import get_settings

        get_settings.cache_clear()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=9200, show_default=True, type=int)
@click.option("--log-level", default="info", show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=None,
    help="Worker processes on the one port, sharing the data directory "
    "(default: SHOPRANK_WORKERS, else one per core).",
)
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, log_level: str, workers: int | None) -> None:
    """Serve the drop-in `_search` endpoint."""
    from shoprank.plugin.serving import resolve_workers

    settings = _settings(ctx)
    _serve(
        settings,
        host=host,
        port=port,
        log_level=log_level,
        workers=resolve_workers(workers, settings),
    )


def _serve(
    settings: Settings, *, host: str, port: int, log_level: str = "info", workers: int = 1
) -> None:
    from shoprank.plugin.serving import serve

    serve(settings, host=host, port=port, workers=workers, log_level=log_level)


@main.command()
@click.argument("index_name")
@click.argument("text")
@click.option(
    "--mode",
    type=click.Choice(MODES),
    default="full",
    show_default=True,
)
@click.option("--size", default=10, show_default=True, type=int)
@click.pass_context
def search(ctx: click.Context, index_name: str, text: str, mode: str, size: int) -> None:
    """Search INDEX_NAME for TEXT from the command line and print the hits."""
    from shoprank.wiring import make_service

    settings = _settings(ctx)
    fields = settings.default_text_fields.split(",")
    body = {
        "query": {"multi_match": {"query": text, "fields": fields}},
        "size": size,
        "ext": {"shoprank": {"mode": mode}},
    }
    try:
        result = make_service(settings).search(index_name, body)
    except ShoprankError as exc:
        _fail(exc)
        return
    for rank, hit in enumerate(result["hits"]["hits"], start=1):
        src = hit.get("_source", {})
        price = f"{src['price']:.2f}" if isinstance(src.get("price"), int | float) else "-"
        click.echo(
            f"{rank:>3}. {hit['_score']:.4f}  {src.get('title', hit['_id'])}  "
            f"[{src.get('brand', '')}] {price}"
        )


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=9200, show_default=True, type=int)
@click.option("--products", default=3000, show_default=True, type=click.IntRange(10, 200_000))
@click.option("--seed", default=7, show_default=True, type=int)
@click.option("--no-serve", is_flag=True, help="Only build the demo index.")
@click.option(
    "--traffic/--no-traffic",
    default=None,
    help="Simulate synthetic shoppers and train the models on first start (default: when serving).",
)
@click.pass_context
def demo(
    ctx: click.Context,
    host: str,
    port: int,
    products: int,
    seed: int,
    no_serve: bool,
    traffic: bool | None,
) -> None:
    """Generate a demo catalog, index it as `demo`, and serve it."""
    from shoprank.indexing.demo import write_demo_catalog
    from shoprank.indexing.loader import load_catalog
    from shoprank.wiring import embedding_cache, make_backend, text_encoder

    # Behaviour events of the demo refer to the demo's products.
    os.environ.setdefault("SHOPRANK_PRODUCT_INDEX", "demo")
    settings = _settings(ctx)
    path = write_demo_catalog(settings.data_dir / "demo" / "catalog.jsonl", n=products, seed=seed)
    click.echo(f"demo catalog: {products} products → {path}")
    try:
        report = load_catalog(
            path,
            index="demo",
            backend=make_backend(settings),
            encoder=text_encoder(settings),
            lock_dir=settings.data_dir / "locks",
            keep=settings.keep_generations,
            cache=embedding_cache(settings),
        )
    except ShoprankError as exc:
        _fail(exc)
        return
    d = report.as_dict()
    click.echo(
        f"indexed {report.documents} products into demo ({report.generation}) in "
        f"{d['seconds']['total']}s"
    )
    if traffic or (traffic is None and not no_serve):
        from shoprank.demo_traffic import bootstrap

        bootstrap(settings, index="demo", echo=click.echo)
    if no_serve:
        return
    click.echo(
        f"\nsearch it:\n  curl -s 'http://{host}:{port}/demo/_search' "
        "-H 'Content-Type: application/json' "
        '-d \'{"query": {"match": {"title": "running shoes"}}}\'\n'
    )
    # One worker unless SHOPRANK_WORKERS says otherwise: the demo is for one person.
    _serve(settings, host=host, port=port, workers=max(1, settings.workers))


@main.command()
@click.option("--concurrency", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--loglevel", default="info", show_default=True)
@click.option("--queues", default=None, help="Comma-separated queues (default: all).")
@click.option(
    "--beat",
    is_flag=True,
    help="Also run Celery beat in this worker: the scheduled training cycle "
    "(SHOPRANK_RETRAIN_INTERVAL_S). Run it in one worker only.",
)
def worker(concurrency: int, loglevel: str, queues: str | None, beat: bool) -> None:
    """Run a Celery worker for indexing, folding and scheduled tasks (needs SHOPRANK_REDIS_URL)."""
    from shoprank.settings import get_settings
    from shoprank.workers.app import app

    if get_settings().eager:
        click.echo(
            "error: set SHOPRANK_REDIS_URL to run workers; without a broker, tasks run "
            "in-process and no worker is needed",
            err=True,
        )
        sys.exit(2)
    argv = [
        "worker",
        f"--concurrency={concurrency}",
        f"--loglevel={loglevel}",
        "--without-gossip",
        "--without-mingle",
    ]
    if queues:
        argv.append(f"--queues={queues}")
    if beat:
        schedule_file = get_settings().data_dir / "run" / "celerybeat-schedule"
        schedule_file.parent.mkdir(parents=True, exist_ok=True)
        argv += ["--beat", f"--schedule={schedule_file}"]
    app.worker_main(argv)


def _register_subcommands() -> None:
    from shoprank.cli_events import events, profiles
    from shoprank.cli_experiments import experiments
    from shoprank.cli_index import index
    from shoprank.cli_models import models
    from shoprank.cli_recommend import recommend
    from shoprank.cli_schedule import schedule
    from shoprank.cli_train import train

    main.add_command(index)
    main.add_command(train)
    main.add_command(models)
    main.add_command(events)
    main.add_command(profiles)
    main.add_command(recommend)
    main.add_command(schedule)
    main.add_command(experiments)
    from shoprank.cli_ranker import register as register_ranker

    register_ranker(main, train, models)


_register_subcommands()

if __name__ == "__main__":
    main()
