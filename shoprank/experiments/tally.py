"""Counting an experiment's searches and events into per-arm tallies.

The search pipeline logs, with each search in an experiment, which arm served it (A/B) or
which arm contributed each hit (interleaving), and per arm whether its ranking was empty and
how long it took. Events (click, add_to_cart, purchase) join by query id. `Tallies` is what
the statistics and `decide` read; it is cheap to rebuild from the logs, and kept up to date
incrementally with `add`.

A/B assigns shoppers, not searches: one shopper's searches are alike (the same tastes, the
same habit of clicking), so per-search counts alone would overstate the evidence. Each arm
also keeps per-unit sums (`ArmTally.units`: searches, zero-result searches and conversions
per user or session), from which `clustered_variance` gives the variance of a rate with the
unit as the independent draw (the delta method for a ratio of sums).

    tallies = Tallies.for_experiment(exp)
    search = SearchRecord("q1", "B", runs={"B": ArmRun(False, 8.1)})
    tallies.add(search, [EventRecord("q1", "click", "p3")])
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from shoprank.experiments.interleave import Credit
from shoprank.experiments.model import Arm, Experiment, ExperimentError, Metric
from shoprank.experiments.stats import percentile

Variant = Literal["A", "B", "interleave"]
KINDS: tuple[Metric, ...] = ("click", "add_to_cart", "purchase")
LATENCY_WINDOW = 4096  # the guard reads the p95 of each arm's most recent latencies


@dataclass(frozen=True, slots=True)
class ArmRun:
    """One arm's ranking for one search: was it empty, and how long did it take."""

    zero_results: bool
    latency_ms: float


