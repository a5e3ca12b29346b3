"""`shoprank serve`: one process, or a supervisor and N worker processes on one port.

With one worker the app is built and served in this process. With more, uvicorn's
supervisor binds the socket and spawns the workers (restarting any that dies); each worker
builds its own app with `worker_app` from the environment this process prepared:

- the settings (`SHOPRANK_*`, the data directory made absolute, `SHOPRANK_WORKERS`);
- `PROMETHEUS_MULTIPROC_DIR` = `data_dir/run/metrics`, emptied, so `/_shoprank/metrics`
  answers for all workers together (`shoprank.metrics`);
- the shared rate-limit buckets `data_dir/run/ratelimit.buckets`, emptied
  (`shoprank.plugin.shared_limits`).

What changes on disk reaches every worker by itself, each process looking at the files:
an alias swap (`aliases.json`, checked on every search), a new commit of a generation
(`meta.json`), a promoted ranker (`registry.json`, checked once a second and loaded in the
background) and a new intent model (`metadata.json`, checked on every search). The search
log is one SQLite database in WAL mode that every worker writes with a busy timeout.

Without Redis each process also runs the training schedule (`shoprank.scheduled`): a
thread that starts a niced `shoprank schedule run` child when a cycle is due; the cycle
lock lets one run at a time.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from fastapi import FastAPI

from shoprank import heap
from shoprank.errors import ShoprankError
from shoprank.settings import Settings

log = logging.getLogger("shoprank")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def resolve_workers(requested: int | None, settings: Settings) -> int:
    """`--workers`, else SHOPRANK_WORKERS, else one per core (0 means one per core too)."""
    wanted = requested if requested is not None else settings.workers
    return max(1, wanted or os.cpu_count() or 1)


def build_app(settings: Settings, *, shared: bool) -> FastAPI:
    """The app of one serving process, its models loaded."""
    from shoprank.plugin.app import create_app
    from shoprank.wiring import make_service

    service = make_service(settings)
    try:
        service.warm_up()
    except ShoprankError as exc:
        print(
            f"warning: query encoder unavailable ({exc.reason}); vector legs will be skipped",
            file=sys.stderr,
        )
    app = create_app(service, one_of_workers=shared)
    # Everything loaded so far (models, indices, settings) lives as long as the process:
    # out of the collector's sight, so a full collection does not walk it again and again
    # (on the Icecat recommendation benchmark, ~35 ms pauses in 1 of ~150 requests).
    heap.settle()
    if not settings.redis_url and settings.retrain_interval_s > 0:
        # No Redis, so no Celery beat: this server runs the training schedule itself.
        from shoprank.scheduled import InProcessScheduler

        scheduler = InProcessScheduler(settings)
        app.router.on_startup.append(scheduler.start)
        app.router.on_shutdown.append(scheduler.stop)
    return app


def worker_app() -> FastAPI:
    """uvicorn's app factory in each worker process (`shoprank.plugin.serving:worker_app`)."""
    from shoprank import logs
    from shoprank.settings import get_settings

    settings = get_settings()
    logs.configure(settings.log_format, os.environ.get("SHOPRANK_SERVE_LOG_LEVEL", "info"))
    app = build_app(settings, shared=True)
    app.router.on_shutdown.append(_exited)
    return app


async def _exited() -> None:
    from shoprank.metrics import worker_exited

    worker_exited()


def serve(
    settings: Settings, *, host: str, port: int, workers: int, log_level: str = "info"
) -> None:
    """Serve until interrupted (see the module docstring)."""
    import uvicorn

    from shoprank import logs

    logs.configure(settings.log_format, log_level)
    if not settings.api_keys and host not in LOOPBACK:
        log.warning(
            "no SHOPRANK_API_KEYS: events, products and profile routes are open to anyone "
            "who can reach %s:%d",
            host,
            port,
        )
    if workers <= 1:
        app = build_app(settings, shared=False)
        uvicorn.run(
            app, host=host, port=port, log_level=log_level, access_log=False, log_config=None
        )
        return
    prepare_workers(settings, workers, log_level)
    log.info("serving on %s:%d with %d worker processes", host, port, workers)
    uvicorn.run(
        "shoprank.plugin.serving:worker_app",
        factory=True,
        workers=workers,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        log_config=None,
    )


def prepare_workers(settings: Settings, workers: int, log_level: str) -> Path:
    """The environment and the shared files the worker processes start from."""
    from shoprank.metrics import prepare_multiprocess_dir
    from shoprank.plugin.shared_limits import SharedTokenBucketLimiter, buckets_path

    data_dir = settings.data_dir.resolve()
    os.environ["SHOPRANK_DATA_DIR"] = str(data_dir)
    os.environ["SHOPRANK_WORKERS"] = str(workers)
    os.environ["SHOPRANK_SERVE_LOG_LEVEL"] = log_level
    run = data_dir / "run"
    prepare_multiprocess_dir(run / "metrics")
    SharedTokenBucketLimiter.reset(buckets_path(settings))
    return run
