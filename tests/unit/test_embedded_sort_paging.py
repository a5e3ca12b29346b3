"""Sorting, search_after, point in time, scroll, collapse and per-hit options on the real
embedded backend over the shared corpus (`conftest.CORPUS`); every expected order is
computed here from the corpus rows, not by the code under test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shoprank.errors import BadRequestError, ShoprankError, UnsupportedQueryError
from shoprank.plugin.backends.embedded.backend import EmbeddedBackend
from shoprank.plugin.backends.embedded.contexts import SearchContextMissingError
from tests.unit.conftest import CORPUS, build_index, hit_ids, total


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _by(*keys: Any) -> list[str]:
    return [d["_id"] for d in sorted(CORPUS, key=lambda d: tuple(k(d) for k in keys))]


def test_keyword_sort_is_a_to_z_with_id_tiebreaker_and_string_sort_values(search: Any) -> None:
    response = search({"sort": [{"brand": "asc"}, {"_id": "desc"}]})
    expected = _by(lambda d: d["brand"], lambda d: -int(d["_id"]))
    assert hit_ids(response) == expected
    assert [h["sort"] for h in response["hits"]["hits"]] == [
        [d["brand"], d["_id"]] for d in (next(c for c in CORPUS if c["_id"] == i) for i in expected)
    ]
    assert all(h["_score"] is None for h in response["hits"]["hits"])
    assert total(response) == len(CORPUS)


def test_multi_key_sort_descending_brand_then_price(search: Any) -> None:
    response = search({"sort": [{"brand": {"order": "desc"}}, {"price": "asc"}]})
    brands = sorted({d["brand"] for d in CORPUS}, reverse=True)
    expected = [
        d["_id"]
        for b in brands
        for d in sorted((c for c in CORPUS if c["brand"] == b), key=lambda c: c["price"])
    ]
    assert hit_ids(response) == expected


@pytest.mark.parametrize("missing", ["_first", "_last", 4.2])
def test_missing_places_documents_without_the_value(search: Any, missing: Any) -> None:
    response = search({"sort": [{"rating": {"order": "asc", "missing": missing}}, "_id"]})
    without = [d["_id"] for d in CORPUS if "rating" not in d]  # Apple (6)

    def rank(d: dict[str, Any]) -> float:
        if "rating" in d:
            return float(d["rating"])
        return {"_first": -1e9, "_last": 1e9}.get(missing, missing)  # type: ignore[arg-type]

    assert hit_ids(response) == _by(rank, lambda d: d["_id"])
    shown = {h["_id"]: h["sort"][0] for h in response["hits"]["hits"]}
    assert shown[without[0]] == (None if isinstance(missing, str) else missing)


def test_unmapped_type_sorts_an_unknown_field_as_missing_and_without_it_is_a_400(
    search: Any,
) -> None:
    response = search({"sort": [{"nope": {"unmapped_type": "keyword"}}, "price"]})
    assert hit_ids(response) == _by(lambda d: d["price"])
    with pytest.raises(BadRequestError, match=r"No mapping found for \[nope\]"):
        search({"sort": ["nope"]})


def test_unmapped_attribute_sorts_like_a_dynamic_keyword(search: Any) -> None:
    response = search({"sort": [{"colour.keyword": "asc"}, "_id"]})
    expected = _by(lambda d: (d.get("colour") is None, d.get("colour") or ""), lambda d: d["_id"])
    assert hit_ids(response) == expected


def test_mode_max_on_a_multi_valued_keyword(tmp_path: Path) -> None:
    docs = [
        {"_id": "a", "title": "x", "brand": ["Zeta", "Acme"]},
        {"_id": "b", "title": "x", "brand": "Mid"},
        {"_id": "c", "title": "x", "brand": ["Beta", "Omega"]},
    ]
    backend, _ = build_index(tmp_path, docs)
    # min: Acme < Beta < Mid ; max: Mid < Omega < Zeta
    asc_min = backend.search("products", {"sort": [{"brand": "asc"}]})
    assert hit_ids(asc_min) == ["a", "c", "b"]
    asc_max = backend.search("products", {"sort": [{"brand": {"order": "asc", "mode": "max"}}]})
    assert hit_ids(asc_max) == ["b", "c", "a"]
    assert [h["sort"] for h in asc_max["hits"]["hits"]] == [["Mid"], ["Omega"], ["Zeta"]]


def test_text_field_sort_is_refused_like_es(search: Any) -> None:
    with pytest.raises(BadRequestError, match="Text fields are not optimised"):
        search({"sort": ["title"]})


@pytest.mark.parametrize(
    "sort",
    [
        [{"brand": "asc"}, {"_id": "asc"}],
        [{"price": "desc"}],
        [{"_score": "desc"}, {"_id": "asc"}],
        [{"rating": {"order": "desc", "missing": "_first"}}, "_id"],
    ],
)
def test_search_after_pages_concatenate_to_one_sorted_page(search: Any, sort: Any) -> None:
    body = {"query": {"match": {"title": "laptop mouse hp"}}, "sort": sort}
    whole = search(body)
    pages: list[str] = []
    after = None
    while True:
        page = search({**body, "size": 3, **({"search_after": after} if after else {})})
        if not page["hits"]["hits"]:
            break
        assert total(page) == total(whole)  # every page counts all matches, as ES does
        pages += hit_ids(page)
        after = page["hits"]["hits"][-1]["sort"]
    assert pages == hit_ids(whole)
    assert len(set(pages)) == len(pages) == total(whole)


def test_search_after_needs_a_sort_and_from_zero(search: Any) -> None:
    with pytest.raises(BadRequestError, match="Sort must contain"):
        search({"search_after": [1]})
    with pytest.raises(BadRequestError, match="from"):
        search({"sort": ["price"], "search_after": [10], "from": 2})


def test_result_window_is_the_backends_setting(tmp_path: Path) -> None:
    build_index(tmp_path, CORPUS)
    backend = EmbeddedBackend(tmp_path, max_result_window=5)
    assert len(backend.search("products", {"from": 2, "size": 3})["hits"]["hits"]) == 3
    with pytest.raises(BadRequestError, match=r"less than or equal to: \[5\] but was \[6\]"):
        backend.search("products", {"from": 3, "size": 3})


def test_point_in_time_iterates_every_document_once_with_shard_doc(
    corpus_backend: EmbeddedBackend,
) -> None:
    pit = corpus_backend.open_pit("products", "1m")["id"]
    seen: list[str] = []
    after = None
    while True:
        body: dict[str, Any] = {"pit": {"id": pit, "keep_alive": "1m"}, "size": 3}
        body["sort"] = ["_shard_doc"]
        if after is not None:
            body["search_after"] = after
        page = corpus_backend.search("ignored", body)
        assert "pit_id" in page
        if not page["hits"]["hits"]:
            break
        seen += hit_ids(page)
        after = page["hits"]["hits"][-1]["sort"]
    assert sorted(seen) == sorted(d["_id"] for d in CORPUS) and len(seen) == len(CORPUS)
    assert corpus_backend.close_pit(pit) == {"succeeded": True, "num_freed": 1}
    with pytest.raises(SearchContextMissingError):
        corpus_backend.search("products", {"pit": {"id": pit}})


def test_a_pit_without_sort_adds_the_shard_doc_tiebreaker(corpus_backend: EmbeddedBackend) -> None:
    pit = corpus_backend.open_pit("products", "1m")["id"]
    page = corpus_backend.search(
        "products", {"pit": {"id": pit}, "query": {"match": {"title": "hp"}}}
    )
    hits = page["hits"]["hits"]
    assert all(len(h["sort"]) == 2 and h["_score"] == h["sort"][0] for h in hits)
    assert {h["_id"] for h in hits} == {d["_id"] for d in CORPUS if "HP" in d["title"]}


def test_contexts_expire_on_the_injected_clock_and_renew_with_keep_alive(tmp_path: Path) -> None:
    build_index(tmp_path, CORPUS)
    clock = FakeClock()
    backend = EmbeddedBackend(tmp_path, clock=clock)
    pit = backend.open_pit("products", "1m")["id"]
    clock.now += 50
    backend.search("products", {"pit": {"id": pit, "keep_alive": "1m"}})  # renews to +60s
    clock.now += 50  # 100 s after opening: alive only through the renewal
    assert total(backend.search("products", {"pit": {"id": pit}})) == len(CORPUS)
    clock.now += 11
    with pytest.raises(SearchContextMissingError) as err:
        backend.search("products", {"pit": {"id": pit}})
    assert err.value.status == 404

    scroll = backend.scroll_response(
        backend.search("products", backend.scroll_body("products", {"size": 2}, "30s")),
        {"size": 2},
        "30s",
    )["_scroll_id"]
    clock.now += 31
    with pytest.raises(SearchContextMissingError):
        backend.scroll(scroll, "30s")


def test_a_forged_or_foreign_id_is_refused(tmp_path: Path, corpus_backend: EmbeddedBackend) -> None:
    pit = corpus_backend.open_pit("products", "1m")["id"]
    body, _, sig = pit.partition(".")
    with pytest.raises(SearchContextMissingError):
        corpus_backend.search("products", {"pit": {"id": body + "." + sig[::-1]}})
    other, _ = build_index(tmp_path, CORPUS)  # another data directory: another key
    with pytest.raises(SearchContextMissingError):
        other.search("products", {"pit": {"id": pit}})
    with pytest.raises(BadRequestError):
        corpus_backend.scroll(pit, "1m")  # a pit id is no scroll id


def test_a_pit_on_a_pruned_generation_is_a_missing_context(tmp_path: Path) -> None:
    backend, first = build_index(tmp_path, CORPUS)
    pit = backend.open_pit("products", "5m")["id"]
    second = backend.create_generation("products", backend.store.generation(first).meta["mapping"])
    backend.bulk_upsert(second, CORPUS[:2])
    backend.commit(second, ready=True)
    backend.swap_alias("products", second)
    # Swapped out but kept: the point in time still reads the first generation.
    assert total(backend.search("products", {"pit": {"id": pit}})) == len(CORPUS)
    backend.prune("products", keep=0)
    with pytest.raises(SearchContextMissingError, match="gone"):
        backend.search("products", {"pit": {"id": pit}})


def test_collapse_keeps_the_first_hit_per_brand_with_inner_hits(search: Any) -> None:
    body = {
        "sort": [{"price": "desc"}],
        "collapse": {
            "field": "brand",
            "inner_hits": {"name": "cheapest", "size": 2, "sort": [{"price": "asc"}]},
        },
    }
    response = search(body)
    by_price = sorted(CORPUS, key=lambda d: -d["price"])
    firsts: dict[str, str] = {}
    for d in by_price:
        firsts.setdefault(d["brand"], d["_id"])
    assert hit_ids(response) == list(firsts.values())
    assert total(response) == len(CORPUS)  # every match counted, as ES does
    for hit in response["hits"]["hits"]:
        brand = hit["fields"]["brand"][0]
        group = sorted((d for d in CORPUS if d["brand"] == brand), key=lambda d: d["price"])
        inner = hit["inner_hits"]["cheapest"]["hits"]
        assert inner["total"]["value"] == len(group)
        assert [h["_id"] for h in inner["hits"]] == [d["_id"] for d in group[:2]]


def test_fields_docvalue_fields_explain_profile_version(search: Any) -> None:
    response = search(
        {
            "query": {"match": {"title": "mouse"}},
            "fields": ["brand", "pri*"],
            "docvalue_fields": ["category"],
            "explain": True,
            "profile": True,
            "version": True,
            "seq_no_primary_term": True,
            "_source": False,
        }
    )
    mice = {d["_id"]: d for d in CORPUS if "mouse" in d["title"].lower()}
    assert set(hit_ids(response)) == set(mice)
    for hit in response["hits"]["hits"]:
        doc = mice[hit["_id"]]
        assert "_source" not in hit
        assert hit["fields"]["brand"] == [doc["brand"]]
        assert hit["fields"]["price"] == [doc["price"]]
        assert hit["fields"]["category"] == [doc["category"]]
        assert hit["_explanation"]["value"] == hit["_score"]
        assert hit["_version"] == 1 and hit["_seq_no"] == 0 and hit["_primary_term"] == 1
    shard = response["profile"]["shards"][0]
    assert shard["searches"][0]["query"][0]["type"] == "match"
    with pytest.raises(BadRequestError, match="fielddata"):
        search({"docvalue_fields": ["title"]})


@pytest.mark.parametrize(
    "key", ["indices_boost", "rescore", "retriever", "runtime_mappings", "slice", "terminate_after"]
)
def test_unsupported_search_keys_are_a_400_naming_them(search: Any, key: str) -> None:
    with pytest.raises(UnsupportedQueryError, match=rf"\[{key}\]"):
        search({key: {}})


def test_every_es_search_body_key_is_supported_or_refused_by_name(search: Any) -> None:
    import orjson

    from tests.contract.specs import ES_SPEC

    if not ES_SPEC.exists():
        pytest.skip(f"the API specifications are missing ({ES_SPEC})")
    spec = orjson.loads(ES_SPEC.read_bytes())
    keys = spec["components"]["schemas"]["_global.search._types.SearchRequestBody"]["properties"]
    from shoprank.plugin.backends.embedded.search import REFUSED_KEYS, SEARCH_KEYS

    for key in keys:
        if key == "ext":
            continue  # shoprank's pipeline reads ext.shoprank before the backend
        assert key in SEARCH_KEYS or key in REFUSED_KEYS, key


def test_mget_mapping_and_field_caps(corpus_backend: EmbeddedBackend) -> None:
    docs = corpus_backend.mget_docs(
        None,
        {
            "docs": [
                {"_index": "products", "_id": "3", "_source": ["brand"]},
                {"_index": "products", "_id": "x"},
            ]
        },
        True,
    )["docs"]
    assert docs[0]["found"] and docs[0]["_source"] == {"brand": "Dell"}
    assert docs[1] == {"_index": docs[0]["_index"], "_id": "x", "found": False}
    ids = corpus_backend.mget_docs("products", {"ids": ["1", "2"]}, True)["docs"]
    assert [d["_source"]["title"] for d in ids] == [CORPUS[0]["title"], CORPUS[1]["title"]]
    ((concrete, mapping),) = corpus_backend.mapping("products").items()
    assert concrete.startswith("products-")
    assert mapping["mappings"]["properties"]["brand"]["type"] == "keyword"
    caps = corpus_backend.field_caps("products", "brand,price,title")["fields"]
    assert caps["brand"]["keyword"]["aggregatable"] is True
    assert caps["title"]["text"]["aggregatable"] is False
    assert set(caps) == {"brand", "price", "title"}


def test_shoprank_errors_keep_es_shape(corpus_backend: EmbeddedBackend) -> None:
    with pytest.raises(ShoprankError) as err:
        corpus_backend.scroll("garbage", "1m")
    assert err.value.status == 400


def test_dates_sort_by_epoch_millis_and_page_with_search_after(tmp_path: Path) -> None:
    pytest.importorskip("shoprank.plugin.backends.embedded.dates")
    from datetime import UTC, datetime

    from shoprank.indexing.mapping import product_mapping

    released = ["2021-03-01", "2019-12-31", "2020-06-15T10:00:00Z", None]
    docs = [
        {"_id": str(i), "title": "x", **({"date_released": d} if d else {})}
        for i, d in enumerate(released)
    ]
    mapping = product_mapping(text_dims=0)
    mapping["properties"]["date_released"] = {"type": "date"}
    backend = EmbeddedBackend(tmp_path)
    try:
        gen = backend.create_generation("products", mapping)
    except BadRequestError:
        pytest.skip("the embedded schema does not map dates yet")
    backend.bulk_upsert(gen, docs)
    backend.commit(gen, ready=True)
    backend.swap_alias("products", gen)

    def ms(text: str) -> int:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return int((parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp() * 1000)

    response = backend.search("products", {"sort": [{"date_released": "desc"}]})
    dated = sorted((d for d in docs if "date_released" in d), key=lambda d: -ms(d["date_released"]))
    assert hit_ids(response) == [d["_id"] for d in dated] + ["3"]
    assert [h["sort"][0] for h in response["hits"]["hits"][:3]] == [
        ms(d["date_released"]) for d in dated
    ]
    after = response["hits"]["hits"][0]["sort"]
    rest = backend.search("products", {"sort": [{"date_released": "desc"}], "search_after": after})
    assert hit_ids(rest) == hit_ids(response)[1:]
