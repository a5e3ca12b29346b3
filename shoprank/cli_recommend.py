"""`shoprank recommend STRATEGY`: recommendations from the command line, printed like
`shoprank search` (rank, score, title, brand, price) or as the API's JSON."""

from __future__ import annotations

import json
from typing import Any

import click

from shoprank.cli_index import _fail, _settings
from shoprank.errors import ShoprankError
from shoprank.events.model import RECOMMEND_STRATEGIES


@click.command()
@click.argument("strategy", type=click.Choice(RECOMMEND_STRATEGIES))
@click.option("--product", "products", multiple=True, help="Anchor product id (repeat for a cart).")
@click.option("--user", default=None, help="The shopper's user id (for_you).")
@click.option("--session", default=None, help="The shopper's session id (for_you).")
@click.option("--category", default=None, help="Trending in this category path only.")
@click.option("--index", "index_name", default=None, help="Default: SHOPRANK_PRODUCT_INDEX.")
@click.option("--size", default=10, show_default=True, type=int)
@click.option(
    "--filter",
    "filters",
    multiple=True,
    help='An ES filter clause as JSON, e.g. \'{"range": {"price": {"lte": 100}}}\' (repeatable).',
)
@click.option("--exclude", multiple=True, help="A product id never to recommend (repeatable).")
@click.option("--diversity", default=None, help="none, mmr, cap, or a JSON object.")
@click.option("--explain", is_flag=True, help="Print the evidence behind each product.")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON response.")
@click.pass_context
def recommend(
    ctx: click.Context,
    strategy: str,
    products: tuple[str, ...],
    user: str | None,
    session: str | None,
    category: str | None,
    index_name: str | None,
    size: int,
    filters: tuple[str, ...],
    exclude: tuple[str, ...],
    diversity: str | None,
    explain: bool,
    as_json: bool,
) -> None:
    """Recommend products: similar, bought_together, for_you or trending."""
    from shoprank.plugin.recommend import recommend_service
    from shoprank.wiring import make_service

    settings = _settings(ctx)
    body: dict[str, Any] = {"strategy": strategy, "size": size, "explain": explain}
    if products:
        body["product_ids"] = list(products)
    for key, value in (("user_id", user), ("session_id", session), ("category", category)):
        if value:
            body[key] = value
    if index_name:
        body["index"] = index_name
    if exclude:
        body["exclude"] = list(exclude)
    try:
        if filters:
            body["filter"] = [_json("--filter", f) for f in filters]
        if diversity:
            body["diversity"] = (
                _json("--diversity", diversity) if diversity.startswith("{") else diversity
            )
        service = make_service(settings).without_log()
        result = recommend_service(service).recommend(body)
    except ShoprankError as exc:
        _fail(exc)
        return
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
        return
    info = result.get("_shoprank", {})
    if info.get("cold_start"):
        click.echo(f"(cold start: {info.get('fallback')})")
    for rank, hit in enumerate(result["hits"]["hits"], start=1):
        src = hit.get("_source", {})
        price = f"{src['price']:.2f}" if isinstance(src.get("price"), int | float) else "-"
        click.echo(
            f"{rank:>3}. {hit['_score']:.4f}  {src.get('title', hit['_id'])}  "
            f"[{src.get('brand', '')}] {price}  ({hit['_id']})"
        )
        if explain:
            click.echo(f"       {json.dumps(hit.get('_shoprank', {}).get('sources', {}))}")
    if explain:
        for note in info.get("notes", []):
            click.echo(f"  note: {note}")


def _json(option: str, text: str) -> Any:
    from shoprank.errors import BadRequestError

    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRequestError(f"{option} is not valid JSON ({exc}): {text[:80]!r}") from None
