"""Unmodified Searchkit and Elastic Search UI, in their stock configurations, against a real
`shoprank serve` on Icecat: every request answers 200 and the page renders what the catalog
says (hits with highlights, facet counts counted from the rows, sorts, pages, autocomplete).

The libraries run in Node (tests/frontends/*.mjs, the npm packages pinned there; `make test`
runs `npm ci`): Searchkit through InstantSearch.js's connectors, Search UI through its
headless SearchDriver. Each driver prints, per scenario, the exact requests it sent, their
statuses, and what the widgets would render; the expected values below are computed from
the catalog rows only.

The query word is "epson": in this subset no other token is a prefix or a one-edit fuzzy
neighbour of it (checked below), so the documents matching the libraries' queries (fuzzy
`multi_match`, `bool_prefix`, `phrase_prefix`, ...) are exactly the rows with the word
"epson" in the title, the description or the brand, whatever the analyzer.
"""

from __future__ import annotations

import html
import json
import math
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import ICECAT, Server
from .icecat_subset import (
    INDEX,
    brand_counts,
    damerau,
    in_range,
    load_subset,
    matching,
    near_tokens,
    tokens,
)

FRONTENDS = Path(__file__).resolve().parents[1] / "frontends"
MODES = ["full", "lexical"]
LIBRARIES = ["searchkit", "searchui"]
WORD = "epson"
SEARCH_FIELDS = ("title", "description", "brand")
NODE = shutil.which("node")
NPM = shutil.which("npm")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not ICECAT.exists(), reason=f"Icecat sample not found at {ICECAT}"),
    pytest.mark.skipif(
        NODE is None or NPM is None,
        reason="node and npm are not installed: the frontend libraries cannot run",
    ),
]

# InstantSearch asks Searchkit for its own tags and renders them as <mark>; Search UI shows
# Elasticsearch's default <em>.
MARK = re.compile(r"(?:__ais-highlight__|<mark>|<em>)(.*?)(?:__/ais-highlight__|</mark>|</em>)")
TAGS = re.compile(r"__/?ais-highlight__|</?mark>|</?em>")

Docs = list[dict[str, Any]]
Run = dict[str, Any]


@pytest.fixture(scope="module")
def node_modules() -> Path:
    """The pinned npm packages (`make test` installs them; a bare pytest run does it here)."""
    marker = FRONTENDS / "node_modules" / ".installed"
    if not marker.exists():
        assert NPM is not None
        subprocess.run(
            [NPM, "ci", "--no-audit", "--no-fund"],
            cwd=FRONTENDS,
            check=True,
            capture_output=True,
            timeout=600,
        )
        marker.touch()
    return marker.parent


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Docs]:
    data_dir = tmp_path_factory.mktemp("frontends")
    return data_dir, load_subset(data_dir)


