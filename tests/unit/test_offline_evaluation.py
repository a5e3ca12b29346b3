"""`shoprank evaluate` pieces: reading cases, scoring a service's rankings, the plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shoprank.errors import BadRequestError
from shoprank.evaluation import offline


class FakeService:
    """Returns a fixed ranking per mode (the real pipeline is covered end to end)."""

    def __init__(self, rankings: dict[str, list[str]]) -> None:
        self.rankings = rankings
        self.bodies: list[dict[str, Any]] = []

    def search(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        self.bodies.append(body)
        ids = self.rankings[body["ext"]["shoprank"]["mode"]]
        return {"hits": {"hits": [{"_id": i} for i in ids]}}


def test_modes_are_scored_side_by_side(tmp_path: Path) -> None:
    sessions = tmp_path / "s.jsonl"
    sessions.write_text('{"user_id": "u1", "query": "shoes", "grades": {"a": 3, "b": 1}}\n')
    cases = offline.cases_from_sessions(sessions)
    service = FakeService({"hybrid": ["x", "b", "a"], "full": ["a", "b", "x"]})
    results = offline.evaluate(service, "demo", cases, modes=["hybrid", "full"], k=10)
    assert results["full"]["ndcg@10"] == pytest.approx(1.0)
    assert results["hybrid"]["ndcg@10"] < results["full"]["ndcg@10"]
    assert results["hybrid"]["mrr"] == pytest.approx(0.5)
    assert all(b["ext"]["shoprank"]["user_id"] == "u1" for b in service.bodies)
    table = offline.table(results)
    assert "hybrid" in table and "ndcg@10" in table
    png = offline.plot(results, tmp_path / "out.png", title="t")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_bad_sessions_file_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "a", "grades": {}}\n{"query": "b"}\n')
    with pytest.raises(BadRequestError, match="bad.jsonl:2"):
        offline.cases_from_sessions(bad)


class FilteringService:
    """One fixed ranking per mode that honours an `ids` filter, as every real leg does."""

    def __init__(self, rankings: dict[str, list[str]]) -> None:
        self.rankings = rankings
        self.bodies: list[dict[str, Any]] = []

    def search(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        self.bodies.append(body)
        ids = self.rankings[body["ext"]["shoprank"]["mode"]]
        query = body["query"]
        if "bool" in query:
            allowed = set(query["bool"]["filter"][0]["ids"]["values"])
            ids = [i for i in ids if i in allowed]
        return {"hits": {"hits": [{"_id": i} for i in ids[: body["size"]]]}}


def test_condensed_ndcg_drops_unjudged_hits_plain_ndcg_does_not() -> None:
    cases = [offline.Case("drill", {"a": 3.0, "b": 1.0})]
    # Judged products in the ideal order, each behind unjudged ones ("x", "y").
    service = FilteringService({"hybrid": ["x", "a", "y", "b"]})
    scores = offline.evaluate(service, "hd", cases, modes=["hybrid"], k=10)["hybrid"]
    assert scores["cndcg@10"] == pytest.approx(1.0)
    assert scores["ndcg@10"] < 0.9
    assert service.bodies[0]["size"] == 100  # the window, not the page


def test_condensed_ndcg_reaches_past_the_first_k_hits() -> None:
    cases = [offline.Case("drill", {"a": 3.0})]
    deep = [f"u{i}" for i in range(50)] + ["a"]
    scores = offline.evaluate(FilteringService({"vector": deep}), "hd", cases, modes=["vector"])
    assert scores["vector"]["ndcg@10"] == 0.0
    assert scores["vector"]["cndcg@10"] == pytest.approx(1.0)


def test_judged_ranking_searches_only_the_judged_products() -> None:
    grades = {"a": 3.0, "b": 2.0, "c": 1.0}
    cases = [offline.Case("drill", grades)]
    # The mode finds c before a and never b; b follows the found ones.
    service = FilteringService({"lexical": ["c", "x", "a"]})
    runs = offline.run_mode(service, "hd", cases, mode="lexical")
    assert list(runs[0].judged) == ["c", "a", "b"]
    judged_body = service.bodies[1]
    assert sorted(judged_body["query"]["bool"]["filter"][0]["ids"]["values"]) == ["a", "b", "c"]
    assert judged_body["query"]["bool"]["must"][0]["multi_match"]["query"] == "drill"
    scores = offline.score(runs)
    assert 0.0 < scores["jndcg@10"] < 1.0


def test_latency_percentiles_come_from_the_clock() -> None:
    ticks = iter(float(t) / 1000 for t in range(0, 10_000))  # each call advances 1 ms

    def clock() -> float:
        return next(ticks)

    cases = [offline.Case(f"q{i}", {"a": 1.0}) for i in range(5)]
    service = FilteringService({"full": ["a"]})
    scores = offline.evaluate(service, "hd", cases, modes=["full"], clock=clock)["full"]
    assert scores["p50_ms"] == pytest.approx(1.0)
    assert scores["p99_ms"] == pytest.approx(1.0)
    assert offline.percentile([5.0, 1.0, 3.0, 2.0, 4.0], 50) == 3.0
    assert offline.percentile([5.0, 1.0, 3.0, 2.0, 4.0], 99) == 5.0
    assert "p50_ms" in offline.table({"full": scores})


def test_fixed_order_of_unfound_judged_products_is_the_same_in_every_mode() -> None:
    case = offline.Case("drill", {p: 1.0 for p in "abcdef"})
    first = offline.fixed_order(case, list("abcdef"))
    assert first == offline.fixed_order(case, list("fedcba"))
    assert sorted(first) == list("abcdef")
