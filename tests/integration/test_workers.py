"""`shoprank serve --workers 2`: two processes on one port over one data directory. An
`index load` from another process swaps the alias, and every worker (told apart by
`X-Shoprank-Worker`) answers with the new generation; `/_shoprank/metrics` counts the
requests of both workers, whichever one answers it.

The waits poll for a state (each worker seen with the new data), with a generous upper
bound that only a broken server reaches.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson

from tests.integration.conftest import cli, free_port

WAIT_S = 180
SENT: list[str] = []  # the worker of every search sent


def _catalog(path: Path, titles: list[str]) -> Path:
    rows = [
        {"id": f"p{n}", "title": title, "brand": "acme", "price": 10.0 + n, "category": "misc"}
        for n, title in enumerate(titles)
    ]
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def _search(url: str, text: str) -> tuple[str, int]:
    """The worker that answered and how many hits it found (a new connection each time,
    so the kernel hands it to either worker)."""
    response = httpx.post(
        f"{url}/shop/_search",
        json={"query": {"match": {"title": text}}, "ext": {"shoprank": {"mode": "lexical"}}},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    SENT.append(response.headers["x-shoprank-worker"])
    return response.headers["x-shoprank-worker"], int(response.json()["hits"]["total"]["value"])


def _until_every_worker(url: str, text: str, *, hits: int, workers: int) -> set[str]:
    seen: set[str] = set()
    deadline = time.monotonic() + WAIT_S
    while len(seen) < workers:
        assert time.monotonic() < deadline, f"workers answering {hits} hits: {seen}"
        worker, found = _search(url, text)
        if found == hits:
            seen.add(worker)
    return seen


def test_every_worker_serves_a_newly_loaded_generation(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    old = _catalog(tmp_path / "old.jsonl", ["red kettle", "blue kettle", "green lamp"])
    new = _catalog(tmp_path / "new.jsonl", ["zebra kettle", "zebra lamp", "green lamp"])
    cli(
        "index",
        "load",
        "--no-train-intent",
        str(old),
        "--index",
        "shop",
        "--no-vectors",
        data_dir=data,
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = data / "server.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SHOPRANK_DEFAULT_MODE": "lexical"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shoprank.cli", "--data-dir", str(data), "serve"]
            + ["--port", str(port), "--workers", "2", "--log-level", "warning"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.monotonic() + WAIT_S
        while True:
            assert proc.poll() is None, f"server exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"server did not start:\n{log.read_text()}"
            try:
                if httpx.get(url + "/_shoprank/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        workers = _until_every_worker(url, "kettle", hits=2, workers=2)
        assert _search(url, "zebra")[1] == 0

        cli(
            "index",
            "load",
            "--no-train-intent",
            str(new),
            "--index",
            "shop",
            "--no-vectors",
            data_dir=data,
        )

        assert _until_every_worker(url, "zebra", hits=2, workers=2) == workers
        # Both workers answered searches, and the one metrics answer counts them all.
        assert set(SENT) == workers
        text = httpx.get(url + "/_shoprank/metrics", timeout=10).text
        searches = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("shoprank_http_requests_total{") and 'route="search"' in line
        )
        assert searches == len(SENT)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
