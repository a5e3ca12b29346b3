"""What every `shoprank` subcommand shares: the settings and how a command fails."""

from __future__ import annotations

import sys
from typing import NoReturn

import click

from shoprank.settings import Settings


def current_settings() -> Settings:
    """The process settings; `shoprank --data-dir` has already put its value in them."""
    from shoprank.settings import get_settings

    return get_settings()


def fail(message: str, code: int = 1) -> NoReturn:
    """Print `error: message` on stderr and exit with `code`."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)
