"""A load killed part-way leaves the previous generation serving, and is cleaned up later."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from shoprank.indexing.demo import write_demo_catalog

from .conftest import Server, cli

pytestmark = pytest.mark.slow


def _wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _written(generation: Path) -> int:
    """Documents committed to a generation so far (each written batch is committed)."""
    try:
        return int(json.loads((generation / "meta.json").read_text())["doc_count"])
    except FileNotFoundError:
        return 0


def test_killed_load_leaves_previous_generation_serving(tmp_path: Path) -> None:
    small = write_demo_catalog(tmp_path / "v1.jsonl", n=150, seed=1)
    big = write_demo_catalog(tmp_path / "v2.jsonl", n=4000, seed=2)
    cli("index", "load", "--no-train-intent", str(small), "--index", "shop", data_dir=tmp_path)
    aliases = json.loads((tmp_path / "embedded" / "aliases.json").read_text())
    assert aliases == {"shop": "shop-000001"}

    server = Server(tmp_path).start()
    try:
        loader = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "shoprank.cli",
                "--data-dir",
                str(tmp_path),
                "index",
                "load",
                "--no-train-intent",
                str(big),
                "--index",
                "shop",
                "--batch-size",
                "64",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        partial = tmp_path / "embedded" / "indices" / "shop-000002"
        # Killed once it has embedded and written a few batches (of 4000 documents).
        _wait_for(lambda: _written(partial) >= 3 * 64, 600, "a few written batches")
        assert loader.poll() is None, "the load finished before it could be killed"
        loader.send_signal(signal.SIGKILL)
        loader.wait(timeout=10)

        meta = json.loads((partial / "meta.json").read_text())
        assert meta["status"] == "building"
        aliases = json.loads((tmp_path / "embedded" / "aliases.json").read_text())
        assert aliases == {"shop": "shop-000001"}
        count = httpx.post(server.url + "/shop/_count", json={}).json()["count"]
        assert count == 150
        resp = httpx.post(
            server.url + "/shop/_search", json={"query": {"match": {"title": "tent"}}, "size": 50}
        ).json()
        assert {h["_index"] for h in resp["hits"]["hits"]} <= {"shop-000001"}
    finally:
        server.stop()

    # The next load succeeds, swaps, and sweeps the half-built generation.
    cli("index", "load", "--no-train-intent", str(small), "--index", "shop", data_dir=tmp_path)
    aliases = json.loads((tmp_path / "embedded" / "aliases.json").read_text())
    assert aliases == {"shop": "shop-000003"}
    assert not partial.exists()
    listing = cli("index", "list", data_dir=tmp_path).stdout
    assert "shop-000001" in listing and "* shop-000003" in listing


def test_rollback_returns_to_previous_generation(tmp_path: Path) -> None:
    first = write_demo_catalog(tmp_path / "a.jsonl", n=60, seed=3)
    second = write_demo_catalog(tmp_path / "b.jsonl", n=90, seed=4)
    cli(
        "index",
        "load",
        "--no-train-intent",
        str(first),
        "--index",
        "shop",
        "--no-vectors",
        data_dir=tmp_path,
    )
    cli(
        "index",
        "load",
        "--no-train-intent",
        str(second),
        "--index",
        "shop",
        "--no-vectors",
        data_dir=tmp_path,
    )
    out = cli("index", "rollback", "shop", data_dir=tmp_path).stdout
    assert "shop-000001" in out
    search = cli("search", "shop", "tent", "--mode", "lexical", data_dir=tmp_path)
    assert search.returncode == 0
    aliases = json.loads((tmp_path / "embedded" / "aliases.json").read_text())
    assert aliases == {"shop": "shop-000001"}


def test_bad_rows_are_reported_with_line_numbers(tmp_path: Path) -> None:
    catalog = tmp_path / "bad.jsonl"
    catalog.write_text(
        '{"id": "a", "title": "Good kettle", "price": 20}\n'
        '{"id": "b", "price": 3}\n'
        "{not json\n"
        '{"id": "c", "title": "Bad price", "price": "cheap"}\n'
        '{"id": "d", "title": "Good tent", "price": 99.5}\n'
    )
    result = cli(
        "index",
        "load",
        "--no-train-intent",
        str(catalog),
        "--index",
        "shop",
        "--no-vectors",
        "--json",
        "--max-failure-rate",
        "0.9",
        data_dir=tmp_path,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["documents"] == 2
    assert [e["line"] for e in report["errors"]] == [2, 3, 4]
    assert "title" in report["errors"][0]["reason"]
    assert "JSON" in report["errors"][1]["reason"]
    assert "price" in report["errors"][2]["reason"]


def test_too_many_bad_rows_abort_with_a_report(tmp_path: Path) -> None:
    good = write_demo_catalog(tmp_path / "good.jsonl", n=20, seed=5)
    cli(
        "index",
        "load",
        "--no-train-intent",
        str(good),
        "--index",
        "shop",
        "--no-vectors",
        data_dir=tmp_path,
    )
    catalog = tmp_path / "bad.jsonl"
    catalog.write_text('{"id": "a", "title": "Kettle"}\n{"id": "b"}\n{"id": "c"}\n')
    dry = cli(
        "index",
        "load",
        "--no-train-intent",
        str(catalog),
        "--index",
        "shop",
        "--dry-run",
        "--json",
        data_dir=tmp_path,
    )
    summary = json.loads(dry.stdout.strip().splitlines()[-1])
    assert summary["products"] == 1 and [e["line"] for e in summary["errors"]] == [2, 3]
    assert "would abort" in summary["notes"][0]
    result = cli(
        "index",
        "load",
        "--no-train-intent",
        str(catalog),
        "--index",
        "shop",
        "--no-vectors",
        data_dir=tmp_path,
        check=False,
    )
    assert result.returncode != 0
    assert "skipped line 2" in result.stderr and "left unchanged" in result.stderr
    aliases = json.loads((tmp_path / "embedded" / "aliases.json").read_text())
    assert aliases == {"shop": "shop-000001"}


def test_catalog_with_no_valid_rows_keeps_alias(tmp_path: Path) -> None:
    good = write_demo_catalog(tmp_path / "good.jsonl", n=20, seed=5)
    cli(
        "index",
        "load",
        "--no-train-intent",
        str(good),
        "--index",
        "shop",
        "--no-vectors",
        data_dir=tmp_path,
    )
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"id": "x"}\n')
    result = cli(
        "index",
        "load",
        "--no-train-intent",
        str(empty),
        "--index",
        "shop",
        "--no-vectors",
        data_dir=tmp_path,
        check=False,
    )
    assert result.returncode != 0
    assert "left unchanged" in result.stderr
    aliases = json.loads((tmp_path / "embedded" / "aliases.json").read_text())
    assert aliases == {"shop": "shop-000001"}


def test_upsert_and_delete_are_seen_by_a_running_server(tmp_path: Path) -> None:
    catalog = write_demo_catalog(tmp_path / "c.jsonl", n=80, seed=6)
    cli("index", "load", "--no-train-intent", str(catalog), "--index", "shop", data_dir=tmp_path)
    server = Server(tmp_path).start()
    try:
        update = tmp_path / "update.jsonl"
        update.write_text(
            json.dumps({"id": "SR-000001", "title": "Zanzibar teapot deluxe", "price": 12.5})
            + "\n"
            + json.dumps({"id": "NEW-1", "title": "Zanzibar kettle", "price": 30})
            + "\n"
        )
        cli("index", "upsert", str(update), "--index", "shop", data_dir=tmp_path)
        found = httpx.post(
            server.url + "/shop/_search",
            json={
                "query": {"match": {"title": "zanzibar"}},
                "ext": {"shoprank": {"mode": "lexical"}},
            },
        ).json()
        assert {h["_id"] for h in found["hits"]["hits"]} == {"SR-000001", "NEW-1"}
        assert httpx.post(server.url + "/shop/_count", json={}).json()["count"] == 81
        vector = httpx.post(
            server.url + "/shop/_search",
            json={
                "query": {"match": {"title": "zanzibar teapot"}},
                "ext": {"shoprank": {"mode": "vector"}},
                "size": 3,
            },
        ).json()
        assert vector["hits"]["hits"][0]["_id"] == "SR-000001"

        out = cli("index", "delete", "--index", "shop", "NEW-1", "nope", data_dir=tmp_path)
        assert "1 deleted, 1 not found" in out.stdout
        assert httpx.get(server.url + "/shop/_doc/NEW-1").status_code == 404
        assert httpx.post(server.url + "/shop/_count", json={}).json()["count"] == 80
    finally:
        server.stop()
