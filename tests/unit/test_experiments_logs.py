"""Experiments read back from the behaviour log (`shoprank.experiments.logs`) and their
results (`shoprank.experiments.results`): searches logged with their experiment field,
joined by query id with the clicks, carts and purchases that cite them.

Every expected number is counted by hand from the events each test writes."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from shoprank.events.model import Event
from shoprank.events.service import EventService
from shoprank.experiments.logs import experiment_field, read_tallies, search_of
from shoprank.experiments.model import Arm, Experiment
from shoprank.experiments.results import experiment_store, results
from shoprank.experiments.store import ExperimentStore
from shoprank.experiments.tally import ArmRun
from shoprank.settings import Settings

T0 = 1_800_000_000.0


def _exp(exp_id: str = "exp", method: str = "ab", **options: Any) -> Experiment:
    exp = Experiment.new(
        exp_id,
        control={"ranker": "live"},
        challenger={"ranker": "v2"},
        method=method,
        now=T0,
        **options,
    )
    return replace(exp, status="running", started_at=T0)


def _search(
    exp: Experiment,
    query_id: str,
    variant: str,
    *,
    runs: dict[Arm, ArmRun] | None = None,
    teams: dict[str, Arm] | None = None,
    at: float = T0,
) -> Event:
    if runs is None:
        arm: Arm = "A" if variant == "A" else "B"
        runs = {arm: ArmRun(False, 5.0)}
    return Event(
        type="search",
        timestamp=at,
        event_id=f"s-{query_id}",
        user_id=f"u-{query_id}",
        query_id=query_id,
        query="laptop",
        product_ids=tuple(teams or ("p1", "p2")),
        experiment=experiment_field(exp, variant, runs, teams),
    )


def _event(kind: str, query_id: str, product_id: str = "p1", *, at: float = T0 + 1) -> Event:
    return Event(
        type=kind,
        timestamp=at,
        event_id=f"{kind}-{query_id}-{product_id}-{at}",
        user_id=f"u-{query_id}",
        query_id=query_id,
        product_id=product_id,
    )


def _wilson(k: int, n: int) -> tuple[float, float]:
    """The 95 % Wilson score interval, written out from the textbook formula."""
    z = 1.959963984540054
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = (z / (1 + z * z / n)) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


# -- the logged field ------------------------------------------------------------------------


def test_the_logged_field_reads_back_as_the_same_search() -> None:
    exp = _exp(method="interleave")
    runs: dict[Arm, ArmRun] = {"A": ArmRun(False, 8.12345), "B": ArmRun(True, 11.0)}
    event = _search(exp, "q1", "interleave", runs=runs, teams={"p1": "A", "p2": "B"})
    assert event.experiment is not None
    assert event.experiment["runs"]["A"] == {"zero_results": False, "latency_ms": 8.123}
    found = search_of(Event.from_record(event.to_record()))  # through the log's record form
    assert found is not None
    exp_id, search = found
    assert exp_id == "exp"
    assert (search.query_id, search.variant) == ("q1", "interleave")
    assert search.runs == {"A": ArmRun(False, 8.123), "B": ArmRun(True, 11.0)}
    assert search.teams == {"p1": "A", "p2": "B"}
    ab = search_of(_search(_exp(), "q2", "B"))
    assert ab is not None and ab[1].variant == "B" and ab[1].teams is None


@pytest.mark.parametrize(
    "field",
    [
        None,
        {"id": "exp", "method": "ab", "runs": {"A": {"zero_results": False, "latency_ms": 1}}},
        {"id": "exp", "variant": "C", "runs": {}},
        {"id": "exp", "variant": "A", "runs": [1, 2, 3]},
        {"id": "exp", "variant": "A", "runs": {"A": {"latency_ms": 1.0}}},
        {"id": "exp", "variant": "A", "runs": {"Z": {"zero_results": False, "latency_ms": 1}}},
        {"id": "exp", "variant": "interleave", "runs": {}, "teams": {"p1": "C"}},
        "not a dict",
    ],
)
def test_searches_outside_experiments_or_logged_unreadably_are_skipped(field: Any) -> None:
    event = Event(type="search", timestamp=T0, event_id="s", query_id="q1", experiment=field)
    assert search_of(event) is None


def test_only_search_events_with_a_query_id_are_searches() -> None:
    event = _search(_exp(), "q1", "A")
    assert search_of(replace(event, query_id=None)) is None
    assert search_of(replace(event, type="click")) is None


# -- tallies -------------------------------------------------------------------------------


def test_a_b_tallies_join_events_by_query_id_in_any_order() -> None:
    exp = _exp()
    log = [
        _event("click", "q1", at=T0 - 5),  # the click is logged before its search
        _search(exp, "q1", "A"),
        _search(exp, "q2", "A"),
        _search(exp, "q3", "B"),
        _search(exp, "q4", "B", runs={"B": ArmRun(True, 30.0)}),
        _event("click", "q3", "p1"),
        _event("click", "q3", "p2"),  # two clicks: one clicked search
        _event("add_to_cart", "q3", "p2"),
        _event("purchase", "q3", "p2"),
        _event("view", "q2"),  # not an engagement the tallies count
        _event("click", "q-elsewhere"),  # a search outside the experiment
    ]
    t = read_tallies(log, [exp])["exp"]
    a, b = t.arms["A"], t.arms["B"]
    assert (a.searches, a.converted) == (2, {"click": 1, "add_to_cart": 0, "purchase": 0})
    assert (b.searches, b.converted) == (2, {"click": 1, "add_to_cart": 1, "purchase": 1})
    assert (a.zero_results, b.zero_results) == (0, 1)
    assert t.searches == 4


def test_one_pass_splits_the_log_between_experiments() -> None:
    one, two = _exp("one"), _exp("two", method="interleave")
    log = [
        _search(one, "q1", "B"),
        _event("click", "q1"),
        _search(two, "q2", "interleave", runs=_both(), teams={"p1": "A", "p2": "B"}),
        _event("click", "q2", "p2"),
        _search(_exp("three"), "q3", "A"),  # an experiment nobody asked about
        _event("click", "q3"),
    ]
    got = read_tallies(log, [one, two])
    assert set(got) == {"one", "two"}
    assert (got["one"].arms["B"].searches, got["one"].arms["B"].converted["click"]) == (1, 1)
    assert got["one"].arms["A"].searches == 0
    assert (got["two"].wins_a, got["two"].wins_b, got["two"].ties) == (0, 1, 0)


def _both() -> dict[Arm, ArmRun]:
    return {"A": ArmRun(False, 5.0), "B": ArmRun(False, 6.0)}


def test_interleaved_pages_credit_the_arm_that_placed_the_clicked_item() -> None:
    exp = _exp(method="interleave")
    teams: dict[str, Arm] = {"p1": "A", "p2": "B", "p3": "A", "p4": "B"}
    log = [_search(exp, f"q{i}", "interleave", runs=_both(), teams=teams) for i in range(6)]
    log += [
        _event("click", "q0", "p2"),  # B
        _event("click", "q1", "p2"),  # B
        _event("click", "q1", "p4"),  # B again on the same page
        _event("click", "q2", "p1"),  # A
        _event("click", "q3", "p1"),
        _event("click", "q3", "p2"),  # one each: a tie
        _event("click", "q4", "p9"),  # not on the page: credits nobody
        # q5: no events at all
    ]
    t = read_tallies(log, [exp])["exp"]
    assert (t.wins_a, t.wins_b, t.ties, t.no_events) == (1, 2, 3, 2)
    assert t.searches == 6  # each page once, whichever arm placed what
    assert t.arms["A"].searches == t.arms["B"].searches == 6


def test_a_search_logged_under_the_other_method_is_not_counted() -> None:
    exp = _exp(method="interleave")
    log = [
        _search(exp, "q1", "A"),  # an A/B search of a reused id
        _search(exp, "q2", "interleave", runs=_both(), teams={"p1": "A"}),
        _event("click", "q1"),
        _event("click", "q2", "p1"),
    ]
    t = read_tallies(log, [exp])["exp"]
    assert (t.wins_a, t.wins_b, t.ties) == (1, 0, 0)


def test_a_search_logged_twice_counts_once() -> None:
    exp = _exp()
    search = _search(exp, "q1", "B")
    t = read_tallies([search, search, _event("click", "q1")], [exp])["exp"]
    assert (t.arms["B"].searches, t.arms["B"].converted["click"]) == (1, 1)


# -- results from a data directory --------------------------------------------------------


def _write_ab_log(settings: Settings, exp: Experiment) -> tuple[int, int, int, int]:
    """40 searches on A with 10 clicked, 60 on B with 27 clicked (3 of them carted)."""
    events: list[Event] = []
    for i in range(40):
        events.append(_search(exp, f"a{i}", "A", at=T0 + i))
        if i % 4 == 0:
            events.append(_event("click", f"a{i}", at=T0 + i + 0.5))
    for i in range(60):
        events.append(_search(exp, f"b{i}", "B", at=T0 + i))
        if i % 20 < 9:
            events.append(_event("click", f"b{i}", at=T0 + i + 0.5))
        if i % 20 == 0:
            events.append(_event("add_to_cart", f"b{i}", at=T0 + i + 0.6))
    answer = EventService(settings).ingest(events, now=T0 + 100)
    assert answer["accepted"] == len(events)
    clicks_a = sum(1 for i in range(40) if i % 4 == 0)
    clicks_b = sum(1 for i in range(60) if i % 20 < 9)
    return 40, clicks_a, 60, clicks_b


def test_results_read_the_data_dir_log_rates_with_wilson_intervals(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    exp = _exp("ranker-v2")
    n_a, k_a, n_b, k_b = _write_ab_log(settings, exp)
    report = results(settings, [exp], clock=lambda: T0 + 200)["ranker-v2"]
    arms = report["evidence"]["arms"]
    for arm, k, n in (("A", k_a, n_a), ("B", k_b, n_b)):
        click = arms[arm]["rates"]["click"]
        low, high = _wilson(k, n)
        assert (click["successes"], click["n"]) == (k, n)
        assert click["rate"] == pytest.approx(k / n)
        assert (click["low"], click["high"]) == (pytest.approx(low), pytest.approx(high))
    assert arms["B"]["rates"]["add_to_cart"]["successes"] == 3
    assert arms["A"]["latency_p95_ms"] == pytest.approx(5.0)
    diff = report["evidence"]["difference"]
    assert diff["diff"] == pytest.approx(k_b / n_b - k_a / n_a)
    assert report["evidence"]["searches"] == n_a + n_b
    # Running: a preview of the decision a look now would take, at the injected clock.
    assert report["decision"]["action"] == "continue"
    assert report["decision"]["at"] == T0 + 200


def test_results_of_finished_and_draft_experiments(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    store = experiment_store(settings)
    assert isinstance(store, ExperimentStore)
    assert store.directory == tmp_path / "experiments"
    draft = Experiment.new("draft", control={"ranker": "live"}, challenger={"ranker": "v2"}, now=T0)
    store.create(draft)
    stopped = store.create(replace(draft, id="stopped", salt="s" * 32))
    store.start("stopped", now=T0)
    stopped = store.stop("stopped", now=T0 + 5, why="enough")
    _write_ab_log(settings, stopped)
    report = results(settings, store.all(), clock=lambda: T0 + 9)
    assert report["draft"]["decision"] is None
    assert report["draft"]["evidence"]["searches"] == 0
    assert report["stopped"]["decision"]["message"] == "enough"
    assert report["stopped"]["decision"]["at"] == T0 + 5  # recorded, not a new look
    assert report["stopped"]["evidence"]["searches"] == 100


def test_results_of_no_experiments_do_not_read_the_log(tmp_path: Path) -> None:
    def log() -> Any:
        raise AssertionError("the log was read")
        yield  # pragma: no cover

    assert results(Settings(data_dir=tmp_path), [], events=log()) == {}
