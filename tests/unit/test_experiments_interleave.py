"""Team-draft interleaving: the page, who contributed what, and the credit of clicks."""

from __future__ import annotations

import math
import random

import pytest

from shoprank.experiments.interleave import (
    Interleaving,
    credit,
    credit_positions,
    seed,
    team_draft,
)


def _rankings(rng: random.Random) -> tuple[list[str], list[str]]:
    pool = [f"p{i}" for i in range(rng.randint(0, 25))]
    a = rng.sample(pool, rng.randint(0, len(pool)))
    b = rng.sample(pool, rng.randint(0, len(pool)))
    return a, b


@pytest.mark.parametrize("case", range(300))
def test_team_draft_invariants(case: int) -> None:
    rng = random.Random(case)
    a, b = _rankings(rng)
    size = rng.choice([None, 1, 5, 10, 40])
    page = team_draft(a, b, seed=seed("exp", f"q{case}"), size=size)
    union = set(a) | set(b)
    # Every item appears once, comes from one of the rankings, and the page is full.
    assert len(page.items) == len(set(page.items)) == len(page.teams)
    assert set(page.items) <= union
    assert len(page.items) == (len(union) if size is None else min(size, len(union)))
    # Each arm's picks keep that arm's own order and come from that arm's list.
    for team, ranking in (("A", a), ("B", b)):
        picks = [item for item, t in zip(page.items, page.teams, strict=True) if t == team]
        assert all(item in ranking for item in picks)
        ranks = [ranking.index(item) for item in picks]
        assert ranks == sorted(ranks)
    # The teams stay balanced (within one pick) as long as both arms have items left.
    for end in range(len(page.items) + 1):
        shown = set(page.items[:end])
        if any(x not in shown for x in a) and any(x not in shown for x in b):
            na = page.teams[:end].count("A")
            assert abs(na - (end - na)) <= 1


def test_team_draft_is_deterministic_per_query_and_varies_across_queries() -> None:
    a, b = [f"a{i}" for i in range(10)], [f"b{i}" for i in range(10)]
    first = team_draft(a, b, seed=seed("exp", "q1"), size=10)
    assert team_draft(a, b, seed=seed("exp", "q1"), size=10) == first
    pages = {team_draft(a, b, seed=seed("exp", f"q{i}"), size=10).teams for i in range(50)}
    assert len(pages) > 10


def test_each_arm_picks_first_half_of_the_time() -> None:
    a, b = ["x1", "x2"], ["y1", "y2"]
    n = 4000
    first_a = sum(
        team_draft(a, b, seed=seed("e", str(i)), size=2).teams[0] == "A" for i in range(n)
    )
    assert abs(first_a / n - 0.5) <= 4 * math.sqrt(0.25 / n)


def test_shared_top_item_goes_to_the_arm_that_picks_first_and_the_other_moves_on() -> None:
    page = team_draft(["s", "a2"], ["s", "b2"], seed=seed("e", "q"), size=3)
    assert page.items[0] == "s"
    second = "b2" if page.teams[0] == "A" else "a2"
    assert page.items[1] == second and page.teams[1] != page.teams[0]


def test_identical_rankings_give_the_ranking_itself() -> None:
    ranking = [f"p{i}" for i in range(8)]
    page = team_draft(ranking, ranking, seed=seed("e", "q"))
    assert list(page.items) == ranking


def test_an_empty_arm_leaves_the_page_to_the_other() -> None:
    page = team_draft([], ["b1", "b2", "b3"], seed=seed("e", "q"), size=2)
    assert page == Interleaving(("b1", "b2"), ("B", "B"))
    assert team_draft([], [], seed=seed("e", "q"), size=5) == Interleaving((), ())


def test_credit_counts_distinct_clicked_items_per_contributing_arm() -> None:
    page = Interleaving(("a1", "b1", "a2", "b2", "a3"), ("A", "B", "A", "B", "A"))
    c = credit(page, ["b1", "b2", "a3", "b1", "elsewhere"])
    assert (c.a, c.b, c.winner) == (1, 2, "B")  # the repeat and the off-page click count 0
    assert c.a + c.b == len({"b1", "b2", "a3"})
    assert credit(page, ["a1", "b1"]).winner == "tie"
    assert credit(page, []).winner == "tie"
    assert credit(page, ["a1"]).winner == "A"
    assert credit_positions(page, [1, 3, 9, 0]) == credit(page, ["a1", "a2"])
