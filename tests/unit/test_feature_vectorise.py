"""`vectorise` writes each window's feature dicts into the registry's matrix in one
assignment per group of rows that set the same names; the matrix must be what writing
every value by hand gives, for rows with any names in any order, unknown names included."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from shoprank.rerankers.features.registry import DEFAULTS, FEATURE_NAMES, vectorise

NAMES = st.sampled_from([*FEATURE_NAMES[:12], "not_a_feature", "another_unknown"])
ROW = st.dictionaries(NAMES, st.floats(-1e6, 1e6, allow_nan=False, width=32), max_size=8)


def by_hand(rows: list[dict[str, float]]) -> np.ndarray:
    out = np.array([[DEFAULTS[n] for n in FEATURE_NAMES] for _ in rows], dtype=np.float32)
    for i, row in enumerate(rows):
        for name, value in row.items():
            if name in FEATURE_NAMES:
                out[i, FEATURE_NAMES.index(name)] = value
    return out.reshape(len(rows), len(FEATURE_NAMES))


@settings(max_examples=300, deadline=None)
@given(st.lists(ROW, max_size=12), st.data())
def test_the_matrix_is_every_value_written_by_hand(
    rows: list[dict[str, float]], data: st.DataObject
) -> None:
    # Windows repeat a row's names (one code path made them): draw some copies with new values.
    for row in list(rows):
        if row and data.draw(st.booleans()):
            rows.append({name: value + 1.0 for name, value in row.items()})
    got = vectorise(rows)
    assert got.shape == (len(rows), len(FEATURE_NAMES))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, by_hand(rows))
