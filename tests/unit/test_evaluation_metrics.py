import math

import pytest

from shoprank.errors import BadRequestError
from shoprank.evaluation.metrics import load_judgments, mrr, ndcg_at_k, recall_at_k


def test_ndcg_is_one_for_the_ideal_order_and_lower_when_swapped():
    grades = {"a": 3, "b": 1, "c": 0}
    assert ndcg_at_k(["a", "b", "c"], grades) == pytest.approx(1.0)
    swapped = ndcg_at_k(["b", "a", "c"], grades)
    # (2^1-1)/1 + (2^3-1)/log2(3) over (2^3-1)/1 + (2^1-1)/log2(3)
    expected = (1 + 7 / math.log2(3)) / (7 + 1 / math.log2(3))
    assert swapped == pytest.approx(expected)


def test_ndcg_counts_judged_products_that_were_not_retrieved():
    assert ndcg_at_k(["a"], {"a": 1, "z": 3}) < 1.0
    assert ndcg_at_k(["x"], {"a": 0}) == 0.0


def test_mrr_and_recall():
    grades = {"b": 2, "d": 1}
    assert mrr(["a", "b", "c", "d"], grades) == 0.5
    assert recall_at_k(["a", "b", "c"], grades, k=3) == 0.5
    assert mrr(["a"], grades) == 0.0


def test_load_judgments_csv_and_errors(tmp_path):
    good = tmp_path / "j.csv"
    good.write_text("query,product_id,grade\nhp toner,p1,3\nhp toner,p2,0\nmouse,p9,1\n")
    assert load_judgments(good) == {"hp toner": {"p1": 3.0, "p2": 0.0}, "mouse": {"p9": 1.0}}
    bad = tmp_path / "bad.csv"
    bad.write_text("hp toner,p1,high\n")
    with pytest.raises(BadRequestError, match="bad.csv:1"):
        load_judgments(bad)


def test_condensed_ndcg_is_ndcg_of_the_judged_hits_only():
    from shoprank.evaluation.metrics import condensed_ndcg_at_k

    grades = {"a": 3, "b": 1}
    assert condensed_ndcg_at_k(["x", "a", "y", "b"], grades) == pytest.approx(1.0)
    assert condensed_ndcg_at_k(["b", "x", "a"], grades) == pytest.approx(
        ndcg_at_k(["b", "a"], grades)
    )
    assert condensed_ndcg_at_k(["x", "y"], grades) == 0.0
