"""Running the recommendation evaluation on a data dir: split its event log by time, fold
the training events into a fresh profile store, ask the recommendation strategies and the
baselines about every held-out case, and tabulate (see `shoprank.evaluation.recommend`).

The live profiles are never read: the strategies and the learned ranker see only the fresh
store, so no held-out event reaches them. Events in the log already carry pseudonyms, so
the fresh store is read with those ids as they are.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from shoprank.errors import ShoprankError
from shoprank.evaluation.recommend import (
    Case,
    ContentKnn,
    CooccurCounts,
    Protocol,
    Row,
    Split,
    popularity,
    recent_items,
    score,
    split,
    top_excluding,
)
from shoprank.events.model import Event
from shoprank.events.privacy import Pseudonyms
from shoprank.events.reads import ProfileReads
from shoprank.profiles.folding import FoldConfig, ProductLookup
from shoprank.profiles.protocol import ProfileStore
from shoprank.settings import Settings

DAY = 86_400.0
STRATEGIES = ("for_you", "trending", "similar", "bought_together")
CASES_OF = {"for_you": "user", "trending": "user", "similar": "item", "bought_together": "cart"}


class LoggedIds(Pseudonyms):
    """Reads a store folded from the log's events: their ids are pseudonyms already."""

    def of(self, raw_id: str) -> str:
        return raw_id


def read_events(settings: Settings) -> list[Event]:
    """The behaviour events of the data dir's log (searches left out), in log order."""
    from shoprank.events.service import EventService

    return [e for _, e in EventService(settings).log.read() if e.type != "search"]


def fold_fresh(
    train: Sequence[Event], *, settings: Settings, workdir: Path, lookup: ProductLookup | None
) -> ProfileReads:
    """Fold `train` into a new embedded profile store under `workdir`; its reads."""
    from shoprank.events.stores import make_profile_store

    fresh = settings.model_copy(update={"data_dir": workdir, "redis_url": None})
    store: ProfileStore = make_profile_store(fresh)
    ordered = sorted(train, key=lambda e: e.timestamp)
    for n in range(0, len(ordered), 1000):
        chunk = [(f"{n + i}-0", e) for i, e in enumerate(ordered[n : n + 1000])]
        store.apply(chunk, lookup=lookup)
    return ProfileReads(
        store=store, pseudonyms=LoggedIds(settings), cfg=FoldConfig.from_settings(settings)
    )


def recommend_service(settings: Settings, backend: Any, reads: ProfileReads) -> Any:
    """The recommendation service over `reads` (its ranker reads them too), or None when
    this installation has none."""
    try:
        from shoprank.plugin.recommend import RecommendService
    except ImportError:
        return None
    from shoprank.rerankers.ltr import make_ranker
    from shoprank.wiring import make_service

    search = make_service(settings, backend)
    search.search_logger = None  # evaluation requests are not shopper traffic
    search.rerankers[0] = make_ranker(settings, backend, profiles=reads)
    return RecommendService(search, reads, settings)


def _service_system(
    service: Any, strategy: str, *, index: str, k: int, errors: dict[str, str]
) -> Callable[[Case], list[str]]:
    def run(case: Case) -> list[str]:
        anchors = list(case.anchors)
        try:
            found = service.strategy_ids(
                strategy,
                index=index,
                product_ids=anchors,
                user_id=case.user if strategy == "for_you" else None,
                exclude=anchors,
                size=k,
                now=case.t,
            )
        except ShoprankError as exc:
            errors.setdefault(strategy, exc.reason)
            return []
        return [pid for pid, _ in found]

    return run


