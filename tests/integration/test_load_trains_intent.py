"""`shoprank index load` finishes the job: the intent model is trained for the loaded index
(so `full` search applies it, with no "trained for another index" note), and the commands
printed after the load work as printed against the real server."""

from __future__ import annotations

import gzip
import json
import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from .conftest import ICECAT, Server, cli

ROWS = 300
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not ICECAT.exists(), reason=f"Icecat sample not found at {ICECAT}"),
]

# Icecat carries no category column (a shop's own catalog usually does): the first rows get
# one from the product type their title names, as a shop's taxonomy would file them.
TYPES = [
    (("printhead",), "Printing > Printheads"),
    (("cartridge", "toner", "ink"), "Printing > Ink & Toner"),
    (("paper", "film", "media", "sheets"), "Printing > Paper & Media"),
    (("processor",), "Computers > Processors"),
    (("memory", "module"), "Computers > Memory"),
    (("battery", "uninterruptible"), "Power > UPS & Batteries"),
    (("cable", "adapter"), "Electronics > Cables & Adapters"),
]
ICECAT_FIELDS = ("--fields", "brand=supplier,description=short_description")


def _category(title: str) -> str | None:
    words = set(re.findall(r"[a-z]+", title.lower()))
    return next((path for keys, path in TYPES if words & set(keys)), None)


