"""The state one aggregation request shares while it is evaluated: the searcher, the query
compiler (for `filter`/`filters` and each bucket's own query), the deadline, and small query
algebra. A bucket is evaluated as "the request's matches AND the bucket's condition", so any
aggregation can sit under any bucket aggregation and every count is exact."""

from __future__ import annotations

from typing import Any

import tantivy

from shoprank.errors import BadRequestError, ShoprankError
from shoprank.plugin.bounds import Deadline

from .aggs_intervals import Interval, counts, requests
from .dsl import QueryCompiler
from .generation import Generation
from .schema import FieldInfo, IndexSchema
from .values import count_of

Q = tantivy.Query
Occur = tantivy.Occur
ALL_TERMS = 1_000_000_000  # "every term": tantivy's terms agg is exact when nothing is cut


class AggContext:
    """Helpers for the evaluators; `evaluate` (the dispatch) is `aggs.AggRun`'s."""

    def __init__(
        self,
        schema: IndexSchema,
        searcher: tantivy.Searcher,
        queries: QueryCompiler | None,
        gen: Generation | None,
        deadline: Deadline | None,
    ) -> None:
        self.schema = schema
        self.searcher = searcher
        self._queries = queries
        self.gen = gen
        self.deadline = deadline
        # Per query object (kept alive beside its result): its match count, and the value
        # counts of fields fetched together in one tantivy request (`prefetch`).
        self._counts: dict[int, tuple[tantivy.Query, int]] = {}
        self._values: dict[tuple[int, str], tuple[tantivy.Query, list[tuple[Any, int]]]] = {}
        self._intervals: dict[
            tuple[int, str, tuple[Interval, ...]], tuple[tantivy.Query, list[int]]
        ] = {}
        self._infos: dict[str, FieldInfo] = {}  # `field`'s schema lookups, by path
        # Levels whose fields were walked for a query by `AggRun._prefetch_terms`.
        self._walked: dict[tuple[int, int], tantivy.Query] = {}

    def evaluate(self, aggs: dict[str, Any], query: tantivy.Query) -> dict[str, Any]:
        raise NotImplementedError

    def passed(self) -> bool:
        return self.deadline is not None and self.deadline.passed()

    @property
    def queries(self) -> QueryCompiler:
        if self._queries is None:
            raise ShoprankError("this aggregation needs the query compiler; pass queries=")
        return self._queries

    # -- query algebra --------------------------------------------------------------------

    def compile(self, dsl: Any) -> tantivy.Query:
        return self.queries.compile(dsl)

    @staticmethod
    def both(query: tantivy.Query, extra: tantivy.Query) -> tantivy.Query:
        return Q.boolean_query([(Occur.Must, query), (Occur.Must, Q.const_score_query(extra, 0.0))])

    @staticmethod
    def minus(query: tantivy.Query, extra: tantivy.Query) -> tantivy.Query:
        return Q.boolean_query([(Occur.Must, query), (Occur.MustNot, extra)])

    @staticmethod
    def any_of(queries: list[tantivy.Query]) -> tantivy.Query:
        if not queries:
            return Q.empty_query()
        return Q.boolean_query([(Occur.Should, q) for q in queries])

    def exists(self, info: FieldInfo) -> tantivy.Query:
        return self.compile({"exists": {"field": info.path}})

    def equals(self, info: FieldInfo, value: Any) -> tantivy.Query:
        if value is None:
            return Q.boolean_query(
                [(Occur.Must, Q.all_query()), (Occur.MustNot, self.exists(info))]
            )
        if info.kind == "boolean" and isinstance(value, int | float):
            value = bool(value)
        return self.compile({"term": {info.path: value}})

    def between(self, info: FieldInfo, low: float | None, high: float | None) -> tantivy.Query:
        bounds: dict[str, float] = {}
        if low is not None:
            bounds["gte"] = low
        if high is not None:
            bounds["lt"] = high
        return self.compile({"range": {info.path: bounds}}) if bounds else self.exists(info)

    # -- counting -------------------------------------------------------------------------

    def count(self, query: tantivy.Query) -> int:
        cached = self._counts.get(id(query))
        if cached is not None and cached[0] is query:
            return cached[1]
        n = count_of(self.searcher.search(query, limit=1, count=True))
        self._counts[id(query)] = (query, n)
        return n

    def known_count(self, query: tantivy.Query, n: int) -> None:
        self._counts[id(query)] = (query, n)

    def prefetch(
        self,
        fields: list[FieldInfo],
        ranged: list[tuple[FieldInfo, list[Interval]]],
        query: tantivy.Query,
    ) -> None:
        """The value counts of several fields and the interval counts of range facets among
        `query`'s matches, in one pass over them (a facet page asks for several of the same
        query; each native request re-runs it)."""
        wanted = {f.tantivy: f for f in fields if (id(query), f.tantivy) not in self._values}
        spans = {
            (info.tantivy, tuple(iv)): (info, iv)
            for info, iv in ranged
            if (id(query), info.tantivy, tuple(iv)) not in self._intervals
        }
        if len(wanted) + len(spans) < 2:
            return
        request: dict[str, Any] = {
            f"t{i}": {"terms": {"field": name, "size": ALL_TERMS, "segment_size": ALL_TERMS}}
            for i, name in enumerate(wanted)
        }
        for j, (info, iv) in enumerate(spans.values()):
            request.update(requests(info.tantivy, iv, f"r{j}_"))
        raw = self.native(query, request)
        for i, info in enumerate(wanted.values()):
            values = self._buckets(info, raw.get(f"t{i}", {}))
            self._values[(id(query), info.tantivy)] = (query, values)
        for j, (info, iv) in enumerate(spans.values()):
            key = (id(query), info.tantivy, tuple(iv))
            self._intervals[key] = (query, counts(raw, iv, f"r{j}_"))

    def native(self, query: tantivy.Query, request: dict[str, Any]) -> dict[str, Any]:
        try:
            return self.searcher.aggregate(query, request)
        except ValueError as exc:
            raise BadRequestError(f"aggregation failed: {exc}") from None

    def value_counts(self, info: FieldInfo, query: tantivy.Query) -> list[tuple[Any, int]]:
        """Every value of the field among `query`'s matches with its exact document count."""
        cached = self._values.get((id(query), info.tantivy))
        if cached is not None and cached[0] is query:
            return cached[1]
        raw = self.native(
            query,
            {"t": {"terms": {"field": info.tantivy, "size": ALL_TERMS, "segment_size": ALL_TERMS}}},
        )
        return self._buckets(info, raw.get("t", {}))

    def interval_counts(
        self, info: FieldInfo, intervals: list[Interval], query: tantivy.Query
    ) -> list[int]:
        """How many of `query`'s matches have a value of the field in each half-open
        interval (overlaps allowed, as in ES), in one native pass."""
        key = (id(query), info.tantivy, tuple(intervals))
        cached = self._intervals.get(key)
        if cached is not None and cached[0] is query:
            return cached[1]
        raw = self.native(query, requests(info.tantivy, intervals, "r"))
        return counts(raw, intervals, "r")

    @staticmethod
    def _buckets(info: FieldInfo, raw: dict[str, Any]) -> list[tuple[Any, int]]:
        buckets = raw.get("buckets", [])
        if info.kind == "boolean":
            return [(bool(b.get("key")), int(b["doc_count"])) for b in buckets]
        out = [(b.get("key"), int(b["doc_count"])) for b in buckets]
        if info.kind in ("keyword", "date"):  # string keys; dates stay milliseconds
            return out
        for i, (key, n) in enumerate(out):  # whole numbers read as ints
            if isinstance(key, float) and key.is_integer():
                out[i] = (int(key), n)
        return out

    def matches(self, query: tantivy.Query) -> list[tuple[float, tantivy.DocAddress]]:
        result = self.searcher.search(query, limit=max(int(self.searcher.num_docs), 1))
        return list(result.hits)

    def field(self, kind: str, name: str, body: dict[str, Any]) -> FieldInfo:
        path = body.get("field")
        if not isinstance(path, str):
            raise BadRequestError(f"[{kind}] aggregation [{name}] requires a [field]")
        info = self._infos.get(path)
        if info is None:  # an unmapped attribute's is built on each lookup: once a request
            info = self._infos[path] = self.schema.field(path)
        if info.kind == "text":
            raise BadRequestError(
                f"field [{path}] is a text field and cannot be aggregated; "
                "aggregate on a keyword field instead",
                es_type="illegal_argument_exception",
            )
        if info.kind in ("vector", "stored"):
            raise BadRequestError(f"field [{path}] cannot be aggregated")
        numeric = ("range", "histogram", "date_histogram", "stats", "min", "max", "avg", "sum")
        if kind in numeric and info.kind == "keyword":
            raise BadRequestError(
                f"field [{path}] of type [keyword] is not supported for aggregation [{kind}]",
            )
        if kind == "date_histogram" and info.kind not in ("date", "number", "dynamic"):
            raise BadRequestError(f"field [{path}] is not a date field for [date_histogram]")
        return info
