"""kNN sections of an embedded `_search` and their combination with the query (ES
semantics: the union, each hit scored by the sum), and the small search helpers they
share with `search`."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import tantivy

from shoprank.errors import BadRequestError, UnsupportedQueryError
from shoprank.plugin.shapes import int_param

from .dsl import QueryCompiler
from .generation import Generation
from .sort import Scored
from .values import as_list, count_of, doc_key, float_param
from .vectors import KeyFilter

Q = tantivy.Query
Occur = tantivy.Occur

KNN_KEYS = {
    "field",
    "query_vector",
    "k",
    "num_candidates",
    "filter",
    "similarity",
    "boost",
    "_name",
}


def keys_query(gen: Generation, keys: list[int]) -> tantivy.Query:
    return Q.term_set_query(gen.schema.tantivy_schema, "_key", keys)


def all_hits(searcher: tantivy.Searcher, query: tantivy.Query | None) -> tuple[Scored, int]:
    if query is None:
        return [], 0
    result = searcher.search(query, limit=max(searcher.num_docs, 1), count=True)
    return list(result.hits), count_of(result)


def matching_keys(searcher: tantivy.Searcher, query: tantivy.Query) -> npt.NDArray[np.uint64]:
    hits, _ = all_hits(searcher, query)
    keys = searcher.fast_field_values("_key", [a for _, a in hits])
    return np.asarray([k for k in keys if k is not None], dtype=np.uint64)


def filter_of(gen: Generation, searcher: tantivy.Searcher, query: tantivy.Query) -> KeyFilter:
    """A kNN filter as the vector search asks it: counted at once; the HNSW candidates
    checked against it by one search of their keys; every match listed only for exact
    scoring (a filter that lets few through, or a neighbourhood it leaves out)."""

    def accept(keys: npt.NDArray[np.uint64]) -> npt.NDArray[np.bool_]:
        if not len(keys):
            return np.zeros(0, dtype=bool)
        both = Q.boolean_query([(Occur.Must, query), (Occur.Must, keys_query(gen, keys.tolist()))])
        passing = matching_keys(searcher, both)
        return np.isin(keys, passing)

    size = count_of(searcher.search(query, limit=1, count=True))
    return KeyFilter(size=size, accept=accept, allowed=lambda: matching_keys(searcher, query))


def exclusions(filters: list[Any]) -> list[Any] | None:
    """The clauses a kNN filter list leaves out when every filter is a `bool` of nothing
    but `must_not` (a document passes unless one of them matches it), else None."""
    out: list[Any] = []
    for f in filters:
        body = f.get("bool") if isinstance(f, dict) and len(f) == 1 else None
        if not isinstance(body, dict) or set(body) != {"must_not"}:
            return None
        out += as_list(body["must_not"])
    return out or None


def knn_section(
    gen: Generation, searcher: tantivy.Searcher, queries: QueryCompiler, spec: Any
) -> dict[int, float]:
    """One kNN section: document key → ES kNN score ((1 + cosine) / 2, times `boost`)."""
    if not isinstance(spec, dict):
        raise BadRequestError("[knn] must be an object or a list of objects")
    unknown = set(spec) - KNN_KEYS
    if "query_vector_builder" in unknown:
        raise BadRequestError(
            "[query_vector_builder] must be resolved before the backend; "
            "send it through shoprank's endpoint"
        )
    if unknown:
        raise UnsupportedQueryError(f"[knn] option(s) {sorted(unknown)} are not supported")
    field = spec.get("field")
    store = gen.vectors.get(field) if isinstance(field, str) else None
    if store is None:
        raise BadRequestError(
            f"[knn] field [{field}] is not a dense_vector field of this index; "
            f"vector fields: {sorted(gen.vectors)}"
        )
    vector = spec.get("query_vector")
    if not isinstance(vector, list) or not all(
        isinstance(x, int | float) and not isinstance(x, bool) for x in vector
    ):
        raise BadRequestError("[knn] requires [query_vector] as a list of numbers")
    k = int_param(spec, "k", 10, minimum=1)
    num_candidates = int_param(spec, "num_candidates", max(k, 100), minimum=1)
    if num_candidates < k:
        raise BadRequestError(f"[num_candidates] cannot be less than [k] ({num_candidates} < {k})")
    raw_filters = as_list(spec.get("filter"))
    denied = key_filter = None
    left_out = exclusions(raw_filters)
    if left_out is not None:
        # Only exclusions (`bool.must_not`): the few documents they name are cheaper to
        # find than the many they let through.
        inner = [(Occur.Should, queries.compile(c)) for c in left_out]
        denied = matching_keys(searcher, Q.boolean_query(inner))
    elif raw_filters:
        filters = [(Occur.Must, queries.compile(f)) for f in raw_filters]
        key_filter = filter_of(gen, searcher, Q.boolean_query(filters))
    keys, sims = store.search(
        np.asarray(vector, dtype=np.float32),
        k=k,
        num_candidates=num_candidates,
        denied=denied,
        key_filter=key_filter,
    )
    boost = float_param(spec.get("boost", 1.0), "knn.boost")
    threshold = spec.get("similarity")
    if threshold is not None:
        threshold = float_param(threshold, "knn.similarity")
    out: dict[int, float] = {}
    for key, sim in zip(keys.tolist(), sims.tolist(), strict=True):
        if threshold is not None and sim < threshold:
            continue
        out[int(key)] = (1.0 + sim) / 2.0 * boost
    return out


def combine(
    gen: Generation,
    searcher: tantivy.Searcher,
    query: tantivy.Query | None,
    knn_scores: dict[int, float],
    window: int,
) -> tuple[Scored, int]:
    """ES semantics for query + knn: the union, each hit scored by the sum."""
    scores: dict[int, float] = dict(knn_scores)
    addresses: dict[int, tantivy.DocAddress] = {}
    also_lexical: set[int] = set()
    count = 0
    if knn_scores:
        keyed = keys_query(gen, list(knn_scores))
        hits, _ = all_hits(searcher, keyed)
        for (_, addr), key in zip(
            hits, searcher.fast_field_values("_key", [a for _, a in hits]), strict=True
        ):
            addresses[doc_key(key)] = addr
        if query is not None:
            both = Q.boolean_query(
                [(Occur.Must, query), (Occur.Must, Q.const_score_query(keyed, 0.0))]
            )
            lex, _ = all_hits(searcher, both)
            lex_keys = searcher.fast_field_values("_key", [a for _, a in lex])
            for (score, _), key in zip(lex, lex_keys, strict=True):
                scores[doc_key(key)] += score
                also_lexical.add(doc_key(key))
    # Documents the query does not match, found by kNN only: counted on top of the query.
    knn_only = {k for k in knn_scores if k in addresses and k not in also_lexical}
    if query is not None:
        result = searcher.search(query, limit=max(window, 1), count=True)
        count = count_of(result)
        top_keys = searcher.fast_field_values("_key", [a for _, a in result.hits])
        for (score, addr), raw_key in zip(result.hits, top_keys, strict=True):
            key = doc_key(raw_key)
            addresses[key] = addr
            if key not in knn_scores:
                scores[key] = score
        count += len(knn_only)
    else:
        count = len(knn_only)
    ranked = sorted((k for k in scores if k in addresses), key=lambda k: -scores[k])
    return [(scores[k], addresses[k]) for k in ranked], count
