"""`shoprank events import` and `shoprank profiles ...` (click runner, embedded default)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from shoprank.cli_events import events, profiles


@pytest.fixture()
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    from shoprank.settings import get_settings

    monkeypatch.setenv("SHOPRANK_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


@click.group()
def root() -> None:
    pass


root.add_command(events)
root.add_command(profiles)


def test_import_rebuild_show_forget(cli: CliRunner, tmp_path: Path) -> None:
    history = tmp_path / "history.jsonl"
    lines = [
        {"type": "click", "user_id": "ann", "product_id": f"p{i}", "event_id": f"h{i}"}
        for i in range(5)
    ]
    history.write_text("\n".join(json.dumps(x) for x in lines) + '\n{"type": "nope"}\n\n')
    result = cli.invoke(root, ["events", "import", str(history), "--json"])
    report = json.loads(result.output)
    assert (report["accepted"], report["folded"]) == (5, 5)
    assert report["errors"][0]["line"] == 6
    again = json.loads(cli.invoke(root, ["events", "import", str(history), "--json"]).output)
    assert (again["accepted"], again["duplicates"]) == (0, 5)

    shown = json.loads(cli.invoke(root, ["profiles", "show", "ann"]).output)
    assert shown["counts"] == {"click": 5}
    assert "rebuilt 1 profiles from 5 events" in cli.invoke(root, ["profiles", "rebuild"]).output
    assert json.loads(cli.invoke(root, ["profiles", "show", "ann"]).output)["counts"] == {
        "click": 5
    }
    assert "5 events" in cli.invoke(root, ["profiles", "forget", "ann"]).output
    assert cli.invoke(root, ["profiles", "show", "ann"]).exit_code == 1
