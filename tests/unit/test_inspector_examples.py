"""The inspector's example queries: computed from the inspected catalog (never a fixed word
list), cached per index generation, with a personalised example for a user with a profile."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from shoprank.events.model import validate_event
from shoprank.events.service import EventService
from shoprank.indexing.mapping import product_mapping
from shoprank.plugin.backends.embedded.backend import EmbeddedBackend
from shoprank.plugin.inspector_examples import (
    SIMULATED_USERS,
    EventProfiles,
    ExampleCache,
    catalog_examples,
    personal_example,
    read_catalog,
)
from shoprank.rerankers.intent.price import parse_price
from shoprank.settings import Settings

from .conftest import build_index, icecat_index

ATTRIBUTES = Settings().intent_attributes
FIELDS = ["title^3", "brand.text^2", "category.text^1.5", "description"]

# Invented brands, product types and colours: no word list could hold them, so examples
# that use them were read from the catalog.
#   brand      glimmerpods  wobblehats  snorkettes
#   Zorvik          8            -           4
#   Quillam         4            6           -
#   Brassmoth       -            3           3
PLAN = [
    ("Zorvik", "Glimmerpods", "glimmerpod", 8),
    ("Zorvik", "Snorkettes", "snorkette", 4),
    ("Quillam", "Glimmerpods", "glimmerpod", 4),
    ("Quillam", "Wobblehats", "wobblehat", 6),
    ("Brassmoth", "Wobblehats", "wobblehat", 3),
    ("Brassmoth", "Snorkettes", "snorkette", 3),
]
COLOURS = ("Mauve", "Teal", "Ochre")


def made_up_docs(*, brand_word: str = "Zorvik") -> list[dict[str, Any]]:
    docs = []
    for brand, leaf, noun, n in PLAN:
        brand = brand_word if brand == "Zorvik" else brand
        for i in range(n):
            colour = COLOURS[(len(docs) + i) % len(COLOURS)]
            docs.append(
                {
                    "_id": f"p{len(docs)}",
                    "title": f"{brand} Model {chr(65 + i)}{len(docs)} {noun} – {colour}",
                    "brand": brand,
                    "category": f"Things > {leaf}",
                    "colour": colour,
                    "price": float(10 + 7 * ((len(docs) * 5) % 13)),
                }
            )
    return docs


def lexical(backend: EmbeddedBackend, index: str, text: str) -> list[dict[str, Any]]:
    body = {"size": 100, "query": {"multi_match": {"query": text, "fields": FIELDS}}}
    return [h["_source"] for h in backend.search(index, body)["hits"]["hits"]]


@pytest.fixture(scope="module")
def made_up(tmp_path_factory: pytest.TempPathFactory) -> tuple[EmbeddedBackend, list[Any]]:
    docs = made_up_docs()
    backend, _ = build_index(tmp_path_factory.mktemp("made-up"), docs)
    return backend, docs


def by_shows(examples: Sequence[Any]) -> dict[str, Any]:
    return {e.shows: e for e in examples}


def test_examples_come_from_the_catalog(made_up: tuple[EmbeddedBackend, list[Any]]) -> None:
    backend, docs = made_up
    examples = by_shows(catalog_examples(read_catalog(backend, "products", attributes=ATTRIBUTES)))
    assert set(examples) == {"brand", "price", "colour", "category"}
    # The biggest brand with the product type most brands sell.
    assert examples["brand"].query == "Zorvik glimmerpods"
    # A price phrase the intent step parses, on a type with products on both sides of it.
    price = examples["price"].query
    words = price.split(" under ")
    assert len(words) == 2 and words[0] in {"wobblehats", "snorkettes"}
    limit = parse_price(price).range["lte"]
    leaf = words[0].capitalize()
    prices = [d["price"] for d in docs if d["category"].endswith(leaf)]
    assert sum(p <= limit for p in prices) >= 3 and any(p > limit for p in prices)
    # A colour of the catalog with a type that comes in several colours.
    colour, _, phrase = examples["colour"].query.partition(" ")
    assert colour.capitalize() in COLOURS
    of_type = [d for d in docs if d["category"].lower().endswith(phrase)]
    assert any(d["colour"].lower() == colour for d in of_type)
    assert len({d["colour"] for d in of_type}) >= 2
    # Each example shows another product type; with three used up, the category example
    # takes the biggest one again.
    assert examples["category"].query == "glimmerpods"
    assert len({examples[s].query.split()[-1] for s in ("brand", "price", "colour")}) == 3
    for example in examples.values():
        assert lexical(backend, "products", example.query), example


def test_icecat_examples_find_their_products(tmp_path_factory: pytest.TempPathFactory) -> None:
    backend, docs = icecat_index(tmp_path_factory.mktemp("icecat-examples"))
    catalog = read_catalog(backend, "products", attributes=ATTRIBUTES)
    examples = by_shows(catalog_examples(catalog))
    # Icecat has no categories: a plain product type stands in for the category example.
    assert set(examples) == {"brand", "price", "colour", "product type"}
    brands = {d.get("brand") for d in docs}
    colours = {str(d.get("attr_t_product_colour")).lower() for d in docs}
    brand_query = examples["brand"].query
    brand = next(b for b in catalog.brands if brand_query.startswith(f"{b} "))
    assert brand in brands
    product_type = brand_query[len(brand) + 1 :]
    assert product_type not in colours
    # The type is a word of that brand's products, and of other brands' products too.
    sellers = {
        d["brand"]
        for d in docs
        if product_type in re.findall(r"\w+", f"{d.get('title')} {d.get('description')}".lower())
    }
    assert brand in sellers and len(sellers) >= 2
    limit = parse_price(examples["price"].query).range["lte"]
    priced = [h["price"] for h in lexical(backend, "products", examples["price"].query)]
    assert any(p <= limit for p in priced)
    assert examples["colour"].query.split()[0] in colours
    for example in examples.values():
        assert lexical(backend, "products", example.query), example


class CountingBackend:
    """The real embedded backend, counting the searches that reach it."""

    def __init__(self, inner: EmbeddedBackend) -> None:
        self.inner = inner
        self.searches = 0

    def resolve(self, index: str) -> str:
        return self.inner.resolve(index)

    def search(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        self.searches += 1
        return self.inner.search(index, body)

    def msearch(self, index: str, bodies: list[dict[str, Any]]) -> list[Any]:
        self.searches += len(bodies)
        return self.inner.msearch(index, bodies)

    def mget(self, index: str, ids: list[str], *, source: Any = True) -> dict[str, Any]:
        return self.inner.mget(index, ids, source=source)


class Profiles:
    """An in-memory `ProfileSource`: raw user id → stored profile."""

    def __init__(self) -> None:
        self.stored: dict[str, dict[str, Any]] = {}
        self.offset: str | None = None
        self.reads = 0

    def watermark(self) -> str | None:
        return self.offset

    def profiles(self, users: Sequence[str]) -> dict[str, dict[str, Any]]:
        self.reads += 1
        return {u: p for u, p in self.stored.items() if u in users}


def profile(*, brand: str | None = None, recent: Sequence[str] = (), clicks: int = 3) -> Any:
    return {
        "kind": "user",
        "counts": {"click": clicks},
        "aff": {"brand": {brand: 2.0}} if brand else {},
        "recent": [[pid, 1.0] for pid in recent],
    }


def test_examples_are_cached_per_generation(tmp_path: Path) -> None:
    inner = EmbeddedBackend(tmp_path)
    gen = inner.create_generation("shop", product_mapping(text_dims=4))
    inner.bulk_upsert(gen, made_up_docs())
    inner.commit(gen, ready=True)
    inner.swap_alias("shop", gen)
    backend = CountingBackend(inner)
    cache = ExampleCache(backend, attributes=ATTRIBUTES, profiles=Profiles())  # type: ignore[arg-type]
    first = cache.examples("shop")
    assert first["generation"] == gen and first["total"] == 28
    assert first["examples"][0]["query"] == "Zorvik glimmerpods"
    reads = backend.searches
    assert cache.examples("shop") == first
    assert backend.searches == reads  # the same generation is not read again
    # A re-index swaps in a new generation: its catalog makes the examples.
    new = inner.create_generation("shop", product_mapping(text_dims=4))
    inner.bulk_upsert(new, made_up_docs(brand_word="Plonkett"))
    inner.commit(new, ready=True)
    inner.swap_alias("shop", new)
    second = cache.examples("shop")
    assert second["generation"] == new
    assert second["examples"][0]["query"] == "Plonkett glimmerpods"
    assert backend.searches > reads


def test_a_user_with_a_profile_gets_a_personalised_example(
    made_up: tuple[EmbeddedBackend, list[Any]],
) -> None:
    backend, docs = made_up
    profiles = Profiles()
    cache = ExampleCache(backend, attributes=ATTRIBUTES, profiles=profiles)
    assert all(e["user"] is None for e in cache.examples("products")["examples"])
    # Quillam is what sim-0003 prefers; sim-0011 has fewer events.
    profiles.stored = {"sim-0003": profile(brand="Quillam", clicks=9), "sim-0011": profile()}
    profiles.offset = "7"
    personal = cache.examples("products")["examples"][-1]
    assert personal["shows"] == "personalisation" and personal["user"] == "sim-0003"
    assert personal["query"] == "wobblehats"  # the type Quillam sells most
    assert "prefers Quillam" in personal["why"]
    reads = profiles.reads
    cache.examples("products")
    assert profiles.reads == reads  # unchanged watermark: profiles are not read again
    # Without brand affinities, the products the user saw last give the query.
    snorkette = next(d["_id"] for d in docs if "snorkette" in d["title"])
    profiles.stored = {"sim-0042": profile(recent=[snorkette], clicks=1)}
    profiles.offset = "8"
    personal = cache.examples("products")["examples"][-1]
    assert (personal["user"], personal["query"]) == ("sim-0042", "snorkettes")
    assert "1 event," in personal["why"]


def test_a_preferred_brand_outside_the_sample_is_read_from_the_index(
    made_up: tuple[EmbeddedBackend, list[Any]],
) -> None:
    backend, _ = made_up
    catalog = read_catalog(backend, "products", attributes=ATTRIBUTES)
    catalog.docs = [d for d in catalog.docs if d["brand"] != "Brassmoth"]

    def of_brand(brand: str) -> list[dict[str, Any]]:
        body = {"size": 50, "query": {"term": {"brand": brand}}}
        return [h["_source"] for h in backend.search("products", body)["hits"]["hits"]]

    fan = {"sim-0005": profile(brand="Brassmoth")}
    personal = personal_example(catalog, fan, "fallback", of_brand=of_brand)
    assert personal is not None
    assert personal.query in {"wobblehats", "snorkettes"}  # what Brassmoth sells
    assert personal_example(catalog, fan, "fallback") == replace(personal, query="fallback")


def test_event_profiles_find_simulated_shoppers(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    source = EventProfiles(settings)
    assert source.watermark() is None  # nothing folded yet
    raw = [
        {"type": "click", "user_id": "sim-0017", "product_id": "p1", "timestamp": 100.0},
        {"type": "click", "user_id": "someone-else", "product_id": "p2", "timestamp": 101.0},
    ]
    EventService(settings).ingest([validate_event(e, now=200.0) for e in raw], now=200.0)
    assert source.watermark() is not None
    found = source.profiles(SIMULATED_USERS)
    assert list(found) == ["sim-0017"]
    assert found["sim-0017"]["counts"] == {"click": 1}


def test_examples_import_nothing_heavy(
    made_up: tuple[EmbeddedBackend, list[Any]], tmp_path: Path
) -> None:
    root = made_up[0].store.root
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from shoprank.plugin.backends.embedded.backend import EmbeddedBackend
        from shoprank.plugin.inspector_examples import EventProfiles, ExampleCache
        from shoprank.settings import Settings
        settings = Settings(data_dir=Path({str(tmp_path)!r}))
        cache = ExampleCache(EmbeddedBackend(Path({str(root)!r})),
                             attributes=settings.intent_attributes,
                             profiles=EventProfiles(settings))
        assert cache.examples("products")["examples"]
        heavy = [m for m in ("torch", "transformers", "lightgbm") if m in sys.modules]
        assert not heavy, heavy
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
