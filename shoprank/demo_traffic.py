"""First start of `shoprank demo`: synthetic traffic through the real endpoint, then the
models trained from it, so the demo personalises out of the box. Cached: a second start
finds `data_dir/demo/traffic.json` and does nothing."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shoprank.settings import Settings


def marker(settings: Settings) -> Path:
    return settings.data_dir / "demo" / "traffic.json"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _train_intent(settings: Settings, index: str, echo: Callable[[str], None]) -> None:
    """The intent model, from the catalog and whatever click logs exist."""
    from shoprank.errors import ShoprankError
    from shoprank.rerankers.intent.training import train_intent

    try:
        meta = train_intent(settings, index=index)
    except ShoprankError as exc:
        echo(f"intent model not trained: {exc.reason}")
        return
    echo(f"intent model {meta.get('model_version')} trained")


def bootstrap(
    settings: Settings,
    *,
    index: str = "demo",
    shoppers: int = 60,
    sessions: int = 6,
    seed: int = 0,
    echo: Callable[[str], None] = print,
) -> dict[str, Any] | None:
    """Simulate traffic against an in-process server on a free loopback port, train the
    intent model and the ranker, write the marker. Returns None when already done."""
    done = marker(settings)
    if done.exists():
        return None
    import uvicorn

    from shoprank.plugin.app import create_app
    from shoprank.simulate import run
    from shoprank.wiring import make_service

    # Intent first, so the simulated searches are rewritten and log intent features.
    _train_intent(settings, index, echo)
    service = make_service(settings)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(service), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    echo(f"simulating {shoppers} synthetic shoppers × {sessions} sessions (first start only) …")
    try:
        traffic = run(
            f"http://127.0.0.1:{port}",
            index=index,
            shoppers=shoppers,
            sessions=sessions,
            seed=seed,
            holdout_out=settings.data_dir / "demo" / "holdout-sessions.jsonl",
        )
        if service.search_logger is not None:
            service.search_logger.flush()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    echo(
        f"traffic: {traffic.searches} searches, {traffic.clicks} clicks, "
        f"{traffic.purchases} purchases"
    )
    from shoprank.cli_ranker import _registry, load_dataset
    from shoprank.rerankers.ltr.reranker import load_scorer
    from shoprank.rerankers.ltr.train import NotEnoughDataError, train_ranker

    registry = _registry(settings)
    result: dict[str, Any] = {"traffic": traffic.as_dict()}
    try:
        # The position-debiased gate decides, as in production (`train ranker`): on the
        # simulated traffic the learned model beats the cold-start scorer and goes live.
        report = train_ranker(
            load_dataset(settings),
            registry=registry,
            live=load_scorer(registry),
            min_searches=min(settings.ranker_min_searches, 20),
            # The demo's few hundred synthetic searches hold out fewer than the 100 the
            # gate wants from real traffic; the verdict printed below says what it saw.
            min_gate_searches=min(settings.ranker_min_gate_searches, 50),
        )
        if report.promoted:
            echo(f"ranker {report.version} trained and live ({report.gate})")
        else:
            echo(
                f"ranker {report.version} trained but not promoted ({report.gate}); "
                f"`shoprank models promote {report.version}` makes it live anyway"
            )
        result["ranker"] = report.as_dict()
    except NotEnoughDataError as exc:
        echo(f"ranker not trained: {exc.reason}")
    done.parent.mkdir(parents=True, exist_ok=True)
    done.write_text(json.dumps(result, indent=2))
    return result