def evaluate_split(
    data: Split,
    *,
    settings: Settings,
    backend: Any,
    index: str,
    reads: ProfileReads | None,
    strategies: Sequence[str] = STRATEGIES,
    k: int = 10,
    catalog_size: int | None = None,
) -> tuple[list[Row], dict[str, str]]:
    """Every chosen strategy and the baselines of its cases, on one split."""
    content = ContentKnn(backend, index)
    size = catalog_size or backend.count(index, None)
    popular = popularity(data.train, protocol=data.protocol)
    recent = recent_items(data.train)
    errors: dict[str, str] = {}
    service = recommend_service(settings, backend, reads) if reads is not None else None
    if service is None:
        errors["service"] = "no RecommendService in this installation: baselines only"
    systems: dict[str, list[tuple[str, Callable[[Case], list[str]]]]] = {
        "user": [],
        "item": [],
        "cart": [],
    }
    for strategy in strategies:
        if service is not None:
            run = _service_system(service, strategy, index=index, k=k, errors=errors)
            systems[CASES_OF[strategy]].append((strategy, run))
    kinds = {CASES_OF[s] for s in strategies}
    if "user" in kinds:
        systems["user"] += [
            ("popularity", lambda c: popular[:k]),
            ("content_recent", lambda c: content.ranked(recent.get(c.user, []), k=k)),
        ]
    if "item" in kinds:
        systems["item"].append(
            ("content_item", lambda c: content.ranked(c.anchors, exclude=c.anchors, k=k))
        )
    if "cart" in kinds:
        cooccur = CooccurCounts(data.train, session_gap_s=settings.cooccur_session_gap_s)
        systems["cart"] += [
            ("cooccur_count", lambda c: cooccur.ranked(c.anchors, fallback=popular, k=k)),
            ("popularity", lambda c: top_excluding(popular, c.anchors, k)),
        ]
    rows = []
    for kind, entries in systems.items():
        cases = data.of_kind(kind)  # type: ignore[arg-type]
        if not cases:
            continue
        for name, system in entries:
            rows.append(
                score(system, cases, name=name, k=k, catalog_size=size, vectors=content.vectors)
            )
    return rows, errors


def evaluate(
    settings: Settings,
    *,
    index: str | None = None,
    events: Sequence[Event] | None = None,
    protocols: Sequence[Protocol] = ("purchase", "click"),
    strategies: Sequence[str] = STRATEGIES,
    holdout_days: float = 7.0,
    k: int = 10,
    lookup: ProductLookup | None = None,
    backend: Any = None,
) -> dict[str, Any]:
    """The evaluation of a data dir's log (or `events`): `{"rows", "cases", "errors", ...}`."""
    from shoprank.wiring import make_backend, product_lookup

    unknown = [s for s in strategies if s not in CASES_OF]
    if unknown:
        raise ShoprankError(f"unknown strategy(ies) {unknown}; choose from {', '.join(STRATEGIES)}")
    logged = list(events) if events is not None else read_events(settings)
    if not logged:
        raise ShoprankError(
            f"no behaviour events in the event log of {settings.data_dir}: send traffic "
            "(`shoprank demo`, `shoprank simulate-recs`) first"
        )
    target = index or settings.product_index
    backend = backend or make_backend(settings)
    lookup = lookup or product_lookup(replace_index(settings, target))
    end = max(e.timestamp for e in logged)
    cutoff = end - holdout_days * DAY
    rows: list[Row] = []
    errors: dict[str, str] = {}
    cases: dict[str, int] = {}
    for protocol in protocols:
        data = split(
            logged, cutoff=cutoff, protocol=protocol, session_gap_s=settings.cooccur_session_gap_s
        )
        cases[protocol] = len(data.held_out)
        if not data.cases:
            errors[protocol] = (
                f"no shopper has a {protocol} in the last {holdout_days:g} days "
                "(--holdout-days) to hold out"
            )
            continue
        with tempfile.TemporaryDirectory(prefix="shoprank-eval-recs-") as tmp:
            reads = fold_fresh(data.train, settings=settings, workdir=Path(tmp), lookup=lookup)
            found, errs = evaluate_split(
                data,
                settings=settings,
                backend=backend,
                index=target,
                reads=reads,
                strategies=strategies,
                k=k,
            )
        rows += found
        errors.update(errs)
    return {
        "index": target,
        "k": k,
        "cutoff": cutoff,
        "holdout_days": holdout_days,
        "held_out": cases,
        "rows": [r.as_dict() for r in rows],
        "errors": errors,
    }


def replace_index(settings: Settings, index: str) -> Settings:
    """The settings with `index` as the product index (for the product lookup)."""
    if settings.product_index == index:
        return settings
    return settings.model_copy(update={"product_index": index})


__all__ = ["STRATEGIES", "evaluate", "evaluate_split", "fold_fresh", "read_events"]
