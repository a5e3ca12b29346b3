"""Highlight benchmark on the embedded backend: what `highlight` adds to a search, and a
Search UI–like page (query + 2 `filter`-wrapped terms facets + highlight) against a plain
lexical search, on the Icecat sample.

    python benchmarks/bench_highlight.py                          # first 19,000 rows
    python benchmarks/bench_highlight.py --rows 5000 --queries 100
    python benchmarks/bench_highlight.py --data-dir /tmp/x --skip-load

Searches run in-process through `EmbeddedBackend.search` (what every mode ends in), one at
a time. "added by highlight" is measured twice: per query as (search with highlight) minus
(the same search without it), and as the highlighter alone on the same 20-hit page.
Results are printed as a table and written to `benchmarks/results/highlight.json`.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from shoprank.indexing.catalog import FieldRoles, normalise_row
from shoprank.indexing.mapping import product_mapping
from shoprank.plugin.backends.embedded.backend import EmbeddedBackend
from shoprank.plugin.backends.embedded.highlight import PageHighlighter
from shoprank.plugin.backends.embedded.highlight_options import parse_highlight

ROOT = Path(__file__).resolve().parents[1]
ICECAT = ROOT.parent / "shared" / "data" / "icecat-products.jsonl.gz"
RESULTS = ROOT / "benchmarks" / "results" / "highlight.json"
INDEX = "icecat-hl"
HIGHLIGHT = {"fields": {"title": {}, "description": {}}}
FIELDS = ["title^3", "brand.text^2", "description"]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "n": len(samples),
        "p50_ms": round(pct(samples, 0.5), 3),
        "p99_ms": round(pct(samples, 0.99), 3),
        "mean_ms": round(statistics.fmean(samples), 3),
    }


def read_rows(limit: int) -> list[dict[str, Any]]:
    roles = FieldRoles.parse("brand=supplier,description=short_description")
    rows = []
    with gzip.open(ICECAT, "rb") as fh:
        for line in fh:
            doc = normalise_row(orjson.loads(line), roles=roles, price_multiplier=0.01)
            rows.append({"_id": doc["id"], **doc})
            if limit and len(rows) >= limit:
                break
    return rows


def load(backend: EmbeddedBackend, rows: list[dict[str, Any]]) -> None:
    gen = backend.create_generation(INDEX, product_mapping(text_dims=0))
    for i in range(0, len(rows), 1000):
        backend.bulk_upsert(gen, rows[i : i + 1000], None)
    backend.commit(gen, ready=True)
    backend.swap_alias(INDEX, gen)


def make_queries(rows: list[dict[str, Any]], n: int, seed: int = 14) -> list[str]:
    """`n` shopper-like queries: one to three words of a random title."""
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        words = [w for w in re.findall(r"[A-Za-z]{3,}", rng.choice(rows)["title"])]
        if words:
            k = rng.randint(1, min(3, len(words)))
            start = rng.randint(0, len(words) - k)
            out.append(" ".join(words[start : start + k]).lower())
    return out


def searchkit_query(query: str) -> dict[str, Any]:
    """Searchkit's stock query (fuzzy best_fields + bool_prefix + phrase), as captured."""
    fields = ["title^3", "description", "brand.text"]
    return {
        "bool": {
            "should": [
                {"multi_match": {"query": query, "fields": fields, "fuzziness": "AUTO:4,8"}},
                {"multi_match": {"query": query, "fields": fields, "type": "bool_prefix"}},
                {"multi_match": {"query": query, "fields": fields, "type": "phrase"}},
            ]
        }
    }


SEARCHKIT_HIGHLIGHT = {
    "pre_tags": ["<em>"],
    "post_tags": ["</em>"],
    "fields": {
        "title": {"number_of_fragments": 0},
        "description": {"number_of_fragments": 5, "fragment_size": 100},
    },
}


def _typo(query: str, rng: random.Random) -> str:
    """`query` with one letter of its longest word swapped with the next (a typo)."""
    words = query.split()
    longest = max(range(len(words)), key=lambda i: len(words[i]))
    word = words[longest]
    if len(word) >= 4:
        i = rng.randint(1, len(word) - 2)
        words[longest] = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    return " ".join(words)


def lexical(query: str) -> dict[str, Any]:
    return {"query": {"multi_match": {"query": query, "fields": FIELDS}}, "size": 20}


