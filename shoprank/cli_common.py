"""What every `shoprank` subcommand shares: the settings and how a command fails."""

from __future__ import annotations

import json
import shlex
import socket
import sys
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlencode

import click

from shoprank.errors import ShoprankError
from shoprank.settings import Settings


def current_settings() -> Settings:
    """The process settings; `shoprank --data-dir` has already put its value in them."""
    from shoprank.settings import get_settings

    return get_settings()


def fail(message: str, code: int = 1) -> NoReturn:
    """Print `error: message` on stderr and exit with `code`."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def program() -> str:
    """How the user ran shoprank (`.venv/bin/shoprank`, `shoprank`), to print commands they
    can paste; `shoprank` when it ran some other way (`python -m`)."""
    argv0 = sys.argv[0] if sys.argv else ""
    return argv0 if Path(argv0).name == "shoprank" else "shoprank"


def free_port(start: int = 9201, tries: int = 20) -> int:
    """The first loopback port from `start` nobody listens on: from 9201, beside a demo or
    an Elasticsearch on 9200."""
    for port in range(start, start + tries):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return start


def next_commands(settings: Settings, index: str, *, query: str, port: int | None = None) -> str:
    """The two commands after a load: serve this data dir, then search the index (or open
    the inspector on the same query)."""
    port = free_port() if port is None else port
    base = f"http://127.0.0.1:{port}"
    fields = [f.strip() for f in settings.default_text_fields.split(",") if f.strip()]
    body = json.dumps({"query": {"multi_match": {"query": query, "fields": fields}}, "size": 5})
    data_dir = shlex.quote(str(settings.data_dir.resolve()))
    inspector = f"{base}/_shoprank/inspect?" + urlencode({"index": index, "q": query})
    return "\n".join(
        [
            "",
            "next: serve it (it keeps running; search from a second terminal)",
            f"  {program()} --data-dir {data_dir} serve --port {port}",
            "then search it",
            f"  curl -s {shlex.quote(f'{base}/{index}/_search')} "
            f"-H 'Content-Type: application/json' -d {shlex.quote(body)}",
            f"or open the inspector: {inspector}",
        ]
    )


def example_query(settings: Settings, alias: str) -> str:
    """A query worth trying on the new index: the first of the examples the inspector's
    landing page computes from the catalog (a big brand with a product type it sells)."""
    from shoprank.plugin.inspector_examples import catalog_examples, read_catalog
    from shoprank.wiring import make_backend

    try:
        catalog = read_catalog(make_backend(settings), alias, attributes=settings.intent_attributes)
    except ShoprankError:
        return alias
    examples = catalog_examples(catalog)
    return examples[0].query if examples else alias
