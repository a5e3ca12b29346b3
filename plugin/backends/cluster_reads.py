"""The read side of the cluster backends: search, msearch, count, documents and vectors.

A lexical search is one `_search`; a hybrid search one `_msearch` (both legs) plus one
`_mget` for the page (see README "Run on Elasticsearch / OpenSearch").
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from shoprank.errors import ShoprankError

from .cluster_base import ClusterConnection
from .cluster_shapes import VECTOR_FIELDS, cluster_error, long_agg_names, without_vectors


class ClusterReads(ClusterConnection):
    """`SearchBackend` on a cluster."""

    vector_types: tuple[str, ...] = ("dense_vector",)

    # -- hooks -----------------------------------------------------------------------------

    def search_body(self, body: dict[str, Any]) -> dict[str, Any]:
        """The body as this engine wants it (OpenSearch: top-level `knn` → `knn` query).

        `aggs` is the accepted short name of `aggregations`; both specifications name only
        the long one (for sub-aggregations too), so that is what goes out."""
        out = dict(body)
        if "_source" in out or out.get("size", 10) != 0:
            out["_source"] = without_vectors(out.get("_source", True))
        aggs = body.get("aggregations", body.get("aggs"))
        if aggs is None:
            return out
        out = {k: v for k, v in out.items() if k not in ("aggs", "aggregations")}
        out["aggregations"] = long_agg_names(aggs)
        return out

    def vector_source(self, field: str) -> Any:
        """The `_source` filter that fetches a vector field."""
        return [field]

    # -- reading ---------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        return dict(self._call(self.client.info))

    def search(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self._call(self.client.search, index=index, body=self.search_body(body)))

    def msearch(
        self, index: str, bodies: list[dict[str, Any]]
    ) -> list[dict[str, Any] | ShoprankError]:
        """Several searches of one index in one `_msearch` round trip; a failed item comes
        back as its error (raised by the caller if it matters), the others as responses."""
        lines: list[dict[str, Any]] = []
        for body in bodies:
            lines += [{"index": index}, self.search_body(body)]
        result = self._call(self.client.msearch, body=lines)
        out: list[dict[str, Any] | ShoprankError] = []
        for item in result["responses"]:
            if "error" in item:
                out.append(self._item_error(item))
            else:
                out.append(dict(item))
        return out

    def _item_error(self, item: dict[str, Any]) -> ShoprankError:
        return cluster_error(int(item.get("status") or 500), item)

    def count(self, index: str, body: dict[str, Any] | None) -> int:
        result = self._call(self.client.count, index=index, body=body or None)
        return int(result["count"])

    def get(self, index: str, doc_id: str) -> dict[str, Any]:
        try:
            found = dict(self._call(self.client.get, index=index, id=doc_id))
        except ShoprankError as exc:
            if exc.status == 404 and exc.es_type != "index_not_found_exception":
                return {"_index": self.resolve(index), "_id": doc_id, "found": False}
            raise
        if isinstance(found.get("_source"), dict):
            found["_source"] = {k: v for k, v in found["_source"].items() if k not in VECTOR_FIELDS}
        return found

    def mget(self, index: str, ids: list[str], *, source: Any = True) -> dict[str, dict[str, Any]]:
        if not ids:
            return {}
        source = without_vectors(source)
        docs = [{"_id": str(i), "_source": source} for i in ids]
        result = self._call(self.client.mget, index=index, body={"docs": docs})
        out: dict[str, dict[str, Any]] = {}
        for doc in result["docs"]:
            if doc.get("error"):
                reason = doc["error"].get("reason", doc["error"])
                raise ShoprankError(f"the cluster failed to fetch [{doc.get('_id')}]: {reason}")
            if doc.get("found"):
                out[str(doc["_id"])] = dict(doc.get("_source") or {})
                if doc.get("_index"):
                    self._remember(index, str(doc["_index"]))
        return out

    # -- vectors ---------------------------------------------------------------------------

    def vector_fields(self, index: str) -> dict[str, int]:
        concrete = self.resolve(index)
        cached = self._vector_fields.get(concrete)
        if cached is not None:
            return dict(cached)
        result = self._call(self.client.indices.get_mapping, index=concrete)
        fields: dict[str, int] = {}
        for body in result.values():
            self._collect_vectors(body.get("mappings", {}).get("properties", {}), "", fields)
        self._vector_fields[concrete] = fields
        return dict(fields)

    def _collect_vectors(self, props: dict[str, Any], prefix: str, out: dict[str, int]) -> None:
        for name, spec in props.items():
            path = f"{prefix}{name}"
            if spec.get("type") in self.vector_types:
                out[path] = int(spec.get("dims") or spec.get("dimension") or 0)
            if isinstance(spec.get("properties"), dict):
                self._collect_vectors(spec["properties"], f"{path}.", out)

    def vectors_of(
        self, index: str, ids: list[str], field: str
    ) -> dict[str, npt.NDArray[np.float32]]:
        """The stored vectors of `field` for those ids that have one."""
        out: dict[str, npt.NDArray[np.float32]] = {}
        for pid, source in self.mget(index, ids, source=self.vector_source(field)).items():
            value: Any = source
            for part in field.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            if isinstance(value, list) and value:
                out[pid] = np.asarray(value, dtype=np.float32)
        return out
