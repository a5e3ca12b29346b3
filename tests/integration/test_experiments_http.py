"""`/_shoprank/experiments` on the real server over loopback: API keys (admin scope, reads
included), the lifecycle a user drives (create, start, stop, delete) with its ES-shaped
errors, and results computed from a behaviour log the test writes into the server's data
directory (counted by hand here)."""

from __future__ import annotations

import fcntl
import json
import math
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import elasticsearch
import httpx
import pytest

from shoprank.events.model import Event
from shoprank.events.service import EventService
from shoprank.experiments.logs import experiment_field
from shoprank.experiments.model import Arm, Experiment
from shoprank.experiments.tally import ArmRun
from shoprank.settings import Settings

from .conftest import Server

KEYS = {"k-read": "read", "k-write": "write", "k-admin": "admin"}
BASE = "/_shoprank/experiments"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("experiments-http")
    model = data_dir / "models" / "ranker" / "v7"
    model.mkdir(parents=True)
    (model / "meta.json").write_text(json.dumps({"version": "v7", "created": 1.0}))
    env = {
        "SHOPRANK_API_KEYS": json.dumps(KEYS),
        "SHOPRANK_WORKERS": "1",
        "SHOPRANK_RETRAIN_INTERVAL_S": "0",  # no scheduler deciding behind the test's back
    }
    srv = Server(data_dir, env=env).start()
    yield srv
    srv.stop()


@pytest.fixture()
def admin(server: Server) -> Iterator[httpx.Client]:
    headers = {"Authorization": "ApiKey k-admin"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
        yield client


def _body(exp_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": exp_id, "control": {"ranker": "live"}, "challenger": {"ranker": "v7"}, **fields}


def _reason(response: httpx.Response) -> str:
    body = response.json()
    assert body["status"] == response.status_code
    assert body["error"]["root_cause"][0]["reason"] == body["error"]["reason"]
    return str(body["error"]["reason"])


def test_every_experiments_route_needs_an_admin_key(server: Server) -> None:
    routes = [
        ("GET", BASE),
        ("POST", BASE),
        ("GET", f"{BASE}/some-id"),
        ("POST", f"{BASE}/some-id/_start"),
        ("POST", f"{BASE}/some-id/_stop"),
        ("DELETE", f"{BASE}/some-id"),
    ]
    for method, path in routes:
        url = server.url + path
        anonymous = httpx.request(method, url, timeout=30)
        assert anonymous.status_code == 401, (method, path)
        assert anonymous.json()["error"]["type"] == "security_exception"
        for key in ("k-read", "k-write"):  # results are business data: reads need admin too
            answer = httpx.request(method, url, headers={"Authorization": f"ApiKey {key}"})
            assert answer.status_code == 403, (method, path, key)
            assert "needs scope [admin]" in _reason(answer)
    ok = httpx.get(server.url + BASE, headers={"Authorization": "ApiKey k-admin"}, timeout=30)
    assert ok.status_code == 200


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (_body("bad-1", colour="red", salt="x"), "unknown experiment field(s) ['colour', 'salt']"),
        (_body("bad-2", split="half"), "[split] must be a finite number, got 'half'"),
        (_body("bad-3", max_searches=1.5), "[max_searches] must be an integer"),
        (_body("bad-4", guards={"p99": 1}), "unknown guards field(s) ['p99']"),
        (_body("bad-5", method="bandit"), "method must be one of ['ab', 'interleave']"),
        ({"id": "bad-6", "challenger": {"ranker": "v7"}}, "missing field(s) ['control']"),
        (_body("bad-7", challenger={"ranker": "v9"}), "challenger['ranker'] = 'v9'"),
        (_body("Bad id"), "experiment id [Bad id] must be"),
        (_body("bad-8", challenger={"colour": "red"}), "challenger['colour'] is not an arm"),
    ],
)
def test_bad_definitions_are_400s_naming_the_field(
    admin: httpx.Client, body: dict[str, Any], named: str
) -> None:
    response = admin.post(BASE, json=body)
    assert response.status_code == 400, response.text
    assert named in _reason(response)
    assert admin.get(f"{BASE}/{body['id']}").status_code in (400, 404)  # nothing was stored


def test_an_unknown_ranker_lists_the_versions_there_are(admin: httpx.Client) -> None:
    reason = _reason(admin.post(BASE, json=_body("ghost", challenger={"ranker": "v9"})))
    assert "no ranker model 'v9'; known versions: v7" in reason


