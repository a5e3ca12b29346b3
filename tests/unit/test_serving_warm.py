"""What a serving process does once, at warm-up or in the background, so that searches do
not: read the spelling vocabulary of each index (a search after an alias swap is answered
at once, unchecked, while the new generation's vocabulary is read), and keep cached product
facts out of the cyclic garbage collector's way."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

from shoprank.indexing.mapping import product_mapping
from shoprank.plugin.backends.embedded.backend import EmbeddedBackend
from shoprank.plugin.search import SearchService
from shoprank.rerankers.features.source import FeatureSource
from shoprank.settings import Settings

from .conftest import DIMS, build_index

TITLES = [f"Elongated Toilet Seat {i}" for i in range(5)] + [
    f"Cordless Drill Kit {i}" for i in range(5)
]

VACUUMS = [f"Wet Dry Vacuum {i}" for i in range(5)]


def _docs(titles: list[str]) -> list[dict[str, Any]]:
    return [
        {"_id": str(i), "id": str(i), "title": t, "brand": "Acme", "price": 10.0 + i}
        for i, t in enumerate(titles)
    ]


def _full(service: SearchService, text: str) -> dict[str, Any]:
    body = {
        "query": {"match": {"title": text}},
        "size": 10,
        "ext": {"shoprank": {"mode": "full", "explain": True}},
    }
    return service.search("products", body)


def _reload(backend: EmbeddedBackend, titles: list[str]) -> str:
    gen = backend.create_generation("products", product_mapping(text_dims=DIMS))
    backend.bulk_upsert(gen, _docs(titles), None)
    backend.commit(gen, ready=True)
    backend.swap_alias("products", gen)
    return gen


def test_after_warm_up_a_new_generation_is_spelled_once_its_vocabulary_is_read(
    tmp_path: Path,
) -> None:
    backend, _ = build_index(tmp_path / "data", _docs(TITLES))
    service = SearchService(backend=backend, settings=Settings(data_dir=tmp_path, search_log=False))
    service.warm_up()
    # Read at warm-up: the very first search is corrected.
    first = _full(service, "toliet")
    assert first["_shoprank"]["spelling"]["corrected"] == "toilet"

    # A re-index brings a word the old generation did not have.
    _reload(backend, [*TITLES, *VACUUMS])
    during = _full(service, "vacum")
    assert "spelling" not in during["_shoprank"]
    assert "spelling: vocabulary loading" in during["_shoprank"]["notes"]
    service.understanding.wait_for_spelling()
    after = _full(service, "vacum")
    assert after["_shoprank"]["spelling"]["corrected"] == "vacuum"
    assert len(after["hits"]["hits"]) == 5


def test_without_warm_up_the_first_search_reads_the_vocabulary_itself(tmp_path: Path) -> None:
    backend, _ = build_index(tmp_path / "data", _docs(TITLES))
    service = SearchService(backend=backend, settings=Settings(data_dir=tmp_path, search_log=False))
    _reload(backend, [*TITLES, *VACUUMS])
    assert _full(service, "vacum")["_shoprank"]["spelling"]["corrected"] == "vacuum"


def _tracked() -> int:
    gc.collect()
    gc.collect()
    return len(gc.get_objects())


def test_cached_product_facts_add_no_objects_for_the_collector_to_walk(tmp_path: Path) -> None:
    count = 2000
    titles = [f"Product {i}" for i in range(count)]
    backend, _ = build_index(tmp_path / "data", _docs(titles))
    source = FeatureSource(backend=backend, profiles=None, prior_ctr=0.05)
    ids = [str(i) for i in range(count)]

    def fetch(wanted: list[str]) -> Any:
        return source.fetch(
            index="products",
            ids=wanted,
            query=None,
            user_id=None,
            session_id=None,
            intent=None,
            degraded=[],
        )

    fetch(ids[:10])
    before = _tracked()
    inputs = fetch(ids)
    assert inputs.facts["7"]["price"] == 17.0  # the facts are really cached and served
    del inputs
    grown = _tracked() - before
    # A (stamp, facts) pair per entry would add one tracked object per product.
    assert grown < count // 20


def test_searches_leave_no_reference_cycles_for_the_collector(tmp_path: Path) -> None:
    """Every reference cycle a search leaves behind is work for the cyclic collector, whose
    full collections pause every search in the process; a self-calling closure per search
    (the prefix check, the words query of relaxation) was one. Searches of each mode, a
    misspelled one and an autocomplete one, leave none."""
    backend, _ = build_index(tmp_path / "data", _docs([*TITLES, *VACUUMS]))
    service = SearchService(backend=backend, settings=Settings(data_dir=tmp_path, search_log=False))
    service.warm_up()
    bodies = [
        {"query": {"multi_match": {"query": text, "fields": ["title"]}}, "size": 5}
        for text in ("toilet seat", "toliet", "wet vacuum", "drill kit 3")
    ]
    bodies.append({"query": {"multi_match": {"query": "vac", "type": "bool_prefix"}}})
    searches = [
        {**body, "ext": {"shoprank": {"mode": mode, "explain": explain}}}
        for body in bodies
        for mode in ("lexical", "hybrid", "full")
        for explain in (False, True)
    ]
    for body in searches:  # caches and lazily built state are made once, not counted
        service.search("products", body)
    assert _full(service, "toliet")["_shoprank"]["spelling"]["corrected"] == "toilet"
    gc.collect()
    gc.disable()
    try:
        for body in searches:
            service.search("products", body)
        left = gc.collect()
    finally:
        gc.enable()
    assert left == 0
