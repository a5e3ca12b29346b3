"""Spelling correction in `full` mode: shoppers' typos are corrected against the index's
own words, known words, brands and SKUs never are, and the search says what it corrected.

The index is built here from a handful of products, so what a word should become is read
off the titles written below, not from the corrector."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shoprank.plugin.backends.embedded.backend import EmbeddedBackend
from shoprank.plugin.search import SearchService
from shoprank.rerankers.intent.spelling import (
    Correction,
    Spelling,
    SpellingConfig,
    _Word,
    choose,
    correct,
    correct_body,
    keyboard_neighbours,
    typo_cost,
)
from shoprank.settings import Settings

from .conftest import build_index, hit_ids

TITLES = [
    *(f"Elongated Toilet Seat {i}" for i in range(6)),
    *(f"French Door Refrigerator {i}" for i in range(6)),
    *(f"Wet Dry Shop Vacuum with Suction Hose {i}" for i in range(6)),
    *(f"Baroque Picture Frame {i}" for i in range(5)),
    *(f"Gas Grill with Side Burner {i}" for i in range(3)),
    "Greenstone 8 ft. x 6 ft. Cedar Shed",
    "Handy Home 10 ft. x 8 ft. Cedar Shed",
    "Premium 2x4 Stud",
    "Fluke Digital Multimeter",
    "Fluke Clamp Meter",
    "Rust-Oleum Spray Paint",
    "Rust-Oleum Primer",
    "Kohler Toilet Tank Lever",
    "Kohler Faucet",
]
DOCS: list[dict[str, Any]] = [
    {
        "_id": str(i),
        "id": str(i),
        "title": t,
        "brand": t.split()[0] if t.startswith(("Fluke", "Kohler", "Rust")) else None,
    }
    for i, t in enumerate(TITLES)
]
DOCS.append(
    {
        "_id": "desc",
        "id": "desc",
        "title": "Drain Cleaner",
        "description": "clears a clogged drain fast",
    }
)
for doc in DOCS:
    if doc.get("brand") is None:
        doc.pop("brand", None)


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> EmbeddedBackend:
    found, _ = build_index(tmp_path_factory.mktemp("spelling"), DOCS)
    return found


CONFIG = SpellingConfig(fields=("title", "description"))


def test_a_neighbouring_key_a_swap_or_a_doubled_letter_cost_half_an_edit() -> None:
    assert keyboard_neighbours("s", "a") and keyboard_neighbours("k", "o")
    assert not keyboard_neighbours("p", "a")
    assert typo_cost("lsmp", "lamp") == 0.5  # s is beside a
    assert typo_cost("lpmp", "lamp") == 1.0  # p is not
    assert typo_cost("toliet", "toilet") == 0.5  # swapped pair
    assert typo_cost("walll", "wall") == 0.5  # doubled letter
    assert typo_cost("toliet", "toilets") > typo_cost("toliet", "toilet")


def test_the_cheapest_candidate_wins_and_a_rare_word_a_full_edit_away_does_not() -> None:
    word = _Word("toliet", 0, 6, {"toilet": 6, "toilets": 500})
    found = choose(word, CONFIG)
    assert found is not None and found.correction == "toilet"
    # One full edit to a word two products use: as likely another word the index lacks.
    assert choose(_Word("fluid", 0, 5, {"fluke": 2}), CONFIG) is None
    assert choose(_Word("fluid", 0, 5, {"fluke": 9}), CONFIG) is not None
    # Short words allow only a slip; two edits are too many for a 6-letter word.
    assert choose(_Word("bolt", 0, 4, {"boat": 50}), CONFIG) is None
    assert choose(_Word("pipies", 0, 6, {"pipe": 500}), CONFIG) is None


def test_typos_are_corrected_against_the_index(backend: EmbeddedBackend) -> None:
    found = correct(backend, "products", "Toliet seat", CONFIG)
    assert found.corrected == "toilet seat"
    assert [(c.word, c.correction) for c in found.corrections] == [("Toliet", "toilet")]
    found = correct(backend, "products", "french door refrigirator", CONFIG)
    assert found.corrected == "french door refrigerator"
    found = correct(backend, "products", "shop vacum sucktion hose", CONFIG)
    assert found.corrected == "shop vacuum suction hose"


def test_a_candidate_no_product_holds_with_the_other_words_is_not_the_meant_one(
    backend: EmbeddedBackend,
) -> None:
    # "baroque" is one edit from "barbque" and five products use it, but none of them is
    # a grill: the shopper meant barbecue, a word this index lacks.
    assert not correct(backend, "products", "barbque grill", CONFIG).changed
    assert correct(backend, "products", "barbque frame", CONFIG).corrected == "baroque frame"
    # One word alone has no context to check against.
    assert correct(backend, "products", "barbque", CONFIG).corrected == "baroque"


def test_sizes_typed_without_spaces_are_searched_as_the_catalog_writes_them(
    backend: EmbeddedBackend, tmp_path: Path
) -> None:
    found = correct(backend, "products", "8x6 cedar shed", CONFIG)
    assert found.corrected == "8 x 6 cedar shed"
    assert [c.kind for c in found.corrections] == ["dimensions"]
    # A size some title writes as typed stays as it is.
    assert not correct(backend, "products", "2x4 stud", CONFIG).changed
    service = SearchService(backend=backend, settings=Settings(data_dir=tmp_path, search_log=False))
    full = _search(service, "8x6 shed", "full")
    shed = TITLES.index("Greenstone 8 ft. x 6 ft. Cedar Shed")
    assert hit_ids(full)[0] == str(shed)
    # Not a typo to announce: no "Showing results for"; the rewrite records it.
    assert "spelling" not in full["_shoprank"]
    assert full["_shoprank"]["rewrite"][0]["after"] == "8 x 6 shed"


def test_known_words_brands_skus_and_numbers_are_never_corrected(
    backend: EmbeddedBackend,
) -> None:
    # Known only in another spelling field ("clogged" is in a description), or as another
    # form of a title word ("seats").
    assert not correct(backend, "products", "clogged toilet", CONFIG).changed
    assert not correct(backend, "products", "toilet seats", CONFIG).changed
    # A brand word the catalog sells is never corrected, even one slip from a title word.
    assert correct(backend, "products", "sucton hose", CONFIG).corrected == "suction hose"
    brands = frozenset({"sucton"})
    assert not correct(backend, "products", "sucton hose", CONFIG, brands=brands).changed
    assert not correct(backend, "products", "TL-7000 seat", CONFIG).changed
    assert not correct(backend, "products", "toilet 10000", CONFIG).changed


def test_the_body_gets_the_corrections_in_its_text_queries_only() -> None:
    spelling = Spelling(
        "toliet seat", "toilet seat", (Correction("toliet", "toilet", 0.5, 6, 0, 6),)
    )
    body = {
        "query": {
            "bool": {
                "must": [{"multi_match": {"query": "Toliet seat", "fields": ["title"]}}],
                "should": [{"match": {"title": {"query": "toliet", "boost": 2}}}],
                "filter": [{"term": {"tag": "toliet"}}],
            }
        },
        "aggs": {"t": {"terms": {"field": "tag", "include": "toliet"}}},
    }
    out = correct_body(body, spelling)
    assert out["query"]["bool"]["must"][0]["multi_match"]["query"] == "toilet seat"
    assert out["query"]["bool"]["should"][0]["match"]["title"] == {"query": "toilet", "boost": 2}
    assert out["query"]["bool"]["filter"] == body["query"]["bool"]["filter"]
    assert out["aggs"] == body["aggs"]
    assert body["query"]["bool"]["must"][0]["multi_match"]["query"] == "Toliet seat"


def _search(service: SearchService, text: str, mode: str) -> dict[str, Any]:
    body = {
        "query": {"multi_match": {"query": text, "fields": ["title", "description"]}},
        "size": 10,
        "ext": {"shoprank": {"mode": mode, "explain": True}},
    }
    return service.search("products", body)


def test_full_mode_searches_the_corrected_words_and_says_so(
    backend: EmbeddedBackend, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path, search_log=False)
    service = SearchService(backend=backend, settings=settings)
    toilets = {str(i) for i, t in enumerate(TITLES) if "Toilet" in t}
    lexical = _search(service, "toliet", "lexical")
    full = _search(service, "toliet", "full")
    # As typed, nothing matches; corrected, every toilet product does.
    assert hit_ids(lexical) == []
    assert set(hit_ids(full)) == toilets
    assert full["_shoprank"]["spelling"] == {
        "original": "toliet",
        "corrected": "toilet",
        "corrections": [{"word": "toliet", "correction": "toilet"}],
    }
    assert full["_shoprank"]["rewrite"][0]["action"] == "spelling"
    assert "spelling" not in lexical.get("_shoprank", {})
    # A query of known words is searched as typed.
    assert "spelling" not in _search(service, "toilet seat", "full").get("_shoprank", {})
    off = SearchService(
        backend=backend, settings=Settings(data_dir=tmp_path, search_log=False, spelling=False)
    )
    assert "spelling" not in _search(off, "toliet seat", "full").get("_shoprank", {})


def test_a_query_the_corrections_cannot_go_into_is_searched_and_shown_as_typed(
    backend: EmbeddedBackend, tmp_path: Path
) -> None:
    service = SearchService(backend=backend, settings=Settings(data_dir=tmp_path, search_log=False))
    body = {
        "query": {"query_string": {"query": "toliet"}},
        "ext": {"shoprank": {"mode": "full", "explain": True}},
    }
    found = service.search("products", body)
    assert "spelling" not in found["_shoprank"]
    assert not [a for a in found["_shoprank"].get("rewrite", []) if a["action"] == "spelling"]


def test_every_occurrence_of_a_repeated_typo_is_corrected_once(backend: EmbeddedBackend) -> None:
    found = correct(backend, "products", "Toliet seat toliet", CONFIG)
    assert found.corrected == "toilet seat toilet"
    assert [(c.word, c.correction) for c in found.corrections] == [("Toliet", "toilet")]


def test_a_spelling_field_the_index_lacks_leaves_the_others_working(
    backend: EmbeddedBackend, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path, search_log=False, spelling_fields=["title", "nosuch"])
    service = SearchService(backend=backend, settings=settings)
    for _ in range(2):  # the second search uses the fields found to work
        found = _search(service, "toliet", "full")
        assert found["_shoprank"]["spelling"]["corrected"] == "toilet"


class _Counting:
    """The real backend, counting the requests spelling makes of it."""

    def __init__(self, backend: EmbeddedBackend) -> None:
        self.backend = backend
        self.requests = 0

    def search(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        self.requests += 1
        return self.backend.search(index, body)

    def msearch(self, index: str, bodies: list[dict[str, Any]]) -> list[Any]:
        self.requests += 1
        return self.backend.msearch(index, bodies)


def test_words_found_to_need_nothing_are_not_asked_about_again(backend: EmbeddedBackend) -> None:
    counting = _Counting(backend)
    settled: set[str] = set()
    ask = lambda text: correct(counting, "products", text, CONFIG, settled=settled)  # type: ignore[arg-type]  # noqa: E731

    assert ask("elongated toilet seat").corrected == "elongated toilet seat"
    asked = counting.requests
    assert asked >= 1
    # The same known words in another order and another query: nothing to ask.
    assert ask("toilet seat elongated").corrected == "toilet seat elongated"
    assert counting.requests == asked
    # A typo among them is still asked about and corrected, every time.
    for _ in range(2):
        before = counting.requests
        assert ask("toliet seat").corrected == "toilet seat"
        assert counting.requests > before
    # A size typed without spaces is always checked, among settled words too.
    ask("cedar shed")
    before = counting.requests
    assert ask("cedar shed 8x6").corrected == "cedar shed 8 x 6"
    assert counting.requests > before