def drive(library: str, url: str, outdir: Path) -> dict[str, Run]:
    assert NODE is not None
    result = subprocess.run(
        [NODE, f"{library}.mjs", url, INDEX, str(outdir)],
        cwd=FRONTENDS,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"{library}.mjs failed:\n{result.stdout}\n{result.stderr}"
    runs: dict[str, Run] = json.loads(result.stdout.strip().splitlines()[-1])
    return runs


@pytest.fixture(scope="module")
def runs(catalog: tuple[Path, Docs], node_modules: Path) -> Iterator[dict[str, dict[str, Any]]]:
    """mode -> library -> scenario -> {ok, requests, view}, one server per mode."""
    data_dir, _ = catalog
    out: dict[str, dict[str, Any]] = {}
    for mode in MODES:
        server = Server(data_dir, env={"SHOPRANK_DEFAULT_MODE": mode}).start()
        try:
            out[mode] = {
                lib: drive(lib, server.url, data_dir / "requests" / mode) for lib in LIBRARIES
            }
        finally:
            server.stop()
    yield out


def failures(run: Run) -> list[str]:
    """Each request of a scenario that did not answer 200: its body and the error."""
    lines = []
    for ex in run["requests"]:
        body = ex["body"]
        items = ex.get("responses")
        if items is None:
            if ex.get("status") != 200:
                error = (ex.get("response") or {}).get("error")
                lines.append(f"{ex['path']} -> {ex.get('status')} {error}: {json.dumps(body)}")
            continue
        for i, item in enumerate(items):
            if item.get("error") is not None or item.get("status", 200) != 200:
                lines.append(
                    f"{ex['path']}[{i}] -> {item.get('status')} {item.get('error')}: "
                    f"{json.dumps(body[2 * i + 1])}"
                )
    if run["view"].get("error"):
        lines.append(f"the page shows an error: {run['view']['error']}")
    return lines


def page(runs: dict[str, dict[str, Any]], mode: str, library: str, scenario: str) -> dict[str, Any]:
    """What the page renders for a scenario; fails, naming the refused requests, unless
    every request it made answered 200."""
    run = runs[mode][library][scenario]
    problems = failures(run)
    assert not problems and run["ok"], f"{library} {scenario} ({mode}):\n" + "\n".join(problems)
    view: dict[str, Any] = run["view"]
    return view


def query_matches(docs: Docs) -> Docs:
    return matching(docs, WORD, SEARCH_FIELDS)


def assert_terms_facet(items: list[dict[str, Any]], docs: Docs, size: int = 10) -> None:
    """A brand facet shows the `size` most frequent brands of `docs` with exact counts."""
    expected = brand_counts(docs)
    shown = {i["value"]: i["count"] for i in items}
    assert len(items) == min(size, len(expected)), items
    for value, count in shown.items():
        assert count == expected[value], (value, count, expected[value])
    counts = [i["count"] for i in items]
    assert counts == sorted(expected.values(), reverse=True)[:size]


def assert_highlighted(text: str | None, source: str, what: str) -> None:
    """`text` is `source` with the query word marked (and nothing else marked)."""
    assert text, f"no highlight for {what}: {source!r}"
    marked = [m.lower() for m in MARK.findall(text)]
    assert marked, f"{what}: nothing marked in {text!r}"
    assert set(marked) == {WORD}, f"{what}: marked {marked} in {text!r}"


def test_the_query_word_is_unambiguous_in_the_catalog(catalog: tuple[Path, Docs]) -> None:
    assert near_tokens(catalog[1], WORD, SEARCH_FIELDS) == {WORD}
    assert len(query_matches(catalog[1])) > 40  # enough for two pages


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("mode", MODES)
def test_every_request_answers_200(
    runs: dict[str, dict[str, Any]], mode: str, library: str
) -> None:
    problems = {name: failures(run) for name, run in runs[mode][library].items() if failures(run)}
    not_ok = [name for name, run in runs[mode][library].items() if not run["ok"]]
    assert not problems and not not_ok, json.dumps(problems, indent=1)


# --- Searchkit (InstantSearch) ------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_searchkit_landing_page_counts_the_catalog(
    runs: dict[str, dict[str, Any]], catalog: tuple[Path, Docs], mode: str
) -> None:
    docs = catalog[1]
    view = page(runs, mode, "searchkit", "initial")
    assert view["nbHits"] == len(docs)
    assert len(view["hits"]) == 20
    assert_terms_facet(view["brand"], docs)
    prices = [d["price"] for d in docs if d["price"] is not None]
    assert view["price_range"] == {"min": math.floor(min(prices)), "max": math.ceil(max(prices))}


@pytest.mark.parametrize("mode", MODES)
def test_searchkit_query_renders_highlighted_hits_and_counts_the_matches(
    runs: dict[str, dict[str, Any]], catalog: tuple[Path, Docs], mode: str
) -> None:
    matches = query_matches(catalog[1])
    by_id = {d["id"]: d for d in catalog[1]}
    view = page(runs, mode, "searchkit", "query")
    assert view["nbHits"] == len(matches)
    assert len(view["hits"]) == 20
    assert_terms_facet(view["brand"], matches)
    ids = {d["id"] for d in matches}
    for hit in view["hits"]:
        doc = by_id[hit["id"]]
        if mode == "lexical":
            assert hit["id"] in ids
        if WORD in tokens(doc["title"]):
            assert_highlighted(hit["title_highlight"], doc["title"], f"title of {hit['id']}")
            # highlight_attributes ask for the whole title (number_of_fragments 0); InstantSearch
            # HTML-escapes highlight values itself (`escapeHTML`, on by default): `"` → `&quot;`
            assert html.unescape(TAGS.sub("", hit["title_highlight"])) == doc["title"]
        if WORD in tokens(doc["description"]):
            assert_highlighted(
                hit["description_snippet"], doc["description"], f"description of {hit['id']}"
            )
    assert any(WORD in tokens(by_id[h["id"]]["title"]) for h in view["hits"])


