"""CLI of the recommendation evaluation: `evaluate --recommend` (called by `evaluate` in
`cli_ranker`) and `simulate-recs`, synthetic shopper sessions for recommendations."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from shoprank.cli_common import current_settings, fail
from shoprank.errors import BadRequestError, ShoprankError
from shoprank.progress import Progress
from shoprank.settings import Settings


def evaluate_recommend(
    settings: Settings,
    *,
    index: str | None,
    strategies: tuple[str, ...],
    holdout_days: float,
    k: int,
    as_json: bool,
) -> None:
    """Print the table (or JSON) of `shoprank.evaluation.recommend_run.evaluate`."""
    from shoprank.evaluation.recommend import Row, table
    from shoprank.evaluation.recommend_run import STRATEGIES, evaluate

    chosen = [s.strip() for raw in strategies for s in raw.split(",") if s.strip()]
    bad = [s for s in chosen if s not in STRATEGIES]
    if bad:
        fail(f"unknown strategy(ies) {bad}; choose from {', '.join(STRATEGIES)}", 2)
    bar = Progress("evaluating recommendations", unit="held-out events", enabled=not as_json)
    try:
        with bar:
            report = evaluate(
                settings,
                index=index,
                strategies=chosen or STRATEGIES,
                holdout_days=holdout_days,
                k=k,
            )
            bar.update(sum(report["held_out"].values()))
            bar.finish(
                note=", ".join(f"{n:,} {p}s held out" for p, n in report["held_out"].items())
            )
    except BadRequestError as exc:
        fail(exc.reason, 2)
        return
    except ShoprankError as exc:
        fail(exc.reason, 3)
        return
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    rows = [Row(**r) for r in report["rows"]]
    click.echo(
        f"held out: last purchase / last click per shopper in the final {holdout_days:g} days "
        f"of the log; k = {k}; index {report['index']}"
    )
    click.echo(table(rows))
    for name, reason in report["errors"].items():
        click.echo(f"note ({name}): {reason}", err=True)


def _catalog(settings: Settings, *, index: str, url: str | None, path: Path | None) -> Any:
    from shoprank.simulate_recs import RecCatalog

    if path is not None:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return RecCatalog.from_records(rows)
    if url is not None:
        from shoprank.simulate import Catalog, Client

        client = Client(url)
        try:
            products = Catalog.fetch(client, index).products
        finally:
            client.close()
        return RecCatalog.from_records(
            {"id": p.id, "category": p.leaf, "brand": p.brand, "price": p.price} for p in products
        )
    from shoprank.wiring import make_backend

    return RecCatalog.from_backend(make_backend(settings), index)


@click.command("simulate-recs")
@click.option(
    "--url",
    default=None,
    help="POST to this running server (default: write the current data dir's event log directly).",
)
@click.option("--index", default=None, help="Catalog index (default SHOPRANK_PRODUCT_INDEX).")
@click.option(
    "--catalog",
    "catalog_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="JSONL of products with id, category, brand, price (instead of reading the index).",
)
@click.option("--shoppers", default=200, show_default=True, type=click.IntRange(1, 1_000_000))
@click.option(
    "--sessions",
    default=8,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="Sessions per shopper.",
)
@click.option("--days", default=28.0, show_default=True, type=click.FloatRange(min=0.01))
@click.option(
    "--start",
    default=None,
    type=float,
    help="Epoch seconds of the first day (default: DAYS before now).",
)
@click.option("--seed", default=0, show_default=True, type=int)
def simulate_recs_cmd(
    url: str | None,
    index: str | None,
    catalog_path: Path | None,
    shoppers: int,
    sessions: int,
    days: float,
    start: float | None,
    seed: int,
) -> None:
    """Write SYNTHETIC shopper sessions (views, clicks, carts, purchases with complements
    and substitutes) for evaluating recommendations (`evaluate --recommend`)."""
    from shoprank.simulate_recs import post_events, simulate, write_offline

    settings = current_settings()
    target = index or settings.product_index
    try:
        catalog = _catalog(settings, index=target, url=url, path=catalog_path)
    except (ShoprankError, RuntimeError, OSError, ValueError) as exc:
        fail(exc.reason if isinstance(exc, ShoprankError) else str(exc))
        return
    traffic = simulate(
        catalog,
        shoppers=shoppers,
        sessions=sessions,
        days=days,
        start=time.time() - days * 86_400 if start is None else start,
        seed=seed,
    )
    try:
        if url is not None:
            accepted = post_events(traffic, url)
        else:
            from shoprank.wiring import event_service

            accepted = write_offline(traffic, event_service(settings))
    except (ShoprankError, RuntimeError, OSError) as exc:
        fail(exc.reason if isinstance(exc, ShoprankError) else str(exc))
        return
    counts = traffic.counts()
    click.echo(json.dumps({"accepted": accepted, "products": len(catalog.items), **counts}))
