"""Integration fixtures: real `shoprank` processes (CLI loads, the HTTP server on loopback)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
ICECAT = SHARED_DATA / "icecat-products.jsonl.gz"

# Wall-clock budgets no busy machine overruns, for every server and command line (they
# inherit the environment) that does not set its own: the tests check behaviour, never
# speed (the tests of the budgets pass theirs explicitly).
os.environ.setdefault("SHOPRANK_SEARCH_BUDGET_MS", "600000")
os.environ.setdefault("SHOPRANK_RERANK_TIMEOUT_MS", "600000")
os.environ.setdefault("SHOPRANK_REQUEST_TIMEOUT_MS", "600000")
os.environ.setdefault("SHOPRANK_MAX_QUEUE_MS", "600000")
# Tests that do not test the encoder choice embed with the torch-free numpy MiniLM, as before
# `auto` learned to export the int8 ONNX model (~40 s per fresh data dir); the auto-export
# tests set `encoder_backend="auto"` themselves.
os.environ.setdefault("SHOPRANK_ENCODER_BACKEND", "numpy")
# One embedding cache for every `shoprank` process of this test run (all xdist workers share
# the run id): the Icecat rows several modules load are embedded once, not once per data
# dir. Vectors are keyed by model id and content hash, so sharing cannot mix them up. Only
# the subprocesses get it (in-process unit tests keep their own data dirs' caches); a test
# that sets its own value keeps it.
_RUN = os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"pid{os.getpid()}"
SUBPROCESS_ENV = {
    "SHOPRANK_EMBEDDING_CACHE_PATH": str(
        Path(tempfile.gettempdir()) / f"shoprank-test-embeddings-{_RUN}.sqlite"
    ),
}


def cli(
    *args: str,
    data_dir: Path,
    check: bool = True,
    timeout: float = 600,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the real `shoprank` command line."""
    full_env = {**SUBPROCESS_ENV, **os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    result = subprocess.run(
        [sys.executable, "-m", "shoprank.cli", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"shoprank {' '.join(args)} failed ({result.returncode}):\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """`shoprank serve` in a subprocess, on a free loopback port."""

    def __init__(self, data_dir: Path, *, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.extra_env = env or {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir / f"server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        env = {**SUBPROCESS_ENV, **os.environ, "HF_HUB_OFFLINE": "1", **self.extra_env}
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "shoprank.cli",
                    "--data-dir",
                    str(self.data_dir),
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--log-level",
                    "warning",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited early:\n{self.log.read_text()}")
            try:
                if httpx.get(self.url + "/", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        raise AssertionError(f"server did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture(scope="session")
def demo_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir holding the seeded demo catalog (400 products) loaded as `demo`."""
    data_dir = tmp_path_factory.mktemp("demo-data")
    from shoprank.indexing.demo import write_demo_catalog

    catalog = write_demo_catalog(data_dir / "catalog.jsonl", n=400, seed=11)
    cli("index", "load", "--no-train-intent", str(catalog), "--index", "demo", data_dir=data_dir)
    return data_dir


@pytest.fixture(scope="session")
def server(demo_data_dir: Path) -> Iterator[Server]:
    srv = Server(demo_data_dir).start()
    yield srv
    srv.stop()


class RedisServer:
    """A real `redis-server` on a free loopback port; no persistence unless `persistent`
    (append-only file, fsync every second), which survives `stop()` + `start()`."""

    def __init__(self, workdir: Path, *, persistent: bool = False) -> None:
        self.persistent = persistent
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail(
                "redis-server is not installed (apt-get install redis-server; "
                "`make test` and .ci/run install it)"
            )
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes" if self.persistent else "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return self
            except redis.exceptions.ConnectionError:
                time.sleep(0.1)
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


class Worker:
    """`shoprank worker` (a real Celery worker) in its own process group."""

    def __init__(
        self,
        data_dir: Path,
        redis_url: str,
        *,
        concurrency: int = 2,
        beat: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.env = {
            **SUBPROCESS_ENV,
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "SHOPRANK_REDIS_URL": redis_url,
            "SHOPRANK_DATA_DIR": str(data_dir),
            **(env or {}),
        }
        self.concurrency = concurrency
        self.beat = beat
        self.log = data_dir / f"worker-{time.monotonic_ns()}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "shoprank.cli",
                    "--data-dir",
                    str(self.data_dir),
                    "worker",
                    "--concurrency",
                    str(self.concurrency),
                    "--loglevel",
                    "warning",
                    *(["--beat"] if self.beat else []),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        return self

    def kill(self) -> None:
        """SIGKILL the worker and its pool children, as a crash would."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()
