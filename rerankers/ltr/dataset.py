"""The training join: logged search windows (with the features serving computed) +
click / cart / purchase events carrying their `query_id` → graded examples.

Grades: 0 shown and not engaged, 1 clicked, 2 added to cart, 3 purchased (the highest
engagement per product and search counts). No feature is recomputed: a search whose
features were not sampled for logging is not used.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shoprank.events.model import Event
from shoprank.rerankers.features.registry import vectorise

GRADES = {"click": 1.0, "add_to_cart": 2.0, "purchase": 3.0}


@dataclass
class LoggedSearch:
    query_id: str
    timestamp: float
    user: str | None
    query: str | None
    ids: list[str]
    positions: list[int]  # the 1-based rank each product was shown at
    features: list[dict[str, float]]
    grades: list[float] = field(default_factory=list)


@dataclass
class Dataset:
    searches: list[LoggedSearch]

    def __len__(self) -> int:
        return len(self.searches)

    def split(self, holdout: float) -> tuple[Dataset, Dataset]:
        """Time split: the latest `holdout` share of searches is held out."""
        ordered = sorted(self.searches, key=lambda s: (s.timestamp, s.query_id))
        cut = (
            len(ordered) - max(1, int(round(len(ordered) * holdout)))
            if holdout > 0
            else len(ordered)
        )
        return Dataset(ordered[:cut]), Dataset(ordered[cut:])

    def matrices(self) -> tuple[np.ndarray, np.ndarray, list[int], np.ndarray]:
        """(X, grades, group sizes, 0-based positions) in registry column order."""
        rows = [f for s in self.searches for f in s.features]
        x = vectorise(rows) if rows else np.zeros((0, 0), dtype=np.float32)
        y = np.asarray([g for s in self.searches for g in s.grades], dtype=np.float64)
        groups = [len(s.ids) for s in self.searches]
        positions = np.asarray([p - 1 for s in self.searches for p in s.positions], dtype=np.int32)
        return x, y, groups, positions

    @property
    def window(self) -> tuple[float, float] | None:
        if not self.searches:
            return None
        times = [s.timestamp for s in self.searches]
        return min(times), max(times)


def join(events: Iterable[Event], *, only_engaged: bool = True) -> Dataset:
    """Build graded searches from a behaviour log (any order of events)."""
    searches: dict[str, LoggedSearch] = {}
    engagement: dict[tuple[str, str], float] = {}
    for event in events:
        if event.type == "search":
            if not event.query_id or not event.window:
                continue
            items = [w for w in event.window if isinstance(w, dict) and "features" in w]
            if not items:
                continue
            searches[event.query_id] = LoggedSearch(
                query_id=event.query_id,
                timestamp=event.timestamp,
                user=event.user_id or event.session_id,
                query=event.query,
                ids=[str(w["id"]) for w in items],
                positions=[int(w.get("after", i + 1)) for i, w in enumerate(items)],
                features=[_floats(w["features"]) for w in items],
            )
        elif event.type in GRADES and event.query_id and event.product_id:
            key = (event.query_id, event.product_id)
            engagement[key] = max(engagement.get(key, 0.0), GRADES[event.type])
    out = []
    for qid, search in searches.items():
        search.grades = [engagement.get((qid, pid), 0.0) for pid in search.ids]
        if only_engaged and not any(search.grades):
            continue
        out.append(search)
    return Dataset(out)


def _floats(raw: Any) -> dict[str, float]:
    return {str(k): float(v) for k, v in raw.items() if isinstance(v, int | float)}
