"""Scroll, point in time, `_mget`, `_mapping` and `_field_caps` through the real app, with
the official `elasticsearch` client over loopback (`helpers.scan`, `dsl.Search.iterate`)
and across two app instances on one data directory (two `shoprank serve` workers)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch, NotFoundError, helpers
from elasticsearch.dsl import Search

from shoprank.plugin.backends.embedded.backend import EmbeddedBackend
from shoprank.plugin.search import SearchService
from shoprank.settings import Settings
from tests.unit._apps import loopback_server, make_client
from tests.unit.conftest import CORPUS, CORPUS_VECTORS, build_index

WAIT_S = 60
ALL_IDS = sorted(d["_id"] for d in CORPUS)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("paging-http")
    build_index(root / "embedded", CORPUS, CORPUS_VECTORS)
    return root


@pytest.fixture(scope="module")
def es(data_dir: Path) -> Iterator[Elasticsearch]:
    settings = Settings(data_dir=data_dir)
    backend = EmbeddedBackend(data_dir / "embedded")
    service = SearchService(backend=backend, settings=settings)
    with loopback_server(service, wait_s=WAIT_S) as url:
        yield Elasticsearch(url, request_timeout=WAIT_S)


def test_helpers_scan_returns_every_document_once(es: Elasticsearch) -> None:
    ids = [h["_id"] for h in helpers.scan(es, index="products", size=3, scroll="1m")]
    assert sorted(ids) == ALL_IDS and len(ids) == len(ALL_IDS)


def test_helpers_scan_with_a_query_and_preserve_order(es: Elasticsearch) -> None:
    query = {"query": {"term": {"brand": "HP"}}, "sort": [{"price": "desc"}]}
    hits = list(helpers.scan(es, query=query, index="products", size=1, preserve_order=True))
    hp = sorted((d for d in CORPUS if d["brand"] == "HP"), key=lambda d: -d["price"])
    assert [h["_id"] for h in hits] == [d["_id"] for d in hp]


def test_dsl_iterate_uses_a_point_in_time_and_sees_every_document_once(es: Elasticsearch) -> None:
    search = Search(using=es, index="products").extra(size=3)
    ids = [hit.meta.id for hit in search.iterate(keep_alive="1m")]
    assert sorted(ids) == ALL_IDS and len(ids) == len(ALL_IDS)


def test_dsl_search_after_with_keyword_sort(es: Elasticsearch) -> None:
    s = Search(using=es, index="products").sort("brand", "_id").extra(size=3)
    seen: list[str] = []
    while True:
        r = s.execute()
        seen += [h.meta.id for h in r]
        if len(r.hits) < 3:
            break
        s = s.search_after()
    expected = [d["_id"] for d in sorted(CORPUS, key=lambda d: (d["brand"], d["_id"]))]
    assert seen == expected


def test_cleared_and_closed_contexts_answer_404_in_es_shape(es: Elasticsearch) -> None:
    first = es.search(index="products", scroll="1m", size=2)
    es.clear_scroll(scroll_id=first["_scroll_id"])
    with pytest.raises(NotFoundError) as err:
        es.scroll(scroll_id=first["_scroll_id"], scroll="1m")
    assert err.value.body["error"]["type"] == "search_context_missing_exception"
    pit = es.open_point_in_time(index="products", keep_alive="1m")["id"]
    assert es.close_point_in_time(id=pit)["succeeded"]
    with pytest.raises(NotFoundError) as err:
        es.search(pit={"id": pit}, size=1)
    assert err.value.body["error"]["type"] == "search_context_missing_exception"


def test_a_scroll_id_continues_on_another_worker(data_dir: Path) -> None:
    root = data_dir / "embedded"
    one = make_client(data_dir, EmbeddedBackend(root))
    two = make_client(data_dir, EmbeddedBackend(root))
    first = one.post("/products/_search?scroll=1m", json={"size": 3, "sort": ["_id"]}).json()
    ids = [h["_id"] for h in first["hits"]["hits"]]
    scroll_id = first["_scroll_id"]
    workers = [two, one]
    for turn in range(10):
        page = workers[turn % 2].post(
            "/_search/scroll", json={"scroll": "1m", "scroll_id": scroll_id}
        )
        assert page.status_code == 200, page.text
        body = page.json()
        if not body["hits"]["hits"]:
            break
        ids += [h["_id"] for h in body["hits"]["hits"]]
        scroll_id = body["_scroll_id"]
    assert ids == ALL_IDS
    # The URL form and DELETE with `_all`.
    assert two.get(f"/_search/scroll/{scroll_id}?scroll=1m").status_code == 200
    assert one.delete("/_search/scroll/_all").json()["succeeded"] is True


def test_a_pit_opened_on_one_worker_is_searched_on_another(data_dir: Path) -> None:
    root = data_dir / "embedded"
    one = make_client(data_dir, EmbeddedBackend(root))
    two = make_client(data_dir, EmbeddedBackend(root))
    pit = one.post("/products/_pit?keep_alive=1m").json()["id"]
    body = {"pit": {"id": pit, "keep_alive": "1m"}, "sort": [{"price": "asc"}], "size": 4}
    page = two.post("/_search", json=body).json()
    cheapest = [d["_id"] for d in sorted(CORPUS, key=lambda d: d["price"])[:4]]
    assert [h["_id"] for h in page["hits"]["hits"]] == cheapest
    assert page["pit_id"]
    closed = two.request("DELETE", "/_pit", json={"id": pit})
    assert closed.status_code == 200 and closed.json()["num_freed"] == 1
    again = one.post("/_search", json=body)
    assert again.status_code == 404
    assert again.json()["error"]["type"] == "search_context_missing_exception"


def test_search_without_index_or_pit_is_still_a_400(data_dir: Path) -> None:
    client = make_client(data_dir, EmbeddedBackend(data_dir / "embedded"))
    response = client.post("/_search", json={"query": {"match_all": {}}})
    assert response.status_code == 400


def test_mget_mapping_and_field_caps_over_http(es: Elasticsearch) -> None:
    docs = es.mget(index="products", ids=["2", "404"])["docs"]
    assert docs[0]["found"] and docs[0]["_source"]["title"] == CORPUS[1]["title"]
    assert docs[1]["found"] is False
    mixed = es.mget(docs=[{"_index": "products", "_id": "5"}], source_includes=["brand"])
    assert mixed["docs"][0]["_source"] == {"brand": "Lenovo"}
    mapping = es.indices.get_mapping(index="products").body
    ((concrete, body),) = mapping.items()
    assert concrete.startswith("products-")
    assert body["mappings"]["properties"]["price"]["type"] in ("float", "double")
    caps = es.field_caps(index="products", fields="brand,title").body
    assert caps["fields"]["brand"]["keyword"]["aggregatable"] is True
    assert caps["indices"] == [concrete]


def test_collapse_and_sort_through_the_app(data_dir: Path) -> None:
    client = make_client(data_dir, EmbeddedBackend(data_dir / "embedded"))
    body: dict[str, Any] = {
        "sort": [{"brand": "asc"}, {"price": "asc"}],
        "collapse": {"field": "brand", "inner_hits": {"name": "more", "size": 5}},
        "size": 10,
    }
    response = client.post("/products/_search", json=body).json()
    brands = sorted({d["brand"] for d in CORPUS})
    assert [h["fields"]["brand"] for h in response["hits"]["hits"]] == [[b] for b in brands]
    assert response["hits"]["total"]["value"] == len(CORPUS)
    for hit in response["hits"]["hits"]:
        group = [d for d in CORPUS if d["brand"] == hit["fields"]["brand"][0]]
        assert hit["inner_hits"]["more"]["hits"]["total"]["value"] == len(group)


@pytest.mark.parametrize("mode", ["hybrid", "full"])
def test_scroll_in_a_fused_mode_runs_lexically_and_pages_everything(
    data_dir: Path, mode: str
) -> None:
    client = make_client(data_dir, EmbeddedBackend(data_dir / "embedded"))
    body = {"query": {"match": {"title": "laptop"}}, "size": 1, "ext": {"shoprank": {"mode": mode}}}
    first = client.post("/products/_search?scroll=1m", json=body)
    assert first.status_code == 200, first.text
    page = first.json()
    ids = [h["_id"] for h in page["hits"]["hits"]]
    while page["hits"]["hits"]:
        page = client.post(
            "/_search/scroll", json={"scroll": "1m", "scroll_id": page["_scroll_id"]}
        ).json()
        ids += [h["_id"] for h in page["hits"]["hits"]]
    laptops = sorted(d["_id"] for d in CORPUS if "laptop" in d["title"].lower())
    assert sorted(ids) == laptops and len(ids) == len(laptops)


def test_opensearch_py_scan_and_point_in_time(es: Elasticsearch) -> None:
    from opensearchpy import OpenSearch
    from opensearchpy import helpers as os_helpers

    url = es.transport.node_pool.get().base_url
    client = OpenSearch(url, timeout=WAIT_S)
    ids = [h["_id"] for h in os_helpers.scan(client, index="products", size=3)]
    assert sorted(ids) == ALL_IDS
    pit = client.create_pit(index="products", params={"keep_alive": "1m"})["pit_id"]
    body = {"pit": {"id": pit, "keep_alive": "1m"}, "size": 100, "sort": ["_shard_doc"]}
    page = client.transport.perform_request("POST", "/_search", body=body)
    assert sorted(h["_id"] for h in page["hits"]["hits"]) == ALL_IDS
    closed = client.delete_pit(body={"pit_id": [pit]})
    assert closed["pits"] == [{"pit_id": pit, "successful": True}]
