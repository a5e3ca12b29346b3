"""The inspector's experiment pages against a real `shoprank serve`: a data directory whose
behaviour log holds experiment searches and their clicks, carts and purchases (written
through `EventService.ingest`, as the search pipeline logs them) and whose experiment store
holds an A/B test, an interleaving test and a finished experiment with its recorded
decision. The JSON API over HTTP, then both pages in headless Chromium: the rates shown are
the ones counted here from the events written, and the plot is drawn.

Screenshots go to `$SHOPRANK_TEST_ARTIFACTS` (default `test-artifacts/`)."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from shoprank.events.model import Event
from shoprank.events.service import EventService
from shoprank.experiments.decide import Decision
from shoprank.experiments.logs import experiment_field
from shoprank.experiments.model import Arm, Experiment
from shoprank.experiments.results import experiment_store
from shoprank.experiments.stats import wilson
from shoprank.experiments.tally import ArmRun
from shoprank.settings import Settings
from tests.integration.conftest import Server
from tests.integration.test_inspector_landing import browser

__all__ = ["browser"]  # the Chromium fixture, shared with the other inspector tests

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("SHOPRANK_TEST_ARTIFACTS", ROOT / "test-artifacts"))
AB_SEARCHES = 120
INTERLEAVED = 30
ARMS: tuple[Arm, ...] = ("A", "B")


@dataclass
class Written:
    """What the fixture wrote, counted per arm: the page must show these numbers."""

    searches: dict[Arm, int] = field(default_factory=lambda: {"A": 0, "B": 0})
    converted: dict[str, dict[Arm, int]] = field(
        default_factory=lambda: {k: {"A": 0, "B": 0} for k in ("click", "add_to_cart", "purchase")}
    )
    wins: dict[str, int] = field(default_factory=lambda: {"A": 0, "B": 0, "tie": 0})

    def rate(self, kind: str, arm: Arm) -> float:
        return self.converted[kind][arm] / self.searches[arm]


def _search(exp: Experiment, qid: str, ts: float, variant: str, **kw: Any) -> Event:
    teams = kw.pop("teams", None)
    runs = {a: ArmRun(False, 5.0 + i) for i, a in enumerate(kw.pop("arms"))}
    return Event(
        type="search",
        timestamp=ts,
        event_id=f"search-{qid}",
        user_id=kw.pop("user"),
        query_id=qid,
        query="usb charger",
        product_ids=("p1", "p2", "p3"),
        experiment=experiment_field(exp, variant, runs, teams),
    )


def _event(kind: str, qid: str, ts: float, product: str, user: str) -> Event:
    return Event(
        type=kind,
        timestamp=ts,
        event_id=f"{kind}-{qid}-{product}",
        user_id=user,
        query_id=qid,
        product_id=product,
        position=1,
    )


def write_ab(exp: Experiment, t0: float) -> tuple[list[Event], Written]:
    """Alternating arms; A converts every 5th search, B every 3rd (a click and, now and
    then, a cart and a purchase); a second click on a search counts once."""
    events: list[Event] = []
    seen = Written()
    for i in range(AB_SEARCHES):
        arm: Arm = "A" if i % 2 == 0 else "B"
        qid, user, ts = f"ab-{i}", f"shopper-{i}", t0 + i
        events.append(_search(exp, qid, ts, arm, arms=[arm], user=user))
        seen.searches[arm] += 1
        clicked = (i // 2) % (5 if arm == "A" else 3) == 0
        if clicked:
            events.append(_event("click", qid, ts + 0.5, "p2", user))
            events.append(_event("click", qid, ts + 0.6, "p3", user))
            seen.converted["click"][arm] += 1
            if i % 4 == 1 or i % 8 == 0:
                events.append(_event("add_to_cart", qid, ts + 0.7, "p2", user))
                seen.converted["add_to_cart"][arm] += 1
                if i % 3 == 0:
                    events.append(_event("purchase", qid, ts + 0.8, "p2", user))
                    seen.converted["purchase"][arm] += 1
    return events, seen


def write_interleaved(exp: Experiment, t0: float) -> tuple[list[Event], Written]:
    """Pages mixing both arms (p1, p3 from A; p2 from B): clicks on B's product on 12
    pages, on A's on 8, none on 10 (ties) — a lead for B, not a significant one."""
    events: list[Event] = []
    seen = Written()
    teams: dict[str, Arm] = {"p1": "A", "p2": "B", "p3": "A"}
    decided = 0
    for i in range(INTERLEAVED):
        qid, user, ts = f"il-{i}", f"visitor-{i}", t0 + i
        events.append(_search(exp, qid, ts, "interleave", arms=["A", "B"], teams=teams, user=user))
        if i % 3 == 2:
            seen.wins["tie"] += 1
            continue
        winner = "p2" if decided % 5 in (0, 1, 3) else "p1"
        decided += 1
        events.append(_event("click", qid, ts + 0.5, winner, user))
        seen.wins[teams[winner]] += 1
    return events, seen


