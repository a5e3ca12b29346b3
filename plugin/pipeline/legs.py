"""Retrieval legs: the lexical query, the kNN leg(s) and the text → image leg, each a ranked
list of ids for fusion. The lexical and vector legs go to the backend in one `msearch`
(one round trip on a cluster).

Totals, aggregations and suggestions answer the client's own body: the lexical leg carries
them when the body searched is the client's; after an intent rewrite the client's body
runs as a third, `size: 0` search in the same `msearch` (`Retrieval.counts`). Every top-level
key of the client's body goes somewhere: shoprank's own options (`MANAGED`), the page's
per-hit options (`PAGE_KEYS`, fetched for the page's ids by `shoprank.plugin.pipeline.page`),
the counts (`COUNT_KEYS`), and everything else rides on the lexical leg, so the backend
validates it (an unsupported option is a 400, never dropped).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from shoprank.errors import BadRequestError, ShoprankError
from shoprank.indexing.mapping import IMAGE_VECTOR_FIELD
from shoprank.plugin.backends.protocol import NativeHybrid, SearchBackend
from shoprank.plugin.fusion import LegHit
from shoprank.plugin.pipeline.request import SearchRequest, Trace, extract_filters, listify
from shoprank.plugin.pipeline.vectors import QueryVectors
from shoprank.plugin.shapes import int_param
from shoprank.settings import Settings
from shoprank.types import Mode

# Options shoprank sets on the lexical leg itself; every other client option rides along,
# so the backend validates it (an unsupported option is a 400, never dropped).
MANAGED = {"from", "size", "knn", "_source", "track_total_hits", "sort"}
# Per-hit options: they apply to the page's hits only, fetched after fusion.
PAGE_KEYS = {
    "highlight",
    "fields",
    "docvalue_fields",
    "stored_fields",
    "script_fields",
    "explain",
    "version",
    "seq_no_primary_term",
}
# What answers the client's own body: totals, aggregations, suggestions.
COUNT_KEYS = {"aggs", "aggregations", "suggest"}


@dataclass
class Retrieval:
    """The legs of one search, lexical first, and the lexical leg's own response."""

    lexical: dict[str, Any]
    legs: dict[str, list[LegHit]]
    # The response that answers the client's own body (totals, aggregations, suggest): the
    # lexical leg's unless the body was rewritten.
    counts: dict[str, Any] | None = None

    @property
    def answer(self) -> dict[str, Any]:
        return self.counts if self.counts is not None else self.lexical


def leg_hits(hits: list[dict[str, Any]]) -> list[LegHit]:
    return [LegHit(h["_id"], float(h["_score"] or 0.0), i + 1) for i, h in enumerate(hits)]


def counts_of(request: SearchRequest) -> dict[str, Any] | None:
    """The client's own body as a `size: 0` search for its totals, aggregations and
    suggestions, when the body searched is not the client's; None otherwise."""
    if not request.rewritten:
        return None
    dropped = PAGE_KEYS | {"from", "size", "sort", "_source", "track_total_hits", "rescore"}
    body = {k: v for k, v in request.client_body.items() if k not in dropped}
    body.update({"size": 0, "track_total_hits": True})
    return body


# Elasticsearch's upper bound on `num_candidates`.
MAX_NUM_CANDIDATES = 10_000


def num_candidates(window: int, factor: float) -> int:
    """How widely an approximate kNN leg of `window` hits searches (HNSW `ef`): a few times
    the hits it keeps, since HNSW recall at k falls as k nears the search breadth."""
    return min(max(int(round(factor * window)), window, 100), max(MAX_NUM_CANDIDATES, window))


def knn_spec(
    field: str, vector: list[float], window: int, query: Any, *, candidates_factor: float = 4.0
) -> dict[str, Any]:
    """A kNN leg over `window` candidates, under the client query's hard filters."""
    spec: dict[str, Any] = {
        "field": field,
        "query_vector": vector,
        "k": window,
        "num_candidates": num_candidates(window, candidates_factor),
    }
    filters = extract_filters(query)
    if filters:
        spec["filter"] = filters
    return spec


