"""Offline evaluation of recommendations: metrics, the held-out protocol and baselines.

Protocol (split by time): events at or after a cut-off are the test period. For each
shopper, the last purchase (protocol `purchase`) or the last click (protocol `click`) in
the test period is held out. The statistics a recommender may read are folded from the
events before the cut-off, plus each evaluated shopper's own events before their held-out
event (their history and the session so far); other shoppers' test-period events, the
held-out event and anything after it are never folded.

A held-out event gives up to three cases: a `user` case (for_you, trending, popularity,
content kNN of the recent items), an `item` case when the session viewed or clicked another
product before it (similar: the latest such product is the anchor), a `cart` case when the
session carted or bought other products before a held-out purchase (bought_together for
that cart).

Metrics over a system's lists: hit-rate@k and nDCG@k (one relevant product), catalog
coverage (share of the catalog recommended to anyone) and intra-list diversity (mean
pairwise 1 − cosine of the product vectors of a list).
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from shoprank.evaluation.metrics import ndcg_at_k
from shoprank.events.model import Event

Protocol = Literal["purchase", "click"]
CaseKind = Literal["user", "item", "cart"]
BUY_TYPES = ("add_to_cart", "purchase")
INTERACTIONS = ("view", "click", "add_to_cart", "purchase")


# -- metrics ----------------------------------------------------------------------------


def hit_rate_at_k(ranked: Sequence[str], target: str, k: int = 10) -> float:
    """1.0 when the held-out product is among the first `k`, else 0.0."""
    return 1.0 if target in ranked[:k] else 0.0


def ndcg_one_at_k(ranked: Sequence[str], target: str, k: int = 10) -> float:
    """nDCG@k with one relevant product: 1 / log2(rank + 1) where it is found, else 0."""
    return ndcg_at_k(ranked, {target: 1.0}, k)


def catalog_coverage(lists: Iterable[Sequence[str]], catalog_size: int) -> float:
    """Share of the catalog's products that appear in at least one list."""
    if catalog_size <= 0:
        return 0.0
    seen = set(itertools.chain.from_iterable(lists))
    return len(seen) / catalog_size


def intra_list_diversity(ids: Sequence[str], vectors: Mapping[str, npt.ArrayLike]) -> float:
    """Mean pairwise (1 − cosine) over the products of `ids` that have a vector (0 for a
    list with fewer than two)."""
    rows = [np.asarray(vectors[i], dtype=np.float64) for i in ids if i in vectors]
    if len(rows) < 2:
        return 0.0
    m = np.stack(rows)
    norms = np.linalg.norm(m, axis=1)
    m = m / np.where(norms > 0, norms, 1.0)[:, None]
    sims = m @ m.T
    n = len(rows)
    pairs = (sims.sum() - np.trace(sims)) / (n * (n - 1))
    return float(1.0 - pairs)


# -- the held-out protocol --------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One held-out event as a question to a recommender."""

    kind: CaseKind
    protocol: Protocol
    user: str
    target: str
    t: float
    anchors: tuple[str, ...] = ()  # item: (the latest other product); cart: the cart


@dataclass
class Split:
    protocol: Protocol
    cutoff: float
    train: list[Event]
    held_out: list[Event]
    cases: list[Case] = field(default_factory=list)

    def of_kind(self, kind: CaseKind) -> list[Case]:
        return [c for c in self.cases if c.kind == kind]


def _session_key(event: Event, last: dict[str, tuple[float, int]], gap_s: float) -> str:
    """The session of an event: its session id, else a gap-based session of its subject."""
    if event.session_id:
        return event.session_id
    prev_t, n = last.get(event.subject, (-math.inf, 0))
    if event.timestamp - prev_t > gap_s:
        n += 1
    last[event.subject] = (event.timestamp, n)
    return f"{event.subject}#{n}"


