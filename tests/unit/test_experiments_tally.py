"""Joining logged searches with their events into per-arm tallies."""

from __future__ import annotations

from dataclasses import replace

import pytest

from shoprank.experiments.model import Experiment, ExperimentError
from shoprank.experiments.tally import ArmRun, EventRecord, SearchRecord, tally


def _exp(method: str, metric: str = "click") -> Experiment:
    exp = Experiment.new(
        "exp",
        control={"ranker": "v1"},
        challenger={"ranker": "v2"},
        method=method,
        metric=metric,
        now=0.0,
    )
    return replace(exp, status="running")


FAST, EMPTY = ArmRun(False, 4.0), ArmRun(True, 9.0)


def test_a_b_searches_count_each_kind_once_per_search() -> None:
    searches = [
        SearchRecord("q1", "A", {"A": FAST}),
        SearchRecord("q2", "B", {"B": FAST}),
        SearchRecord("q3", "B", {"B": EMPTY}),
    ]
    events = [
        EventRecord("q1", "click", "p1"),
        EventRecord("q1", "click", "p2"),  # a second click: still one clicked search
        EventRecord("q2", "click", "p1"),
        EventRecord("q2", "add_to_cart", "p1"),
        EventRecord("q9", "click", "p1"),  # a search outside the experiment
    ]
    t = tally(_exp("ab"), searches, events)
    assert t.searches == 3
    assert (t.arms["A"].searches, t.arms["A"].converted["click"]) == (1, 1)
    assert t.arms["B"].converted == {"click": 1, "add_to_cart": 1, "purchase": 0}
    assert (t.arms["B"].searches, t.arms["B"].zero_results) == (2, 1)
    assert t.arms["B"].latency_p95() == pytest.approx(9.0 - 0.05 * 5.0)


def test_interleaved_pages_credit_the_metric_to_the_contributing_arm() -> None:
    teams = {"p1": "A", "p2": "B", "p3": "A", "p4": "B"}
    runs = {"A": FAST, "B": FAST}
    searches = [SearchRecord(f"q{i}", "interleave", runs, teams) for i in range(4)]  # type: ignore[arg-type]
    events = [
        EventRecord("q0", "click", "p2"),  # B wins
        EventRecord("q1", "click", "p1"),
        EventRecord("q1", "click", "p2"),  # tie
        EventRecord("q2", "click", "p1"),
        EventRecord("q2", "click", "p3"),
        EventRecord("q2", "click", "p4"),
        EventRecord("q2", "add_to_cart", "p4"),  # A wins on clicks, B carted
        EventRecord("q3", "click", "p99"),  # not on the page: no credit, a tie
    ]
    t = tally(_exp("interleave"), searches, events)
    assert (t.wins_a, t.wins_b, t.ties, t.no_events) == (1, 1, 2, 1)
    assert t.arms["B"].converted["add_to_cart"] == 1
    on_carts = tally(_exp("interleave", "add_to_cart"), searches, events)
    assert (on_carts.wins_a, on_carts.wins_b, on_carts.ties) == (0, 1, 3)


def test_records_of_the_wrong_method_are_refused() -> None:
    with pytest.raises(ExperimentError, match="runs ab"):
        tally(_exp("ab"), [SearchRecord("q", "interleave", {}, {"p": "A"})], [])
    with pytest.raises(ExperimentError, match="interleaves"):
        tally(_exp("interleave"), [SearchRecord("q", "A", {"A": FAST})], [])
    with pytest.raises(ExperimentError, match="log the serving arm's run"):
        tally(_exp("ab"), [SearchRecord("q", "B", {"A": FAST})], [])
