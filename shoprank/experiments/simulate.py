"""Offline validation of experiments on simulated traffic. **Synthetic**: it checks the
machinery (assignment, interleaving, statistics, decisions), never a claim about shoppers.

Every search draws a fresh query: `pool` candidates with true grades 0-3. A ranker of
known quality scores each candidate `grade + noise * N(0, 1)` and shows its top `depth`
(less noise = truly better). Shoppers engage by the position-biased model of
`shoprank.simulate`: position r is examined with probability (1/r)^eta, an examined item is
clicked, carted and bought with probabilities rising with its grade. A ranker may also
return nothing on a share of searches (`zero_rate`) and take `latency_ms`.

The experiment code runs for real: A/B units go through `Assigner`, interleaved pages
through `team_draft`, searches and events into `Tallies`, and `decide` looks after every
batch, exactly as the service would.

    run = run_experiment(Experiment.new(...), control=Ranker(1.0), challenger=Ranker(0.6),
                         seed=3, start=0.0)
    run.searches, run.decision.action
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from shoprank.experiments.assign import Assigner
from shoprank.experiments.decide import Decision, decide
from shoprank.experiments.interleave import seed as page_seed
from shoprank.experiments.interleave import team_draft
from shoprank.experiments.model import Arm, Experiment
from shoprank.experiments.sequential import msprt_proportions, msprt_sign
from shoprank.experiments.stats import binomial_test, difference
from shoprank.experiments.tally import ArmRun, EventRecord, SearchRecord, Tallies
from shoprank.simulate import BUY_GIVEN_CART, CART_GIVEN_GRADE, CLICK_GIVEN_GRADE

IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class ClickModel:
    """The simulated shop: grade distribution of candidates and position-biased engagement."""

    pool: int = 30
    depth: int = 10
    # A query's share of relevant candidates is Beta(a, b) (mean 0.2; many queries with one
    # or two relevant products, a few with many); relevant ones are graded 1-3 by these odds.
    relevant_share: tuple[float, float] = (0.4, 1.6)
    relevant_grades: tuple[float, float, float] = (0.6, 0.3, 0.1)
    eta: float = 1.0
    # After a click on grade g the shopper is satisfied and stops with this probability
    # (the dependent-click refinement of the position-based model); zeros = pure PBM.
    stop_given_grade: tuple[float, float, float, float] = (0.0, 0.3, 0.6, 0.9)


@dataclass(frozen=True, slots=True)
class Ranker:
    """A ranker of known quality: `noise` 0 ranks by true grade; more noise is worse."""

    noise: float
    zero_rate: float = 0.0
    latency_ms: float = 5.0


class Shop:
    """Draws queries and engagement from a `ClickModel` with one seeded generator."""

    def __init__(self, model: ClickModel, seed: int) -> None:
        self.model = model
        self.rng = np.random.default_rng(seed)
        self._examine = (1.0 / np.arange(1, model.depth + 1)) ** model.eta
        self._click = np.array(CLICK_GIVEN_GRADE)
        self._cart = np.array(CART_GIVEN_GRADE)
        self._buy = np.array(BUY_GIVEN_CART)
        self._stop = np.array(model.stop_given_grade)

    def queries(self, n: int) -> IntArray:
        """(n, pool) true grades of each query's candidates."""
        m = self.model
        share = self.rng.beta(*m.relevant_share, size=(n, 1))
        relevant = self.rng.random((n, m.pool)) < share
        grade = 1 + self.rng.choice(3, size=(n, m.pool), p=list(m.relevant_grades))
        return np.where(relevant, grade, 0).astype(np.int64)

    def rank(self, ranker: Ranker, grades: IntArray) -> tuple[IntArray, BoolArray]:
        """Each query's top-`depth` candidate indices by the ranker, and which came back empty."""
        scores = grades + ranker.noise * self.rng.standard_normal(grades.shape)
        top = np.argsort(-scores, axis=1, kind="stable")[:, : self.model.depth]
        empty: BoolArray = np.asarray(self.rng.random(grades.shape[0]) < ranker.zero_rate)
        return top.astype(np.int64), empty

    def engage(self, page_grades: IntArray) -> tuple[BoolArray, BoolArray, BoolArray]:
        """Clicks, carts and purchases per position (grade -1 = no item there)."""
        shown = page_grades >= 0
        g = np.where(shown, page_grades, 0)
        u = self.rng.random((5, *page_grades.shape))
        examined = u[0] < self._examine[: page_grades.shape[1]]
        clicks = shown & examined & (u[1] < self._click[g])
        # A shopper who stopped at position r examines nothing below it.
        stops = clicks & (u[2] < self._stop[g])
        after_stop = np.cumsum(stops, axis=1) - stops > 0
        clicks &= ~after_stop
        carts = clicks & (u[3] < self._cart[g])
        buys = carts & (u[4] < self._buy[g])
        return clicks, carts, buys


def _events(
    query_id: str, items: list[str], clicks: BoolArray, carts: BoolArray, buys: BoolArray
) -> list[EventRecord]:
    out: list[EventRecord] = []
    for pos in np.flatnonzero(clicks[: len(items)]):
        pid = items[pos]
        out.append(EventRecord(query_id, "click", pid))
        if carts[pos]:
            out.append(EventRecord(query_id, "add_to_cart", pid))
        if buys[pos]:
            out.append(EventRecord(query_id, "purchase", pid))
    return out


@dataclass(frozen=True, slots=True)
class Run:
    """How one simulated experiment ended: after how many searches, with which decision."""

    searches: int
    decision: Decision
    tallies: Tallies