def split(
    events: Sequence[Event], *, cutoff: float, protocol: Protocol, session_gap_s: float = 1800.0
) -> Split:
    """Hold out each shopper's last `protocol` event at or after `cutoff` (shoppers are
    users with a `user_id`); the training events are those the module docstring names.
    The held-out product's own earlier interactions in that session are held out with it
    (the question is what to show before the shopper found it)."""
    kind = "purchase" if protocol == "purchase" else "click"
    ordered = sorted(enumerate(events), key=lambda p: (p[1].timestamp, p[0]))
    gaps: dict[str, tuple[float, int]] = {}
    keyed = [(pos, e, _session_key(e, gaps, session_gap_s)) for pos, e in ordered]
    held: dict[str, tuple[int, float, str, str]] = {}  # user → position, time, session, product
    for pos, e, session in keyed:
        if e.type == kind and e.user_id and e.product_id and e.timestamp >= cutoff:
            held[e.user_id] = (pos, e.timestamp, session, e.product_id)  # the last one wins
    train: list[Event] = []
    sessions: dict[str, list[Event]] = defaultdict(list)
    cases: list[Case] = []
    out: list[Event] = []
    for pos, e, session in keyed:
        mine = held.get(e.user_id) if e.user_id else None
        if mine is not None and pos == mine[0]:
            cases += _cases(e, protocol, sessions.get(session, []))
            out.append(e)
            continue
        if mine is not None and (e.timestamp, pos) < (mine[1], mine[0]):
            if session == mine[2] and e.product_id == mine[3]:
                continue  # the held-out product's own lead-up
        elif e.timestamp >= cutoff:
            continue  # another shopper's test period, or after the held-out event
        train.append(e)
        sessions[session].append(e)
    return Split(protocol, cutoff, train, out, cases)


def _cases(target: Event, protocol: Protocol, before: Sequence[Event]) -> list[Case]:
    assert target.user_id and target.product_id
    pid = target.product_id
    out = [Case("user", protocol, target.user_id, pid, target.timestamp)]
    looked = [e.product_id for e in before if e.type in ("view", "click") and e.product_id]
    others = [p for p in looked if p != pid]
    if others:
        out.append(Case("item", protocol, target.user_id, pid, target.timestamp, (others[-1],)))
    cart = [e.product_id for e in before if e.type in BUY_TYPES and e.product_id]
    cart_ids = tuple(dict.fromkeys(p for p in cart if p != pid))
    if cart_ids and protocol == "purchase":  # bought together: the purchase protocol's
        out.append(Case("cart", protocol, target.user_id, pid, target.timestamp, cart_ids))
    return out


# -- baselines --------------------------------------------------------------------------


def popularity(train: Iterable[Event], *, protocol: Protocol) -> list[str]:
    """Products by all-time count of the protocol's event type (ties by id)."""
    kind = "purchase" if protocol == "purchase" else "click"
    counts = Counter(e.product_id for e in train if e.type == kind and e.product_id)
    return [pid for pid, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def top_excluding(ranked: Iterable[str], exclude: Iterable[str], k: int) -> list[str]:
    skip = set(exclude)
    return list(itertools.islice((p for p in ranked if p not in skip), k))


class CooccurCounts:
    """Plain co-occurrence: how many sessions carted/bought both products (no lift)."""

    def __init__(self, train: Iterable[Event], *, session_gap_s: float = 1800.0) -> None:
        baskets: dict[str, set[str]] = defaultdict(set)
        gaps: dict[str, tuple[float, int]] = {}
        for e in sorted(train, key=lambda e: e.timestamp):
            session = _session_key(e, gaps, session_gap_s)
            if e.type in BUY_TYPES and e.product_id:
                baskets[f"{e.subject}|{session}"].add(e.product_id)
        self.pairs: dict[str, Counter[str]] = defaultdict(Counter)
        for items in baskets.values():
            for a, b in itertools.permutations(sorted(items), 2):
                self.pairs[a][b] += 1

    def ranked(self, cart: Sequence[str], *, fallback: Sequence[str], k: int) -> list[str]:
        """By summed raw count with the cart's products, then `fallback` (popularity)."""
        total: Counter[str] = Counter()
        for pid in cart:
            total.update(self.pairs.get(pid, {}))
        order = [p for p, _ in sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))]
        return top_excluding(itertools.chain(order, fallback), cart, k)


