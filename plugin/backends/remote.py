"""What the Elasticsearch and OpenSearch backends share: generations as concrete indices
behind an alias, bulk writes through the client's helper, and error translation.

A generation is a concrete index `<alias>-NNNNNN`; its build state lives in the mapping's
`_meta.shoprank` (`status`: building|ready, `alias`, `created`), so every process and every
shoprank host sees the same state without another store. The engine-specific parts (the
vector mapping, kNN translation, the client's exceptions) are the subclass's hooks.

Requests per operation (see README "Run on Elasticsearch / OpenSearch"): a lexical search is
one `_search`; a hybrid search one `_msearch` (both legs) plus one `_mget` for the page.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from shoprank.errors import (
    BadRequestError,
    IndexNotFoundError,
    ShoprankError,
)

from .cluster_shapes import (
    VECTOR_FIELDS,
    BulkWriteError,
    check_index_name,
    cluster_error,
    knn_specs,
    long_agg_names,
    unavailable,
    walk_properties,
    without_vectors,
)

__all__ = [
    "BulkWriteError",
    "RemoteBackend",
    "cluster_error",
    "knn_specs",
    "unavailable",
    "walk_properties",
    "without_vectors",
]

META_KEY = "shoprank"
# One stored document per generation: the content hashes of an incremental re-index.
MANIFESTS = "shoprank-manifests"
# How long the concrete index behind an alias is trusted on the search path; an alias swap
# made by this process invalidates it at once, one made elsewhere is seen within this time.
RESOLVE_TTL_S = 2.0
_GENERATION = re.compile(r"^(?P<alias>.+)-(?P<number>\d{6})$")


class RemoteBackend:
    """Base of the cluster backends; `client` is an `Elasticsearch` or `OpenSearch` client."""

    name = "remote"
    vector_types: tuple[str, ...] = ("dense_vector",)

    def __init__(
        self,
        client: Any,
        *,
        bulk: Callable[..., Iterable[tuple[bool, dict[str, Any]]]],
        bulk_chunk_size: int = 500,
    ) -> None:
        self.client = client
        self._streaming_bulk = bulk
        self.bulk_chunk_size = bulk_chunk_size
        self._lock = threading.Lock()
        self._resolved: dict[str, tuple[float, str]] = {}
        self._vector_fields: dict[str, dict[str, int]] = {}

    # -- hooks -----------------------------------------------------------------------------

    def translate_error(self, exc: Exception) -> ShoprankError | None:
        """The shoprank error for a client exception, or None when it is not one."""
        raise NotImplementedError

    def index_body(self, mapping: dict[str, Any]) -> dict[str, Any]:
        """The `PUT /{index}` body (settings + mappings) for shoprank's ES-shaped mapping."""
        raise NotImplementedError

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

    # -- calling the cluster ---------------------------------------------------------------

    def _call(self, fn: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            response = fn(**kwargs)
        except Exception as exc:
            mapped = self.translate_error(exc)
            if mapped is None:
                raise
            raise mapped from exc
        body = getattr(response, "body", response)
        return body

    def _exists(self, index: str) -> bool:
        try:
            return bool(self._call(self.client.indices.exists, index=index))
        except IndexNotFoundError:
            return False

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

    def _remember(self, name: str, concrete: str) -> None:
        with self._lock:
            self._resolved[name] = (time.monotonic(), concrete)

    def resolve(self, index: str) -> str:
        with self._lock:
            cached = self._resolved.get(index)
        if cached is not None and time.monotonic() - cached[0] < RESOLVE_TTL_S:
            return cached[1]
        targets = self._alias_targets(index)
        if targets:
            concrete = sorted(targets)[-1]
        elif self._exists(index):
            concrete = index
        else:
            raise IndexNotFoundError(index)
        self._remember(index, concrete)
        return concrete

    def _alias_targets(self, alias: str) -> list[str]:
        """The concrete indices an alias points at (empty when it is no alias)."""
        try:
            result = self._call(self.client.indices.get_alias, name=alias)
        except ShoprankError as exc:
            if exc.status == 404:
                return []
            raise
        return sorted(str(name) for name in result)

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

    def vectors_of(self, index: str, ids: list[str], field: str) -> dict[str, Any]:
        """The stored vectors of `field` for those ids that have one."""
        out: dict[str, Any] = {}
        for pid, source in self.mget(index, ids, source=self.vector_source(field)).items():
            value: Any = source
            for part in field.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            if isinstance(value, list) and value:
                out[pid] = np.asarray(value, dtype=np.float32)
        return out

    # -- generations -----------------------------------------------------------------------

    def generations(self, alias: str | None = None) -> list[dict[str, Any]]:
        """Every shoprank generation (of one alias), oldest first, with its build state."""
        pattern = f"{alias}-*" if alias else "*"
        try:
            result = self._call(
                self.client.indices.get_mapping, index=pattern, allow_no_indices=True
            )
        except IndexNotFoundError:
            return []
        counts: dict[str, int] = {}
        if result:
            # Documents per index in one search (the index stats API is not on every flavour,
            # e.g. Elasticsearch serverless).
            stats = self._call(
                self.client.search,
                index=pattern,
                body={
                    "size": 0,
                    "aggregations": {
                        "per_index": {"terms": {"field": "_index", "size": max(len(result), 1)}}
                    },
                },  # fmt: skip
            )
            for bucket in stats.get("aggregations", {}).get("per_index", {}).get("buckets", []):
                counts[str(bucket["key"])] = int(bucket["doc_count"])
        out = []
        for name, body in result.items():
            meta = (body.get("mappings", {}).get("_meta") or {}).get(META_KEY)
            if not isinstance(meta, dict):
                continue  # not a shoprank generation
            if alias is not None and meta.get("alias") != alias:
                continue
            out.append(
                {
                    "name": name,
                    "alias": meta.get("alias"),
                    "status": meta.get("status", "building"),
                    "created": meta.get("created"),
                    "doc_count": counts.get(name, 0),
                }
            )
        return sorted(out, key=lambda m: str(m["name"]))

    def _next_name(self, alias: str) -> str:
        check_index_name(alias)
        numbers = [
            int(m.group("number"))
            for g in self.generations(alias)
            if (m := _GENERATION.match(str(g["name"])))
        ]
        return f"{alias}-{max(numbers, default=0) + 1:06d}"

    def create_generation(self, alias: str, mapping: dict[str, Any]) -> str:
        """A new empty index `<alias>-NNNNNN` (status building) with the engine's mapping."""
        name = self._next_name(alias)
        mapping = dict(mapping)
        meta = dict(mapping.get("_meta") or {})
        meta[META_KEY] = {"alias": alias, "status": "building", "created": time.time()}
        mapping["_meta"] = meta
        self._call(self.client.indices.create, index=name, body=self.index_body(mapping))
        return name

    def clone_generation(self, alias: str, source: str) -> str:
        """A new building generation of `alias` holding `source`'s documents, copied by the
        cluster itself (`_reindex`, vectors included, nothing re-embedded); an incremental
        re-index then writes only what changed."""
        concrete = self.resolve(source)
        result = self._call(self.client.indices.get_mapping, index=concrete)
        mapping = dict(result[concrete]["mappings"])
        name = self._next_name(alias)
        meta = dict(mapping.get("_meta") or {})
        meta[META_KEY] = {
            "alias": alias,
            "status": "building",
            "created": time.time(),
            "cloned_from": concrete,
        }
        mapping["_meta"] = meta
        self._call(self.client.indices.create, index=name, body=self.clone_body(mapping))
        self._call(
            self.client.reindex,
            body={"source": {"index": concrete}, "dest": {"index": name}},
            wait_for_completion=True,
            refresh=True,
        )
        return name

    def clone_body(self, mapping: dict[str, Any]) -> dict[str, Any]:
        """The `PUT /{index}` body for a mapping read back from the cluster."""
        return {"mappings": mapping}

    def read_manifest(self, index: str) -> dict[str, Any] | None:
        """What a finished re-index recorded about the generation behind `index` (content
        hashes and the models/mapping it was built with), kept in `shoprank-manifests`."""
        concrete = self.resolve(index)
        try:
            doc = self._call(self.client.get, index=MANIFESTS, id=concrete)
        except ShoprankError as exc:
            if exc.status == 404:
                return None
            raise
        source = doc.get("_source") if doc.get("found") else None
        return dict(source) if isinstance(source, dict) else None

    def write_manifest(self, index: str, manifest: dict[str, Any]) -> None:
        if not self._exists(MANIFESTS):
            try:
                # Stored, never searched: one document per generation, keyed by its name.
                self._call(
                    self.client.indices.create,
                    index=MANIFESTS,
                    body={"mappings": {"enabled": False}},
                )
            except BadRequestError as exc:
                if exc.es_type != "resource_already_exists_exception":
                    raise
        self._call(
            self.client.index,
            index=MANIFESTS,
            id=self.resolve(index),
            body=manifest,
            refresh=True,
        )

    def _actions(
        self,
        index: str,
        docs: list[dict[str, Any]],
        vectors: dict[str, npt.NDArray[np.float32]] | None,
        partial_vectors: dict[str, tuple[Any, npt.NDArray[np.float32]]] | None,
        delete_ids: list[str] | None,
    ) -> list[dict[str, Any]]:
        sources = []
        for doc in docs:
            if "_id" not in doc:
                raise BadRequestError("every document needs an [_id]")
            sources.append({k: v for k, v in doc.items() if k != "_id"})
        for field, matrix in (vectors or {}).items():
            if len(matrix) != len(docs):
                raise BadRequestError(f"{len(matrix)} vectors for {len(docs)} documents")
            for source, row in zip(sources, matrix, strict=True):
                source[field] = [float(x) for x in row]
        for field, (rows, matrix) in (partial_vectors or {}).items():
            for j, row in enumerate(rows):
                sources[int(row)][field] = [float(x) for x in matrix[j]]
        actions: list[dict[str, Any]] = [
            {"_op_type": "index", "_index": index, "_id": str(doc["_id"]), "_source": source}
            for doc, source in zip(docs, sources, strict=True)
        ]
        actions += [
            {"_op_type": "delete", "_index": index, "_id": str(pid)} for pid in delete_ids or []
        ]
        return actions

    def _bulk(self, actions: list[dict[str, Any]], *, refresh: bool) -> dict[str, int]:
        """Run actions through the client's streaming bulk helper (429s retried); any other
        refused item raises BulkWriteError naming the items, after the rest are written."""
        done = {"index": 0, "delete": 0, "deleted": 0}
        failures: list[dict[str, Any]] = []
        if not actions:
            return done
        try:
            for ok, item in self._streaming_bulk(
                self.client,
                actions,
                chunk_size=self.bulk_chunk_size,
                raise_on_error=False,
                max_retries=3,
                initial_backoff=1,
                ignore_status=(404,),
                refresh=refresh,
            ):
                ((op, result),) = item.items()
                if op == "delete" and result.get("status") == 404:
                    done["delete"] += 1
                elif ok:
                    done[op if op == "delete" else "index"] += 1
                    if op == "delete":
                        done["deleted"] += 1
                else:
                    error = result.get("error")
                    reason = error.get("reason") if isinstance(error, dict) else error
                    failures.append({"_id": result.get("_id"), "op": op, "reason": reason})
        except Exception as exc:
            mapped = self.translate_error(exc)
            if mapped is None:
                raise
            raise mapped from exc
        if failures:
            shown = "; ".join(f"[{f['_id']}] {f['reason']}" for f in failures[:5])
            raise BulkWriteError(
                f"the cluster refused {len(failures)} of {len(actions)} bulk items: {shown}",
                failures=failures,
            )
        return done

    def bulk_upsert(
        self,
        index: str,
        docs: list[dict[str, Any]],
        vectors: dict[str, npt.NDArray[np.float32]] | None = None,
    ) -> int:
        return self._bulk(self._actions(index, docs, vectors, None, None), refresh=False)["index"]

    def write_batch(
        self,
        index: str,
        docs: list[dict[str, Any]],
        vectors: dict[str, npt.NDArray[np.float32]] | None = None,
        *,
        partial_vectors: dict[str, tuple[Any, npt.NDArray[np.float32]]] | None = None,
        delete_ids: list[str] | None = None,
    ) -> int:
        """Upserts and deletes in one bulk request, visible once it returns."""
        actions = self._actions(index, docs, vectors, partial_vectors, delete_ids)
        return self._bulk(actions, refresh=True)["index"]

    def delete(self, index: str, ids: list[str]) -> int:
        actions = self._actions(index, [], None, None, ids)
        return self._bulk(actions, refresh=False)["deleted"]

    def _meta(self, index: str) -> dict[str, Any]:
        result = self._call(self.client.indices.get_mapping, index=index)
        for body in result.values():
            meta = (body.get("mappings", {}).get("_meta") or {}).get(META_KEY)
            if isinstance(meta, dict):
                return dict(meta)
        return {}

    def commit(self, index: str, *, ready: bool = False) -> int:
        self._call(self.client.indices.refresh, index=index)
        if ready:
            meta = self._meta(index)
            meta["status"] = "ready"
            self._call(
                self.client.indices.put_mapping, index=index, body={"_meta": {META_KEY: meta}}
            )
        return self.count(index, None)

    def swap_alias(self, alias: str, generation: str) -> str | None:
        """Point `alias` at `generation` with one `_aliases` call (remove + add)."""
        check_index_name(alias)
        meta = self._meta(generation)
        if meta.get("status") != "ready":
            raise BadRequestError(
                f"generation [{generation}] is not ready ({meta.get('status', 'unknown')})"
            )
        previous = self._alias_targets(alias)
        if not previous and self._exists(alias):
            raise BadRequestError(f"an index named [{alias}] exists; an alias cannot shadow it")
        actions: list[dict[str, Any]] = [
            {"remove": {"index": old, "alias": alias}} for old in previous if old != generation
        ]
        actions.append({"add": {"index": generation, "alias": alias, "is_write_index": True}})
        self._call(self.client.indices.update_aliases, body={"actions": actions})
        self._remember(alias, generation)
        return previous[-1] if previous else None

    def prune(self, alias: str, *, keep: int) -> list[str]:
        """Delete unfinished generations and all but `keep` previous ready ones."""
        live = set(self._alias_targets(alias))
        dropped, older_ready = [], []
        for meta in self.generations(alias):
            if meta["name"] in live:
                continue
            if meta["status"] != "ready":
                dropped.append(str(meta["name"]))
            else:
                older_ready.append(str(meta["name"]))
        dropped += older_ready[: max(0, len(older_ready) - keep)]
        if dropped:
            self._call(self.client.indices.delete, index=",".join(dropped))
            if self._exists(MANIFESTS):
                self._bulk(self._actions(MANIFESTS, [], None, None, dropped), refresh=False)
        return dropped

    def rollback(self, alias: str) -> str:
        """Point `alias` back at the newest ready generation older than the live one."""
        live = self._alias_targets(alias)
        if not live:
            raise IndexNotFoundError(alias)
        older = [
            str(m["name"])
            for m in self.generations(alias)
            if m["status"] == "ready" and str(m["name"]) < live[-1]
        ]
        if not older:
            raise BadRequestError(f"alias [{alias}] has no older ready generation to roll back to")
        self.swap_alias(alias, older[-1])
        return older[-1]

    # -- the proxy -------------------------------------------------------------------------

    def forward(
        self, method: str, path: str, *, params: dict[str, str], body: bytes | None
    ) -> tuple[int, dict[str, Any] | list[Any] | str]:
        """Send a request shoprank does not handle itself to the cluster, unchanged."""
        raise NotImplementedError
