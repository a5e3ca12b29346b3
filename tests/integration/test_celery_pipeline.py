"""Re-index on real Celery workers with a real Redis: swap, cache, crash and resume."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import ICECAT, RedisServer, Server, Worker, cli

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not ICECAT.exists(), reason=f"Icecat sample not found at {ICECAT}"),
]
FIELDS = "brand=supplier,description=short_description"


def _icecat(path: Path, rows: int, *, skip: int = 0) -> Path:
    with gzip.open(ICECAT, "rt", encoding="utf-8") as src, open(path, "w") as dst:
        for i, line in enumerate(src):
            if i < skip:
                continue
            if i >= skip + rows:
                break
            dst.write(line)
    return path


def _load(
    data_dir: Path, env: dict[str, str], catalog: Path, *extra: str, check: bool = True
) -> Any:
    return cli(
        "index",
        "load",
        "--no-train-intent",
        str(catalog),
        "--index",
        "icecat",
        "--fields",
        FIELDS,
        "--price-multiplier",
        "0.01",
        "--json",
        *extra,
        data_dir=data_dir,
        env=env,
        check=check,
    )


def _report(result: Any) -> dict[str, Any]:
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


@pytest.fixture
def celery_env(
    tmp_path: Path, redis_server: RedisServer
) -> Iterator[tuple[Path, dict[str, str], Worker]]:
    import redis

    redis.Redis.from_url(redis_server.url).flushall()
    env = {"SHOPRANK_REDIS_URL": redis_server.url, "SHOPRANK_CHUNK_SIZE": "100"}
    worker = Worker(tmp_path, redis_server.url).start()
    yield tmp_path, env, worker
    worker.stop()


def test_reindex_on_workers_swaps_caches_and_rolls_back(
    celery_env: tuple[Path, dict[str, str], Worker],
) -> None:
    data_dir, env, _ = celery_env
    catalog = _icecat(data_dir / "icecat.jsonl", 1500)
    first = _report(_load(data_dir, env, catalog))
    assert first["state"] == "done"
    assert first["documents"] == 1500
    # Products with identical text are embedded once.
    assert first["embedded"] + first["cache_hits"] == 1500 and first["embedded"] > 1400

    # Unchanged catalog, full rebuild: nothing is embedded again (the Redis cache answers).
    second = _report(_load(data_dir, env, catalog, "--full"))
    assert second["state"] == "done" and second["documents"] == 1500
    assert second["embedded"] == 0 and second["cache_hits"] == 1500
    assert second["previous"] == first["job"]

    # Default (incremental) re-index of a changed catalog: only the diff goes through the
    # workers; the catalog's dropped products disappear, new ones appear.
    rows = [json.loads(line) for line in catalog.read_text().splitlines()]
    rows[0]["title"] = "Zyxwv quantum stapler"
    changed = data_dir / "changed.jsonl"
    extra = _icecat(data_dir / "extra.jsonl", 5, skip=1500).read_text().splitlines()
    changed.write_text("".join(json.dumps(r) + "\n" for r in rows[:-5]) + "\n".join(extra) + "\n")
    third = _report(_load(data_dir, env, changed))
    assert third["state"] == "done" and third["documents"] == 1500
    assert third["unchanged"] == 1494 and third["removed"] == 5
    assert third["embedded"] + third["cache_hits"] == 6
    server = Server(data_dir).start()
    try:
        hits = httpx.post(
            server.url + "/icecat/_search",
            json={"query": {"match": {"title": "zyxwv"}}, "ext": {"shoprank": {"mode": "lexical"}}},
        ).json()["hits"]["hits"]
        assert [h["_id"] for h in hits] == [str(rows[0]["id"])]
        gone = httpx.get(server.url + f"/icecat/_doc/{rows[-1]['id']}").json()
        assert gone["found"] is False
    finally:
        server.stop()
    cli("index", "rollback", "icecat", data_dir=data_dir)

    listing = cli("index", "generations", "--index", "icecat", data_dir=data_dir).stdout
    assert f"  {first['job']}" in listing and f"* {second['job']}" in listing
    out = cli("index", "rollback", "icecat", data_dir=data_dir).stdout
    assert first["job"] in out
    aliases = json.loads((data_dir / "embedded" / "aliases.json").read_text())
    assert aliases["icecat"] == first["job"]

    # The embeddings written by the workers are real: a vector search finds toner.
    server = Server(data_dir).start()
    try:
        resp = httpx.post(
            server.url + "/icecat/_search",
            json={
                "query": {"match": {"title": "black toner cartridge"}},
                "size": 5,
                "ext": {"shoprank": {"mode": "vector"}},
            },
        ).json()
        titles = [h["_source"]["title"].lower() for h in resp["hits"]["hits"]]
        assert sum("toner" in t or "cartridge" in t for t in titles) >= 4, titles
    finally:
        server.stop()


def test_killed_worker_keeps_old_generation_and_resume_completes(
    celery_env: tuple[Path, dict[str, str], Worker],
    redis_server: RedisServer,
) -> None:
    data_dir, env, worker = celery_env
    small = _icecat(data_dir / "small.jsonl", 200)
    first = _report(_load(data_dir, env, small))
    assert first["state"] == "done"
    big = _icecat(data_dir / "big.jsonl", 2500, skip=5000)

    dispatched = _report(_load(data_dir, env, big, "--no-wait"))
    job_id = dispatched["job"]
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        status = json.loads(cli("index", "status", job_id, "--json", data_dir=data_dir).stdout)
        if status["chunks_done"] >= 2:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"no progress: {status}")
    worker.kill()
    status = json.loads(cli("index", "status", job_id, "--json", data_dir=data_dir).stdout)
    assert status["state"] == "running"
    assert 2 <= status["chunks_done"] < status["chunks"]

    # The old generation keeps serving.
    aliases = json.loads((data_dir / "embedded" / "aliases.json").read_text())
    assert aliases["icecat"] == first["job"]
    server = Server(data_dir).start()
    try:
        assert httpx.post(server.url + "/icecat/_count", json={}).json()["count"] == 200
    finally:
        server.stop()

    # A new worker and --resume finish the job; chunks already written are not redone.
    fresh = Worker(data_dir, redis_server.url).start()
    try:
        resumed = _report(_load(data_dir, env, big, "--resume", "--timeout", "300"))
    finally:
        fresh.stop()
    assert resumed["state"] == "done", resumed
    assert resumed["job"] == job_id
    assert resumed["documents"] == 2500
    aliases = json.loads((data_dir / "embedded" / "aliases.json").read_text())
    assert aliases["icecat"] == job_id


def test_resume_refuses_a_changed_catalog(tmp_path: Path) -> None:
    catalog = _icecat(tmp_path / "c.jsonl", 30)
    from shoprank.indexing.jobs import JobStore
    from shoprank.indexing.pipeline import plan_job
    from shoprank.settings import Settings
    from shoprank.wiring import pipeline_context

    ctx = pipeline_context(Settings(data_dir=tmp_path), vectors=False)
    from shoprank.indexing.catalog import FieldRoles

    plan_job(ctx, catalog, alias="icecat", roles=FieldRoles.parse(FIELDS), chunk_size=10)
    assert JobStore(tmp_path / "jobs").unfinished("icecat") is not None
    catalog.write_text(catalog.read_text() + catalog.read_text().splitlines()[0] + "\n")
    result = cli(
        "index",
        "load",
        "--no-train-intent",
        str(catalog),
        "--index",
        "icecat",
        "--resume",
        data_dir=tmp_path,
        check=False,
    )
    assert result.returncode != 0 and "changed since job" in result.stderr


def test_products_endpoint_embeds_on_a_worker(
    celery_env: tuple[Path, dict[str, str], Worker],
    redis_server: RedisServer,
) -> None:
    data_dir, env, _ = celery_env
    _load(data_dir, env, _icecat(data_dir / "c.jsonl", 100))
    server = Server(data_dir, env={"SHOPRANK_REDIS_URL": redis_server.url}).start()
    try:
        resp = httpx.post(
            server.url + "/_shoprank/products",
            timeout=120,
            json={
                "index": "icecat",
                "upsert": [{"id": "W-1", "title": "Zebra-striped gaming mousepad XL"}],
            },
        ).json()
        assert resp["upserted"] == 1 and resp["embedded"] == 1
        hit = httpx.post(
            server.url + "/icecat/_search",
            json={
                "query": {"match": {"title": "zebra mousepad"}},
                "size": 1,
                "ext": {"shoprank": {"mode": "vector"}},
            },
        ).json()["hits"]["hits"][0]
        assert hit["_id"] == "W-1"
    finally:
        server.stop()