def test_not_json_and_unknown_parameters_are_400s(admin: httpx.Client) -> None:
    response = admin.post(BASE, content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400 and "not valid JSON" in _reason(response)
    response = admin.get(BASE, params={"verbose": "true"})
    assert response.status_code == 400 and "[verbose]" in _reason(response)


def test_the_lifecycle_create_start_stop_delete(admin: httpx.Client) -> None:
    created = admin.post(BASE, json=_body("life", method="interleave", mde=0.1))
    assert created.status_code == 201, created.text
    exp = created.json()
    assert (exp["id"], exp["status"], exp["method"], exp["mde"]) == (
        "life",
        "draft",
        "interleave",
        0.1,
    )
    again = admin.post(BASE, json=_body("life"))
    assert again.status_code == 409 and "already exists" in _reason(again)

    started = admin.post(f"{BASE}/life/_start")
    assert started.status_code == 200 and started.json()["status"] == "running"
    twice = admin.post(f"{BASE}/life/_start")
    assert twice.status_code == 400 and "only drafts can be started" in _reason(twice)

    # A second experiment on the same setting cannot run meanwhile, and is not left behind.
    clash = admin.post(BASE, json=_body("clash", start=True))
    assert clash.status_code == 409 and "[life] is running on ['ranker']" in _reason(clash)
    assert admin.get(f"{BASE}/clash").status_code == 404

    refused = admin.delete(f"{BASE}/life")
    assert refused.status_code == 409 and "stop it first" in _reason(refused)

    stopped = admin.post(f"{BASE}/life/_stop", json={"reason": "holiday traffic"})
    assert stopped.status_code == 200
    assert stopped.json()["status"] == "stopped"
    assert stopped.json()["decisions"][-1]["message"] == "holiday traffic"
    shown = admin.get(f"{BASE}/life").json()
    assert shown["results"]["decision"]["message"] == "holiday traffic"

    gone = admin.delete(f"{BASE}/life")
    assert gone.status_code == 200 and gone.json()["acknowledged"] is True
    missing = admin.get(f"{BASE}/life")
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "resource_not_found_exception"
    assert "no experiment [life]" in _reason(missing)
    for method, path in (("POST", "/life/_start"), ("POST", "/life/_stop"), ("DELETE", "/life")):
        assert admin.request(method, BASE + path).status_code == 404


def test_stop_takes_only_a_reason(admin: httpx.Client) -> None:
    assert admin.post(BASE, json=_body("stopper")).status_code == 201
    response = admin.post(f"{BASE}/stopper/_stop", json={"why": "x"})
    assert response.status_code == 400 and "['why']" in _reason(response)
    assert admin.post(f"{BASE}/stopper/_stop").json()["status"] == "stopped"
    assert admin.delete(f"{BASE}/stopper").status_code == 200


def _log(server: Server, events: list[Event]) -> None:
    """Write events into the server's behaviour log, as its search pipeline would."""
    answer = EventService(Settings(data_dir=server.data_dir)).ingest(events)
    assert answer["accepted"] == len(events)


def _search(exp: Experiment, qid: str, variant: str, teams: dict[str, Arm] | None = None) -> Event:
    runs: dict[Arm, ArmRun] = (
        {"A": ArmRun(False, 6.0), "B": ArmRun(False, 7.0)}
        if teams is not None
        else {"A" if variant == "A" else "B": ArmRun(False, 6.0)}
    )
    return Event(
        type="search",
        timestamp=time.time(),
        event_id=f"s-{exp.id}-{qid}",
        session_id=f"sess-{qid}",
        query_id=qid,
        query="laptop",
        product_ids=tuple(teams or ("p1",)),
        experiment=experiment_field(exp, variant, runs, teams),
    )


def _click(qid: str, product: str, kind: str = "click") -> Event:
    return Event(
        type=kind,
        timestamp=time.time(),
        event_id=f"{kind}-{qid}-{product}",
        session_id=f"sess-{qid}",
        query_id=qid,
        product_id=product,
    )


def test_a_b_results_are_the_rates_of_the_logged_searches(
    admin: httpx.Client, server: Server
) -> None:
    created = admin.post(BASE, json=_body("ab-rates", start=True))
    assert created.status_code == 201 and created.json()["status"] == "running"
    exp = Experiment.from_dict(created.json())
    events: list[Event] = []
    clicked = {"A": 0, "B": 0}
    carted_b = 0
    for i in range(30):
        arm = "A" if i < 12 else "B"
        qid = f"ab-{i}"
        events.append(_search(exp, qid, arm))
        if i % 3 == 0:
            events.append(_click(qid, "p1"))
            clicked[arm] += 1
        if arm == "B" and i % 6 == 0:
            events.append(_click(qid, "p1", "add_to_cart"))
            carted_b += 1
    _log(server, events)

    shown = admin.get(f"{BASE}/ab-rates")
    assert shown.status_code == 200
    evidence = shown.json()["results"]["evidence"]
    a, b = evidence["arms"]["A"], evidence["arms"]["B"]
    assert (a["searches"], b["searches"]) == (12, 18)
    assert a["rates"]["click"]["rate"] == pytest.approx(clicked["A"] / 12)
    assert b["rates"]["click"]["rate"] == pytest.approx(clicked["B"] / 18)
    assert b["rates"]["add_to_cart"]["successes"] == carted_b
    assert a["rates"]["click"]["low"] < clicked["A"] / 12 < a["rates"]["click"]["high"]
    assert evidence["difference"]["diff"] == pytest.approx(clicked["B"] / 18 - clicked["A"] / 12)
    assert evidence["horizon"] > 30
    decision = shown.json()["results"]["decision"]
    assert decision["action"] == "continue"
    listed = admin.get(BASE).json()["experiments"]
    mine = next(e for e in listed if e["id"] == "ab-rates")
    assert mine["results"]["evidence"]["searches"] == 30
    assert admin.post(f"{BASE}/ab-rates/_stop").status_code == 200


def test_interleaving_results_count_wins_per_page(admin: httpx.Client, server: Server) -> None:
    created = admin.post(BASE, json=_body("mixed", method="interleave", start=True))
    assert created.status_code == 201
    exp = Experiment.from_dict(created.json())
    teams: dict[str, Arm] = {"p1": "A", "p2": "B", "p3": "A", "p4": "B"}
    events = [_search(exp, f"il-{i}", "interleave", teams) for i in range(10)]
    # pages 0-5: a click on B's item; 6-7: on A's; 8: one of each (tie); 9: no click
    events += [_click(f"il-{i}", "p2") for i in range(6)]
    events += [_click(f"il-{i}", "p3") for i in (6, 7)]
    events += [_click("il-8", "p1"), _click("il-8", "p4")]
    _log(server, events)
    evidence = admin.get(f"{BASE}/mixed").json()["results"]["evidence"]
    preference = evidence["preference"]
    assert (preference["wins_challenger"], preference["wins_control"], preference["ties"]) == (
        6,
        2,
        2,
    )
    assert preference["delta"] == pytest.approx((6 - 2) / 10)
    # The sign test on the 8 decided pages: P(X <= 2 or X >= 6), X ~ Bin(8, 1/2).
    tail = sum(math.comb(8, k) for k in range(9) if k <= 2 or k >= 6)
    assert preference["p_value"] == pytest.approx(tail / 2**8)
    assert admin.post(f"{BASE}/mixed/_stop").status_code == 200


def test_the_official_client_gets_es_errors(server: Server) -> None:
    es = elasticsearch.Elasticsearch(server.url, api_key="k-admin", request_timeout=30)
    with pytest.raises(elasticsearch.NotFoundError) as info:
        es.perform_request("GET", f"{BASE}/nothing-here")
    assert info.value.meta.status == 404
    assert info.value.error == "resource_not_found_exception"
    listed = es.perform_request("GET", BASE)
    assert isinstance(listed.body["experiments"], list)


def _waiting_on(lock_file: Path) -> bool:
    """Whether some process is blocked waiting for `lock_file`'s flock (Linux /proc/locks)."""
    inode = f":{os.stat(lock_file).st_ino} "
    return any(
        "->" in line and inode in line for line in Path("/proc/locks").read_text().splitlines()
    )


def test_store_work_runs_off_the_event_loop(admin: httpx.Client, server: Server) -> None:
    """While a create waits for the store's lock (held here), the one worker still answers."""
    lock_file = server.data_dir / "experiments" / ".lock"
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    answers: list[httpx.Response] = []
    with open(lock_file, "a+b") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        try:
            creating = threading.Thread(
                target=lambda: answers.append(admin.post(BASE, json=_body("held-up")))
            )
            creating.start()
            deadline = time.monotonic() + 30  # only reached when the create never arrives
            while not _waiting_on(lock_file) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _waiting_on(lock_file), "the create never reached the store's lock"
            health = httpx.get(server.url + "/_shoprank/health", timeout=30)
            assert health.status_code == 200
            assert not answers  # the create is still waiting
        finally:
            fcntl.flock(held.fileno(), fcntl.LOCK_UN)
    creating.join(timeout=60)
    assert answers and answers[0].status_code == 201
    assert admin.delete(f"{BASE}/held-up").status_code == 200
