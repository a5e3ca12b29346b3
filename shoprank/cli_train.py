"""`shoprank train …`: build the models the serving path loads (intent, ranker).

Each subcommand lives beside the code it trains and registers itself here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from shoprank.errors import ShoprankError


@click.group()
def train() -> None:
    """Train the query-intent model or the learned ranker from the catalog and the logs."""


@train.command("intent")
@click.option("--index", "index_name", default=None, help="Train from this index's products.")
@click.option(
    "--catalog",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Train from a catalog file instead (JSONL/CSV, optionally .gz).",
)
@click.option("--fields", default=None, help="Column roles of --catalog, as for `index load`.")
@click.option("--price-multiplier", default=1.0, type=float, show_default=True)
@click.option("--holdout", default=0.2, type=float, show_default=True, help="Share held out.")
@click.option("--epochs", default=25, type=int, show_default=True)
@click.option("--limit", default=None, type=int, help="Only the first N products.")
@click.option("--no-clicks", is_flag=True, help="Ignore query → click pairs of the event log.")
@click.option("--json", "as_json", is_flag=True, help="Print the model metadata as JSON.")
def intent(
    index_name: str | None,
    catalog: Path | None,
    fields: str | None,
    price_multiplier: float,
    holdout: float,
    epochs: int,
    limit: int | None,
    no_clicks: bool,
    as_json: bool,
) -> None:
    """Train the query-intent model (categories, attribute vocabulary, price bands)."""
    from shoprank.rerankers.intent.training import train_intent
    from shoprank.settings import get_settings

    settings = get_settings()
    if index_name is None and catalog is None:
        index_name = settings.product_index
    if not 0.0 <= holdout < 1.0:
        click.echo(f"error: --holdout must be in [0, 1), got {holdout}", err=True)
        sys.exit(2)
    try:
        meta = train_intent(
            settings,
            index=index_name if catalog is None else None,
            catalog=catalog,
            fields=fields,
            price_multiplier=price_multiplier,
            holdout=holdout,
            epochs=epochs,
            limit=limit,
            use_clicks=not no_clicks,
        )
    except ShoprankError as exc:
        click.echo(f"error: {exc.reason}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(meta, indent=2, ensure_ascii=False))
        return
    click.echo(
        f"trained {meta['model_version']}: {meta['categories']} categories, "
        f"{meta['train_examples']} examples ({meta['click_pairs']} click pairs)"
    )
    for source, acc in meta["accuracy"].items():
        click.echo(
            f"  held-out {source}: top-1 {acc['top1']:.3f}  top-3 {acc['top3']:.3f}  (n={acc['n']})"
        )
