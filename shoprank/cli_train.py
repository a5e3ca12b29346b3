"""`shoprank train …`: build the models the serving path loads (intent, ranker).

Each subcommand lives beside the code it trains and registers itself here.
"""

from __future__ import annotations

import click


@click.group()
def train() -> None:
    """Train the query-intent model or the learned ranker from the catalog and the logs."""