def search_ui_page(query: str, wrapped: bool) -> dict[str, Any]:
    """What Search UI's connector sends for a results page with two facets and snippets."""
    facets = {"brand": "brand", "type": "attr_t_type"}
    aggs: dict[str, Any] = {}
    for name, field in facets.items():
        terms = {"terms": {"field": field, "size": 20}}
        aggs[name] = {"filter": {"bool": {"must": []}}, "aggs": {name: terms}} if wrapped else terms
    return {**lexical(query), "aggs": aggs, "highlight": HIGHLIGHT}


PRICE_RANGES = {
    "Under 10": {"range": {"price": {"gte": 0, "lte": 10}}},
    "10 to 50": {"range": {"price": {"gte": 10, "lte": 50}}},
    "50 to 200": {"range": {"price": {"gte": 50, "lte": 200}}},
    "200 and above": {"range": {"price": {"gte": 200}}},
}


def search_ui_query(query: str) -> dict[str, Any]:
    """The query Search UI's Elasticsearch connector builds for a search term (captured
    from @elastic/search-ui-elasticsearch-connector 1.24.2 in tests/frontends)."""
    fields = ["title^3", "description^1", "brand.text^1"]
    should = [
        {
            "multi_match": {
                "query": query,
                "fields": fields,
                "type": "best_fields",
                "operator": "and",
            }
        },
        {"multi_match": {"query": query, "fields": fields, "type": "cross_fields"}},
        {"multi_match": {"query": query, "fields": fields, "type": "phrase"}},
        {"multi_match": {"query": query, "fields": fields, "type": "phrase_prefix"}},
    ]
    return {"bool": {"must": [{"bool": {"minimum_should_match": 1, "should": should}}]}}


def search_ui_stock(query: str, *, facets: bool = True, highlight: bool = True) -> dict[str, Any]:
    """The whole results-page request of Search UI's stock config (brand value facet, price
    range facet, title/description snippets), as the connector sends it."""
    body: dict[str, Any] = {
        "size": 20,
        "_source": {"includes": ["title", "description", "brand", "price"]},
        "from": 0,
        "sort": "_score",
        "query": search_ui_query(query),
    }
    if highlight:
        body["highlight"] = {"fields": {"title": {}, "description": {}}}
    if facets:
        brand = {"terms": {"field": "brand", "size": 10, "order": {"_count": "desc"}}}
        price = {"filters": {"filters": PRICE_RANGES}}
        body["aggs"] = {
            "facet_bucket_all": {
                "aggs": {"brand": brand, "price": price},
                "filter": {"bool": {"must": []}},
            }
        }
    return body