@dataclass
class Lab:
    server: Server
    ab: Written
    interleaved: Written


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    data_dir = tmp_path_factory.mktemp("experiments-data")
    settings = Settings(data_dir=data_dir)
    store = experiment_store(settings)
    created = 1_700_000_000.0
    ab = Experiment.new(
        "ranker-v7", control={"ranker": "live"}, challenger={"ranker": "v7"}, now=created
    )
    il = Experiment.new(
        "fusion-linear",
        control={"fusion": "rrf"},
        challenger={"fusion": "linear"},
        method="interleave",
        now=created + 1,
    )
    old = Experiment.new(
        "mode-hybrid", control={"mode": "full"}, challenger={"mode": "hybrid"}, now=created + 2
    )
    for exp in (ab, il, old):
        store.create(exp)
        store.start(exp.id, now=created + 10)
    verdict = Decision(
        "rollback",
        "challenger_worse",
        "challenger worse on click (always-valid p = 0.004)",
        created + 20,
        {"searches": 4000, "sequential": {"p_value": 0.004}},
    )
    store.record(old.id, verdict)
    # Recent times (retention keeps them), in log order; nothing asserts on the clock.
    t0 = time.time() - 3600
    ab_events, ab_seen = write_ab(store.get(ab.id), t0)
    il_events, il_seen = write_interleaved(store.get(il.id), t0 + 1000)
    report = EventService(settings).ingest([*ab_events, *il_events], fold=False)
    assert report["errors"] == [] and report["accepted"] == len(ab_events) + len(il_events)
    server = Server(data_dir).start()
    yield Lab(server, ab_seen, il_seen)
    server.stop()


def api(lab: Lab, path: str = "") -> httpx.Response:
    return api_at(lab.server, path)


def test_list_api_shows_every_experiment_with_its_decision(lab: Lab) -> None:
    resp = api(lab)
    assert resp.status_code == 200, resp.text
    rows = {r["id"]: r for r in resp.json()["experiments"]}
    assert list(rows) == ["ranker-v7", "fusion-linear", "mode-hybrid"]  # oldest first
    assert rows["ranker-v7"]["searches"] == AB_SEARCHES
    assert rows["fusion-linear"]["searches"] == INTERLEAVED
    assert rows["ranker-v7"]["challenger"] == {"ranker": "v7"}
    assert rows["ranker-v7"]["decision"]["action"] == "continue"
    assert rows["ranker-v7"]["decision"]["recorded"] is False  # a preview
    done = rows["mode-hybrid"]
    assert done["status"] == "rolled_back"
    assert (done["decision"]["reason"], done["decision"]["recorded"]) == ("challenger_worse", True)
    assert "salt" not in resp.text


def test_detail_api_counts_the_events_written_and_plots_them(lab: Lab) -> None:
    resp = api(lab, "/ranker-v7")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    for arm in ARMS:
        shown = body["evidence"]["arms"][arm]
        assert shown["searches"] == lab.ab.searches[arm] == AB_SEARCHES // 2
        for kind in ("click", "add_to_cart", "purchase"):
            assert shown["rates"][kind]["rate"] == pytest.approx(lab.ab.rate(kind, arm))
    series = {s["name"]: s["points"] for s in body["plot"]["series"]}
    assert set(series) == {"A", "B"}
    for arm, points in series.items():
        xs = [p[0] for p in points]
        assert xs == sorted(xs) and xs[-1] == AB_SEARCHES
        assert len(points) >= AB_SEARCHES - 1  # one point per search below 200 searches
        assert points[-1][1] == pytest.approx(lab.ab.rate("click", arm), abs=1e-6)
        assert all(p[2] <= p[1] <= p[3] for p in points)
    il = api(lab, "/fusion-linear").json()
    pref = il["evidence"]["preference"]
    seen = lab.interleaved.wins
    assert (pref["wins_control"], pref["wins_challenger"], pref["ties"]) == (
        seen["A"],
        seen["B"],
        seen["tie"],
    )
    assert il["plot"]["reference"] == 0.5
    last = il["plot"]["series"][0]["points"][-1]
    assert last[0] == INTERLEAVED and last[1] == pytest.approx(seen["B"] / (seen["A"] + seen["B"]))
    assert il["progress"] == {
        "done": seen["A"] + seen["B"],
        "horizon": il["evidence"]["horizon"],
        "unit": "decided queries",
        "share": pytest.approx((seen["A"] + seen["B"]) / il["evidence"]["horizon"]),
    }


