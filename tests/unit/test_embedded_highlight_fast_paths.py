"""Highlights and facets of a Search UI page where the embedded backend takes its shortcuts:
one-pass marking of a one-fragment value, the word scan of text whose only non-ASCII
characters are symbols, facets fetched in one pass under `filter` wrappers.

Each expected answer is written out from the documents below: what a shopper sees."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shoprank.plugin.backends.embedded.backend import EmbeddedBackend
from shoprank.plugin.backends.embedded.highlight import TermIds, compile_matcher, value_matches
from shoprank.plugin.backends.embedded.highlight_terms import query_clauses
from shoprank.plugin.backends.embedded.tokens import WORD, stem

from .conftest import build_index

DOCS: list[dict[str, Any]] = [
    {"_id": "1", "title": "HP® LaserJet™ toner – black", "brand": "HP"},
    {"_id": "2", "title": "Café crème toner", "brand": "Moka"},
    {"_id": "3", "title": "Reprint prints of Printing history", "brand": "Atlas"},
    {"_id": "4", "title": "usb_cable CABLE Cable cable", "brand": "Atlas"},
    {"_id": "5", "title": "Toner " + "very long words " * 8 + "toner", "brand": "HP"},
    {"_id": "6", "title": ["Black toner", "Spare toner tray"], "brand": "Canon"},
    {"_id": "7", "title": "Ink for the “LaserJet” line, 2× faster", "brand": "Canon"},
    {"_id": "8", "title": "Tonerless ink", "brand": "Canon"},
]


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> EmbeddedBackend:
    root: Path = tmp_path_factory.mktemp("fast-paths")
    built, _ = build_index(root, DOCS, dims=0)
    return built


def title_marks(backend: EmbeddedBackend, query: dict[str, Any], **field: Any) -> dict[str, Any]:
    body = {"query": query, "size": 20, "highlight": {"fields": {"title": field}}}
    hits = backend.search("products", body)["hits"]["hits"]
    return {h["_id"]: h["highlight"]["title"] for h in hits if "highlight" in h}


def test_symbols_outside_ascii_leave_the_words_around_them_marked(
    backend: EmbeddedBackend,
) -> None:
    got = title_marks(backend, {"match": {"title": "laserjet toner"}})
    assert got["1"] == ["HP® <em>LaserJet</em>™ <em>toner</em> – black"]
    assert got["7"] == ["Ink for the “<em>LaserJet</em>” line, 2× faster"]


def test_letters_outside_ascii_are_words_of_their_own(backend: EmbeddedBackend) -> None:
    got = title_marks(backend, {"match": {"title": "toner"}})
    assert got["2"] == ["Café crème <em>toner</em>"]


def test_a_term_inside_a_longer_word_is_not_marked(backend: EmbeddedBackend) -> None:
    # "prints" and "Printing" stem to "print"; "Reprint" and "Tonerless" are other words.
    got = title_marks(backend, {"match": {"title": "print"}})
    assert got == {"3": ["Reprint <em>prints</em> of <em>Printing</em> history"]}
    assert "8" not in title_marks(backend, {"match": {"title": "toner"}})


def test_case_and_underscores_mark_as_the_index_splits_words(backend: EmbeddedBackend) -> None:
    got = title_marks(backend, {"match": {"title": "cable"}})
    assert got == {"4": ["usb_<em>cable</em> <em>CABLE</em> <em>Cable</em> <em>cable</em>"]}


def test_a_long_value_is_cut_into_fragments_or_kept_whole(backend: EmbeddedBackend) -> None:
    long_title = DOCS[4]["title"]
    cut = title_marks(backend, {"match": {"title": "toner"}}, fragment_size=30)["5"]
    # The last window would begin inside "long": it begins at the next word.
    assert cut == [
        "<em>Toner</em> very long words very",
        "words very long words <em>toner</em>",
    ]
    whole = title_marks(backend, {"match": {"title": "toner"}}, number_of_fragments=0)["5"]
    assert whole == ["<em>Toner</em>" + long_title[5:-5] + "<em>toner</em>"]


def test_each_value_of_a_list_is_its_own_fragment(backend: EmbeddedBackend) -> None:
    got = title_marks(backend, {"match": {"title": "toner"}})
    assert got["6"] == ["Black <em>toner</em>", "Spare <em>toner</em> tray"]


def test_a_term_with_a_space_marks_no_word(backend: EmbeddedBackend) -> None:
    assert title_marks(backend, {"term": {"title": "toner tray"}}) == {}


def test_wrapped_facets_count_what_plain_facets_count(backend: EmbeddedBackend) -> None:
    facets = {"brand": {"terms": {"field": "brand", "size": 2}}}
    wrapped = {
        "brand": {"filter": {"bool": {"must": []}}, "aggs": facets},
        "all": {"filter": {"match_all": {}}, "aggs": facets},
    }
    query = {"match": {"title": "toner ink"}}
    plain = backend.search("products", {"query": query, "size": 0, "aggs": facets})
    both = backend.search("products", {"query": query, "size": 0, "aggs": wrapped})
    # Canon 3 (6, 7, 8), then HP and Moka tie at 2 and 1... HP has 1 and 5: 2; key order.
    expected = {
        "doc_count_error_upper_bound": 0,
        "sum_other_doc_count": 1,
        "buckets": [{"key": "Canon", "doc_count": 3}, {"key": "HP", "doc_count": 2}],
    }
    assert plain["aggregations"]["brand"] == expected
    for name in ("brand", "all"):
        assert both["aggregations"][name] == {"doc_count": 6, "brand": expected}


def test_ties_at_the_cut_go_to_the_smaller_key(backend: EmbeddedBackend) -> None:
    aggs = {"b": {"terms": {"field": "brand", "size": 2, "order": [{"_count": "desc"}]}}}
    got = backend.search("products", {"size": 0, "aggs": aggs})["aggregations"]["b"]
    # Canon 3, then Atlas and HP tie at 2: Atlas; Moka (1) and HP (2) are the rest.
    assert got["buckets"] == [{"key": "Canon", "doc_count": 3}, {"key": "Atlas", "doc_count": 2}]
    assert got["sum_other_doc_count"] == 3


def test_metrics_and_buckets_answer_in_the_order_asked(backend: EmbeddedBackend) -> None:
    aggs = {
        "brands": {"terms": {"field": "brand"}, "meta": {"shown": "side"}},
        "n": {"value_count": {"field": "brand"}},
        "wrapped": {"filter": {"bool": {"must": []}}, "aggs": {"m": {"max": {"field": "price"}}}},
    }
    got = backend.search("products", {"size": 0, "aggs": aggs})["aggregations"]
    assert list(got) == ["brands", "n", "wrapped"]
    assert list(got["brands"]) == [
        "meta",
        "doc_count_error_upper_bound",
        "sum_other_doc_count",
        "buckets",
    ]
    assert got["n"] == {"value": 8}


TEXTS = [
    "HP® LaserJet™ Pro – 2× faster “prints”",
    "Reprinted PRINTERS print_heads printing",
    "Café crème, Øresund dock; usb-c cable_x",
    "a1b2 12abc abc12 x-ray X-RAYS rays",
    "",
]


@pytest.mark.parametrize(
    "query",
    [
        {"match": {"title": "printer prints"}},
        {"match": {"title": "ray cable"}},
        {"match_bool_prefix": {"title": "usb ca"}},
        {"prefix": {"title": "x-r"}},
        {"term": {"title": "Printing"}},
    ],
)
def test_the_word_scan_marks_what_stemming_every_word_marks(query: dict[str, Any]) -> None:
    for text in TEXTS:
        matcher = compile_matcher(query_clauses(query), "text", TermIds())
        # Every word of the text, stemmed and looked up: the reference the scan shortens.
        reference = []
        for found in WORD.finditer(text):
            term = stem(found.group())
            tid = matcher.term_id(term) if term else -1
            if tid >= 0:
                reference.append((found.start(), found.end(), tid))
        assert value_matches(text, matcher) == reference, text