def timed(backend: EmbeddedBackend, body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    t0 = time.perf_counter()
    response = backend.search(INDEX, body)
    return (time.perf_counter() - t0) * 1000, response


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=19_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="bench-highlight-"))
    rows = read_rows(args.rows)
    backend = EmbeddedBackend(data_dir)
    if not args.skip_load:
        t0 = time.perf_counter()
        load(backend, rows)
        print(f"loaded {len(rows)} rows in {time.perf_counter() - t0:.1f}s", flush=True)
    queries = make_queries(rows, args.queries)
    for q in queries[:20]:  # warm caches (stems, tantivy)
        backend.search(INDEX, {**lexical(q), "highlight": HIGHLIGHT})

    wrapped = True
    try:
        backend.search(INDEX, search_ui_page(queries[0], wrapped=True))
    except Exception as exc:  # noqa: BLE001 - a backend without `filter` aggs yet
        print(f"filter-wrapped facets refused ({exc}); timing unwrapped terms facets")
        wrapped = False

    plain: list[float] = []
    with_hl: list[float] = []
    added: list[float] = []
    alone: list[float] = []
    alone_searchkit: list[float] = []
    searchkit_request = parse_highlight(SEARCHKIT_HIGHLIGHT)
    page: list[float] = []
    page_plain: list[float] = []
    stock_query: list[float] = []
    stock_page: list[float] = []
    added_filters: list[float] = []
    added_cardinality: list[float] = []
    gen = backend.store.generation(INDEX)
    request = parse_highlight(HIGHLIGHT)
    for _ in range(args.repeats):
        for q in queries:
            body = lexical(q)
            t_plain, response = timed(backend, body)
            t_hl, _ = timed(backend, {**body, "highlight": HIGHLIGHT})
            plain.append(t_plain)
            with_hl.append(t_hl)
            added.append(t_hl - t_plain)
            sources = [h["_source"] for h in response["hits"]["hits"]]
            t0 = time.perf_counter()
            highlighter = PageHighlighter(gen.schema, request, body["query"])
            for source in sources:
                highlighter.hit(source)
            alone.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            highlighter = PageHighlighter(gen.schema, searchkit_request, searchkit_query(q))
            for source in sources:
                highlighter.hit(source)
            alone_searchkit.append((time.perf_counter() - t0) * 1000)
            page_plain.append(t_plain)
            page.append(timed(backend, search_ui_page(q, wrapped))[0])
            # Search UI's stock request, and the same query with fewer constructs.
            stock_query.append(timed(backend, search_ui_stock(q, facets=False, highlight=False))[0])
            stock_page.append(timed(backend, search_ui_stock(q))[0])
            with_filters = {**body, "aggs": {"price": {"filters": {"filters": PRICE_RANGES}}}}
            added_filters.append(timed(backend, with_filters)[0] - t_plain)
            with_card = {**body, "aggs": {"brands": {"cardinality": {"field": "brand"}}}}
            added_cardinality.append(timed(backend, with_card)[0] - t_plain)

    # Suggesters: the vocabulary is built once per generation (timed), then each request.
    t0 = time.perf_counter()
    backend.search(INDEX, {"size": 0, "suggest": {"text": "x", "t": {"term": {"field": "title"}}}})
    vocabulary_ms = (time.perf_counter() - t0) * 1000
    completion: list[float] = []
    term: list[float] = []
    phrase: list[float] = []
    rng = random.Random(7)
    for q in queries:
        prefix = q[: rng.randint(3, max(3, min(len(q), 10)))]
        spec = {"c": {"prefix": prefix, "completion": {"field": "title", "skip_duplicates": True}}}
        completion.append(timed(backend, {"size": 0, "suggest": spec})[0])
        typo = _typo(q, rng)
        spec = {"text": typo, "t": {"term": {"field": "title"}}}
        term.append(timed(backend, {"size": 0, "suggest": spec})[0])
        spec = {"text": typo, "p": {"phrase": {"field": "title"}}}
        phrase.append(timed(backend, {"size": 0, "suggest": spec})[0])

    results = {
        "rows": len(rows),
        "queries": len(queries),
        "repeats": args.repeats,
        "page_size": 20,
        "highlight": HIGHLIGHT,
        "facets_filter_wrapped": wrapped,
        "lexical search (20 hits)": summary(plain),
        "lexical search + highlight": summary(with_hl),
        "added by highlight (paired difference)": summary(added),
        "highlighter alone, 20-hit page": summary(alone),
        "highlighter alone, Searchkit query + highlight": summary(alone_searchkit),
        "Search UI page (query + 2 facets + highlight)": summary(page),
        "added by a filters facet (4 price ranges)": summary(added_filters),
        "added by a cardinality facet (brand)": summary(added_cardinality),
        "Search UI stock query alone (4-clause bool, 20 hits)": summary(stock_query),
        "Search UI stock page (that query + brand/price facets + highlight)": summary(stock_page),
        "suggest vocabulary build (first request, ms)": round(vocabulary_ms, 1),
        "completion suggest (skip_duplicates)": summary(completion),
        "term suggest (one typo)": summary(term),
        "phrase suggest (one typo)": summary(phrase),
        "Search UI page / plain lexical (p50)": round(pct(page, 0.5) / pct(page_plain, 0.5), 2),
        "Search UI page / plain lexical (p99)": round(pct(page, 0.99) / pct(page_plain, 0.99), 2),
        "stock page / plain lexical (p50)": round(pct(stock_page, 0.5) / pct(page_plain, 0.5), 2),
        "stock page / plain lexical (p99)": round(pct(stock_page, 0.99) / pct(page_plain, 0.99), 2),
        "stock page / its query alone (p50)": round(
            pct(stock_page, 0.5) / pct(stock_query, 0.5), 2
        ),
        "stock page / its query alone (p99)": round(
            pct(stock_page, 0.99) / pct(stock_query, 0.99), 2
        ),
    }
    print(f"{'measurement':50} {'p50 ms':>9} {'p99 ms':>9} {'mean ms':>9}")
    for key, value in results.items():
        if isinstance(value, dict) and "p50_ms" in value:
            print(f"{key:50} {value['p50_ms']:9.3f} {value['p99_ms']:9.3f} {value['mean_ms']:9.3f}")
    for key in (
        "suggest vocabulary build (first request, ms)",
        "Search UI page / plain lexical (p50)",
        "Search UI page / plain lexical (p99)",
        "stock page / plain lexical (p50)",
        "stock page / plain lexical (p99)",
        "stock page / its query alone (p50)",
        "stock page / its query alone (p99)",
    ):
        print(f"{key:50} {results[key]:9.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
