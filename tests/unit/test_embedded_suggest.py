"""ES `suggest` on the embedded backend: autocomplete (`completion`) and did-you-mean
(`term`, `phrase`), in the response shape frontends and elasticsearch-dsl read.

Expectations are computed in the test from the raw Icecat rows (which titles start with
the prefix, how many titles hold a word) or written out from the corpus in `conftest.py`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from shoprank.errors import BadRequestError, UnsupportedQueryError
from shoprank.plugin.backends.embedded.backend import EmbeddedBackend

from .conftest import icecat_index

ROWS = 2000
Icecat = tuple[EmbeddedBackend, list[dict[str, Any]]]


@pytest.fixture(scope="module")
def icecat(tmp_path_factory: pytest.TempPathFactory) -> Icecat:
    return icecat_index(tmp_path_factory.mktemp("icecat-suggest"), ROWS)


def suggest(backend: EmbeddedBackend, spec: dict[str, Any], **extra: Any) -> dict[str, Any]:
    response = backend.search("products", {"size": 0, "suggest": spec, **extra})
    result: dict[str, Any] = response["suggest"]
    return result


def title_words(row: dict[str, Any]) -> set[str]:
    return {w.lower() for w in re.findall(r"[^\W_]+", row["title"])}


def form(text: str) -> str:
    return re.sub(r"[\W_]+", " ", text.lower()).lstrip()


# -- completion ----------------------------------------------------------------------------


def test_completion_returns_titles_starting_with_the_prefix(icecat: Icecat) -> None:
    backend, rows = icecat
    expected = {r["_id"] for r in rows if form(r["title"]).startswith("hp laserjet")}
    assert len(expected) > 5
    got = suggest(
        backend,
        {"ac": {"prefix": "HP LaserJet", "completion": {"field": "title", "size": 1000}}},
    )
    (entry,) = got["ac"]
    assert (entry["text"], entry["offset"], entry["length"]) == ("HP LaserJet", 0, 11)
    assert {o["_id"] for o in entry["options"]} == expected
    first = entry["options"][0]
    assert set(first) == {"text", "_index", "_id", "_score", "_source"}
    assert first["_source"]["title"] == first["text"]
    assert first["_index"].startswith("products")
    few = suggest(backend, {"ac": {"prefix": "hp laserjet", "completion": {"field": "title"}}})
    assert len(few["ac"][0]["options"]) == 5  # ES's default size


def test_completion_skip_duplicates_and_source_filtering(icecat: Icecat) -> None:
    backend, rows = icecat
    by_title: dict[str, int] = {}
    for r in rows:
        by_title[r["title"]] = by_title.get(r["title"], 0) + 1
    title = next(t for t, n in sorted(by_title.items()) if n > 1 and len(t) > 12)
    prefix = title[:12]
    matching = [r["title"] for r in rows if form(r["title"]).startswith(form(prefix))]
    spec = {"field": "title.suggest", "size": 1000}  # an undeclared sub-field reads `title`
    plain = suggest(backend, {"s": {"prefix": prefix, "completion": spec}}, _source=False)
    assert len(plain["s"][0]["options"]) == len(matching)
    assert "_source" not in plain["s"][0]["options"][0]
    deduped = suggest(
        backend, {"s": {"prefix": prefix, "completion": {**spec, "skip_duplicates": True}}}
    )
    texts = [o["text"] for o in deduped["s"][0]["options"]]
    assert sorted(texts) == sorted(set(matching))


def test_completion_fuzzy_forgives_a_typo(icecat: Icecat) -> None:
    backend, rows = icecat
    expected = {r["_id"] for r in rows if form(r["title"]).startswith("hp laserjet")}
    typo = {"prefix": "hp lsaerjet", "completion": {"field": "title", "size": 1000}}
    assert suggest(backend, {"s": typo})["s"][0]["options"] == []
    fuzzy = {**typo, "completion": {**typo["completion"], "fuzzy": {"fuzziness": 2}}}
    got = {o["_id"] for o in suggest(backend, {"s": fuzzy})["s"][0]["options"]}
    assert expected <= got
    short = {"prefix": "hq", "completion": {"field": "title", "fuzzy": {"min_length": 3}}}
    assert suggest(backend, {"s": short})["s"][0]["options"] == []  # too short to fuzz


def test_completion_from_a_declared_completion_field_with_weights(tmp_path: Path) -> None:
    mapping = {
        "properties": {
            "title": {"type": "text", "fields": {"ac": {"type": "completion"}}},
            "suggest": {"type": "completion"},
        }
    }
    docs = [
        {
            "_id": "a",
            "title": "Nikon D750",
            "suggest": {"input": ["Nikon D750", "D750"], "weight": 2},
        },
        {"_id": "b", "title": "Nikon Z6", "suggest": [{"input": "Nikon Z6", "weight": 9}]},
        {"_id": "c", "title": "Nikkor lens", "suggest": "Nikkor lens"},
    ]
    backend = EmbeddedBackend(tmp_path)
    gen = backend.create_generation("products", mapping)
    backend.bulk_upsert(gen, docs, None)
    backend.commit(gen, ready=True)
    backend.swap_alias("products", gen)
    got = suggest(backend, {"s": {"prefix": "nik", "completion": {"field": "suggest"}}})
    options = [(o["_id"], o["text"], o["_score"]) for o in got["s"][0]["options"]]
    assert options == [("b", "Nikon Z6", 9.0), ("a", "Nikon D750", 2.0), ("c", "Nikkor lens", 1.0)]
    by_input = suggest(backend, {"s": {"prefix": "d7", "completion": {"field": "suggest"}}})
    assert [o["_id"] for o in by_input["s"][0]["options"]] == ["a"]
    # a completion sub-field reads its parent's value
    sub = suggest(backend, {"s": {"prefix": "nikon z", "completion": {"field": "title.ac"}}})
    assert [o["text"] for o in sub["s"][0]["options"]] == ["Nikon Z6"]
    with pytest.raises(BadRequestError, match="suggest"):  # not a did-you-mean field
        suggest(backend, {"s": {"text": "nikon", "term": {"field": "suggest"}}})


# -- term and phrase -----------------------------------------------------------------------


def test_term_suggester_corrects_a_misspelling(icecat: Icecat) -> None:
    backend, rows = icecat
    freq = sum(1 for r in rows if "cartridge" in title_words(r))
    assert freq > 0 and not any("cartrige" in title_words(r) for r in rows)
    got = suggest(backend, {"text": "hp cartrige", "fix": {"term": {"field": "title"}}})
    hp, cartrige = got["fix"]
    assert (hp["text"], hp["offset"], hp["length"], hp["options"]) == ("hp", 0, 2, [])
    assert (cartrige["text"], cartrige["offset"], cartrige["length"]) == ("cartrige", 3, 8)
    best = cartrige["options"][0]
    assert best == {"text": "cartridge", "score": pytest.approx(1 - 1 / 8), "freq": freq}


def test_phrase_suggester_corrects_the_phrase(icecat: Icecat) -> None:
    backend, _ = icecat
    spec = {
        "text": "hp cartrige",
        "dym": {"phrase": {"field": "title", "highlight": {"pre_tag": "<i>", "post_tag": "</i>"}}},
    }
    (entry,) = suggest(backend, spec)["dym"]
    assert (entry["text"], entry["offset"], entry["length"]) == ("hp cartrige", 0, 11)
    best = entry["options"][0]
    assert best["text"] == "hp cartridge"
    assert best["highlighted"] == "hp <i>cartridge</i>"
    assert 0 < best["score"] < 1
    # a phrase already spelled as the catalog spells it is not "corrected"
    right = {"text": "hp cartridge", "dym": {"phrase": {"field": "title"}}}
    assert suggest(backend, right)["dym"][0]["options"] == []


def test_term_suggest_modes_and_sort(search: Any, corpus_backend: EmbeddedBackend) -> None:
    # Titles of the corpus: "mouse" is in 3, "wireless" in 2, "laptop" in 3.
    def options(text: str, **opts: Any) -> list[dict[str, Any]]:
        spec = {"s": {"text": text, "term": {"field": "title", **opts}}}
        return list(suggest(corpus_backend, spec)["s"][0]["options"])

    assert options("mouse") == []  # missing: known words are not corrected
    assert options("mouse", suggest_mode="always", max_term_freq=10) == []  # nothing close
    assert [o["text"] for o in options("lapto")] == ["laptop"]
    assert options("lapto")[0]["freq"] == 3
    assert [o["text"] for o in options("wirelss", sort="frequency")] == ["wireless"]


def test_suggest_alone_and_next_to_a_query(icecat: Icecat) -> None:
    backend, _ = icecat
    body = {
        "query": {"match": {"title": "toner"}},
        "size": 2,
        "suggest": {"text": "tonr", "t": {"term": {"field": "title"}}},
    }
    response = backend.search("products", body)
    assert len(response["hits"]["hits"]) == 2
    assert response["suggest"]["t"][0]["options"][0]["text"] == "toner"


# -- refused -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ({"s": {"prefix": "hp", "completion": {"field": "title", "contexts": {}}}}, "contexts"),
        ({"s": {"regex": "h.*", "completion": {"field": "title"}}}, "regex"),
        ({"s": {"text": "hp", "phrase": {"field": "title", "collate": {}}}}, "collate"),
        ({"s": {"text": "hp", "term": {"field": "title", "analyzer": "x"}}}, "analyzer"),
        ({"s": {"text": "hp", "term": {"field": "title", "colour": 1}}}, "colour"),
        (
            {"s": {"text": "hp", "phrase": {"field": "title", "smoothing": {"laplace": {}}}}},
            "smoothing",
        ),
    ],
)
def test_options_outside_the_subset_are_a_400_naming_them(
    corpus_backend: EmbeddedBackend, spec: dict[str, Any], named: str
) -> None:
    with pytest.raises(UnsupportedQueryError, match=named):
        suggest(corpus_backend, spec)


def test_malformed_suggestions_are_a_400(corpus_backend: EmbeddedBackend) -> None:
    for spec in (
        {"s": {"text": "hp"}},
        {"s": {"text": "hp", "term": {"field": "price"}}},
        {"s": {"term": {"field": "title"}}},
        {"s": {"text": "hp", "term": {"field": "title", "max_edits": 3}}},
    ):
        with pytest.raises(BadRequestError):
            suggest(corpus_backend, spec)
