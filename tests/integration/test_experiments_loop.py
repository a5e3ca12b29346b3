"""The feedback loop end to end, with nothing faked: the real server (events to real Redis),
a real Celery worker running beat, shoppers searching and clicking over HTTP.

Shoppers here prefer well-rated products: each clicks the best-rated hit on the page it
is shown. The cold-start scorer does not know that; a ranker trained on their clicks does.

1. traffic → a scheduled cycle (beat) trains a candidate, the offline gate passes, and an
   interleaving experiment against the live cold-start scorer starts (nothing goes live);
2. more traffic on interleaved pages → a later cycle promotes the candidate: it is live,
   `shoprank models list` says it went live by the experiment;
3. an operator's experiment of the old cold-start scorer as challenger → shoppers keep
   preferring the live model's picks → a cycle rolls the challenger back automatically and
   the live model stays.

The test waits for the schedule (polling, generous limits), never times anything.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shoprank.experiments.store import ExperimentStore
from shoprank.rerankers.ltr.registry import ModelRegistry

from .conftest import RedisServer, Server, Worker, cli

WAIT_S = 480.0


@pytest.fixture(scope="module")
def loop(
    demo_data_dir: Path, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, Path]]:
    data_dir = tmp_path_factory.mktemp("loop") / "data"
    shutil.copytree(
        demo_data_dir,
        data_dir,
        ignore=shutil.ignore_patterns("*.log", "run", "models", "experiments"),
    )
    import redis

    redis.Redis.from_url(redis_server.url).flushdb()
    env = {
        "SHOPRANK_PRODUCT_INDEX": "demo",
        "SHOPRANK_REDIS_URL": redis_server.url,
        "SHOPRANK_WORKERS": "1",
        "SHOPRANK_RETRAIN_INTERVAL_S": "2",
        "SHOPRANK_RETRAIN_MIN_NEW_SEARCHES": "200",
        "SHOPRANK_RANKER_MIN_SEARCHES": "100",
        # 210 searches hold out 42: the loop's mechanics are under test, not the gate's
        # statistics (which want 100 held-out searches by default).
        "SHOPRANK_RANKER_MIN_GATE_SEARCHES": "30",
        "SHOPRANK_RETRAIN_INTENT": "false",
        "SHOPRANK_EXPERIMENT_METHOD": "interleave",
        "SHOPRANK_EXPERIMENT_MDE": "0.2",
        "SHOPRANK_EXPERIMENT_MAX_SEARCHES": "1000",
    }
    server = Server(data_dir, env=env).start()
    worker = Worker(data_dir, redis_server.url, concurrency=1, beat=True, env=env).start()
    try:
        yield server, data_dir
    finally:
        worker.stop()
        server.stop()


def catalog(data_dir: Path) -> dict[str, dict[str, Any]]:
    rows = [json.loads(line) for line in (data_dir / "catalog.jsonl").read_text().splitlines()]
    return {str(r["id"]): r for r in rows}


def queries(products: dict[str, dict[str, Any]]) -> list[str]:
    """Product types with at least eight products (pages worth reordering)."""
    leaves: dict[str, int] = {}
    for p in products.values():
        leaf = str(p["category"]).split(" > ")[-1].lower()
        leaves[leaf] = leaves.get(leaf, 0) + 1
    return sorted(q for q, n in leaves.items() if n >= 8)


class Shoppers:
    def __init__(self, server: Server, products: dict[str, dict[str, Any]]) -> None:
        self.client = httpx.Client(base_url=server.url, timeout=120)
        self.products = products
        self.queries = queries(products)
        self.rng = random.Random(3)
        self.n = 0

    def best(self, ids: list[str]) -> str:
        return max(
            ids,
            key=lambda i: (self.products[i]["rating"], self.products[i]["review_count"], i),
        )

    def shop(self, searches: int) -> list[dict[str, Any]]:
        """`searches` searches by 60 shoppers, each clicking the best-rated hit shown."""
        pages = []
        for _ in range(searches):
            self.n += 1
            user = f"shopper-{self.rng.randrange(60)}"
            body = {
                "query": {"match": {"title": self.rng.choice(self.queries)}},
                "size": 10,
                "ext": {"shoprank": {"explain": True}},
            }
            response = self.client.post(
                "/demo/_search", json=body, headers={"X-Shoprank-User": user}
            )
            assert response.status_code == 200, response.text
            page = response.json()
            ids = [h["_id"] for h in page["hits"]["hits"]]
            query_id = page.get("_shoprank", {}).get("query_id")
            assert query_id, page.get("_shoprank")
            if ids:
                pick = self.best(ids)
                click = {
                    "type": "click",
                    "user_id": user,
                    "product_id": pick,
                    "query_id": query_id,
                    "position": ids.index(pick) + 1,
                }
                posted = self.client.post("/_shoprank/events", json=[click])
                assert posted.status_code in (200, 202), posted.text
            pages.append(page)
        return pages


def wait_for(what: str, check: Any, data_dir: Path) -> Any:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(1.0)
    schedule = (data_dir / "models" / "schedule.json").read_text(errors="replace")
    logs = "\n".join(p.read_text(errors="replace")[-3000:] for p in data_dir.glob("worker-*.log"))
    raise AssertionError(f"timed out waiting for {what}\nschedule: {schedule[-4000:]}\n{logs}")


def test_traffic_trains_experiments_promote_and_roll_back(loop: tuple[Server, Path]) -> None:
    server, data_dir = loop
    products = catalog(data_dir)
    shoppers = Shoppers(server, products)
    store = ExperimentStore(data_dir / "experiments")
    registry = ModelRegistry(data_dir / "models" / "ranker")

    # Phases 2 and 3 together send fewer labelled searches than a new training needs (200),
    # however the cycles fall between them: no third candidate can go live meanwhile.
    # 1. Labelled traffic; the schedule trains, gates and proposes — never live directly.
    shoppers.shop(210)
    started = wait_for("a ranker experiment to start", store.running, data_dir)
    exp = started[0]
    candidate = exp.challenger["ranker"]
    assert exp.method == "interleave" and exp.control == {"ranker": "default-v1"}
    assert registry.live() is None  # the cold-start scorer still serves
    challenger = registry.challenger()
    assert challenger is not None and challenger["version"] == candidate
    assert challenger["experiment"] == exp.id

    # 2. Interleaved pages: each hit says which ranker put it there.
    pages = shoppers.shop(90)
    interleaved = [p for p in pages if p["_shoprank"].get("experiment")]
    assert interleaved, "no search was enrolled in the experiment"
    for page in interleaved[:5]:
        teams = page["_shoprank"]["experiment"]["teams"]
        assert set(teams) == {h["_id"] for h in page["hits"]["hits"]}
    wait_for("the experiment's decision", lambda: not store.running(), data_dir)
    decided = store.get(exp.id)
    assert decided.status == "promoted", decided.decisions
    evidence = decided.decisions[-1]["evidence"]["preference"]
    print("promotion evidence:", evidence)  # how decisive the shoppers were (-s shows it)
    assert decided.decisions[-1]["reason"] == "challenger_better"
    assert registry.live() == candidate
    why = registry.why_live()
    assert why is not None and why["reason"] == "experiment"
    assert why["evidence"]["experiment"] == exp.id
    listed = cli("models", "list", data_dir=data_dir).stdout
    assert f"live: {candidate} (experiment at" in listed and exp.id in listed

    # 3. The old scorer tried again as a challenger: it loses and is rolled back.
    worse = {
        "id": "cold-start-again",
        "control": {"ranker": candidate},
        "challenger": {"ranker": "default-v1"},
        "method": "interleave",
        "mde": 0.2,
        "start": True,
    }
    created = httpx.post(f"{server.url}/_shoprank/experiments", json=worse, timeout=60)
    assert created.status_code in (200, 201), created.text
    shoppers.shop(90)
    wait_for(
        "the worse challenger's rollback",
        lambda: store.get("cold-start-again").status != "running",
        data_dir,
    )
    rolled = store.get("cold-start-again")
    assert rolled.status == "rolled_back", rolled.decisions
    print("rollback evidence:", rolled.decisions[-1]["evidence"]["preference"])
    assert rolled.decisions[-1]["reason"] == "challenger_worse"
    assert registry.live() == candidate  # the better model stays live
    assert registry.rejected()[-1]["version"] == "default-v1"
    listed = cli("models", "list", data_dir=data_dir).stdout
    assert "last rolled back: default-v1 (challenger_worse" in listed

    # The inspector shows both experiments with their outcome.
    page = httpx.get(f"{server.url}/_shoprank/inspect/api/experiments", timeout=60)
    assert page.status_code == 200, page.text
    statuses = {e["id"]: e["status"] for e in page.json()["experiments"]}
    assert statuses[exp.id] == "promoted" and statuses["cold-start-again"] == "rolled_back"
    # (the traffic since keeps the loop going: a cycle may already try a newer candidate)
