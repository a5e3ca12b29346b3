"""ES `highlight` on the embedded backend: what a Searchkit / Search UI result list shows.

Expected fragments are written out from the corpus table in `conftest.py`, or computed
in the test from the raw Icecat rows (which titles hold the word), never copied from a run.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from shoprank.errors import BadRequestError, UnsupportedQueryError
from shoprank.plugin.backends.embedded.backend import EmbeddedBackend

from .conftest import build_index, icecat_index

ROWS = 2000


def marks(response: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    """`_id` → the hit's `highlight` (hits without one are left out)."""
    return {h["_id"]: h["highlight"] for h in response["hits"]["hits"] if "highlight" in h}


def hl(search: Any, query: dict[str, Any], highlight: dict[str, Any], **extra: Any) -> Any:
    return marks(search({"query": query, "highlight": highlight, **extra}))


# -- tags, fragments, fields ---------------------------------------------------------------


def test_pre_and_post_tags_wrap_the_query_terms(search: Any) -> None:
    got = hl(
        search,
        {"match": {"title": "laptop"}},
        {"pre_tags": ["<b>"], "post_tags": ["</b>"], "fields": {"title": {}}},
    )
    assert got == {
        "1": {"title": ["HP Pavilion <b>laptop</b>"]},
        "3": {"title": ["Dell XPS <b>laptop</b> silver"]},
        "5": {"title": ["Lenovo ThinkPad <b>laptop</b>"]},
    }


def test_default_tags_are_em_and_fields_may_be_a_list(search: Any) -> None:
    got = hl(search, {"match": {"title": "mouse"}}, {"fields": [{"title": {}}]})
    assert got["2"] == {"title": ["HP wireless <em>mouse</em>"]}
    assert set(got) == {"2", "4", "8"}


def test_several_tags_are_given_out_term_by_term(search: Any) -> None:
    got = hl(
        search,
        {"match": {"title": {"query": "wireless mouse", "operator": "and"}}},
        {"pre_tags": ["<a>", "<b>"], "post_tags": ["</a>", "</b>"], "fields": {"title": {}}},
    )
    assert got["2"] == {"title": ["HP <a>wireless</a> <b>mouse</b>"]}


def test_stemmed_query_marks_every_inflection(tmp_path: Path) -> None:
    docs = [
        {"_id": "a", "title": "Cartridges for HP printers", "description": "One cartridge"},
        {"_id": "b", "title": "Printer cable", "description": "Prints fast"},
    ]
    backend, _ = build_index(tmp_path, docs)
    got = marks(
        backend.search(
            "products",
            {
                "query": {"match": {"title": "printer cartridge"}},
                "highlight": {"fields": {"*": {}}},
            },
        )
    )
    # description is not queried (require_field_match), so only titles are marked.
    assert got == {
        "a": {"title": ["<em>Cartridges</em> for HP <em>printers</em>"]},
        "b": {"title": ["<em>Printer</em> cable"]},
    }


def test_number_of_fragments_zero_returns_the_whole_value(tmp_path: Path) -> None:
    filler = "plain words that say nothing much " * 6
    text = f"A laptop bag. {filler}And a second laptop sleeve at the end."
    backend, _ = build_index(tmp_path, [{"_id": "x", "title": "bag", "description": text}])
    body = {"query": {"match": {"description": "laptop"}}}
    whole = backend.search(
        "products",
        {**body, "highlight": {"fields": {"description": {"number_of_fragments": 0}}}},
    )
    assert marks(whole)["x"]["description"] == [text.replace("laptop", "<em>laptop</em>")]

    cut = backend.search(
        "products",
        {**body, "highlight": {"fields": {"description": {"fragment_size": 30}}}},
    )
    fragments = marks(cut)["x"]["description"]
    assert len(fragments) == 2
    for fragment in fragments:
        plain = fragment.replace("<em>", "").replace("</em>", "")
        assert "<em>laptop</em>" in fragment
        assert len(plain) <= 30
        assert plain in text  # cut at word boundaries, text unchanged
        assert re.match(r"\w", plain) and re.search(r"\w$", plain)


