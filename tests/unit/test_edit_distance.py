"""The suggesters' and fuzzy queries' distance (Damerau, optimal string alignment, capped at
`limit + 1`) against a plain textbook table, on words Hypothesis draws: the native
distance behind `edit_distance` and the term suggester must agree with it everywhere."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from shoprank.plugin.backends.embedded.tokens import edit_distance

LETTERS = st.text(alphabet="abcdeéx", max_size=9)


def textbook(a: str, b: str) -> int:
    """Optimal string alignment: insertions, deletions, substitutions and transpositions
    of adjacent letters, no substring edited twice."""
    d = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        d[i][0] = i
    for j in range(len(b) + 1):
        d[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


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
