"""The textbook optimal-string-alignment distance, written out independently of shoprank's
(`plugin/backends/embedded/tokens.edit_distance`) so tests can check results against it."""

from __future__ import annotations


def damerau(a: str, b: str) -> int:
    """Optimal-string-alignment edit distance (ES fuzziness counts a transposition as one):
    insertions, deletions, substitutions and swaps of adjacent letters, no substring edited
    twice."""
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
    return d[-1][-1]