@dataclass(frozen=True, slots=True)
class SearchRecord:
    """One logged search of an experiment.

    `variant` "A"/"B" for an A/B search (`runs` has that arm), "interleave" for a mixed page
    (`runs` has both arms, `teams` maps each product on the page to its contributing arm).
    """

    query_id: str
    variant: Variant
    runs: Mapping[Arm, ArmRun]
    teams: Mapping[str, Arm] | None = None
    unit: str | None = None  # the assigned user / session pseudonym; None: its own unit


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One behaviour event joined to the search it came from by `query_id`."""

    query_id: str
    kind: str
    product_id: str | None = None


# Per-unit sums: [searches, zero-result searches, then one count per kind of KINDS].
_SEARCHES, _ZERO = 0, 1
_SLOT: dict[str, int] = {kind: 2 + i for i, kind in enumerate(KINDS)}


@dataclass(slots=True)
class ArmTally:
    """Searches of one arm and how many of them led to each kind of event.

    `units` holds per-unit sums for the searches that named their unit (A/B); every other
    search is a unit of its own.
    """

    searches: int = 0
    zero_results: int = 0
    converted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    units: dict[str, list[int]] = field(default_factory=dict)

    def add_run(self, run: ArmRun) -> None:
        self.searches += 1
        self.zero_results += int(run.zero_results)
        self.latencies_ms.append(run.latency_ms)

    def add_unit(self, unit: str, run: ArmRun, kinds: Iterable[str]) -> None:
        sums = self.units.get(unit)
        if sums is None:
            sums = self.units[unit] = [0] * (2 + len(KINDS))
        sums[_SEARCHES] += 1
        sums[_ZERO] += int(run.zero_results)
        for kind in kinds:
            sums[_SLOT[kind]] += 1

    def latency_p95(self) -> float:
        return percentile(list(self.latencies_ms), 95.0)

    def clustered_variance(self, what: str, rate: float) -> float:
        """Variance of this arm's rate of `what` (a kind, or "zero_results") at `rate`,
        with units as the independent draws: sum over units of (successes - rate *
        searches)^2, over searches^2. Searches without a unit count one each, so with no
        units this is the binomial rate * (1 - rate) / searches."""
        if self.searches == 0:
            return 0.0
        slot = _ZERO if what == "zero_results" else _SLOT[what]
        total = self.zero_results if what == "zero_results" else self.converted[what]
        square = 0.0
        in_units = hits_in_units = 0
        for sums in self.units.values():
            n, y = sums[_SEARCHES], sums[slot]
            in_units += n
            hits_in_units += y
            square += (y - rate * n) ** 2
        alone = self.searches - in_units
        hits_alone = total - hits_in_units
        square += hits_alone * (1.0 - rate) ** 2 + (alone - hits_alone) * rate * rate
        return square / (self.searches * self.searches)


@dataclass(slots=True)
class Tallies:
    """Everything the statistics need about one experiment so far."""

    experiment_id: str
    method: Literal["ab", "interleave"]
    metric: Metric
    arms: dict[Arm, ArmTally] = field(default_factory=lambda: {"A": ArmTally(), "B": ArmTally()})
    wins_a: int = 0
    wins_b: int = 0
    ties: int = 0
    no_events: int = 0  # interleaved searches without any credited event (part of ties)

    @classmethod
    def for_experiment(cls, experiment: Experiment) -> Tallies:
        return cls(experiment.id, experiment.method, experiment.metric)

    @property
    def searches(self) -> int:
        """Searches in the experiment (an interleaved page counts once)."""
        if self.method == "interleave":
            return self.wins_a + self.wins_b + self.ties
        return self.arms["A"].searches + self.arms["B"].searches

    def add(self, search: SearchRecord, events: Iterable[EventRecord] = ()) -> None:
        """Count one search together with all the events that joined it."""
        if search.variant == "interleave":
            if self.method != "interleave" or search.teams is None:
                raise ExperimentError(
                    f"search [{search.query_id}] is an interleaved page (teams "
                    f"{'missing' if search.teams is None else 'given'}) but experiment "
                    f"[{self.experiment_id}] runs {self.method}"
                )
            self._add_interleaved(search, search.teams, list(events))
            return
        if self.method != "ab":
            raise ExperimentError(
                f"search [{search.query_id}] is an A/B search of arm {search.variant} but "
                f"experiment [{self.experiment_id}] interleaves"
            )
        arm: Arm = search.variant
        run = search.runs.get(arm)
        if run is None:
            raise ExperimentError(
                f"search [{search.query_id}] served arm {arm} but logged runs for "
                f"{sorted(search.runs)}; log the serving arm's run"
            )
        tally = self.arms[arm]
        tally.add_run(run)
        kinds = {e.kind for e in events if e.kind in tally.converted}
        for kind in kinds:
            tally.converted[kind] += 1
        if search.unit is not None:
            tally.add_unit(search.unit, run, kinds)

    def _add_interleaved(
        self, search: SearchRecord, teams: Mapping[str, Arm], events: list[EventRecord]
    ) -> None:
        for arm in ("A", "B"):
            run = search.runs.get(arm)
            if run is not None:
                self.arms[arm].add_run(run)
        # Credit per the team-draft rule: distinct products with an event of the metric's
        # kind, each to the arm that put it on the page; other kinds count per arm as rates.
        credited: dict[str, set[str]] = defaultdict(set)
        for e in events:
            if e.product_id is not None and e.product_id in teams:
                credited[e.kind].add(e.product_id)
        for kind, products in credited.items():
            for arm in {teams[p] for p in products}:
                if kind in self.arms[arm].converted:
                    self.arms[arm].converted[kind] += 1
        picked = credited.get(self.metric, set())
        credit = Credit(
            sum(1 for p in picked if teams[p] == "A"), sum(1 for p in picked if teams[p] == "B")
        )
        winner = credit.winner
        if winner == "A":
            self.wins_a += 1
        elif winner == "B":
            self.wins_b += 1
        else:
            self.ties += 1
            self.no_events += int(not picked)


def tally(
    experiment: Experiment, searches: Iterable[SearchRecord], events: Iterable[EventRecord]
) -> Tallies:
    """Tallies of a whole log: every search with the events of its query id."""
    by_query: dict[str, list[EventRecord]] = defaultdict(list)
    for e in events:
        by_query[e.query_id].append(e)
    out = Tallies.for_experiment(experiment)
    for s in searches:
        out.add(s, by_query.get(s.query_id, ()))
    return out