def _icecat_with_categories(path: Path) -> Path:
    rows = []
    with gzip.open(ICECAT, "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            category = _category(row.get("title") or "")
            rows.append({**row, "category": category} if category else row)
            if len(rows) == ROWS:
                break
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A data dir where an intent model for another index (`shop`) came first, as the demo
    leaves one; then Icecat rows are loaded as `icecat` the way a new user does it."""
    data_dir = tmp_path_factory.mktemp("load-trains-intent")
    other = data_dir / "shop.jsonl"
    other.write_text(
        "".join(
            json.dumps({"id": f"s{i}", "title": title, "category": category, "price": 5 + i}) + "\n"
            for i, (title, category) in enumerate(
                [("Trail running shoe", "Shoes > Running")] * 4
                + [("Cotton crew t-shirt", "Clothing > Shirts")] * 4
            )
        )
    )
    first = cli("index", "load", str(other), "--index", "shop", "--no-vectors", data_dir=data_dir)
    assert "intent model trained for [shop]" in first.stdout
    catalog = _icecat_with_categories(data_dir / "icecat-subset.jsonl")
    result = cli(
        "index", "load", str(catalog), "--index", "icecat", "--no-vectors", *ICECAT_FIELDS,
        "--price-multiplier", "0.01",
        data_dir=data_dir,
    )  # fmt: skip
    return data_dir, result.stdout


@pytest.fixture(scope="module")
def printed(loaded: tuple[Path, str]) -> dict[str, str]:
    """The serve command, the curl command and the inspector URL the load printed."""
    lines = [line.strip() for line in loaded[1].splitlines()]
    serve = next(line for line in lines if " serve --port " in line)
    curl = next(line for line in lines if line.startswith("curl "))
    inspector = next(line for line in lines if "/_shoprank/inspect?" in line).split()[-1]
    return {"serve": serve, "curl": curl, "inspector": inspector}


@pytest.fixture(scope="module")
def server(loaded: tuple[Path, str], printed: dict[str, str]) -> Iterator[Server]:
    """The server the printed command describes: its data dir, on its port."""
    argv = shlex.split(printed["serve"])
    assert argv[0] == "shoprank"  # run here as `python -m shoprank.cli`
    assert argv[1:3] == ["--data-dir", str(loaded[0].resolve())]
    assert argv[3:5] == ["serve", "--port"]
    srv = Server(loaded[0])
    srv.port = int(argv[5])
    srv.url = f"http://127.0.0.1:{srv.port}"
    srv.start()
    yield srv
    srv.stop()


def _full_search(server: Server, text: str) -> dict[str, Any]:
    body = {
        "query": {"multi_match": {"query": text, "fields": ["title^3", "description"]}},
        "size": 10,
        "ext": {"shoprank": {"mode": "full", "explain": True}},
    }
    response = httpx.post(f"{server.url}/icecat/_search", json=body, timeout=120)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_the_load_says_it_trained_the_intent_model(loaded: tuple[Path, str]) -> None:
    out = loaded[1]
    assert re.search(r"intent model trained for \[icecat\]: \d+ categories", out), out
    assert "it replaces the one trained for [shop]" in out
    meta = json.loads((loaded[0] / "models" / "intent" / "metadata.json").read_text())
    assert meta["index"] == "icecat"
    assert meta["categories"] == len({path for _, path in TYPES})
    assert meta["encoder"].endswith("all-MiniLM-L6-v2")  # the serving encoder, by name


def test_full_search_uses_the_model_trained_for_this_index(server: Server) -> None:
    result = _full_search(server, "black toner cartridge")
    explained = result["_shoprank"]
    notes = " ".join(explained.get("notes", []))
    assert "trained for index" not in notes
    assert not any(d.startswith("intent") for d in explained.get("degraded", []))
    assert explained["intent"]["model_version"].startswith("intent-")
    top = [c["category"] for c in explained["intent"]["categories"][:2]]
    assert "Printing > Ink & Toner" in top
    model = httpx.get(
        f"{server.url}/_shoprank/intent", params={"q": "toner", "index": "icecat"}, timeout=60
    )
    assert model.json()["model"]["index"] == "icecat"


def test_the_printed_curl_command_searches_the_index(
    server: Server, printed: dict[str, str], loaded: tuple[Path, str]
) -> None:
    out = subprocess.run(printed["curl"], shell=True, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    hits = json.loads(out.stdout)["hits"]["hits"]
    assert hits and all(h["_index"].startswith("icecat") for h in hits)


def test_the_printed_inspector_url_opens_the_compare_view(
    server: Server, printed: dict[str, str]
) -> None:
    url = urlsplit(printed["inspector"])
    assert url.port == server.port and url.path == "/_shoprank/inspect"
    params = parse_qs(url.query)
    assert params["index"] == ["icecat"] and params["q"][0].strip()
    page = httpx.get(printed["inspector"], timeout=60)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    compare = httpx.get(
        f"{server.url}/_shoprank/inspect/api/compare",
        params={"index": "icecat", "q": params["q"][0]},
        timeout=120,
    )
    assert compare.status_code == 200, compare.text


def test_no_train_intent_leaves_the_model_alone(loaded: tuple[Path, str]) -> None:
    data_dir = loaded[0]
    before = (data_dir / "models" / "intent" / "metadata.json").read_text()
    again = cli(
        "index", "load", str(data_dir / "shop.jsonl"), "--index", "shop", "--no-vectors",
        "--no-train-intent", "--json",
        data_dir=data_dir,
    )  # fmt: skip
    report = json.loads(again.stdout.strip().splitlines()[-1])
    assert report["state"] == "done"
    assert report["intent"] == {"trained": False, "reason": "--no-train-intent"}
    assert (data_dir / "models" / "intent" / "metadata.json").read_text() == before
    assert "serve --port" not in again.stdout  # --json prints the report only


def test_reloading_an_unchanged_catalog_keeps_the_model(loaded: tuple[Path, str]) -> None:
    data_dir = loaded[0]
    metadata = data_dir / "models" / "intent" / "metadata.json"
    before = metadata.read_text()
    again = cli(
        "index", "load", str(data_dir / "icecat-subset.jsonl"), "--index", "icecat",
        "--no-vectors", *ICECAT_FIELDS, "--price-multiplier", "0.01",
        data_dir=data_dir,
    )  # fmt: skip
    assert "intent model for [icecat] is up to date (no product changed)" in again.stdout
    assert metadata.read_text() == before