def test_unknown_and_bad_ids_answer_es_shaped_errors(lab: Lab) -> None:
    missing = api(lab, "/no-such-experiment")
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "resource_not_found_exception"
    assert "no experiment [no-such-experiment]" in missing.json()["error"]["reason"]
    bad = api(lab, "/Not%20An%20Id")
    assert bad.status_code == 400
    assert "must be 1-64 lowercase letters" in bad.json()["error"]["reason"]


def pct(rate: float) -> str:
    return f"{rate * 100:.1f} %"


def test_pages_show_the_rates_decision_and_plot(lab: Lab, browser: Any) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # The inspector's navigation leads to the list.
    page.goto(f"{lab.server.url}/_shoprank/inspect/searches")
    page.click("a[data-nav=experiments]")
    page.wait_for_selector("#experiments tbody tr[data-id=mode-hybrid]", timeout=60_000)
    rows = page.locator("#experiments tbody tr")
    assert [rows.nth(i).get_attribute("data-id") for i in range(rows.count())] == [
        "ranker-v7",
        "fusion-linear",
        "mode-hybrid",
    ]
    ab_row = page.locator("#experiments tr[data-id=ranker-v7]")
    assert ab_row.locator(".searches").inner_text() == str(AB_SEARCHES)
    assert "ranker=v7" in ab_row.inner_text() and "A/B" in ab_row.inner_text()
    verdict = page.locator("#experiments tr[data-id=mode-hybrid] .verdict")
    assert verdict.inner_text() == "rollback · challenger_worse (recorded)"
    page.screenshot(path=str(ARTIFACTS / "inspector-experiments.png"), full_page=True)

    ab_row.locator("a").click()
    page.wait_for_selector("#arms tbody tr[data-arm=B]", timeout=60_000)
    assert page.url.endswith("/_shoprank/inspect/experiments/ranker-v7")
    for arm in ARMS:
        searches = page.locator(f"#arms tr[data-arm={arm}] .searches").inner_text()
        assert searches == str(lab.ab.searches[arm])
        for kind in ("click", "add_to_cart", "purchase"):
            cell = page.locator(f"#arms td[data-arm={arm}][data-kind={kind}]")
            expected = lab.ab.rate(kind, arm)
            ci = wilson(lab.ab.converted[kind][arm], lab.ab.searches[arm])
            assert cell.inner_text() == f"{pct(expected)} [{pct(ci.low)} – {pct(ci.high)}]"
    assert page.locator("#decision .verdict").inner_text() == "continue · collecting (preview)"
    assert page.locator("#history").inner_text() == "No decision recorded yet."
    assert "searches" in page.locator("#horizon").inner_text()
    # The plot: each arm's running click rate, one point per search, with its band.
    for arm in ARMS:
        line = page.locator(f"#plot path.line[data-series={arm}]")
        d = line.get_attribute("d") or ""
        coords = re.findall(r"[ML](-?[\d.]+),(-?[\d.]+)", d)
        assert len(coords) == int(line.get_attribute("data-points") or 0) >= AB_SEARCHES - 1
        assert len({y for _, y in coords}) > 3  # the rate moves as searches come in
        assert page.locator(f"#plot path.band[data-series={arm}]").count() == 1
        legend = page.locator(f"#plot .legend-{arm}").text_content() or ""
        assert legend.endswith(f"{pct(lab.ab.rate('click', arm))} after {AB_SEARCHES} searches")
    page.screenshot(path=str(ARTIFACTS / "inspector-experiment-ab.png"), full_page=True)

    page.goto(f"{lab.server.url}/_shoprank/inspect/experiments/fusion-linear")
    page.wait_for_selector("#wins-b", timeout=60_000)
    seen = lab.interleaved.wins
    assert page.locator("#wins-a").inner_text() == str(seen["A"])
    assert page.locator("#wins-b").inner_text() == str(seen["B"])
    assert page.locator("#ties").inner_text() == str(seen["tie"])
    share = seen["B"] / (seen["A"] + seen["B"])
    assert page.locator("#share-b").inner_text().startswith(pct(share))
    assert page.locator("#plot line.reference").get_attribute("data-value") == "0.5"
    line = page.locator("#plot path.line[data-series=B]")
    assert int(line.get_attribute("data-points") or 0) >= INTERLEAVED - 3
    page.screenshot(path=str(ARTIFACTS / "inspector-experiment-interleave.png"), full_page=True)

    page.goto(f"{lab.server.url}/_shoprank/inspect/experiments/mode-hybrid")
    page.wait_for_selector("#history tbody tr", timeout=60_000)
    assert page.locator("#decision .verdict").inner_text() == (
        "rollback · challenger_worse (recorded)"
    )
    assert "always-valid p = 0.004" in page.locator("#decision").inner_text()
    assert page.locator("#history tbody tr").count() == 1

    page.goto(f"{lab.server.url}/_shoprank/inspect/experiments/no-such-experiment")
    page.wait_for_selector("#detail-status.error", timeout=60_000)
    assert "no experiment [no-such-experiment]" in page.locator("#detail-status").inner_text()
    assert errors == []
    page.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server over a small demo catalog with a running A/B experiment (lexical vs hybrid):
    its searches are enrolled and logged by the real search pipeline."""
    from shoprank.indexing.demo import write_demo_catalog
    from tests.integration.conftest import cli

    data_dir = tmp_path_factory.mktemp("experiments-live")
    catalog = write_demo_catalog(data_dir / "catalog.jsonl", n=200, seed=11)
    cli("index", "load", "--no-train-intent", str(catalog), "--index", "demo", data_dir=data_dir)
    store = experiment_store(Settings(data_dir=data_dir))
    exp = Experiment.new(
        "mode-hybrid", control={"mode": "lexical"}, challenger={"mode": "hybrid"}, now=1.0
    )
    store.create(exp)
    store.start(exp.id, now=2.0)
    server = Server(data_dir).start()
    yield server
    server.stop()


def test_searches_served_by_the_pipeline_show_per_arm(live: Server) -> None:
    served: dict[Arm, int] = {"A": 0, "B": 0}
    clicked: dict[Arm, int] = {"A": 0, "B": 0}
    searches = 24
    for i in range(searches):
        user = f"shopper-{i}"
        body = {"query": {"multi_match": {"query": "wireless headphones", "fields": ["title"]}}}
        resp = httpx.post(
            f"{live.url}/demo/_search", json=body, headers={"X-Shoprank-User": user}, timeout=60
        )
        assert resp.status_code == 200, resp.text
        meta = resp.json()["_shoprank"]
        arm = meta["experiment"]["variant"]
        served[arm] += 1
        if i % 3 == 0:
            event = {
                "type": "click",
                "user_id": user,
                "product_id": resp.json()["hits"]["hits"][0]["_id"],
                "query_id": meta["query_id"],
                "position": 1,
            }
            assert httpx.post(f"{live.url}/_shoprank/events", json=event).status_code == 200
            clicked[arm] += 1
    assert min(served.values()) > 0  # both arms served (24 users, a 50 % split)
    # Searches are logged off the hot path: poll until all are in (the bound ends a broken run).
    for _ in range(600):
        body = api_at(live, "/mode-hybrid").json()
        if body["searches"] == searches:
            break
        time.sleep(0.1)
    assert body["searches"] == searches
    for arm in ARMS:
        shown = body["evidence"]["arms"][arm]
        assert shown["searches"] == served[arm]
        assert shown["rates"]["click"]["successes"] == clicked[arm]
        assert body["plot"]["series"][ARMS.index(arm)]["points"][-1][0] == searches


def api_at(server: Server, path: str) -> httpx.Response:
    return httpx.get(f"{server.url}/_shoprank/inspect/api/experiments{path}", timeout=60)