@pytest.mark.parametrize("mode", MODES)
def test_searchkit_brand_refinement_keeps_the_other_brands_countable(
    runs: dict[str, dict[str, Any]], catalog: tuple[Path, Docs], mode: str
) -> None:
    docs = catalog[1]
    only = page(runs, mode, "searchkit", "brand_filter")
    hp = [d for d in docs if d["brand"] == "HP"]
    assert only["nbHits"] == len(hp)
    assert {h["brand"] for h in only["hits"]} == {"HP"}
    # a disjunctive ("or") facet: counted without its own refinement
    assert_terms_facet(only["brand"], docs)
    assert [i["value"] for i in only["brand"] if i["refined"]] == ["HP"]

    matches = query_matches(docs)
    view = page(runs, mode, "searchkit", "query_brand_filter")
    refined = [d for d in matches if d["brand"] == "Epson"]
    assert view["nbHits"] == len(refined)
    assert {h["brand"] for h in view["hits"]} == {"Epson"}
    assert_terms_facet(view["brand"], matches)


@pytest.mark.parametrize("mode", MODES)
def test_searchkit_price_range_filters_hits_and_facets(
    runs: dict[str, dict[str, Any]], catalog: tuple[Path, Docs], mode: str
) -> None:
    matches = in_range(query_matches(catalog[1]), 10, 100)
    view = page(runs, mode, "searchkit", "price_range")
    assert view["price_refinement"] == [10, 100]
    assert view["nbHits"] == len(matches)
    assert view["hits"] and all(10 <= h["price"] <= 100 for h in view["hits"])
    assert_terms_facet(view["brand"], matches)


@pytest.mark.parametrize("mode", MODES)
def test_searchkit_sorts_brand_a_to_z(
    runs: dict[str, dict[str, Any]], catalog: tuple[Path, Docs], mode: str
) -> None:
    view = page(runs, mode, "searchkit", "sort_brand_az")
    # keyword order (code points = UTF-8 bytes), `_id` breaking ties, no brand last
    expected = sorted(catalog[1], key=lambda d: (d["brand"] is None, d["brand"] or "", d["id"]))
    assert [h["id"] for h in view["hits"]] == [d["id"] for d in expected[:20]]
    assert view["nbHits"] == len(catalog[1])
    assert_terms_facet(view["brand"], catalog[1])


@pytest.mark.parametrize("mode", MODES)
def test_searchkit_sorts_matches_by_price(
    runs: dict[str, dict[str, Any]], catalog: tuple[Path, Docs], mode: str
) -> None:
    matches = query_matches(catalog[1])
    view = page(runs, mode, "searchkit", "sort_price_asc")
    expected = sorted(d["price"] for d in matches if d["price"] is not None)[:20]
    assert [h["price"] for h in view["hits"]] == expected
    assert view["nbHits"] == len(matches)


@pytest.mark.parametrize("mode", MODES)
def test_searchkit_page_2_follows_page_1(
    runs: dict[str, dict[str, Any]], catalog: tuple[Path, Docs], mode: str
) -> None:
    first = page(runs, mode, "searchkit", "query")
    second = page(runs, mode, "searchkit", "query_page_2")
    assert second["page"] == 1 and second["current_page"] == 1
    assert len(second["hits"]) == 20
    assert second["nbHits"] == first["nbHits"] == len(query_matches(catalog[1]))
    assert second["nbPages"] == math.ceil(first["nbHits"] / 20)
    assert not {h["id"] for h in first["hits"]} & {h["id"] for h in second["hits"]}


@pytest.mark.parametrize("mode", MODES)
def test_searchkit_facet_search_for_sam_finds_brands_starting_with_sam(
    runs: dict[str, dict[str, Any]], catalog: tuple[Path, Docs], mode: str
) -> None:
    view = page(runs, mode, "searchkit", "brand_facet_search")
    # Searchkit's include pattern: any words, then one starting with "sam" (any case)
    pattern = re.compile(r"(?:[a-zA-Z]+ )*[sS][aA][mM].*")
    expected = {b: n for b, n in brand_counts(catalog[1]).items() if pattern.fullmatch(b)}
    assert expected, "the subset has no brand starting with sam"
    found = {i["value"]: i["count"] for i in view["brand_facet_search"]}
    top = dict(sorted(expected.items(), key=lambda kv: -kv[1])[:10])
    assert found == top


