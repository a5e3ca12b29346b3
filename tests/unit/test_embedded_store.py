"""Index generations, aliases and writes of the embedded backend (store.py, generation.py)."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shoprank.errors import BadRequestError, IndexNotFoundError
from shoprank.indexing.mapping import product_mapping
from shoprank.plugin.backends.embedded.backend import EmbeddedBackend

from .conftest import build_index, hit_ids, total

E1, E2, E3, E4 = (np.eye(4, dtype=np.float32)[i] for i in range(4))

DOCS = [
    {"_id": "1", "title": "HP Pavilion laptop", "brand": "HP", "price": 40.0},
    {"_id": "2", "title": "Dell wireless mouse", "brand": "Dell", "price": 15.0},
    {"_id": "3", "title": "Lenovo ThinkPad laptop", "brand": "Lenovo", "price": 95.0},
]
# doc 1 points along e1, doc 2 along e2, doc 3 mostly along e1 too.
VECTORS = np.array([E1, E2, [0.8, 0.0, 0.6, 0.0]], dtype=np.float32)


def knn_ids(
    backend: EmbeddedBackend, vector: np.ndarray, k: int = 1, index: str = "products"
) -> list[str]:
    return hit_ids(
        backend.search(
            index, {"knn": {"field": "text_vector", "query_vector": vector.tolist(), "k": k}}
        )
    )


def match_ids(backend: EmbeddedBackend, text: str, index: str = "products") -> set[str]:
    return set(hit_ids(backend.search(index, {"query": {"match": {"title": text}}})))


def all_ids(backend: EmbeddedBackend, index: str = "products") -> set[str]:
    return set(hit_ids(backend.search(index, {"size": 100})))


def new_generation(
    backend: EmbeddedBackend,
    docs: list[dict[str, Any]],
    vectors: np.ndarray | None = None,
    *,
    ready: bool = True,
) -> str:
    gen = backend.create_generation("products", product_mapping(text_dims=4))
    backend.bulk_upsert(gen, docs, None if vectors is None else {"text_vector": vectors})
    backend.commit(gen, ready=ready)
    return gen


@pytest.fixture()
def backend(tmp_path: Path) -> EmbeddedBackend:
    b, _ = build_index(tmp_path, DOCS, VECTORS)
    return b


# -- generations and aliases ---------------------------------------------------------------


def test_generations_are_numbered_and_start_building(tmp_path: Path) -> None:
    b = EmbeddedBackend(tmp_path)
    first = b.create_generation("products", product_mapping(text_dims=4))
    second = b.create_generation("products", product_mapping(text_dims=4))
    assert (first, second) == ("products-000001", "products-000002")
    metas = b.generations("products")
    assert [m["name"] for m in metas] == [first, second]
    assert {m["status"] for m in metas} == {"building"}
    assert all("mapping" not in m for m in metas)
    assert b.info() == {"backend": "embedded", "indices": []}


def test_generation_numbers_never_repeat_after_a_drop(tmp_path: Path) -> None:
    b = EmbeddedBackend(tmp_path)
    gen = b.create_generation("products", product_mapping(text_dims=4))
    b.store.drop_generation(gen)
    assert b.create_generation("products", product_mapping(text_dims=4)) == "products-000002"


def test_commit_returns_the_document_count(tmp_path: Path) -> None:
    b = EmbeddedBackend(tmp_path)
    gen = b.create_generation("products", product_mapping(text_dims=4))
    b.bulk_upsert(gen, DOCS, {"text_vector": VECTORS})
    assert b.commit(gen) == 3
    assert b.generations("products")[0]["doc_count"] == 3


def test_swap_only_to_ready_generations(tmp_path: Path) -> None:
    b = EmbeddedBackend(tmp_path)
    gen1 = new_generation(b, DOCS[:1], ready=False)
    with pytest.raises(BadRequestError, match="not ready"):
        b.swap_alias("products", gen1)
    with pytest.raises(IndexNotFoundError):  # the failed swap created no alias
        b.search("products", {})
    b.commit(gen1, ready=True)
    assert b.swap_alias("products", gen1) is None
    assert b.info()["indices"] == ["products"]

    gen2 = new_generation(b, DOCS[1:], ready=False)
    with pytest.raises(BadRequestError):
        b.swap_alias("products", gen2)
    assert b.resolve("products") == gen1
    assert all_ids(b) == {"1"}  # still fully the old generation

    b.commit(gen2, ready=True)
    assert b.swap_alias("products", gen2) == gen1
    result = b.search("products", {})
    assert set(hit_ids(result)) == {"2", "3"}
    assert {h["_index"] for h in result["hits"]["hits"]} == {gen2}
    # The concrete generation stays searchable by its own name.
    assert all_ids(b, gen1) == {"1"}


def test_swap_rejects_bad_alias_names_and_shadowing(backend: EmbeddedBackend) -> None:
    gen = backend.resolve("products")
    with pytest.raises(BadRequestError):
        backend.swap_alias("Products", gen)
    with pytest.raises(BadRequestError):
        backend.swap_alias("bad name", gen)
    with pytest.raises(BadRequestError, match="shadow"):
        backend.swap_alias(gen, gen)
    with pytest.raises(BadRequestError):
        backend.create_generation("../evil", product_mapping(text_dims=4))


def test_swap_is_atomic_for_concurrent_readers(tmp_path: Path) -> None:
    writer = EmbeddedBackend(tmp_path)
    gen1 = new_generation(writer, DOCS[:1])
    gen2 = new_generation(writer, DOCS[1:])
    writer.swap_alias("products", gen1)
    reader = EmbeddedBackend(tmp_path)  # like the serving process
    seen: list[set[str]] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def flip() -> None:
        try:
            i = 0
            while i < 150 or len(seen) < 100 or i % 2:  # ends on gen1 after an even count
                writer.swap_alias("products", gen2 if i % 2 == 0 else gen1)
                i += 1
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=flip)
    thread.start()
    while not done.is_set():
        seen.append(all_ids(reader))
    thread.join()
    assert errors == []
    assert all(s in ({"1"}, {"2", "3"}) for s in seen)
    assert {frozenset(s) for s in seen} == {frozenset({"1"}), frozenset({"2", "3"})}
    assert not list(tmp_path.glob(".aliases.json.*"))  # no temporary file left behind
    assert reader.resolve("products") == gen1


def test_rollback_returns_to_the_previous_generation(tmp_path: Path) -> None:
    b = EmbeddedBackend(tmp_path)
    gen1 = new_generation(b, DOCS[:1], VECTORS[:1])
    b.swap_alias("products", gen1)
    gen2 = new_generation(b, DOCS[1:], VECTORS[1:])
    b.swap_alias("products", gen2)
    assert all_ids(b) == {"2", "3"}
    with pytest.raises(BadRequestError, match="behind an alias"):
        b.store.drop_generation(gen2)

    assert b.rollback("products") == gen1
    assert b.resolve("products") == gen1
    assert all_ids(b) == {"1"}
    assert knn_ids(b, E1) == ["1"]
    with pytest.raises(BadRequestError, match="no older"):
        b.rollback("products")
    # Forward again: gen2 is still intact.
    b.swap_alias("products", gen2)
    assert all_ids(b) == {"2", "3"}


def test_prune_keeps_n_previous_and_removes_building(tmp_path: Path) -> None:
    b = EmbeddedBackend(tmp_path)
    ready = []
    for i in range(4):
        gen = new_generation(b, [{"_id": str(i), "title": f"product {i}"}])
        b.swap_alias("products", gen)
        ready.append(gen)
    building = new_generation(b, [{"_id": "x", "title": "half loaded"}], ready=False)
    unfinished = b.create_generation("products", product_mapping(text_dims=4))
    g1, g2, g3, g4 = ready

    dropped = b.prune("products", keep=1)
    assert sorted(dropped) == sorted([g1, g2, building, unfinished])
    assert [m["name"] for m in b.generations("products")] == [g3, g4]
    for name in dropped:
        assert not (tmp_path / "indices" / name).exists()
    assert b.resolve("products") == g4 and all_ids(b) == {"3"}
    assert b.rollback("products") == g3

    assert b.prune("products", keep=1) == []  # live g3, one other (g4) kept
    assert b.prune("products", keep=0) == [g4]
    assert [m["name"] for m in b.generations("products")] == [g3]


def test_prune_leaves_other_aliases_alone(tmp_path: Path) -> None:
    b = EmbeddedBackend(tmp_path)
    products = new_generation(b, DOCS[:1])
    other = b.create_generation("archive", product_mapping(text_dims=4))
    b.commit(other, ready=True)
    b.swap_alias("products", products)
    assert b.prune("products", keep=0) == []
    assert [m["name"] for m in b.generations("archive")] == [other]


@pytest.mark.parametrize(
    "call",
    [
        lambda b: b.search("nope", {}),
        lambda b: b.count("nope", None),
        lambda b: b.get("nope", "1"),
        lambda b: b.mget("nope", ["1"]),
        lambda b: b.bulk_upsert("nope", [{"_id": "1"}]),
        lambda b: b.delete("nope", ["1"]),
        lambda b: b.commit("nope"),
        lambda b: b.swap_alias("products", "nope"),
        lambda b: b.rollback("nope"),
        lambda b: b.resolve("nope"),
    ],
)
def test_unknown_index_is_404(backend: EmbeddedBackend, call: Any) -> None:
    with pytest.raises(IndexNotFoundError) as err:
        call(backend)
    es = err.value.to_es_body()
    assert es["status"] == 404
    assert es["error"]["type"] == "index_not_found_exception"
    assert "[nope]" in es["error"]["reason"]


# -- writes --------------------------------------------------------------------------------


def test_upsert_replaces_by_id(backend: EmbeddedBackend) -> None:
    gen = backend.resolve("products")
    assert knn_ids(backend, E1) == ["1"]
    backend.bulk_upsert(
        gen,
        [{"_id": "1", "title": "Refurbished tablet", "brand": "HP", "price": 30.0}],
        {"text_vector": E4[None, :]},
    )
    backend.commit(gen)

    assert match_ids(backend, "pavilion") == set()
    assert match_ids(backend, "tablet") == {"1"}
    assert match_ids(backend, "laptop") == {"3"}
    assert total(backend.search("products", {})) == 3  # replaced, not added
    assert backend.get("products", "1")["_source"]["title"] == "Refurbished tablet"
    assert knn_ids(backend, E4) == ["1"]
    assert knn_ids(backend, E1) == ["3"]  # the old e1 vector is gone
    assert hit_ids(backend.search("products", {"query": {"range": {"price": {"gte": 35}}}})) == [
        "3"
    ]


def test_upsert_without_vector_drops_the_old_one(backend: EmbeddedBackend) -> None:
    gen = backend.resolve("products")
    backend.bulk_upsert(gen, [{"_id": "1", "title": "HP Pavilion laptop"}])
    backend.commit(gen)
    assert knn_ids(backend, E1, k=3) == ["3", "2"]
    assert match_ids(backend, "pavilion") == {"1"}


def test_delete_removes_from_lexical_and_knn(backend: EmbeddedBackend) -> None:
    gen = backend.resolve("products")
    assert backend.delete(gen, ["1", "missing"]) == 1
    backend.commit(gen)
    assert match_ids(backend, "pavilion") == set()
    assert match_ids(backend, "laptop") == {"3"}
    assert knn_ids(backend, E1) == ["3"]
    assert set(knn_ids(backend, E1, k=10)) == {"2", "3"}
    assert backend.count("products", None) == 2
    assert backend.get("products", "1")["found"] is False
    assert backend.mget("products", ["1", "2"]).keys() == {"2"}
    assert backend.delete(gen, ["1"]) == 0


def test_writes_are_invisible_until_commit(backend: EmbeddedBackend) -> None:
    gen = backend.resolve("products")
    backend.bulk_upsert(gen, [{"_id": "4", "title": "Apple charger"}])
    assert match_ids(backend, "charger") == set()
    backend.commit(gen)
    assert match_ids(backend, "charger") == {"4"}


def test_get_mget_count(backend: EmbeddedBackend) -> None:
    doc = backend.get("products", "2")
    assert doc["found"] is True and doc["_id"] == "2"
    assert doc["_index"] == backend.resolve("products")
    assert doc["_source"] == {"title": "Dell wireless mouse", "brand": "Dell", "price": 15.0}
    assert backend.mget("products", ["1", "3"], source=["brand"]) == {
        "1": {"brand": "HP"},
        "3": {"brand": "Lenovo"},
    }
    assert backend.count("products", {"query": {"match": {"title": "laptop"}}}) == 2
    with pytest.raises(BadRequestError):
        backend.count("products", {"query": {"match_all": {}}, "size": 3})


@pytest.mark.parametrize(
    ("docs", "vectors"),
    [
        ([{"title": "no id"}], None),
        (DOCS[:1], {"image_vector": np.ones((1, 4), dtype=np.float32)}),
        (DOCS[:2], {"text_vector": np.ones((1, 4), dtype=np.float32)}),
    ],
)
def test_bulk_upsert_rejects_bad_input(
    backend: EmbeddedBackend, docs: list[dict[str, Any]], vectors: Any
) -> None:
    with pytest.raises(BadRequestError):
        backend.bulk_upsert(backend.resolve("products"), docs, vectors)


def test_vectors_can_be_rebuilt_from_tantivy(backend: EmbeddedBackend) -> None:
    gen = backend.store.generation("products")
    vector_file = gen.dir / "text_vector.usearch"
    assert vector_file.exists()
    assert gen.rebuild_vectors() == 3
    assert knn_ids(backend, E2) == ["2"]
    assert knn_ids(backend, E1, k=2) == ["1", "3"]


# -- a second process on the same directory ------------------------------------------------


def test_second_instance_sees_commits_without_reopening(tmp_path: Path) -> None:
    loader, gen = build_index(tmp_path, DOCS, VECTORS)
    server = EmbeddedBackend(tmp_path)
    assert all_ids(server) == {"1", "2", "3"}
    assert knn_ids(server, E3) == ["3"]  # the only doc with an e3 component (0.6)

    loader.bulk_upsert(gen, [{"_id": "4", "title": "Apple charger"}], {"text_vector": E3[None, :]})
    loader.commit(gen)
    assert match_ids(server, "charger") == {"4"}
    assert knn_ids(server, E3) == ["4"]  # the vector file was reloaded too

    loader.delete(gen, ["1"])
    loader.commit(gen)
    assert all_ids(server) == {"2", "3", "4"}
    assert knn_ids(server, E1) == ["3"]

    gen2 = new_generation(loader, [{"_id": "9", "title": "Brand new catalog"}])
    loader.swap_alias("products", gen2)
    assert all_ids(server) == {"9"}
    assert server.resolve("products") == gen2
    loader.rollback("products")
    assert all_ids(server) == {"2", "3", "4"}


def test_second_instance_sees_a_commit_with_an_unchanged_mtime(tmp_path: Path) -> None:
    loader, gen = build_index(tmp_path, DOCS, VECTORS)
    server = EmbeddedBackend(tmp_path)
    assert all_ids(server) == {"1", "2", "3"}
    meta = tmp_path / "indices" / gen / "meta.json"
    before = meta.stat().st_mtime_ns
    loader.bulk_upsert(gen, [{"_id": "4", "title": "Apple charger"}])
    loader.commit(gen)
    os.utime(meta, ns=(before, before))  # both commits within one timestamp tick
    assert match_ids(server, "charger") == {"4"}


# -- bugs in writes that are not committed yet ---------------------------------------------


def test_same_id_twice_in_one_batch_keeps_the_last(tmp_path: Path) -> None:
    backend, _ = build_index(
        tmp_path,
        [
            {"_id": "a", "title": "first version"},
            {"_id": "a", "title": "second version"},
        ],
    )
    result = backend.search("products", {"query": {"match_all": {}}})
    assert hit_ids(result) == ["a"]
    assert match_ids(backend, "first") == set()


def test_reupsert_before_commit_replaces_the_vector(tmp_path: Path) -> None:
    backend = EmbeddedBackend(tmp_path)
    gen = backend.create_generation("products", product_mapping(text_dims=4))
    backend.bulk_upsert(gen, [{"_id": "a", "title": "old"}], {"text_vector": E1[None, :]})
    backend.bulk_upsert(gen, [{"_id": "a", "title": "new"}], {"text_vector": E2[None, :]})
    backend.commit(gen, ready=True)
    backend.swap_alias("products", gen)
    assert all_ids(backend) == {"a"}
    assert knn_ids(backend, E1) == ["a"]  # the only document, whatever its vector


def test_delete_before_commit_removes_an_uncommitted_doc(tmp_path: Path) -> None:
    backend, gen = build_index(tmp_path, DOCS, VECTORS)
    backend.bulk_upsert(gen, [{"_id": "4", "title": "Apple charger"}])
    backend.delete(gen, ["4"])
    backend.commit(gen)
    assert match_ids(backend, "charger") == set()


# -- releasing old generations ---------------------------------------------------------------


def _files_held(directory: Path) -> list[str]:
    """Files under `directory` this process still has open or memory-mapped (Linux)."""
    prefix = str(directory)
    held = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(prefix):
            held.append(target)
    for line in Path("/proc/self/maps").read_text().splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and parts[5].startswith(prefix):
            held.append(parts[5])
    return held


def test_serving_process_lets_go_of_swapped_out_generations(tmp_path: Path) -> None:
    import gc
    import weakref

    loader = EmbeddedBackend(tmp_path)  # the `index load` process
    server = EmbeddedBackend(tmp_path)  # the serving process
    loader.swap_alias("products", new_generation(loader, DOCS, VECTORS))
    old_refs = []
    old_dirs = []
    for _ in range(4):
        assert all_ids(server) == {"1", "2", "3"}
        assert knn_ids(server, E1) == ["1"]
        served = server.store.generation("products")
        old_refs.append((weakref.ref(served), weakref.ref(served.vectors["text_vector"])))
        old_dirs.append(served.dir)
        del served
        loader.swap_alias("products", new_generation(loader, DOCS, VECTORS))
        loader.prune("products", keep=0)  # the old generation is deleted from disk
    assert all_ids(server) == {"1", "2", "3"}
    live = server.resolve("products")
    assert server.store.open_generations() == [live]
    assert loader.store.open_generations() == [live]
    gc.collect()
    assert [(gen(), vectors()) for gen, vectors in old_refs] == [(None, None)] * 4
    for directory in old_dirs:  # nothing of a dropped generation stays open or mapped
        assert not directory.exists()
        assert _files_held(directory) == []


def test_a_search_in_flight_across_a_swap_finishes_on_its_generation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc
    import weakref

    from shoprank.plugin.backends.embedded.generation import Generation

    loader = EmbeddedBackend(tmp_path)
    server = EmbeddedBackend(tmp_path)
    first = new_generation(loader, DOCS[:1], VECTORS[:1])
    loader.swap_alias("products", first)
    assert all_ids(server) == {"1"}
    old = weakref.ref(server.store.generation("products"))

    started, swapped = threading.Event(), threading.Event()
    real_searcher = Generation.searcher

    def searcher(self: Generation) -> Any:
        found = real_searcher(self)
        if threading.current_thread().name == "in-flight":
            started.set()
            assert swapped.wait(30)  # an event, not a time window: the swap happens here
        return found

    monkeypatch.setattr(Generation, "searcher", searcher)
    results: list[dict[str, Any]] = []
    thread = threading.Thread(
        target=lambda: results.append(server.search("products", {"size": 10})), name="in-flight"
    )
    thread.start()
    assert started.wait(30)
    second = new_generation(loader, DOCS[1:], VECTORS[1:])
    loader.swap_alias("products", second)
    loader.prune("products", keep=0)
    assert all_ids(server) == {"2", "3"}  # new searches see the new generation at once
    assert server.store.open_generations() == [second]
    assert old() is not None  # still held by the search in flight
    swapped.set()
    thread.join()
    assert hit_ids(results[0]) == ["1"]
    assert {h["_index"] for h in results[0]["hits"]["hits"]} == {first}
    results.clear()
    gc.collect()
    assert old() is None  # released once its last reader finished


def test_generations_being_written_are_never_let_go_of(tmp_path: Path) -> None:
    loader = EmbeddedBackend(tmp_path)
    worker = EmbeddedBackend(tmp_path)  # another process writing the building generation
    loader.swap_alias("products", new_generation(loader, DOCS[:1]))
    building = loader.create_generation("products", product_mapping(text_dims=4))
    worker.bulk_upsert(building, DOCS[1:], {"text_vector": VECTORS[1:]})  # not yet committed
    loader.swap_alias("products", new_generation(loader, DOCS[:2]))
    assert all_ids(worker) == {"1", "2"}  # the worker saw the swap
    assert building in worker.store.open_generations()
    assert worker.commit(building, ready=True) == 2  # nothing uncommitted was lost
    assert all_ids(worker, building) == {"2", "3"}
