"""`elasticsearch.dsl` and `opensearch-py`'s `Search`, unchanged, against a real `shoprank
serve` on Icecat (default mode): highlight, facets, sorts, `scan()` (scroll), `iterate()`
(point in time), `collapse`, suggesters, `search_after`, `count` and `MultiSearch`, with the
expected values counted from the catalog rows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import elasticsearch
import pytest
from elasticsearch.dsl import MultiSearch, Q, Search
from opensearchpy import OpenSearch
from opensearchpy import Search as OSSearch
from opensearchpy.helpers import scan as os_scan

from .conftest import ICECAT, Server
from .icecat_subset import INDEX, brand_counts, load_subset, matching, near_tokens, tokens

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not ICECAT.exists(), reason=f"Icecat sample not found at {ICECAT}"),
]

Docs = list[dict[str, Any]]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Docs]:
    data_dir = tmp_path_factory.mktemp("dsl-clients")
    return data_dir, load_subset(data_dir)


@pytest.fixture(scope="module")
def server(catalog: tuple[Path, Docs]) -> Iterator[Server]:
    srv = Server(catalog[0]).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def es(server: Server) -> elasticsearch.Elasticsearch:
    return elasticsearch.Elasticsearch(server.url, request_timeout=120)


@pytest.fixture(scope="module")
def osc(server: Server) -> OpenSearch:
    return OpenSearch(server.url, timeout=120)


@pytest.fixture(scope="module")
def docs(catalog: tuple[Path, Docs]) -> Docs:
    return catalog[1]


def ids_of(docs: Docs) -> set[str]:
    return {d["id"] for d in docs}


def test_search_with_highlight_and_brand_facet(es: elasticsearch.Elasticsearch, docs: Docs) -> None:
    assert near_tokens(docs, "epson", ("title",)) == {"epson"}
    matches = matching(docs, "epson", ("title",))
    s = (
        Search(using=es, index=INDEX)
        .query("match", title="epson")
        .highlight("title", number_of_fragments=0, pre_tags=["<b>"], post_tags=["</b>"])
        .extra(size=20, track_total_hits=True)
    )
    s.aggs.bucket("brands", "terms", field="brand", size=5)
    resp = s.execute()
    assert resp.to_dict()["hits"]["total"] == {"value": len(matches), "relation": "eq"}
    by_id = {d["id"]: d for d in docs}
    assert len(resp.hits) == 20
    for hit in resp:
        title = by_id[hit.meta.id]["title"]
        if "epson" in tokens(title):
            (fragment,) = hit.meta.highlight.title
            assert fragment.replace("<b>", "").replace("</b>", "") == title
            assert "<b>" in fragment and all(
                part.split("</b>")[0].lower() == "epson" for part in fragment.split("<b>")[1:]
            )
    expected = brand_counts(matches)
    buckets = resp.aggregations.brands.buckets
    assert [b.doc_count for b in buckets] == sorted(expected.values(), reverse=True)[:5]
    assert all(b.doc_count == expected[b.key] for b in buckets)


def test_multi_key_sort_on_keyword_and_id(es: elasticsearch.Elasticsearch, docs: Docs) -> None:
    s = Search(using=es, index=INDEX).sort("brand", "-price", "_id").extra(size=25)
    got = [h.meta.id for h in s.execute()]
    expected = sorted(
        docs,
        key=lambda d: (
            d["brand"] is None,
            d["brand"] or "",
            d["price"] is None,
            -(d["price"] or 0),
            d["id"],
        ),
    )
    assert got == [d["id"] for d in expected[:25]]


def test_count(es: elasticsearch.Elasticsearch, docs: Docs) -> None:
    assert Search(using=es, index=INDEX).count() == len(docs)
    hp = [d for d in docs if d["brand"] == "HP"]
    assert Search(using=es, index=INDEX).filter("term", brand="HP").count() == len(hp)


def test_scan_reads_every_match_through_scroll(es: elasticsearch.Elasticsearch, docs: Docs) -> None:
    s = Search(using=es, index=INDEX).filter("term", brand="Epson").params(size=50)
    got = [h.meta.id for h in s.scan()]
    assert len(got) == len(set(got))
    assert set(got) == ids_of([d for d in docs if d["brand"] == "Epson"])


def test_iterate_reads_every_match_through_a_point_in_time(
    es: elasticsearch.Elasticsearch, docs: Docs
) -> None:
    s = Search(using=es, index=INDEX).filter("term", brand="HP").extra(size=100)
    got = [h.meta.id for h in s.iterate(keep_alive="1m")]
    assert len(got) == len(set(got))
    assert set(got) == ids_of([d for d in docs if d["brand"] == "HP"])


def test_collapse_on_brand_with_inner_hits(es: elasticsearch.Elasticsearch, docs: Docs) -> None:
    s = (
        Search(using=es, index=INDEX)
        .query("match", title="toner")
        .collapse("brand", inner_hits={"name": "top", "size": 2})
        .extra(size=10)
    )
    resp = s.execute().to_dict()
    # the title analyzer stems ("cartridges" matches "cartridge"); no title word is an
    # inflection of "toner", so its matches are the titles holding the word
    assert {t for d in docs for t in tokens(d["title"]) if t.startswith("toner")} <= {
        "toner",
        "tonercartridge",
    }
    matches = [d for d in matching(docs, "toner", ("title",)) if d["brand"]]
    counts = brand_counts(matches)
    hits = resp["hits"]["hits"]
    brands = [h["_source"]["brand"] for h in hits]
    assert len(brands) == len(set(brands)) == min(10, len(counts))
    # the collapse key comes back in `fields`, as Elasticsearch returns it
    assert all(h["fields"]["brand"] == [h["_source"]["brand"]] for h in hits)
    by_id = {d["id"]: d for d in docs}
    for hit in hits:
        inner = hit["inner_hits"]["top"]["hits"]
        assert 1 <= len(inner["hits"]) <= 2
        assert inner["total"]["value"] == counts[hit["_source"]["brand"]]
        assert all(by_id[i["_id"]]["brand"] == hit["_source"]["brand"] for i in inner["hits"])


def test_suggesters(es: elasticsearch.Elasticsearch, docs: Docs) -> None:
    s = (
        Search(using=es, index=INDEX)
        .suggest("fix", "epsn", term={"field": "title"})
        .suggest("ac", "sams", completion={"field": "title", "size": 3, "skip_duplicates": True})
        .extra(size=0)
    )
    resp = s.execute()
    suggest = resp.to_dict()["suggest"]
    (entry,) = suggest["fix"]
    assert entry["text"] == "epsn"
    assert entry["options"] and entry["options"][0]["text"] == "epson"
    titles = {d["title"] for d in docs}
    options = [o["text"] for o in suggest["ac"][0]["options"]]
    expected = sorted({t for t in titles if t.lower().startswith("sams")})
    assert options and len(options) == min(3, len(expected)) == len(set(options))
    assert set(options) <= set(expected)


def test_search_after_pages_follow_the_sort(es: elasticsearch.Elasticsearch, docs: Docs) -> None:
    s = Search(using=es, index=INDEX).sort("price", "_id").extra(size=10)
    first = s.execute()
    last = first.hits[-1].meta.sort
    second = s.extra(search_after=list(last)).execute()
    expected = sorted(
        (d for d in docs if d["price"] is not None), key=lambda d: (d["price"], d["id"])
    )
    assert [h.meta.id for h in first] == [d["id"] for d in expected[:10]]
    assert [h.meta.id for h in second] == [d["id"] for d in expected[10:20]]


def test_multisearch(es: elasticsearch.Elasticsearch, docs: Docs) -> None:
    ms = (
        MultiSearch(using=es, index=INDEX)
        .add(Search().filter("term", brand="HP").extra(track_total_hits=True))
        .add(Search().query(Q("match", title="epson")).extra(track_total_hits=True))
    )
    hp, epson = ms.execute()
    assert hp.to_dict()["hits"]["total"]["value"] == sum(1 for d in docs if d["brand"] == "HP")
    assert epson.to_dict()["hits"]["total"]["value"] == len(matching(docs, "epson", ("title",)))


def test_opensearch_search_scan_and_count(osc: OpenSearch, docs: Docs) -> None:
    s = OSSearch(using=osc, index=INDEX).query("match", title="epson").highlight("title")
    s.aggs.bucket("brands", "terms", field="brand", size=3)
    resp = s.extra(track_total_hits=True).execute()
    matches = matching(docs, "epson", ("title",))
    assert resp.to_dict()["hits"]["total"]["value"] == len(matches)
    titles = {d["id"]: d["title"] for d in docs}
    with_word = [h for h in resp if "epson" in tokens(titles[h.meta.id])]
    assert with_word
    assert all("<em>" in " ".join(h.meta.highlight.title) for h in with_word)
    expected = brand_counts(matches)
    assert [b.doc_count for b in resp.aggregations.brands.buckets] == sorted(
        expected.values(), reverse=True
    )[:3]
    got = [
        h["_id"]
        for h in os_scan(osc, index=INDEX, query={"query": {"term": {"brand": "Canon"}}}, size=40)
    ]
    assert len(got) == len(set(got))
    assert set(got) == ids_of([d for d in docs if d["brand"] == "Canon"])
    assert OSSearch(using=osc, index=INDEX).filter("term", brand="Canon").count() == len(got)