# --- Search UI (Elasticsearch connector) --------------------------------------------------


def facet(view: dict[str, Any], name: str) -> dict[str, int]:
    return {i["value"]: i["count"] for i in view[name]}


def price_facet(docs: Docs) -> dict[str, int]:
    """Search UI's range facet: a `filters` bucket per range, bounds inclusive (gte/lte)."""
    ranges = {"Under 10": (0, 10), "10 to 50": (10, 50), "50 to 200": (50, 200)}
    out = {name: len(in_range(docs, lo, hi)) for name, (lo, hi) in ranges.items()}
    out["200 and above"] = len(in_range(docs, 200, None))
    return out


@pytest.mark.parametrize("mode", MODES)
def test_searchui_landing_page_counts_the_catalog(
    runs: dict[str, dict[str, Any]], catalog: tuple[Path, Docs], mode: str
) -> None:
    docs = catalog[1]
    view = page(runs, mode, "searchui", "initial")
    assert view["totalResults"] == len(docs)
    assert len(view["results"]) == 20
    assert_terms_facet(view["brand"], docs)
    assert facet(view, "price") == price_facet(docs)


@pytest.mark.parametrize("mode", MODES)
def test_searchui_query_renders_snippets_and_counts_the_matches(
    runs: dict[str, dict[str, Any]], catalog: tuple[Path, Docs], mode: str
) -> None:
    matches = query_matches(catalog[1])
    by_id = {d["id"]: d for d in catalog[1]}
    view = page(runs, mode, "searchui", "query")
    assert view["totalResults"] == len(matches)
    assert view["totalPages"] == math.ceil(len(matches) / 20)
    assert len(view["results"]) == 20
    assert_terms_facet(view["brand"], matches)
    assert facet(view, "price") == price_facet(matches)
    ids = {d["id"] for d in matches}
    for result in view["results"]:
        doc = by_id[result["id"]]
        if mode == "lexical":
            assert result["id"] in ids
        for field, snippet in (("title", "title_snippet"), ("description", "description_snippet")):
            if WORD in tokens(doc[field]):
                fragments = result[snippet]
                assert isinstance(fragments, list) and fragments, (field, result)
                assert_highlighted(" ".join(fragments), doc[field], f"{field} of {doc['id']}")
                for fragment in fragments:
                    assert TAGS.sub("", fragment) in doc[field]
    assert any(WORD in tokens(by_id[r["id"]]["title"]) for r in view["results"])


@pytest.mark.parametrize("mode", MODES)
def test_searchui_brand_filter_is_disjunctive(
    runs: dict[str, dict[str, Any]], catalog: tuple[Path, Docs], mode: str
) -> None:
    docs = catalog[1]
    only = page(runs, mode, "searchui", "brand_filter")
    hp = [d for d in docs if d["brand"] == "HP"]
    assert only["totalResults"] == len(hp)
    assert {r["brand"] for r in only["results"]} == {"HP"}
    assert_terms_facet(only["brand"], docs)  # the brand facet ignores its own filter
    assert facet(only, "price") == price_facet(hp)

    matches = query_matches(docs)
    view = page(runs, mode, "searchui", "query_brand_filter")
    refined = [d for d in matches if d["brand"] == "Epson"]
    assert view["totalResults"] == len(refined)
    assert {r["brand"] for r in view["results"]} == {"Epson"}
    assert_terms_facet(view["brand"], matches)
    assert facet(view, "price") == price_facet(refined)


@pytest.mark.parametrize("mode", MODES)
def test_searchui_price_range_filter(
    runs: dict[str, dict[str, Any]], catalog: tuple[Path, Docs], mode: str
) -> None:
    matches = query_matches(catalog[1])
    view = page(runs, mode, "searchui", "query_price_filter")
    inside = in_range(matches, 10, 50)
    assert view["totalResults"] == len(inside)
    assert view["results"] and all(10 <= r["price"] <= 50 for r in view["results"])
    assert facet(view, "price") == price_facet(matches)  # disjunctive too
    assert_terms_facet(view["brand"], inside)


