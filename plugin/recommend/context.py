"""What every strategy works with: the request's anchors, filters and clock (`Ask`), and
what it answers (`Outcome`, a ranked list of `Pick`s with their evidence)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from shoprank.plugin.recommend.behaviour import Behaviour
from shoprank.plugin.recommend.catalog import Catalog, Filters, Hit
from shoprank.plugin.search import SearchService
from shoprank.settings import Settings

# Candidates gathered per strategy: a few times the page, so filters and diversity have
# room (at least this many).
MIN_POOL = 50
POOL_FACTOR = 4


@dataclass
class Pick:
    """One recommended product: its score and the evidence behind it (`_shoprank.sources`)."""

    id: str
    score: float
    sources: dict[str, Any] = field(default_factory=dict)
    # The learned ranker's features (for_you), logged for training like a search's.
    features: dict[str, float] | None = None


@dataclass
class Outcome:
    """A strategy's ranked list, best first, and what the response says about it."""

    picks: list[Pick]
    notes: list[str] = field(default_factory=list)
    cold_start: bool = False
    fallback: str | None = None
    model_version: str | None = None


@dataclass
class Ask:
    """One recommendation being computed."""

    service: SearchService
    catalog: Catalog
    behaviour: Behaviour
    settings: Settings
    now: float
    anchors: tuple[str, ...] = ()
    user_id: str | None = None
    session_id: str | None = None
    category: str | None = None
    filters: Filters = ()
    exclude: tuple[str, ...] = ()
    size: int = 10
    explain: bool = False
    degraded: list[str] = field(default_factory=list)
    hits: dict[str, Hit] = field(default_factory=dict)

    @property
    def pool(self) -> int:
        return max(MIN_POOL, POOL_FACTOR * self.size)

    @property
    def excluded(self) -> tuple[str, ...]:
        """Never recommended: the client's `exclude` and the anchors themselves."""
        return tuple(dict.fromkeys((*self.anchors, *self.exclude)))

    def keep(self, ids: Sequence[str], *, clauses: Filters = ()) -> list[str]:
        """Those of `ids` (in their order) that pass the client's filters (and `clauses`)
        and are not excluded; their `_source` is kept in `hits` for the response."""
        order = list(dict.fromkeys(ids))
        # Without extra clauses, a product already kept passes again: ask only for the rest.
        wanted = order if clauses else [i for i in order if i not in self.hits]
        found = self.catalog.surviving(
            wanted, filters=[*self.filters, *clauses], exclude=self.excluded
        )
        self.hits.update(found)
        if clauses:
            return [i for i in order if i in found]
        return [i for i in order if i in self.hits]

    def keep_best(
        self, ids: Sequence[str], *, clauses: Filters = (), want: int | None = None
    ) -> list[str]:
        """The first `want` (default `pool`) of `ids`, in their order, that `keep` lets
        through: checked a pool at a time, so a long tail of weaker candidates is never
        fetched when the best ones pass."""
        want = self.pool if want is None else want
        order = list(dict.fromkeys(ids))
        if clauses:  # a clause of its own (a category) lets few through: one search of all
            return self.keep(order, clauses=clauses)[:want]
        kept: list[str] = []
        for start in range(0, len(order), self.pool):
            kept += self.keep(order[start : start + self.pool])
            if len(kept) >= want:
                break
        return kept[:want]
