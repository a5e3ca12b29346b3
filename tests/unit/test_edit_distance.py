"""The suggesters' and fuzzy queries' distance (Damerau, optimal string alignment, capped at
`limit + 1`) against a plain textbook table, on words Hypothesis draws: the native
distance behind `edit_distance` and the term suggester must agree with it everywhere."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from shoprank.plugin.backends.embedded.tokens import edit_distance
from tests.osa import damerau as textbook

LETTERS = st.text(alphabet="abcdeéx", max_size=9)


@settings(max_examples=400, deadline=None)
@given(LETTERS, LETTERS, st.integers(min_value=0, max_value=3))
def test_the_distance_is_the_textbook_one_capped_above_the_limit(
    a: str, b: str, limit: int
) -> None:
    assert edit_distance(a, b, limit) == min(textbook(a, b), limit + 1)


@settings(max_examples=300, deadline=None)
@given(LETTERS, LETTERS, st.integers(min_value=0, max_value=2))
def test_a_prefix_distance_is_the_fewest_edits_to_some_prefix(a: str, b: str, limit: int) -> None:
    best = min(textbook(a, b[:k]) for k in range(len(b) + 1))
    assert edit_distance(a, b, limit, prefix=True) == min(best, limit + 1)


def test_a_transposition_is_one_edit_and_osa_never_edits_a_substring_twice() -> None:
    assert edit_distance("tiolet", "toilet", 2) == 1
    assert edit_distance("ca", "abc", 3) == 3  # true Damerau would say 2