@pytest.mark.parametrize("mode", MODES)
def test_searchui_sorts(
    runs: dict[str, dict[str, Any]], catalog: tuple[Path, Docs], mode: str
) -> None:
    az = page(runs, mode, "searchui", "sort_brand_az")
    brands = sorted(d["brand"] for d in catalog[1] if d["brand"])
    assert [r["brand"] for r in az["results"]] == brands[:20]
    assert az["totalResults"] == len(catalog[1])

    matches = query_matches(catalog[1])
    by_price = page(runs, mode, "searchui", "sort_price_desc")
    expected = sorted((d["price"] for d in matches if d["price"] is not None), reverse=True)
    assert [r["price"] for r in by_price["results"]] == expected[:20]
    assert by_price["totalResults"] == len(matches)


@pytest.mark.parametrize("mode", MODES)
def test_searchui_page_2_follows_page_1(
    runs: dict[str, dict[str, Any]], catalog: tuple[Path, Docs], mode: str
) -> None:
    first = page(runs, mode, "searchui", "query")
    second = page(runs, mode, "searchui", "query_page_2")
    assert second["current"] == 2
    assert len(second["results"]) == 20
    assert second["totalResults"] == first["totalResults"] == len(query_matches(catalog[1]))
    assert not {r["id"] for r in first["results"]} & {r["id"] for r in second["results"]}


@pytest.mark.parametrize("mode", MODES)
def test_searchui_autocomplete_suggests_as_you_type(
    runs: dict[str, dict[str, Any]], catalog: tuple[Path, Docs], mode: str
) -> None:
    view = page(runs, mode, "searchui", "autocomplete")
    by_id = {d["id"]: d for d in catalog[1]}

    def starts_sam(doc: dict[str, Any]) -> bool:
        return any(t.startswith("sam") for f in ("title", "brand") for t in tokens(doc.get(f)))

    candidates = [d for d in catalog[1] if starts_sam(d)]
    results = view["autocompletedResults"]
    # Search-as-you-type (the query is `bool_prefix` alone) is answered lexically in every
    # mode: the dropdown shows prefix matches only, never neighbours of a half-typed word.
    assert len(results) == min(5, len(candidates)) and results
    if len(candidates) <= 5:
        assert {d["id"] for d in candidates} == {r["id"] for r in results}
    for result in results:
        doc = by_id[result["id"]]
        assert starts_sam(doc), doc
        if any(t.startswith("sam") for t in tokens(doc["title"])):
            marked = MARK.findall(" ".join(result["title_snippet"] or []))
            assert marked and all(m.lower().startswith("sam") for m in marked), result

    titles = {d["title"] for d in catalog[1]}
    suggestions = [s["suggestion"] for s in view["autocompletedSuggestions"]["documents"]]
    assert 1 <= len(suggestions) <= 4
    assert len(set(suggestions)) == len(suggestions)  # skip_duplicates
    for text in suggestions:
        assert text in titles
        # completion: the title's beginning is "sam" within one edit (fuzziness 1)
        assert any(damerau(text.lower()[:k], "sam") <= 1 for k in (2, 3, 4)), text
    exact = sorted({t for t in titles if t.lower().startswith("sam")})
    if exact:
        assert any(s.lower().startswith("sam") for s in suggestions), (suggestions, exact)


def test_captured_requests_are_what_the_libraries_send(
    runs: dict[str, dict[str, Any]],
) -> None:
    """The stock configurations really exercise the constructs the issue names."""
    sk = runs["lexical"]["searchkit"]
    body = sk["query"]["requests"][0]["body"][1]
    assert body["highlight"]["fields"]["title"] == {"number_of_fragments": 0}
    assert "bool_prefix" in json.dumps(body["query"])
    facet_search = sk["brand_facet_search"]["requests"][-1]["body"][1]
    assert facet_search["aggs"]["brand"]["terms"]["include"]
    su = runs["lexical"]["searchui"]
    body = su["query_brand_filter"]["requests"][0]["body"]
    assert "facet_bucket_brand" in body["aggs"] and "post_filter" in body
    assert body["aggs"]["facet_bucket_all"]["aggs"] == {} or "price" in json.dumps(body["aggs"])
    assert "cross_fields" in json.dumps(body["query"])
    suggest = su["autocomplete"]["requests"]
    assert any("suggest" in (r["body"] or {}) for r in suggest)
