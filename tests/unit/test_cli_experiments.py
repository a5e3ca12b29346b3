"""`shoprank experiments ...` on a data directory (click runner over the real `shoprank`
group): the lifecycle, readable results computed from a log the test writes, and errors as
messages with a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from shoprank.cli import main
from shoprank.cli_experiments import parse_arm
from shoprank.events.model import Event
from shoprank.events.service import EventService
from shoprank.experiments.logs import experiment_field
from shoprank.experiments.model import Arm, Experiment
from shoprank.experiments.results import experiment_store
from shoprank.experiments.tally import ArmRun
from shoprank.settings import Settings


@pytest.fixture()
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    from shoprank.settings import get_settings

    monkeypatch.setenv("SHOPRANK_DATA_DIR", str(tmp_path))  # restored after the test
    get_settings.cache_clear()
    model = tmp_path / "models" / "ranker" / "v7"
    model.mkdir(parents=True)
    (model / "meta.json").write_text(json.dumps({"version": "v7", "created": 1.0}))
    yield tmp_path
    get_settings.cache_clear()


def run(data_dir: Path, *args: str) -> Result:
    result = CliRunner().invoke(main, ["--data-dir", str(data_dir), "experiments", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    return result


def test_create_start_list_stop_delete(data_dir: Path) -> None:
    made = run(data_dir, "create", "--id", "ranker-v7", "--challenger", "ranker=v7")
    assert made.exit_code == 0, made.output
    assert "draft experiment ranker-v7 (ab)" in made.output
    stored = experiment_store(Settings(data_dir=data_dir)).get("ranker-v7")
    assert (stored.control, stored.challenger) == ({"ranker": "live"}, {"ranker": "v7"})

    assert run(data_dir, "start", "ranker-v7").exit_code == 0
    listed = run(data_dir, "list")
    row = next(line for line in listed.output.splitlines() if line.startswith("ranker-v7"))
    assert "running" in row and "ranker=live -> ranker=v7" in row
    as_json = json.loads(run(data_dir, "list", "--json").output)
    assert [e["status"] for e in as_json["experiments"]] == ["running"]

    refused = run(data_dir, "delete", "ranker-v7")
    assert refused.exit_code == 1
    assert "is running; stop it first" in refused.output

    stopped = run(data_dir, "stop", "ranker-v7", "--reason", "wrong traffic")
    assert stopped.exit_code == 0
    shown = json.loads(run(data_dir, "show", "ranker-v7", "--json").output)
    assert shown["status"] == "stopped"
    assert shown["results"]["decision"]["message"] == "wrong traffic"
    assert run(data_dir, "delete", "ranker-v7").exit_code == 0
    assert run(data_dir, "list").output.strip() == "no experiments"


def test_arms_as_pairs_or_json_and_the_design_options(data_dir: Path) -> None:
    made = run(
        data_dir,
        "create",
        "--id",
        "fusion",
        "--control",
        '{"mode": "hybrid", "fusion": "rrf"}',
        "--challenger",
        "mode=hybrid,fusion=linear",
        "--challenger",
        "window=50",
        "--method",
        "interleave",
        "--metric",
        "add_to_cart",
        "--mde",
        "0.1",
        "--max-searches",
        "400",
        "--start",
        "--json",
    )
    assert made.exit_code == 0, made.output
    exp = json.loads(made.output)
    assert exp["control"] == {"mode": "hybrid", "fusion": "rrf"}
    assert exp["challenger"] == {"mode": "hybrid", "fusion": "linear", "window": 50}
    assert (exp["status"], exp["method"], exp["metric"]) == ("running", "interleave", "add_to_cart")
    assert (exp["mde"], exp["max_searches"]) == (0.1, 400)


def test_parse_arm() -> None:
    assert parse_arm("--challenger", ("ranker=7",)) == {"ranker": "7"}  # versions are names
    assert parse_arm("--challenger", ("window=30, mode=full",)) == {"window": 30, "mode": "full"}
    with pytest.raises(click.BadParameter, match="'ranker' is not key=value"):
        parse_arm("--challenger", ("ranker",))
    with pytest.raises(click.BadParameter, match="not valid JSON"):
        parse_arm("--challenger", ('{"ranker": "v7"',))


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--id", "x", "--challenger", "ranker=v9"], 2, "no ranker model 'v9'; known versions: v7"),
        (["--id", "x", "--challenger", "ranker=v7", "--split", "1.5"], 2, "split must be"),
        (["--id", "x", "--challenger", "colour=red", "--control", "mode=full"], 2, "not an arm"),
        (["--id", "X Y", "--challenger", "ranker=v7"], 2, "experiment id [X Y] must be"),
        (["--id", "x", "--challenger", "mode=full"], 2, "--control is required"),
        (["--id", "x", "--challenger", "ranker"], 2, "is not key=value"),
        (["--id", "x", "--challenger", "ranker=v7", "--guards", "{"], 2, "not valid JSON"),
        (
            ["--id", "x", "--challenger", "ranker=v7", "--guards", '{"max_latency_ratio": NaN}'],
            2,
            "[guards.max_latency_ratio] must be a finite number, got nan",
        ),
    ],
)
def test_bad_definitions_fail_with_a_message(
    data_dir: Path, args: list[str], code: int, message: str
) -> None:
    result = run(data_dir, "create", *args)
    assert result.exit_code == code
    assert message in result.output
    assert experiment_store(Settings(data_dir=data_dir)).all() == []


def test_unknown_ids_and_wrong_states_fail_with_a_message(data_dir: Path) -> None:
    for command in ("show", "start", "stop", "delete"):
        result = run(data_dir, command, "nope")
        assert result.exit_code == 1
        assert "no experiment [nope]" in result.output
    assert run(data_dir, "create", "--id", "once", "--challenger", "ranker=v7").exit_code == 0
    again = run(data_dir, "create", "--id", "once", "--challenger", "ranker=v7")
    assert again.exit_code == 1 and "already exists" in again.output
    assert run(data_dir, "stop", "once").exit_code == 0
    restarted = run(data_dir, "start", "once")
    assert restarted.exit_code == 2 and "is stopped; only drafts can be started" in restarted.output


def _log(data_dir: Path, exp: Experiment, pages: list[tuple[str, list[str]]]) -> None:
    """One search per page ((variant, clicked product ids)), as the pipeline logs them."""
    events: list[Event] = []
    now = time.time()
    teams: dict[str, Arm] = {"p1": "A", "p2": "B"}
    for i, (variant, clicks) in enumerate(pages):
        qid = f"{exp.id}-{i}"
        runs: dict[Arm, ArmRun] = (
            {"A": ArmRun(False, 4.0), "B": ArmRun(False, 4.0)}
            if variant == "interleave"
            else {"A" if variant == "A" else "B": ArmRun(False, 4.0)}
        )
        interleaved = teams if variant == "interleave" else None
        field = experiment_field(exp, variant, runs, interleaved)
        events.append(
            Event("search", now, f"s-{qid}", session_id=qid, query_id=qid, experiment=field)
        )
        for product in clicks:
            events.append(
                Event(
                    "click",
                    now,
                    f"c-{qid}-{product}",
                    session_id=qid,
                    query_id=qid,
                    product_id=product,
                )
            )
    EventService(Settings(data_dir=data_dir)).ingest(events)


def _row(output: str, label: str) -> str:
    return next(line for line in output.splitlines() if line.startswith(label))


def test_show_prints_rates_with_intervals_the_test_horizon_and_decision(data_dir: Path) -> None:
    assert (
        run(data_dir, "create", "--id", "ab", "--challenger", "ranker=v7", "--start").exit_code == 0
    )
    exp = experiment_store(Settings(data_dir=data_dir)).get("ab")
    pages: list[tuple[str, list[str]]] = [("A", ["p1"] if i < 3 else []) for i in range(12)]
    pages += [("B", ["p1"] if i < 9 else []) for i in range(18)]
    _log(data_dir, exp, pages)
    shown = run(data_dir, "show", "ab")
    assert shown.exit_code == 0, shown.output
    out = shown.output
    a_row, b_row = _row(out, "A control"), _row(out, "B challenger")
    assert a_row.split()[2] == "12" and f"{100 * 3 / 12:.1f}%" in a_row
    assert b_row.split()[2] == "18" and f"{100 * 9 / 18:.1f}%" in b_row
    as_json: dict[str, Any] = json.loads(run(data_dir, "show", "ab", "--json").output)
    click_a = as_json["results"]["evidence"]["arms"]["A"]["rates"]["click"]
    assert f"[{100 * click_a['low']:.1f}%, {100 * click_a['high']:.1f}%]" in a_row
    assert f"{100 * (9 / 18 - 3 / 12):+.2f} points" in out
    assert "sequential test (valid under peeking): p = " in out
    horizon = as_json["results"]["evidence"]["horizon"]
    assert f"horizon: 30 of at most {horizon} searches" in out
    assert "decision (preview): continue - collecting" in out


def test_show_prints_interleaving_wins(data_dir: Path) -> None:
    made = run(
        data_dir, "create", "--id", "il", "--challenger", "ranker=v7", "--method", "interleave"
    )
    assert made.exit_code == 0
    assert run(data_dir, "start", "il").exit_code == 0
    exp = experiment_store(Settings(data_dir=data_dir)).get("il")
    pages = [("interleave", ["p2"])] * 5 + [("interleave", ["p1"])] * 2
    pages += [("interleave", ["p1", "p2"]), ("interleave", [])]
    _log(data_dir, exp, pages)
    out = run(data_dir, "show", "il").output
    assert "challenger wins 5, control wins 2, ties 2" in out
    assert f"challenger share {100 * 5 / 7:.1f}%" in out
    assert "horizon: 7 of at most" in out and "decided queries" in out


def test_an_unreadable_experiment_is_named_and_can_be_deleted(data_dir: Path) -> None:
    (data_dir / "experiments").mkdir()
    (data_dir / "experiments" / "broken.json").write_text("{half a file")
    listed = run(data_dir, "list")
    assert (
        listed.exit_code == 0
        and "unreadable: broken: experiment [broken] is stored" in listed.output
    )
    assert run(data_dir, "delete", "broken").exit_code == 0
    assert run(data_dir, "list").output.strip() == "no experiments"
