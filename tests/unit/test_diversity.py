"""Diversity of a page (`shoprank.rerankers.diversity`): the spec a request may send, MMR
over product vectors, the per-value cap, and intra-list diversity — on hand-made lists
whose expected orders are worked out in the comments, not taken from the code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shoprank.errors import BadRequestError
from shoprank.rerankers.diversity import (
    DiversitySpec,
    diversify,
    intra_list_diversity,
    parse_diversity,
)
from shoprank.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path)


def ids(ranked: list[tuple[str, float]]) -> list[str]:
    return [pid for pid, _ in ranked]


# -- the spec ------------------------------------------------------------------------------


def test_absent_spec_follows_the_settings(tmp_path: Path) -> None:
    assert parse_diversity(None, Settings(data_dir=tmp_path)).type == "none"
    configured = Settings(
        data_dir=tmp_path,
        diversity="cap",
        diversity_field="category",
        diversity_cap=3,
        diversity_lambda=0.4,
    )
    assert parse_diversity(None, configured) == DiversitySpec("cap", 0.4, "category", 3)
    # A request's own "none" switches a configured default off.
    assert parse_diversity("none", configured).type == "none"
    # A bare type takes its parameters from the settings.
    assert parse_diversity("mmr", configured).lambda_ == 0.4


def test_object_specs(settings: Settings) -> None:
    assert parse_diversity({"type": "mmr", "lambda": 0.5}, settings) == DiversitySpec("mmr", 0.5)
    assert parse_diversity({"type": "mmr", "lambda": 1}, settings).lambda_ == 1.0
    assert parse_diversity({"type": "cap", "field": "category", "max": 1}, settings) == (
        DiversitySpec("cap", field="category", max_per=1)
    )
    assert parse_diversity({"type": "cap"}, settings) == DiversitySpec("cap", field="brand")
    assert parse_diversity({"type": "none"}, settings).enabled is False


@pytest.mark.parametrize(
    ("raw", "needles"),
    [
        ("random", ["ext.shoprank.diversity", "'random'", "mmr", "cap", "none"]),
        (True, ["ext.shoprank.diversity", "True"]),
        (["mmr"], ["ext.shoprank.diversity", "object"]),
        ({"lambda": 0.5}, ["needs [type]", "lambda"]),
        ({"type": "MMR"}, ["ext.shoprank.diversity.type", "'MMR'"]),
        ({"type": "mmr", "lamda": 0.5}, ["'lamda'", "for type [mmr]", "allowed", "'lambda'"]),
        ({"type": "mmr", "max": 2}, ["'max'", "for type [mmr]"]),
        ({"type": "cap", "lambda": 0.5}, ["'lambda'", "for type [cap]", "'field'", "'max'"]),
        ({"type": "mmr", "lambda": 1.5}, ["ext.shoprank.diversity.lambda", "1.5", "0", "1"]),
        ({"type": "mmr", "lambda": "high"}, ["ext.shoprank.diversity.lambda", "'high'"]),
        ({"type": "mmr", "lambda": False}, ["ext.shoprank.diversity.lambda", "False"]),
        ({"type": "cap", "max": 0}, ["ext.shoprank.diversity.max", "at least 1", "0"]),
        ({"type": "cap", "max": 2.5}, ["ext.shoprank.diversity.max", "2.5"]),
        ({"type": "cap", "field": ""}, ["ext.shoprank.diversity.field", "''"]),
        ({"type": "cap", "field": 3}, ["ext.shoprank.diversity.field", "3"]),
    ],
)
def test_bad_specs_name_the_key_and_the_allowed_values(
    settings: Settings, raw: Any, needles: list[str]
) -> None:
    with pytest.raises(BadRequestError) as err:
        parse_diversity(raw, settings)
    for needle in needles:
        assert needle in str(err.value)


def test_errors_name_the_place_the_spec_came_from(settings: Settings) -> None:
    with pytest.raises(BadRequestError, match=r"\[diversity\.max\]"):
        parse_diversity({"type": "cap", "max": -1}, settings, where="diversity")


# -- MMR -----------------------------------------------------------------------------------

# a1/a2/a3 are near-duplicates (one direction), b and c point elsewhere.
VECTORS = {
    "a1": np.array([1.0, 0.0, 0.0], np.float32),
    "a2": np.array([0.99, 0.05, 0.0], np.float32),
    "a3": np.array([0.98, 0.0, 0.06], np.float32),
    "b": np.array([0.0, 1.0, 0.0], np.float32),
    "c": np.array([0.0, 0.0, 1.0], np.float32),
}
RANKED = [("a1", 10.0), ("a2", 9.5), ("a3", 9.0), ("b", 8.0), ("c", 7.0)]


def test_mmr_with_lambda_one_keeps_the_relevance_order() -> None:
    out = diversify(RANKED, DiversitySpec("mmr", lambda_=1.0), size=5, vectors=VECTORS)
    assert out == RANKED


def test_mmr_pushes_near_duplicates_apart() -> None:
    out = diversify(RANKED, DiversitySpec("mmr", lambda_=0.5), size=3, vectors=VECTORS)
    # a1 first (most relevant); then a2 would add nothing new: b and c, though less
    # relevant, come before the other two near-duplicates, which follow in their order.
    assert ids(out) == ["a1", "b", "c", "a2", "a3"]
    assert dict(out) == dict(RANKED)  # scores are kept: only the order changes
    before = intra_list_diversity(ids(RANKED)[:3], VECTORS)
    after = intra_list_diversity(ids(out)[:3], VECTORS)
    assert before < 0.01 and after > 0.6


def test_mmr_reorders_only_the_page_and_the_rest_follows_in_order() -> None:
    ranked = RANKED + [("d", 6.0), ("e", 5.0)]
    out = diversify(ranked, DiversitySpec("mmr", lambda_=0.3), size=2, vectors=VECTORS)
    assert ids(out)[:2] == ["a1", "b"]
    assert ids(out)[2:] == ["a2", "a3", "c", "d", "e"]


def test_mmr_products_without_a_vector_are_similar_to_nothing() -> None:
    vectors = {k: v for k, v in VECTORS.items() if k != "a2"}
    out = diversify(RANKED, DiversitySpec("mmr", lambda_=0.5), size=3, vectors=vectors)
    # a2 has no vector: not penalised, so its relevance beats b's after a1.
    assert ids(out)[:2] == ["a1", "a2"]
    # Without any vectors MMR has nothing to go on and keeps the order.
    assert diversify(RANKED, DiversitySpec("mmr", lambda_=0.5), size=3, vectors={}) == RANKED


def test_mmr_with_equal_scores_spreads_the_page() -> None:
    flat = [(pid, 1.0) for pid, _ in RANKED]
    out = diversify(flat, DiversitySpec("mmr", lambda_=0.7), size=3, vectors=VECTORS)
    assert set(ids(out)[:3]) == {"a1", "b", "c"}


def test_mmr_over_a_window_of_200() -> None:
    rng = np.random.default_rng(3)
    vectors = {f"p{i}": rng.normal(size=16).astype(np.float32) for i in range(200)}
    ranked = [(f"p{i}", 200.0 - i) for i in range(200)]
    out = diversify(ranked, DiversitySpec("mmr", lambda_=0.6), size=20, vectors=vectors)
    assert sorted(ids(out)) == sorted(ids(ranked))
    assert out[0] == ranked[0]
    assert intra_list_diversity(ids(out)[:20], vectors) > intra_list_diversity(
        ids(ranked)[:20], vectors
    )


# -- cap -----------------------------------------------------------------------------------

BRANDS = ["HP", "HP", "HP", "Canon", "hp", "Brother", "Canon", "Canon", "Epson", "HP"]
LIST = [(f"p{i}", 10.0 - i) for i in range(len(BRANDS))]
FACTS = {f"p{i}": {"brand": b} for i, b in enumerate(BRANDS)}


def brands(ranked: list[tuple[str, float]], n: int) -> list[str]:
    return [str(FACTS[pid]["brand"]).lower() for pid, _ in ranked[:n]]


def test_cap_never_puts_more_than_max_per_brand_on_the_page() -> None:
    out = diversify(LIST, DiversitySpec("cap", field="brand", max_per=2), size=6, facts=FACTS)
    # HP p0 p1, (p2 deferred), Canon p3, (p4 "hp" deferred: case does not matter),
    # Brother p5, Canon p6, (p7 deferred), Epson p8.
    assert ids(out)[:6] == ["p0", "p1", "p3", "p5", "p6", "p8"]
    assert max(brands(out, 6).count(b) for b in set(brands(out, 6))) == 2
    # The deferred follow in their order, then the rest.
    assert ids(out)[6:] == ["p2", "p4", "p7", "p9"]


def test_cap_fills_a_short_page_with_the_deferred() -> None:
    facts = {"a": {"brand": "X"}, "b": {"brand": "X"}, "c": {"brand": "X"}, "d": {"brand": "Y"}}
    ranked = [("a", 4.0), ("b", 3.0), ("c", 2.0), ("d", 1.0)]
    out = diversify(ranked, DiversitySpec("cap", max_per=1), size=3, facts=facts)
    # Only a and d pass the cap; the page of 3 would be short, so b fills in.
    assert ids(out) == ["a", "d", "b", "c"]


def test_cap_counts_every_value_of_a_multi_valued_field_and_never_caps_a_missing_one() -> None:
    facts: dict[str, dict[str, Any]] = {
        "a": {"category": ["Printers", "Office"]},
        "b": {"category": ["Office"]},  # Office is full after a
        "c": {"category": "Printers"},  # and so is Printers
        "d": {},
        "e": {"category": None},
        "f": {"category": "Ink"},
    }
    ranked = [(pid, 6.0 - i) for i, pid in enumerate("abcdef")]
    out = diversify(ranked, DiversitySpec("cap", field="category", max_per=1), size=4, facts=facts)
    assert ids(out) == ["a", "d", "e", "f", "b", "c"]


def test_cap_restarts_on_every_page() -> None:
    out = diversify(LIST, DiversitySpec("cap", max_per=1), size=6, facts=FACTS, page_size=3)
    # page 1: HP p0, Canon p3, Brother p5 (p1, p2, p4 deferred: HP is full); page 2 counts
    # afresh: HP p1 (p2 and p4 deferred), Canon p6 (p7 deferred), Epson p8.
    assert ids(out)[:3] == ["p0", "p3", "p5"]
    assert ids(out)[3:6] == ["p1", "p6", "p8"]
    for page in (out[:3], out[3:6]):
        names = brands(page, 3)
        assert len(set(names)) == 3


def test_cap_reads_a_dotted_field() -> None:
    facts = {pid: {"attrs": {"maker": b}} for pid, b in zip("abc", ["X", "X", "Y"], strict=True)}
    ranked = [("a", 3.0), ("b", 2.0), ("c", 1.0)]
    out = diversify(
        ranked, DiversitySpec("cap", field="attrs.maker", max_per=1), size=2, facts=facts
    )
    assert ids(out) == ["a", "c", "b"]


def test_none_and_empty_inputs_keep_the_order() -> None:
    assert diversify(LIST, DiversitySpec("none"), size=5, facts=FACTS) == LIST
    assert diversify([], DiversitySpec("mmr"), size=5, vectors=VECTORS) == []
    assert diversify(LIST, DiversitySpec("cap"), size=0, facts=FACTS) == LIST
    assert diversify(LIST, DiversitySpec("cap"), size=5) == LIST  # no facts: nothing to cap


# -- intra-list diversity ------------------------------------------------------------------


def test_intra_list_diversity() -> None:
    assert intra_list_diversity(["b", "c"], VECTORS) == pytest.approx(1.0)
    assert intra_list_diversity(["a1", "a1"], VECTORS) == 0.0  # one product, counted once
    assert intra_list_diversity(["b", "c", "missing"], VECTORS) == pytest.approx(1.0)
    assert intra_list_diversity(["b"], VECTORS) == 0.0
    opposite = {"x": np.array([1.0, 0.0]), "y": np.array([-1.0, 0.0])}
    assert intra_list_diversity(["x", "y"], opposite) == pytest.approx(2.0)