class LegBuilder:
    """Builds and runs the legs of a fused search against one backend."""

    def __init__(
        self, *, backend: SearchBackend, settings: Settings, vectors: QueryVectors
    ) -> None:
        self.backend = backend
        self.settings = settings
        self.vectors = vectors

    def retrieve(self, request: SearchRequest, trace: Trace, mode: Mode, window: int) -> Retrieval:
        body = request.body
        t0 = time.perf_counter()
        skipped = MANAGED | PAGE_KEYS | (COUNT_KEYS if request.rewritten else set())
        lexical_body: dict[str, Any] = {k: v for k, v in body.items() if k not in skipped}
        lexical_body.update(
            {"size": window if mode != "vector" else 0, "_source": False, "track_total_hits": True}
        )
        counts_body = counts_of(request)
        trace.timings["lexical_ms"] = (time.perf_counter() - t0) * 1000

        t0 = time.perf_counter()
        legs: dict[str, list[LegHit]] = {}
        lexical: dict[str, Any] | None = None
        counts: dict[str, Any] | None = None
        knn_specs = self._knn_specs(request, trace, window)
        if knn_specs:
            vector_body: dict[str, Any] = {
                "knn": knn_specs,
                "size": window,
                "_source": False,
                "track_total_hits": True,
            }
            if body.get("post_filter") is not None:
                vector_body["post_filter"] = body["post_filter"]
            t1 = time.perf_counter()
            lexical, vector_result, counts = self._batch(
                request.index, lexical_body, vector_body, counts_body
            )
            trace.timings["msearch_ms"] = (time.perf_counter() - t1) * 1000
            vector_hits: list[dict[str, Any]] = []
            try:
                if isinstance(vector_result, ShoprankError):
                    raise vector_result
                vector_hits = vector_result["hits"]["hits"]
            except BadRequestError as exc:
                if body.get("knn"):
                    raise
                trace.notes.append(f"vector leg skipped: {exc.reason}")
            legs["vector"] = leg_hits(vector_hits)
        trace.timings["vector_ms"] = (time.perf_counter() - t0) * 1000
        if lexical is None:  # no vector leg to batch with
            if counts_body is None:
                lexical = self.backend.search(request.index, lexical_body)
            else:
                lexical, _, counts = self._batch(request.index, lexical_body, None, counts_body)
        if mode != "vector" and body.get("query") is not None:
            legs = {"lexical": leg_hits(lexical["hits"]["hits"]), **legs}
        if request.image and request.query_text and not body.get("knn"):
            t0 = time.perf_counter()
            image_hits = self._image_leg(request, trace, window)
            if image_hits is not None:
                legs["image"] = image_hits
            trace.timings["image_ms"] = (time.perf_counter() - t0) * 1000
        return Retrieval(lexical=lexical, legs=legs, counts=counts)

    def _knn_specs(self, request: SearchRequest, trace: Trace, window: int) -> list[Any]:
        """The client's kNN specs widened to the window, or one built from the query text."""
        body = request.body
        specs = listify(body.get("knn"))
        if specs:
            widened: list[Any] = []
            for spec in specs:
                if not isinstance(spec, dict):
                    raise BadRequestError("[knn] must be an object or a list of objects")
                out = dict(spec)
                out["k"] = max(int_param(spec, "k", window, minimum=1), window)
                out["num_candidates"] = max(int_param(spec, "num_candidates", 0), out["k"])
                widened.append(out)
            return widened
        if not request.query_text:
            return []
        t0 = time.perf_counter()
        try:
            vector = self.vectors.embed(request.vector_text)
        except ShoprankError as exc:
            # No encoder (or it failed to load): degrade to the lexical leg, say so.
            trace.notes.append(f"vector leg skipped: {exc.reason}")
            return []
        finally:
            trace.add_time("embed_ms", (time.perf_counter() - t0) * 1000)
        return [
            knn_spec(
                request.vector_field,
                vector,
                window,
                body.get("query"),
                candidates_factor=self.settings.knn_candidates_factor,
            )
        ]

    def _batch(
        self,
        index: str,
        lexical_body: dict[str, Any],
        vector_body: dict[str, Any] | None,
        counts_body: dict[str, Any] | None,
    ) -> tuple[dict[str, Any], dict[str, Any] | ShoprankError, dict[str, Any] | None]:
        """The legs and the client's counts in one `msearch`; a lexical or counts failure is
        the search's (the vector leg may degrade)."""
        bodies = [lexical_body]
        bodies += [vector_body] if vector_body is not None else []
        bodies += [counts_body] if counts_body is not None else []
        results = list(self.backend.msearch(index, bodies))
        lexical = results.pop(0)
        vector: dict[str, Any] | ShoprankError = results.pop(0) if vector_body is not None else {}
        counts = results.pop(0) if counts_body is not None else None
        for result in (lexical, counts):
            if isinstance(result, ShoprankError):
                raise result
        assert not isinstance(lexical, ShoprankError) and not isinstance(counts, ShoprankError)
        return dict(lexical), vector, dict(counts) if counts is not None else None

    def rewritten_lexical(self, request: SearchRequest) -> tuple[dict[str, Any], dict[str, Any]]:
        """A lexical search of a rewritten body and the client's own counts, in one `msearch`:
        the rewrite ranks the hits, the client's body answers totals and aggregations."""
        skipped = PAGE_KEYS | COUNT_KEYS
        body = {k: v for k, v in request.body.items() if k not in skipped}
        counts_body = counts_of(request)
        assert counts_body is not None
        ranked, _, counts = self._batch(request.index, body, None, counts_body)
        assert counts is not None
        return ranked, counts

    def continuation(
        self, request: SearchRequest, shown: list[str], *, offset: int, size: int
    ) -> list[LegHit]:
        """Lexical hits after the fused window: the lexical order without the window's ids,
        from `offset`, so pages past the window keep one order and never repeat a hit."""
        body = request.body
        query = body.get("query")
        if query is None or size <= 0:
            return []
        exclude = {"ids": {"values": shown}}
        deep: dict[str, Any] = {
            "query": {"bool": {"must": [query], "must_not": [exclude]}},
            "from": offset,
            "size": size,
            "_source": False,
            "track_total_hits": False,
        }
        for key in ("post_filter", "timeout"):
            if body.get(key) is not None:
                deep[key] = body[key]
        hits = leg_hits(self.backend.search(request.index, deep)["hits"]["hits"])
        return [LegHit(h.id, h.score, offset + h.rank) for h in hits]

    def _image_leg(self, request: SearchRequest, trace: Trace, window: int) -> list[LegHit] | None:
        """Text → image kNN: the query's CLIP text vector against product image vectors."""
        if self.vectors.image_text_factory is None or request.query_text is None:
            return None
        try:
            if IMAGE_VECTOR_FIELD not in self.backend.vector_fields(request.index):
                return None
            vector = self.vectors.embed(request.vector_text, space="image")
        except ShoprankError as exc:
            trace.notes.append(f"image leg skipped: {exc.reason}")
            return None
        spec = knn_spec(
            IMAGE_VECTOR_FIELD,
            vector,
            window,
            request.body.get("query"),
            candidates_factor=self.settings.knn_candidates_factor,
        )
        body: dict[str, Any] = {"knn": spec, "size": window, "_source": False}
        if request.body.get("post_filter") is not None:
            body["post_filter"] = request.body["post_filter"]
        return leg_hits(self.backend.search(request.index, body)["hits"]["hits"])

    # -- the cluster's own fusion -------------------------------------------------------------

    def native(self, request: SearchRequest) -> NativeHybrid | None:
        """The backend, when it fuses itself (`SHOPRANK_NATIVE_FUSION`) and nothing needs
        shoprank's fusion."""
        if (
            self.settings.native_fusion
            and isinstance(self.backend, NativeHybrid)
            and request.query_text is not None
            and not request.body.get("knn")
        ):
            return self.backend
        return None

    def native_search(self, request: SearchRequest, engine: NativeHybrid) -> dict[str, Any]:
        assert request.query_text is not None
        start, size = request.page
        window = max(request.window, start + size)
        response = engine.native_hybrid(
            request.index,
            request.body,
            vector=self.vectors.embed(request.vector_text),
            field=request.vector_field,
            filters=extract_filters(request.body.get("query")),
            window=window,
            rrf_k=self.settings.rrf_k,
            vector_weight=self.settings.linear_vector_weight,
            num_candidates=num_candidates(window, self.settings.knn_candidates_factor),
        )
        return dict(response)
