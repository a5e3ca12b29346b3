"""The steps of a search, one module each; `shoprank.plugin.search.SearchService` runs them.

- `request`: the frozen `SearchRequest` read from `ext.shoprank` and the `Trace` of notes,
  degradations, timings and what reranking reported;
- `vectors`: query vectors and their LRU cache, `query_vector_builder` resolution;
- `legs`: the lexical, kNN and image legs, batched through `msearch`, or the cluster's own
  fusion;
- `rerank`: `full` mode's reranking stages under the search's deadline;
- `page`: the page's `_source`, per-hit explanations, totals and the ES response;
- `record`: the `_shoprank` explanation and the search-log record.
"""
