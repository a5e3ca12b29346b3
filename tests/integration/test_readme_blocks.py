"""Every command block of README.md runs as written, so the README cannot drift.

Each ```bash / ```python block has a directive (see `readme_blocks`): `run` blocks must exit
0 and print what their `# {...}` sample shows (top-level keys, literal strings and
booleans); `server PORT` and `background` blocks start long-running processes; `skip`
blocks name one of the few reasons a plain machine cannot run them. The blocks run in README
order, each in a fresh `bash -e -o pipefail` (or `.venv/bin/python`), in one temporary
directory that holds a `.venv` link to this virtualenv, so `.venv/bin/shoprank` works
verbatim and `./data` / `./my-data` are the data dirs the README names. What the test
changes, and nothing else:

- the ports: each README port is served on a free loopback port (`localhost:9200` and
  `--port 9200` are rewritten), so a demo already running on this machine is left alone;
- the Redis URL a block exports points at a real redis-server the test starts;
- `make demo` runs the Makefile's own recipe (`make -n demo`) with a 100-product catalog and
  no synthetic traffic (`--products 100 --no-traffic`): its first start embeds 3,000
  products and replays 720 searches, minutes that say nothing the smaller demo does not;
- placeholders the README asks the reader to bring are written by the test: `catalog.jsonl`
  (the columns "Your own catalog" maps: sku, name, supplier, short_description, price in
  cents) and `history.ndjson.gz` (behaviour events);
- the environment: HF_HUB_OFFLINE=1, one serving process per server, no SHOPRANK_* from
  the calling shell (except the suite's generous time budgets and its encoder, the numpy
  MiniLM: the int8 ONNX export `auto` makes on a fresh data dir is tested on its own).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from . import readme_blocks as rb
from .conftest import RedisServer, free_port

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
CHEAP_DEMO = " --products 100 --no-traffic"
# The conftest's wall-clock budgets (no busy machine overruns them) stay; every other
# SHOPRANK_* of the calling shell would change what the README's commands do.
BUDGETS = (
    "SHOPRANK_SEARCH_BUDGET_MS",
    "SHOPRANK_RERANK_TIMEOUT_MS",
    "SHOPRANK_REQUEST_TIMEOUT_MS",
    "SHOPRANK_MAX_QUEUE_MS",
    "SHOPRANK_ENCODER_BACKEND",
)
GIVE_UP_S = 900  # a block that has not finished by then is stuck, not slow


def _tail(text: str, limit: int = 4000) -> str:
    return text if len(text) <= limit else "…" + text[-limit:]


class Runner:
    """Runs blocks in order in `workdir`; owns the long-running processes they start."""

    def __init__(self, workdir: Path, env: dict[str, str], ports: dict[int, int], redis: str):
        self.workdir = workdir
        self.env = env
        self.ports = ports
        self.redis = redis
        self.servers: dict[int, tuple[rb.Block, subprocess.Popen[bytes], Path]] = {}
        self.background: list[tuple[rb.Block, subprocess.Popen[bytes], Path]] = []

    def command(self, block: rb.Block) -> str:
        text = rb.with_redis(rb.with_ports(block.text, self.ports), self.redis)
        lines = []
        for line in text.splitlines():
            if rb.code(line).strip() == "make demo":
                port = self.ports.get(block.port or 9200, 9200)
                recipe = subprocess.run(
                    ["make", "-s", "-n", "-o", "install", "-f", str(REPO / "Makefile")]
                    + ["demo", f"PORT={port}"],
                    cwd=self.workdir,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.strip()
                assert recipe.endswith(f"demo --port {port}"), recipe
                line = recipe + CHEAP_DEMO
            elif rb.code(line).strip().startswith("make "):
                pytest.fail(f"{block.where}: the test runs only `make demo`; skip `{line}`")
            lines.append(line)
        return "\n".join(lines)

    def run(self, block: rb.Block) -> None:
        self.check_alive()
        if block.kind == "skip":
            return
        text = self.command(block)
        if block.kind in ("server", "background"):
            self.start(block, text)
            return
        argv = (
            [str(self.workdir / ".venv" / "bin" / "python"), "-c", text]
            if block.language == "python"
            else ["bash", "-e", "-o", "pipefail", "-c", text]
        )
        try:
            done = subprocess.run(
                argv,
                cwd=self.workdir,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=GIVE_UP_S,
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"{block.where} did not finish in {GIVE_UP_S} s:\n{text}\n{exc.stderr!r}")
        (self.workdir / f"readme-{block.line}.log").write_text(
            f"$ {text}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
        )
        if done.returncode != 0:
            pytest.fail(
                f"{block.where} exited {done.returncode}:\n{text}\n--- stdout\n"
                f"{_tail(done.stdout)}\n--- stderr\n{_tail(done.stderr)}"
            )
        expected = rb.sample(block.text)
        if expected is not None:
            problems = rb.contradictions(expected, done.stdout)
            assert not problems, f"{block.where}: the output contradicts its sample: {problems}"

    def start(self, block: rb.Block, text: str) -> None:
        if block.port is not None and block.port in self.servers:
            self.stop_one(self.servers.pop(block.port)[1])  # Ctrl-C in its terminal
            self.wait_port_free(self.ports[block.port])
        log = self.workdir / f"readme-{block.line}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                ["bash", "-e", "-o", "pipefail", "-c", text],
                cwd=self.workdir,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if block.port is None:
            self.background.append((block, proc, log))
            return
        self.servers[block.port] = (block, proc, log)
        url = f"http://127.0.0.1:{self.ports[block.port]}/"
        deadline = time.monotonic() + GIVE_UP_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"{block.where} exited {proc.returncode}:\n{text}\n{log.read_text()}")
            try:
                httpx.get(url, timeout=5)
                return
            except httpx.HTTPError:
                time.sleep(0.3)
        pytest.fail(f"{block.where} did not listen on {url} in {GIVE_UP_S} s:\n{log.read_text()}")

    def check_alive(self) -> None:
        """A server or worker that died would make every later block fail for no reason
        of its own: name it instead."""
        for block, proc, log in [*self.servers.values(), *self.background]:
            if proc.poll() is not None:
                pytest.fail(
                    f"{block.where} (still needed) exited {proc.returncode}:\n"
                    f"{_tail(log.read_text())}"
                )

    def wait_port_free(self, port: int) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) != 0:
                    return
            time.sleep(0.2)

    @staticmethod
    def stop_one(proc: subprocess.Popen[bytes]) -> None:
        """SIGTERM the block's whole process group (its shell, the server, Celery's pool),
        wait for all of them to exit, SIGKILL what is left after 30 s."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            proc.poll()
            try:
                os.killpg(proc.pid, 0)  # anyone left in the group?
            except ProcessLookupError:
                break
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def stop(self) -> None:
        for _block, proc, _log in [*self.servers.values(), *self.background]:
            self.stop_one(proc)