def test_number_of_fragments_limits_and_order_score_ranks(tmp_path: Path) -> None:
    filler = " lorem ipsum dolor sit amet consectetur adipiscing elit sed do" * 3
    text = f"usb cable{filler} usb hub with cable{filler} usb stick"
    backend, _ = build_index(tmp_path, [{"_id": "x", "title": "t", "description": text}])
    query = {"match": {"description": "usb cable"}}

    def fragments(**opts: Any) -> list[str]:
        body = {"query": query, "highlight": {"fields": {"description": opts}}}
        return marks(backend.search("products", body))["x"]["description"]

    in_text_order = fragments(fragment_size=30, number_of_fragments=3)
    assert len(in_text_order) == 3
    assert all("<em>usb</em>" in f for f in in_text_order)
    starts = [text.index(f.replace("<em>", "").replace("</em>", "")) for f in in_text_order]
    assert starts == sorted(starts) and "stick" in in_text_order[-1]
    by_score = fragments(fragment_size=30, number_of_fragments=1, order="score")
    # The first and the middle fragments hold both terms; the last only one.
    assert len(by_score) == 1 and "cable</em>" in by_score[0]


def test_require_field_match_false_marks_other_fields(search: Any) -> None:
    query = {"match": {"title": "laptop"}}
    fields = {"title": {}, "description": {}}
    strict = hl(search, query, {"fields": fields})
    assert all(set(f) == {"title"} for f in strict.values())
    loose = hl(search, query, {"fields": fields, "require_field_match": False})
    assert loose["1"]["description"] == ["Light <em>laptop</em> for students"]
    assert loose["5"]["description"] == ["Business <em>laptop</em> with a good keyboard"]
    # per-field override of the top-level option
    mixed = hl(
        search, query, {"fields": {"title": {}, "description": {"require_field_match": False}}}
    )
    assert set(mixed["3"]) == {"title", "description"}


def test_html_encoder_escapes_the_text_not_the_tags(tmp_path: Path) -> None:
    title = 'Cable "HDMI" <2m> & adapter'
    backend, _ = build_index(tmp_path, [{"_id": "x", "title": title}])
    body = {"query": {"match": {"title": "cable"}}, "highlight": {"fields": {"title": {}}}}
    raw = marks(backend.search("products", body))["x"]["title"]
    assert raw == ['<em>Cable</em> "HDMI" <2m> & adapter']
    body["highlight"]["encoder"] = "html"
    escaped = marks(backend.search("products", body))["x"]["title"]
    assert escaped == ["<em>Cable</em> &quot;HDMI&quot; &lt;2m&gt; &amp; adapter"]


def test_keyword_fields_mark_the_whole_value_and_subfields_read_the_parent(search: Any) -> None:
    got = hl(search, {"term": {"brand": "HP"}}, {"fields": {"brand": {}}})
    assert got == {i: {"brand": ["<em>HP</em>"]} for i in ("1", "2", "7")}
    sub = hl(search, {"match": {"brand.text": "dell"}}, {"fields": {"brand.text": {}}})
    assert sub == {i: {"brand.text": ["<em>Dell</em>"]} for i in ("3", "4")}


def test_no_match_size_returns_the_start_of_unmatched_fields(search: Any) -> None:
    got = hl(
        search,
        {"match": {"title": "laptop"}},
        {"fields": {"title": {}, "description": {"no_match_size": 14}}},
    )
    assert got["3"]["description"] == ["Premium laptop"]  # not marked: not queried
    assert got["1"]["description"] == ["Light laptop"]


