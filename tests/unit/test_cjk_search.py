"""Chinese catalogs on the embedded backend: CJK text is indexed as bigrams, not sentences."""

from __future__ import annotations

from pathlib import Path

from shoprank.indexing.mapping import product_mapping, text_language
from shoprank.plugin.backends.embedded.backend import EmbeddedBackend

DOCS = [
    {"_id": "c1", "title": "华为手机 Mate 60 Pro 黑色", "brand": "华为", "price": 5999.0},
    {"_id": "c2", "title": "小米笔记本电脑 14英寸", "brand": "小米", "price": 4299.0},
    {"_id": "c3", "title": "苹果手机壳 透明", "brand": "Apple", "price": 49.0},
    {"_id": "c4", "title": "Wireless mouse", "brand": "Logi", "price": 19.0},
]


def _backend(root: Path) -> EmbeddedBackend:
    backend = EmbeddedBackend(root)
    gen = backend.create_generation("cn", product_mapping(text_dims=0, language="cjk"))
    backend.bulk_upsert(gen, DOCS)
    backend.commit(gen, ready=True)
    backend.swap_alias("cn", gen)
    return backend


def _ids(backend: EmbeddedBackend, body: dict[str, object]) -> list[str]:
    return [h["_id"] for h in backend.search("cn", body)["hits"]["hits"]]


def test_chinese_query_finds_chinese_title(tmp_path: Path) -> None:
    backend = _backend(tmp_path)
    assert _ids(backend, {"query": {"match": {"title": "华为手机"}}})[0] == "c1"
    # A word inside a longer run is found too (a whole-sentence token would miss it).
    assert set(_ids(backend, {"query": {"match": {"title": "手机"}}})) == {"c1", "c3"}
    assert _ids(backend, {"query": {"match": {"title": "笔记本"}}}) == ["c2"]
    assert _ids(backend, {"query": {"match_phrase": {"title": "华为手机"}}}) == ["c1"]
    # English text is unaffected.
    assert _ids(backend, {"query": {"match": {"title": "mice mouse"}}}) == ["c4"]


def test_mapping_names_the_cjk_analyzer_for_chinese_catalogs() -> None:
    chinese = [{"title": d["title"]} for d in DOCS[:3]]
    assert text_language(chinese) == "cjk"
    assert text_language([{"title": "Wireless mouse"}, {"title": "USB cable"}]) == "english"
    mapping = product_mapping(language=text_language(chinese))
    assert mapping["properties"]["title"]["analyzer"] == "cjk"
    assert mapping["properties"]["brand"]["fields"]["text"]["analyzer"] == "cjk"
    assert product_mapping()["properties"]["title"]["analyzer"] == "english"