def recent_items(train: Iterable[Event], *, limit: int = 5) -> dict[str, list[str]]:
    """Each user's latest distinct interacted products, newest first."""
    seen: dict[str, list[str]] = defaultdict(list)
    for e in sorted(train, key=lambda e: e.timestamp, reverse=True):
        if e.user_id and e.product_id and e.type in INTERACTIONS:
            items = seen[e.user_id]
            if e.product_id not in items and len(items) < limit:
                items.append(e.product_id)
    return dict(seen)


class ContentKnn:
    """Content-only: kNN over the text vectors (the backend's `knn`) of a mean vector."""

    def __init__(self, backend: Any, index: str, *, field: str = "text_vector") -> None:
        self.backend = backend
        self.index = index
        self.field = field

    def vectors(self, ids: Sequence[str]) -> dict[str, npt.NDArray[np.float32]]:
        return dict(self.backend.vectors_of(self.index, list(ids), self.field)) if ids else {}

    def ranked(self, ids: Sequence[str], *, exclude: Sequence[str] = (), k: int = 10) -> list[str]:
        found = self.vectors(ids)
        if not found:
            return []
        query = np.mean([np.asarray(v, dtype=np.float64) for v in found.values()], axis=0)
        size = k + len(exclude)
        resp = self.backend.search(
            self.index,
            {
                "knn": {
                    "field": self.field,
                    "query_vector": [float(x) for x in query],
                    "k": size,
                    "num_candidates": max(100, 2 * size),
                },
                "size": size,
                "_source": False,
            },
        )
        return top_excluding((h["_id"] for h in resp["hits"]["hits"]), exclude, k)


# -- scoring systems on cases -----------------------------------------------------------

System = Callable[[Case], list[str]]


@dataclass
class Row:
    protocol: str
    cases: str
    system: str
    n: int
    hit_rate: float
    ndcg: float
    coverage: float
    ild: float

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def score(
    system: System,
    cases: Sequence[Case],
    *,
    name: str,
    k: int,
    catalog_size: int,
    vectors: Callable[[Sequence[str]], Mapping[str, npt.ArrayLike]] | None = None,
) -> Row:
    """Run `system` on every case and average the metrics."""
    lists = [system(c)[:k] for c in cases]
    hits = [hit_rate_at_k(lst, c.target, k) for lst, c in zip(lists, cases, strict=True)]
    gains = [ndcg_one_at_k(lst, c.target, k) for lst, c in zip(lists, cases, strict=True)]
    ild = 0.0
    if vectors is not None and lists:
        wanted = sorted(set(itertools.chain.from_iterable(lists)))
        vecs = vectors(wanted)
        ild = float(np.mean([intra_list_diversity(lst, vecs) for lst in lists]))
    n = len(cases)
    return Row(
        protocol=cases[0].protocol if cases else "",
        cases=cases[0].kind if cases else "",
        system=name,
        n=n,
        hit_rate=sum(hits) / n if n else 0.0,
        ndcg=sum(gains) / n if n else 0.0,
        coverage=catalog_coverage(lists, catalog_size),
        ild=ild,
    )


def table(rows: Sequence[Row]) -> str:
    """The rows as an aligned text table."""
    head = (
        f"{'protocol':<9} {'cases':<5} {'system':<18} {'n':>6} {'hit@k':>7} {'nDCG@k':>7} "
        f"{'cover':>7} {'ILD':>6}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.protocol:<9} {r.cases:<5} {r.system:<18} {r.n:>6} {r.hit_rate:>7.4f} "
            f"{r.ndcg:>7.4f} {r.coverage:>7.4f} {r.ild:>6.3f}"
        )
    return "\n".join(lines)