def test_cjk_text_is_marked_on_its_bigrams(tmp_path: Path) -> None:
    backend, _ = build_index(tmp_path, [{"_id": "x", "title": "华为手机 黑色 phone"}])

    def title_marks(query: dict[str, Any]) -> list[str]:
        body = {"query": query, "highlight": {"fields": {"title": {}}}}
        return list(marks(backend.search("products", body))["x"]["title"])

    assert title_marks({"match": {"title": "手机"}}) == ["华为<em>手机</em> 黑色 phone"]
    # overlapping bigrams of a longer run are marked as one span
    assert title_marks({"match_phrase": {"title": "华为手机"}}) == ["<em>华为手机</em> 黑色 phone"]


# -- which terms ---------------------------------------------------------------------------


def test_filter_and_must_not_terms_are_not_marked(search: Any) -> None:
    query = {
        "bool": {
            "must": [{"match": {"title": "mouse"}}],
            "filter": [{"term": {"brand": "HP"}}, {"match": {"title": "wireless"}}],
            "must_not": [{"match": {"title": "gaming"}}],
        }
    }
    got = hl(search, query, {"fields": {"*": {}}, "require_field_match": False})
    assert got == {"2": {"title": ["HP wireless <em>mouse</em>"]}}
    with_filters = hl(search, query, {"fields": {"title": {"highlight_filter": True}}})
    assert with_filters == {"2": {"title": ["HP <em>wireless</em> <em>mouse</em>"]}}


def test_highlights_survive_an_ids_filter_around_the_original_query(search: Any) -> None:
    # How shoprank's fused modes ask for the page's highlights.
    original = {"match": {"title": "laptop"}}
    wrapped = {"bool": {"should": [original], "filter": [{"ids": {"values": ["3", "5", "6"]}}]}}
    got = hl(search, wrapped, {"fields": {"title": {}}}, size=3)
    assert got == {
        "3": {"title": ["Dell XPS <em>laptop</em> silver"]},
        "5": {"title": ["Lenovo ThinkPad <em>laptop</em>"]},
    }


def test_highlight_query_and_prefix_style_queries(search: Any) -> None:
    every = {"match_all": {}}

    def with_hq(query: dict[str, Any]) -> Any:
        return hl(search, every, {"fields": {"title": {"highlight_query": query}}})

    bool_prefix = {"multi_match": {"query": "hp wirel", "type": "bool_prefix", "fields": ["title"]}}
    assert with_hq(bool_prefix)["2"] == {"title": ["<em>HP</em> <em>wireless</em> mouse"]}
    assert with_hq(bool_prefix)["4"] == {"title": ["Dell <em>wireless</em> keyboard and mouse"]}
    assert with_hq({"prefix": {"title": "lapt"}})["5"] == {
        "title": ["Lenovo ThinkPad <em>laptop</em>"]
    }
    assert with_hq({"wildcard": {"title": "ch*er"}}) == {
        "6": {"title": ["Apple USB-C <em>charger</em>"]}
    }
    # fuzzy is not analysed: "mousr" is one edit from the index term "mous"
    assert with_hq({"fuzzy": {"title": {"value": "mousr", "fuzziness": 1}}})["8"] == {
        "title": ["Logitech gaming <em>mouse</em>"]
    }
    qs = {"query_string": {"query": 'title:"ink cartridge" OR -dell', "default_field": "title"}}
    assert with_hq(qs) == {"7": {"title": ["HP <em>ink</em> <em>cartridge</em>"]}}


def test_phrase_words_are_marked_only_inside_the_phrase(tmp_path: Path) -> None:
    title = "HP ink cartridge with spare ink and a cartridge box"
    backend, _ = build_index(tmp_path, [{"_id": "x", "title": title}])

    def title_marks(query: dict[str, Any]) -> list[str]:
        body = {"query": query, "highlight": {"fields": {"title": {}}}}
        return list(marks(backend.search("products", body))["x"]["title"])

    inside = "HP <em>ink</em> <em>cartridge</em> with spare ink and a cartridge box"
    assert title_marks({"match_phrase": {"title": "ink cartridges"}}) == [inside]
    # the same words as a plain match are marked everywhere
    assert title_marks({"match": {"title": "ink cartridges"}}) == [
        "HP <em>ink</em> <em>cartridge</em> with spare <em>ink</em> and a <em>cartridge</em> box"
    ]
    # a phrase next to a plain match of one of its words: that word is marked everywhere
    both = {
        "bool": {
            "should": [
                {"match_phrase": {"title": "ink cartridge"}},
                {"match": {"title": "box"}},
            ]
        }
    }
    assert title_marks(both) == [inside.replace("box", "<em>box</em>")]