def run_experiment(
    experiment: Experiment,
    *,
    control: Ranker,
    challenger: Ranker,
    seed: int,
    start: float = 0.0,
    batch: int = 100,
    model: ClickModel | None = None,
) -> Run:
    """Drive one running experiment with simulated searches until `decide` ends it.

    Simulated time advances one second per search from `start` (decisions carry it)."""
    exp = experiment if experiment.status == "running" else replace(experiment, status="running")
    shop = Shop(model or ClickModel(), seed)
    assigner = Assigner(exp)
    tallies = Tallies.for_experiment(exp)
    rankers: dict[Arm, Ranker] = {"A": control, "B": challenger}
    ids = [f"p{i}" for i in range(shop.model.pool)]
    done = 0
    while True:
        grades = shop.queries(batch)
        pages = {arm: shop.rank(r, grades) for arm, r in rankers.items()}
        shown: list[tuple[SearchRecord, list[str]]] = []
        rows = np.full((batch, shop.model.depth), -1, dtype=np.int64)
        for i in range(batch):
            qid = f"s{seed}-q{done + i}"
            runs = {arm: ArmRun(bool(pages[arm][1][i]), rankers[arm].latency_ms) for arm in rankers}
            lists = {
                arm: [] if pages[arm][1][i] else [ids[j] for j in pages[arm][0][i]]
                for arm in rankers
            }
            if exp.method == "interleave":
                page = team_draft(
                    lists["A"], lists["B"], seed=page_seed(exp.id, qid), size=shop.model.depth
                )
                items = list(page.items)
                record = SearchRecord(qid, "interleave", runs, page.team_of())
            else:
                unit = f"user-{seed}-{done + i}"
                arm = assigner.arm(unit)
                if arm is None:
                    raise ValueError("simulated experiments enrol all traffic; set traffic=1")
                items = lists[arm]
                record = SearchRecord(qid, arm, {arm: runs[arm]}, unit=unit)
            rows[i, : len(items)] = [grades[i, int(p[1:])] for p in items]
            shown.append((record, items))
        clicks, carts, buys = shop.engage(rows)
        for i, (record, items) in enumerate(shown):
            tallies.add(record, _events(record.query_id, items, clicks[i], carts[i], buys[i]))
        done += batch
        decision = decide(exp, tallies, now=start + done)
        if decision.action != "continue":
            return Run(done, decision, tallies)


def aa_false_positive_rate(
    *,
    method: str,
    tests: int,
    searches: int,
    batch: int,
    alpha: float = 0.05,
    mde: float = 0.02,
    seed: int = 0,
    ranker: Ranker | None = None,
    model: ClickModel | None = None,
) -> dict[str, Any]:
    """A/A tests (both arms the same ranker quality), looked at after every batch.

    Returns how many tests the sequential test ever declared significant, and how many the
    naive fixed test (p < alpha, re-run at every look) did. The click model is drawn in
    bulk with numpy; the statistics are the real ones.
    """
    r = ranker or Ranker(1.0)
    m = model or ClickModel()
    seq_hits = naive_hits = 0
    looks = searches // batch
    for t in range(tests):
        shop = Shop(m, seed * 100_003 + t)
        grades = shop.queries(searches)
        top_a, _ = shop.rank(r, grades)
        top_b, _ = shop.rank(r, grades)  # the same quality, independent noise
        rows = np.arange(searches)[:, None]
        if method == "ab":
            arm_b = shop.rng.random(searches) < 0.5
            top = np.where(arm_b[:, None], top_b, top_a)
            clicks, _, _ = shop.engage(grades[rows, top])
            success = clicks.any(axis=1)
            cum_b = np.cumsum(arm_b)
            cum_sb = np.cumsum(success & arm_b)
            cum_sa = np.cumsum(success & ~arm_b)
        else:
            wins = np.zeros((searches, 2), dtype=np.int64)
            for i in range(searches):
                a = [str(x) for x in top_a[i]]
                b = [str(x) for x in top_b[i]]
                page = team_draft(a, b, seed=page_seed(f"aa-{seed}-{t}", str(i)), size=m.depth)
                picked = np.array([int(p) for p in page.items])
                clicks, _, _ = shop.engage(grades[i, picked][None, :])
                ca = sum(1 for k, c in enumerate(clicks[0]) if c and page.teams[k] == "A")
                cb = int(clicks[0].sum()) - ca
                wins[i] = (ca > cb, cb > ca)
            cum = np.cumsum(wins, axis=0)
        seq = naive = False
        for look in range(1, looks + 1):
            n = look * batch - 1
            if method == "ab":
                nb = int(cum_b[n])
                na = n + 1 - nb
                sa, sb = int(cum_sa[n]), int(cum_sb[n])
                seq = seq or msprt_proportions(sa, na, sb, nb, alpha=alpha, tau=mde).significant
                naive = naive or (min(na, nb) > 0 and difference(sa, na, sb, nb).p_value < alpha)
            else:
                wa, wb = int(cum[n, 0]), int(cum[n, 1])
                seq = seq or msprt_sign(wa, wb, alpha=alpha, mde=mde).significant
                naive = naive or binomial_test(wb, wa + wb) < alpha
        seq_hits += seq
        naive_hits += naive
    return {
        "method": method,
        "tests": tests,
        "searches_per_test": searches,
        "looks_per_test": looks,
        "alpha": alpha,
        "sequential_false_positives": seq_hits,
        "sequential_rate": seq_hits / tests,
        "naive_false_positives": naive_hits,
        "naive_rate": naive_hits / tests,
    }