def write_catalog(path: Path) -> None:
    """A small catalog in a shop's own column names (the ones "Your own catalog" maps)."""
    kinds = [
        ("USB-C Charger 65W", "Chargers", 2999),
        ("USB-C Cable 2m", "Cables", 899),
        ("Wireless Headphones", "Headphones", 5999),
        ("Laptop Sleeve 14in", "Laptop Bags", 2499),
    ]
    brands = ["Voltix", "Cablecraft", "Sonara"]
    rows = []
    for n in range(36):
        kind, category, cents = kinds[n % len(kinds)]
        brand = brands[(n // len(kinds)) % len(brands)]
        rows.append(
            {
                "sku": f"SKU-{n + 1:04d}",
                "name": f"{brand} {kind} {chr(65 + n % 26)}{n}",
                "supplier": brand,
                "short_description": f"A {kind.lower()} from {brand}, model {n}.",
                "price": cents + 100 * n,
                "category": f"Electronics > Accessories > {category}",
            }
        )
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def write_history(path: Path) -> None:
    events = [
        {"type": "view", "user_id": "u42", "product_id": "SKU-0001"},
        {"type": "click", "user_id": "u42", "product_id": "SKU-0001", "position": 1},
        {"type": "purchase", "user_id": "u42", "product_id": "SKU-0001", "price": 29.99},
        {"type": "click", "user_id": "u7", "product_id": "SKU-0003", "position": 2},
    ]
    with gzip.open(path, "wt") as out:
        out.writelines(json.dumps(event) + "\n" for event in events)


def blocks() -> list[rb.Block]:
    found, problems = rb.parse(README.read_text(encoding="utf-8"))
    assert not problems, "README blocks the test cannot run as they stand:\n" + "\n".join(problems)
    return found


def test_every_command_block_has_a_directive_and_uses_the_venv() -> None:
    found = blocks()
    assert any(b.kind == "server" for b in found)
    assert sum(b.kind == "run" for b in found) >= 10


def test_the_readme_names_what_make_demo_runs(tmp_path: Path) -> None:
    recipe = subprocess.run(
        ["make", "-s", "-n", "-o", "install", "-f", str(REPO / "Makefile"), "demo"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    command = recipe.removeprefix("HF_HUB_OFFLINE=1 ")
    assert command.startswith(".venv/bin/shoprank ")
    assert f"*Then runs* `{command}`" in " ".join(README.read_text(encoding="utf-8").split())


@pytest.mark.timeout(3600)
def test_every_readme_block_runs(tmp_path: Path) -> None:
    found = blocks()
    workdir = tmp_path / "checkout"
    workdir.mkdir()
    (workdir / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    write_catalog(workdir / "catalog.jsonl")
    write_history(workdir / "history.ndjson.gz")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPRANK_") or k in BUDGETS}
    env.update(HF_HUB_OFFLINE="1", SHOPRANK_WORKERS="1")
    ports = {b.port: free_port() for b in found if b.port is not None}
    redis = RedisServer(tmp_path).start()
    runner = Runner(workdir, env, ports, redis.url)
    took = []
    try:
        for block in found:
            began = time.monotonic()
            runner.run(block)
            took.append(f"{time.monotonic() - began:7.1f} s  {block.kind:<10} {block.where}")
        runner.check_alive()
    finally:
        runner.stop()
        redis.stop()
        print("\n".join(took))  # where the time went, with `pytest -s`


# The rules themselves, on made-up READMEs: each check can fail.


def test_a_block_without_a_directive_is_a_problem() -> None:
    _, problems = rb.parse("# Start\n\n```bash\n.venv/bin/shoprank serve\n```\n")
    assert len(problems) == 1 and "README.md:3 (Start)" in problems[0]
    assert "without a `<!-- readme-test" in problems[0]


def test_only_the_fixed_skip_reasons_are_accepted() -> None:
    ok = "<!-- readme-test: skip — needs docker compose -->\n```bash\ndocker compose up\n```\n"
    bad = "<!-- readme-test: skip — too slow -->\n```bash\n.venv/bin/shoprank demo\n```\n"
    assert rb.parse(ok) == (
        [rb.Block(2, "bash", "skip", "docker compose up", "", None, "needs docker compose")],
        [],
    )
    blocks_found, problems = rb.parse(bad)
    assert blocks_found == [] and "skip reason 'too slow' is not one of" in problems[0]


def test_a_bare_shoprank_command_is_a_problem_even_when_skipped() -> None:
    text = (
        "<!-- readme-test: skip — needs an Elasticsearch or OpenSearch cluster -->\n```bash\n"
        "export SHOPRANK_BACKEND=elasticsearch\nshoprank serve --port 9200   # shoprank\n"
        "X=1 shoprank index status\n.venv/bin/shoprank index status\n```\n"
    )
    _, problems = rb.parse(text)
    assert [p.split(":")[1] for p in problems] == ["4", "5"]


def test_directives_parse_with_their_port() -> None:
    text = (
        "## Run\n<!-- readme-test: server 9201 -->\n\n```bash\n.venv/bin/shoprank serve\n```\n"
        "<!-- readme-test: background -->\n```bash\nworker\n```\n"
        "<!-- readme-test: run -->\n```python\nprint(1)\n```\n"
        "<!-- readme-test: server 9201 -->\n```python\nprint(1)\n```\n"
        "<!-- readme-test: run -->\n\nsome prose\n"
    )
    found, problems = rb.parse(text)
    assert [(b.kind, b.port, b.language) for b in found] == [
        ("server", 9201, "bash"),
        ("background", None, "bash"),
        ("run", None, "python"),
    ]
    assert "unknown directive 'server 9201' for a python block" in problems[0]
    assert "a directive with no block after it" in problems[1]


def test_an_output_that_contradicts_its_sample_is_reported() -> None:
    block = (
        'curl -s localhost:9200/x\n# {"acknowledged": true, "user": "<pseudonym>",\n'
        '#  "n": 2, "kind": "user", "deep": {"k": [...]}, ...}\n'
    )
    sample = rb.sample(block)
    assert sample is not None
    assert rb.top_level(sample) == {
        "acknowledged": True,
        "user": rb.OPAQUE,
        "n": rb.OPAQUE,
        "kind": "user",
        "deep": rb.OPAQUE,
    }
    good = {"acknowledged": True, "user": "ab12", "n": 5, "kind": "user", "deep": {}}
    assert rb.contradictions(sample, json.dumps(good)) == []
    bad = {**good, "acknowledged": False, "kind": "session"}
    del bad["deep"]
    assert rb.contradictions(sample, "progress line\n" + json.dumps(bad)) == [
        "'acknowledged' is False, the sample says True",
        "'kind' is 'session', the sample says 'user'",
        "key 'deep' of the sample is missing (got ['acknowledged', 'kind', 'n', 'user'])",
    ]
    assert "not the JSON" in rb.contradictions(sample, "curl: (7) Failed to connect")[0]


def test_ports_and_the_redis_url_are_the_only_rewrites() -> None:
    text = (
        "export SHOPRANK_REDIS_URL=redis://localhost:6379/0 SHOPRANK_USER_ID_SECRET=s\n"
        "curl -s localhost:9200/demo/_search\n.venv/bin/shoprank serve --port 9201\n"
        'es = Elasticsearch("http://localhost:9200")  # 19200 and 92001 stay\n'
    )
    out = rb.with_redis(rb.with_ports(text, {9200: 40001, 9201: 40002}), "redis://127.0.0.1:7/0")
    assert out == (
        "export SHOPRANK_REDIS_URL=redis://127.0.0.1:7/0 SHOPRANK_USER_ID_SECRET=s\n"
        "curl -s localhost:40001/demo/_search\n.venv/bin/shoprank serve --port 40002\n"
        'es = Elasticsearch("http://localhost:40001")  # 19200 and 92001 stay\n'
    )
