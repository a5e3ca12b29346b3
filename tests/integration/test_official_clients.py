"""The official `elasticsearch` and `opensearch-py` clients, unchanged, against shoprank."""

from __future__ import annotations

import json
from typing import Any

import elasticsearch
import httpx
import pytest
from opensearchpy import OpenSearch
from opensearchpy import exceptions as os_exc

from .conftest import Server


@pytest.fixture(scope="module")
def es(server: Server) -> elasticsearch.Elasticsearch:
    return elasticsearch.Elasticsearch(server.url, request_timeout=30)


@pytest.fixture(scope="module")
def osc(server: Server) -> OpenSearch:
    return OpenSearch(server.url, timeout=30)


@pytest.fixture(scope="module")
def catalog(demo_data_dir: Any) -> list[dict[str, Any]]:
    lines = (demo_data_dir / "catalog.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_info_passes_the_es_product_check(es: elasticsearch.Elasticsearch) -> None:
    info = es.info()
    assert info["tagline"] == "You Know, for Search"
    assert info["version"]["number"].startswith("9.")


def test_es_search_finds_tents(es: elasticsearch.Elasticsearch) -> None:
    resp = es.search(
        index="demo",
        query={"match": {"title": "tent"}},
        size=5,
        ext={"shoprank": {"mode": "lexical"}},
    )
    hits = resp["hits"]["hits"]
    assert hits, "a lexical search for 'tent' found nothing"
    assert all("tent" in h["_source"]["title"].lower() for h in hits)
    assert resp["hits"]["total"]["relation"] == "eq"


def test_es_search_hybrid_with_filter_and_aggs(
    es: elasticsearch.Elasticsearch, catalog: list[dict[str, Any]]
) -> None:
    brand = next(p["brand"] for p in catalog if "Running Shoes" in p["category"])
    resp = es.search(
        index="demo",
        query={
            "bool": {
                "must": {"match": {"title": "running shoes"}},
                "filter": {"term": {"brand": brand}},
            }
        },
        aggs={"brands": {"terms": {"field": "brand"}}},
        size=20,
        ext={"shoprank": {"mode": "hybrid"}},
    )
    assert resp["hits"]["hits"]
    assert {h["_source"]["brand"] for h in resp["hits"]["hits"]} == {brand}
    buckets = resp["aggregations"]["brands"]["buckets"]
    assert [b["key"] for b in buckets] == [brand]


def test_es_count_and_get(es: elasticsearch.Elasticsearch, catalog: list[dict[str, Any]]) -> None:
    assert es.count(index="demo")["count"] == len(catalog)
    first = catalog[0]
    doc = es.get(index="demo", id=first["id"])
    assert doc["found"] is True
    assert doc["_source"]["title"] == first["title"]
    with pytest.raises(elasticsearch.NotFoundError):
        es.get(index="demo", id="no-such-product")


def test_es_msearch(es: elasticsearch.Elasticsearch) -> None:
    resp = es.msearch(
        searches=[
            {"index": "demo"},
            {"query": {"match": {"title": "kettle"}}, "size": 1},
            {"index": "missing-index"},
            {"query": {"match_all": {}}},
        ]
    )
    first, second = resp["responses"]
    assert first["status"] == 200 and first["hits"]["hits"]
    assert second["status"] == 404
    assert second["error"]["type"] == "index_not_found_exception"


def test_es_client_raises_bad_request_for_unsupported_dsl(
    es: elasticsearch.Elasticsearch,
) -> None:
    with pytest.raises(elasticsearch.BadRequestError) as info:
        es.search(index="demo", query={"regexp": {"title": "te.t"}})
    assert "regexp" in str(info.value)


def test_es_client_unknown_index(es: elasticsearch.Elasticsearch) -> None:
    with pytest.raises(elasticsearch.NotFoundError):
        es.search(index="nope", query={"match_all": {}})


def test_opensearch_client(osc: OpenSearch, catalog: list[dict[str, Any]]) -> None:
    resp = osc.search(index="demo", body={"query": {"match": {"title": "tent"}}, "size": 3})
    assert resp["hits"]["hits"]
    assert osc.count(index="demo")["count"] == len(catalog)
    assert osc.get(index="demo", id=catalog[1]["id"])["_source"]["id"] == catalog[1]["id"]
    msearch = osc.msearch(body=[{"index": "demo"}, {"query": {"match": {"title": "kettle"}}}])
    assert msearch["responses"][0]["hits"]["hits"]
    with pytest.raises(os_exc.RequestError):
        osc.search(index="demo", body={"query": {"match": {"title": "x"}}, "rescore": {}})


def test_raw_http_errors_have_es_shape(server: Server) -> None:
    bad_json = httpx.post(
        server.url + "/demo/_search",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert bad_json.status_code == 400
    assert bad_json.json()["error"]["type"] == "parsing_exception"
    bad_param = httpx.get(server.url + "/demo/_search?bogus=1")
    assert bad_param.status_code == 400
    assert "bogus" in bad_param.json()["error"]["reason"]
    deep = httpx.post(server.url + "/demo/_search", json={"from": 9995, "size": 10})
    assert deep.status_code == 400
    # The server is still up and answering after bad input.
    assert httpx.get(server.url + "/_shoprank/health").json()["status"] == "green"


def test_user_header_and_explain(server: Server) -> None:
    resp = httpx.post(
        server.url + "/demo/_search",
        headers={"X-Shoprank-User": "u-42"},
        json={
            "query": {"match": {"title": "espresso"}},
            "ext": {"shoprank": {"mode": "full", "explain": True}},
        },
    )
    body = resp.json()
    assert resp.status_code == 200
    assert body["_shoprank"]["user_id"] == "u-42"
    assert body["_shoprank"]["mode_applied"] == "full"
    assert set(body["hits"]["hits"][0]["_shoprank"]["legs"]) <= {"lexical", "vector"}
