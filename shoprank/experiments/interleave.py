"""Team-draft interleaving (Radlinski, Kurup & Joachims 2008): one result page that mixes
two rankings, and the credit of its clicks to the ranker that contributed each item.

Each round, the arm that has contributed fewer items picks next; when both have
contributed equally a coin decides who picks first. An arm picks its highest-ranked item
not already on the page. The coins come from the BLAKE2b hash of the experiment id and the
query id, so a page is reproducible from the log (and the same in every process).

    page = team_draft(control_ids, challenger_ids, seed=seed(exp.id, query_id), size=10)
    page.items, page.teams          # ["p3", "p9", …], ["B", "A", …]
    credit(page, clicked={"p9"})    # Credit(a=1, b=0) → winner "A"
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from shoprank.experiments.model import Arm

Winner = Literal["A", "B", "tie"]


def seed(experiment_id: str, query_id: str) -> bytes:
    """The coin seed of one interleaved page: a function of the experiment and the query."""
    return hashlib.blake2b(f"{experiment_id}\x1f{query_id}".encode(), digest_size=16).digest()


def _coins(seed_bytes: bytes) -> Iterator[bool]:
    """An endless deterministic stream of fair coins (True = A picks first)."""
    block = 0
    while True:
        digest = hashlib.blake2b(block.to_bytes(4, "big"), key=seed_bytes, digest_size=32).digest()
        for byte in digest:
            for bit in range(8):
                yield bool((byte >> bit) & 1)
        block += 1


@dataclass(frozen=True, slots=True)
class Interleaving:
    """The merged page: `items[i]` was contributed by arm `teams[i]`."""

    items: tuple[str, ...]
    teams: tuple[Arm, ...]

    def team_of(self) -> dict[str, Arm]:
        return dict(zip(self.items, self.teams, strict=True))


def team_draft(
    a: Sequence[str], b: Sequence[str], *, seed: bytes, size: int | None = None
) -> Interleaving:
    """Interleave rankings `a` (control) and `b` (challenger) into at most `size` items.

    Duplicates within one ranking are ignored after their first occurrence; an item both
    rankings hold appears once, credited to whichever arm picked it first. When one arm runs
    out, the other fills the rest of the page.
    """
    limit = len(set(a) | set(b)) if size is None else max(0, size)
    coins = _coins(seed)
    taken: set[str] = set()
    items: list[str] = []
    teams: list[Arm] = []
    ia = ib = 0
    na = nb = 0
    while len(items) < limit:
        while ia < len(a) and a[ia] in taken:
            ia += 1
        while ib < len(b) and b[ib] in taken:
            ib += 1
        a_left, b_left = ia < len(a), ib < len(b)
        if not (a_left or b_left):
            break
        a_turn = (na < nb or (na == nb and next(coins))) if a_left and b_left else a_left
        if a_turn:
            item, ia, na = a[ia], ia + 1, na + 1
            teams.append("A")
        else:
            item, ib, nb = b[ib], ib + 1, nb + 1
            teams.append("B")
        items.append(item)
        taken.add(item)
    return Interleaving(tuple(items), tuple(teams))


@dataclass(frozen=True, slots=True)
class Credit:
    """Clicks on one interleaved page, per contributing arm."""

    a: int
    b: int

    @property
    def winner(self) -> Winner:
        """The arm with more credited clicks; "tie" for equal counts (and for no clicks)."""
        if self.a > self.b:
            return "A"
        if self.b > self.a:
            return "B"
        return "tie"


def credit(page: Interleaving, clicked: Collection[str]) -> Credit:
    """Credit each distinct clicked item to the arm that contributed it.

    Clicks on items that were not on the page (another page, a stale tab) credit nobody;
    several clicks on one item count once, as in the team-draft rule.
    """
    teams = page.team_of()
    a = b = 0
    for item in set(clicked):
        team = teams.get(item)
        if team == "A":
            a += 1
        elif team == "B":
            b += 1
    return Credit(a, b)


def credit_positions(page: Interleaving, positions: Collection[int]) -> Credit:
    """As `credit`, for clicks given as 1-based positions on the page."""
    valid = {p for p in positions if 1 <= p <= len(page.items)}
    return credit(page, [page.items[p - 1] for p in valid])
