"""`shoprank simulate-recs` then `shoprank evaluate --recommend` on a small data dir, through
the real command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import cli

START = "1767225600"  # 2026-01-01: the simulated clock


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from shoprank.indexing.demo import write_demo_catalog

    data_dir = tmp_path_factory.mktemp("recs-eval")
    catalog = write_demo_catalog(data_dir / "catalog.jsonl", n=160, seed=5)
    cli("index", "load", "--no-train-intent", str(catalog), "--index", "shop", data_dir=data_dir)
    out = cli(
        "simulate-recs",
        "--index",
        "shop",
        "--shoppers",
        "60",
        "--sessions",
        "5",
        "--days",
        "20",
        "--start",
        START,
        "--seed",
        "2",
        data_dir=data_dir,
        env={"SHOPRANK_PRODUCT_INDEX": "shop"},
    )
    report = json.loads(out.stdout)
    assert report["accepted"] > 1000 and report["purchase"] > 100
    return data_dir


def test_evaluate_recommend_prints_every_strategy_beside_its_baselines(simulated: Path) -> None:
    out = cli(
        "evaluate",
        "--recommend",
        "--index",
        "shop",
        "--holdout-days",
        "5",
        data_dir=simulated,
        env={"SHOPRANK_PRODUCT_INDEX": "shop"},
    )
    lines = out.stdout.splitlines()
    assert any("hit@k" in line and "nDCG@k" in line for line in lines)
    systems = {
        (line.split()[0], line.split()[2]) for line in lines if line[:5] in ("purch", "click")
    }
    for expected in (
        ("purchase", "popularity"),
        ("purchase", "content_recent"),
        ("purchase", "content_item"),
        ("purchase", "cooccur_count"),
        ("click", "popularity"),
    ):
        assert expected in systems, out.stdout


def test_evaluate_recommend_json_has_sane_metrics(simulated: Path) -> None:
    out = cli(
        "evaluate",
        "--recommend",
        "--json",
        "--index",
        "shop",
        "--holdout-days",
        "5",
        data_dir=simulated,
    )
    report = json.loads(out.stdout)
    assert report["held_out"]["purchase"] > 10 and report["held_out"]["click"] > 10
    rows = {(r["protocol"], r["cases"], r["system"]): r for r in report["rows"]}
    popular = rows[("purchase", "user", "popularity")]
    assert 0 <= popular["hit_rate"] <= 1 and popular["n"] == report["held_out"]["purchase"]
    # the same ten products for everyone: coverage is 10 of 160
    assert popular["coverage"] == pytest.approx(10 / 160)
    # kNN of one product's neighbours: far less diverse than the best-sellers of the shop
    assert rows[("purchase", "item", "content_item")]["ild"] < popular["ild"]
    # raw co-occurrence finds the complements the simulator bought together
    cart = rows[("purchase", "cart", "cooccur_count")]
    assert cart["hit_rate"] > rows[("purchase", "cart", "popularity")]["hit_rate"]


def test_evaluate_recommend_names_a_bad_strategy(simulated: Path) -> None:
    out = cli("evaluate", "--recommend", "--strategy", "psychic", data_dir=simulated, check=False)
    assert out.returncode == 2
    assert "psychic" in out.stderr and "for_you" in out.stderr


def test_evaluate_recommend_on_an_empty_log_says_what_to_do(tmp_path: Path) -> None:
    out = cli("evaluate", "--recommend", data_dir=tmp_path, check=False)
    assert out.returncode == 3
    assert "simulate-recs" in out.stderr
