"""A/B is analysed with the shopper (the unit of assignment) as the independent draw.

One shopper's searches are alike: someone who clicks, clicks on most of their searches.
Counting searches as independent overstates the evidence (an A/A test replayed from a
real log was declared significant 15 % of the time at a nominal 5 %). These tests pin the
clustered variance to what it must be from first principles and show the decision follows.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from shoprank.events.model import Event
from shoprank.experiments.decide import ab_variance, decide, primary_test
from shoprank.experiments.logs import experiment_field, search_of
from shoprank.experiments.model import Arm, Experiment
from shoprank.experiments.stats import difference
from shoprank.experiments.tally import ArmRun, EventRecord, SearchRecord, Tallies

RUN = ArmRun(False, 5.0)


def _exp() -> Experiment:
    exp = Experiment.new(
        "exp", control={"ranker": "v1"}, challenger={"ranker": "v2"}, method="ab", now=0.0
    )
    return replace(exp, status="running")


def _traffic(
    tallies: Tallies, arm: Arm, *, units: int, per_unit: int, clickers: int, named: bool = True
) -> None:
    """`units` shoppers with `per_unit` searches each; the first `clickers` click on every
    search, the others on none (all or nothing: the strongest within-shopper likeness)."""
    for u in range(units):
        for s in range(per_unit):
            qid = f"{arm}-{u}-{s}"
            unit = f"{arm}-u{u}" if named else None
            events = [EventRecord(qid, "click", "p1")] if u < clickers else []
            tallies.add(SearchRecord(qid, arm, {arm: RUN}, unit=unit), events)


def test_without_units_the_variance_is_the_binomial_one() -> None:
    t = Tallies.for_experiment(_exp())
    _traffic(t, "A", units=400, per_unit=1, clickers=120, named=False)
    rate = 120 / 400
    assert t.arms["A"].clustered_variance("click", rate) == pytest.approx(rate * (1 - rate) / 400)


def test_all_or_nothing_shoppers_carry_one_draw_each_not_one_per_search() -> None:
    # 40 shoppers x 10 searches: the rate is an average of 40 draws, not 400, so its
    # variance is 10 times the per-search binomial one.
    t = Tallies.for_experiment(_exp())
    _traffic(t, "A", units=40, per_unit=10, clickers=12)
    rate = 0.3
    assert t.arms["A"].searches == 400 and t.arms["A"].converted["click"] == 120
    assert t.arms["A"].clustered_variance("click", rate) == pytest.approx(
        10 * rate * (1 - rate) / 400
    )


def test_a_difference_made_by_a_few_shoppers_is_not_significant() -> None:
    # Per search this is 3,000 vs 3,000 searches at 30 % vs 36 %: significant at once.
    # It is 60 shoppers a side, 18 vs 22 of them clicking: well within chance.
    clustered, independent = Tallies.for_experiment(_exp()), Tallies.for_experiment(_exp())
    for tallies, named in ((clustered, True), (independent, False)):
        _traffic(tallies, "A", units=60, per_unit=50, clickers=18, named=named)
        _traffic(tallies, "B", units=60, per_unit=50, clickers=22, named=named)
    exp = _exp()
    assert primary_test(exp, independent).significant
    assert decide(exp, independent, now=1.0).action == "promote"
    assert not primary_test(exp, clustered).significant
    assert decide(exp, clustered, now=1.0).action == "continue"
    # The reported interval agrees: it spans zero only when shoppers are the unit.
    d = decide(exp, clustered, now=1.0).evidence["difference"]
    assert d["low"] < 0 < d["high"] and d["p_value"] > 0.05


def test_the_same_effect_over_many_shoppers_is_still_found() -> None:
    t = Tallies.for_experiment(_exp())
    _traffic(t, "A", units=3000, per_unit=1, clickers=900)
    _traffic(t, "B", units=3000, per_unit=1, clickers=1200)
    assert decide(_exp(), t, now=1.0).action == "promote"


def test_the_interval_is_wald_on_the_clustered_variance() -> None:
    t = Tallies.for_experiment(_exp())
    _traffic(t, "A", units=50, per_unit=4, clickers=10)
    _traffic(t, "B", units=50, per_unit=4, clickers=20)
    var = ab_variance(t, "click")
    # Each arm: 50 draws of a rate that is 0 or 1, at 0.2 and 0.4.
    assert var == pytest.approx(0.2 * 0.8 / 50 + 0.4 * 0.6 / 50)
    d = difference(40, 200, 80, 200, variance=var)
    assert d.diff == pytest.approx(0.2)
    assert d.high - d.diff == pytest.approx(d.diff - d.low)
    assert d.high - d.diff == pytest.approx(1.959964 * var**0.5, rel=1e-5)


def test_the_logged_search_names_its_shopper_else_its_session() -> None:
    exp = _exp()
    field = experiment_field(exp, "A", {"A": RUN})
    base = Event(type="search", timestamp=1.0, event_id="e", query_id="q", experiment=field)
    found = search_of(replace(base, user_id="u7", session_id="s1"))
    assert found is not None and found[1].unit == "u7"
    found = search_of(replace(base, session_id="s1"))
    assert found is not None and found[1].unit == "s1"
    found = search_of(base)
    assert found is not None and found[1].unit is None