# -- refused options -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "named"),
    [
        ({"boundary_chars": ".,"}, "boundary_chars"),
        ({"boundary_max_scan": 10}, "boundary_max_scan"),
        ({"matched_fields": ["title"]}, "matched_fields"),
        ({"fragmenter": "simple"}, "fragmenter"),
        ({"boundary_scanner": "sentence"}, "boundary_scanner"),
        ({"fragment_offset": 3}, "fragment_offset"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_options_outside_the_subset_are_a_400_naming_them(
    search: Any, option: dict[str, Any], named: str
) -> None:
    body = {"query": {"match": {"title": "laptop"}}}
    for spec in ({**option, "fields": {"title": {}}}, {"fields": {"title": option}}):
        with pytest.raises(UnsupportedQueryError, match=named):
            search({**body, "highlight": spec})


def test_malformed_highlight_values_are_a_400(search: Any) -> None:
    body = {"query": {"match": {"title": "laptop"}}}
    for spec in (
        {"fields": {"title": {"number_of_fragments": -1}}},
        {"fields": {"title": {}}, "encoder": "base64"},
        {"fields": {"title": {}}, "type": "fancy"},
        {},
    ):
        with pytest.raises(BadRequestError):
            search({**body, "highlight": spec})


# -- on the Icecat catalog -----------------------------------------------------------------


@pytest.fixture(scope="module")
def icecat(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[EmbeddedBackend, list[dict[str, Any]]]:
    return icecat_index(tmp_path_factory.mktemp("icecat-hl"), ROWS)


def test_icecat_stemmed_highlight_matches_the_rows(
    icecat: tuple[EmbeddedBackend, list[dict[str, Any]]],
) -> None:
    backend, rows = icecat
    word = re.compile(r"(?<![^\W_])(cartridges?)(?![^\W_])", re.IGNORECASE)
    expected = {
        r["_id"]: word.sub(r"<em>\1</em>", r["title"]) for r in rows if word.search(r["title"])
    }
    assert expected
    response = backend.search(
        "products",
        {
            "query": {"match": {"title": "cartridge"}},
            "size": len(expected) + 10,
            "_source": ["id"],
            "highlight": {"fields": {"title": {"number_of_fragments": 0}}},
        },
    )
    got = {i: h["title"][0] for i, h in marks(response).items()}
    assert got == expected


# -- over HTTP -----------------------------------------------------------------------------


def test_highlight_and_suggest_over_http_msearch(tmp_path: Path, corpus_backend: Any) -> None:
    from tests.unit._apps import make_client

    client = make_client(tmp_path, corpus_backend)
    body = {
        "query": {"match": {"title": "laptop"}},
        "highlight": {"fields": {"title": {"number_of_fragments": 0}}},
        "suggest": {"text": "mouze", "s": {"term": {"field": "title"}}},
        "ext": {"shoprank": {"mode": "lexical"}},
    }
    lines = b"".join(orjson.dumps(x) + b"\n" for x in ({"index": "products"}, body))
    response = client.post(
        "/_msearch", content=lines, headers={"Content-Type": "application/x-ndjson"}
    )
    assert response.status_code == 200, response.text
    (answer,) = response.json()["responses"]
    got = {h["_id"]: h["highlight"] for h in answer["hits"]["hits"]}
    assert got["5"] == {"title": ["Lenovo ThinkPad <em>laptop</em>"]}
    assert set(got) == {"1", "3", "5"}
    assert answer["suggest"]["s"][0]["options"][0]["text"] == "mouse"
