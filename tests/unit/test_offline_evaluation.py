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
