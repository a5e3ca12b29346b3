"""The `shoprank` command: serve the drop-in endpoint, load catalogs, run the demo."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any

import click

from shoprank.errors import ShoprankError
from shoprank.settings import Settings


def _settings(ctx: click.Context) -> Settings:
    overrides: dict[str, Any] = {}
    data_dir = ctx.find_root().params.get("data_dir")
    if data_dir:
        overrides["data_dir"] = Path(data_dir)
    return Settings(**overrides)


def _fail(exc: ShoprankError) -> None:
    click.echo(f"error: {exc.reason}", err=True)
    sys.exit(2 if exc.status == 400 else 1)


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


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=9200, show_default=True, type=int)
@click.option("--log-level", default="info", show_default=True)
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, log_level: str) -> None:
    """Serve the drop-in `_search` endpoint."""
    _serve(_settings(ctx), host=host, port=port, log_level=log_level)


def _serve(settings: Settings, *, host: str, port: int, log_level: str = "info") -> None:
    import uvicorn

    from shoprank.plugin.app import create_app
    from shoprank.wiring import make_service

    service = make_service(settings)
    try:
        service.warm_up()
    except ShoprankError as exc:
        click.echo(
            f"warning: query encoder unavailable ({exc.reason}); vector legs will be skipped",
            err=True,
        )
    app = create_app(service)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)


@main.group()
def index() -> None:
    """Load catalogs into index generations; list and roll back generations."""


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
@click.option("--batch-size", default=256, show_default=True, type=click.IntRange(1, 100_000))
@click.option(
    "--keep",
    default=None,
    type=click.IntRange(0, 100),
    help="Previous generations to keep (default SHOPRANK_KEEP_GENERATIONS).",
)
@click.option("--no-vectors", is_flag=True, help="Lexical only: skip text embeddings.")
@click.option("--json", "as_json", is_flag=True, help="Print the load report as JSON.")
@click.pass_context
def index_load(
    ctx: click.Context,
    path: Path,
    index_name: str,
    fields: str,
    price_multiplier: float,
    batch_size: int,
    keep: int | None,
    no_vectors: bool,
    as_json: bool,
) -> None:
    """Load a JSONL or CSV catalog into a new generation and swap the alias to it."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        Task,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            return Text(f"{task.speed:,.0f} products/s" if task.speed else "", style="cyan")

    from shoprank.indexing.catalog import FieldRoles
    from shoprank.indexing.loader import load_catalog
    from shoprank.wiring import make_backend, text_encoder

    settings = _settings(ctx)
    console = Console(stderr=True)
    try:
        roles = FieldRoles.parse(fields)
        backend = make_backend(settings)
        encoder = None if no_vectors else text_encoder(settings)
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            RateColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=as_json or not console.is_terminal,
        ) as bar:
            task = bar.add_task(f"loading {index_name}", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            report = load_catalog(
                path,
                index=index_name,
                backend=backend,
                encoder=encoder,
                lock_dir=settings.data_dir / "locks",
                roles=roles,
                price_multiplier=price_multiplier,
                batch_size=batch_size,
                keep=settings.keep_generations if keep is None else keep,
                progress=progress,
            )
    except ShoprankError as exc:
        _fail(exc)
        return
    errors = report.catalog.errors
    for err in errors[:20]:
        console.print(f"[yellow]skipped line {err.line}:[/] {err.reason}")
    if len(errors) > 20:
        console.print(f"[yellow]… and {len(errors) - 20} more skipped rows[/]")
    if as_json:
        click.echo(
            json.dumps(
                {
                    **report.as_dict(),
                    "errors": [{"line": e.line, "reason": e.reason} for e in errors],
                }
            )
        )
    else:
        d = report.as_dict()
        click.echo(
            f"{index_name} → {report.generation}: {report.documents} products "
            f"({report.catalog.summary()}) in {d['seconds']['total']}s "
            f"[{d['products_per_s']} products/s; embed {d['seconds']['embed']}s, "
            f"write {d['seconds']['write']}s]"
            + (f"; previous {report.previous}" if report.previous else "")
        )


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
    from shoprank.indexing.catalog import FieldRoles
    from shoprank.indexing.loader import upsert_catalog
    from shoprank.wiring import make_backend, text_encoder

    settings = _settings(ctx)
    try:
        report = upsert_catalog(
            path,
            index=index_name,
            backend=make_backend(settings),
            encoder=text_encoder(settings),
            roles=FieldRoles.parse(fields),
            price_multiplier=price_multiplier,
        )
    except ShoprankError as exc:
        _fail(exc)
        return
    for err in report.catalog.errors[:20]:
        click.echo(f"skipped line {err.line}: {err.reason}", err=True)
    click.echo(f"{index_name} ({report.generation}): {report.documents} products upserted")


@index.command("delete")
@click.option("--index", "index_name", required=True)
@click.argument("ids", nargs=-1, required=True)
@click.pass_context
def index_delete(ctx: click.Context, index_name: str, ids: tuple[str, ...]) -> None:
    """Delete products by id from the live index."""
    from shoprank.wiring import make_backend

    try:
        backend = make_backend(_settings(ctx))
        generation = backend.resolve(index_name)
        deleted = backend.delete(generation, list(ids))
        backend.commit(generation)
    except ShoprankError as exc:
        _fail(exc)
        return
    missing = len(ids) - deleted
    click.echo(
        f"{index_name} ({generation}): {deleted} deleted"
        + (f", {missing} not found" if missing else "")
    )


@index.command("list")
@click.option("--index", "alias", default=None, help="Only generations of this alias.")
@click.pass_context
def index_list(ctx: click.Context, alias: str | None) -> None:
    """List index generations and which alias points where."""
    from shoprank.wiring import make_backend

    backend = make_backend(_settings(ctx))
    live = set()
    for gen in backend.generations(alias):
        with contextlib.suppress(ShoprankError):
            live.add(backend.resolve(gen["alias"]))
    for gen in backend.generations(alias):
        marker = "*" if gen["name"] in live else " "
        click.echo(f"{marker} {gen['name']:<28} {gen['status']:<9} {gen['doc_count']:>8} docs")


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


@main.command()
@click.argument("index_name")
@click.argument("text")
@click.option(
    "--mode",
    type=click.Choice(["lexical", "vector", "hybrid", "full"]),
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
@click.pass_context
def demo(
    ctx: click.Context, host: str, port: int, products: int, seed: int, no_serve: bool
) -> None:
    """Generate a demo catalog, index it as `demo`, and serve it."""
    from shoprank.indexing.demo import write_demo_catalog
    from shoprank.indexing.loader import load_catalog
    from shoprank.wiring import make_backend, text_encoder

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
        )
    except ShoprankError as exc:
        _fail(exc)
        return
    d = report.as_dict()
    click.echo(
        f"indexed {report.documents} products into demo ({report.generation}) in "
        f"{d['seconds']['total']}s"
    )
    if no_serve:
        return
    click.echo(
        f"\nsearch it:\n  curl -s 'http://{host}:{port}/demo/_search' "
        "-H 'Content-Type: application/json' "
        '-d \'{"query": {"match": {"title": "running shoes"}}}\'\n'
    )
    _serve(settings, host=host, port=port)


if __name__ == "__main__":
    main()
