"""The write side of the cluster backends: generations as concrete indices behind an alias,
manifests, bulk writes through the client's helper, alias swap, retention and rollback.

A generation is a concrete index `<alias>-NNNNNN`; its build state lives in the mapping's
`_meta.shoprank` (`status`: building|ready, `alias`, `created`), so every process and every
shoprank host sees the same state without another store.
"""

from __future__ import annotations

import re
import time
from typing import Any

from shoprank.errors import BadRequestError, IndexNotFoundError, ShoprankError
from shoprank.plugin.backends.protocol import PartialVectors, Vectors

from .cluster_base import ClusterConnection
from .cluster_shapes import BulkWriteError, check_index_name

META_KEY = "shoprank"
# One stored document per generation: the content hashes of an incremental re-index.
MANIFESTS = "shoprank-manifests"
_GENERATION = re.compile(r"^(?P<alias>.+)-(?P<number>\d{6})$")


class ClusterGenerations(ClusterConnection):
    """`GenerationStore` on a cluster."""

    # -- hooks -----------------------------------------------------------------------------

    def index_body(self, mapping: dict[str, Any]) -> dict[str, Any]:
        """The `PUT /{index}` body (settings + mappings) for shoprank's ES-shaped mapping."""
        raise NotImplementedError

    def clone_body(self, mapping: dict[str, Any]) -> dict[str, Any]:
        """The `PUT /{index}` body for a mapping read back from the cluster."""
        return {"mappings": mapping}

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

    # -- manifests -------------------------------------------------------------------------

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

    # -- writes ----------------------------------------------------------------------------

    def _actions(
        self,
        index: str,
        docs: list[dict[str, Any]],
        vectors: Vectors | None,
        partial_vectors: PartialVectors | None,
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
        vectors: Vectors | None = None,
    ) -> int:
        return self._bulk(self._actions(index, docs, vectors, None, None), refresh=False)["index"]

    def write_batch(
        self,
        index: str,
        docs: list[dict[str, Any]],
        vectors: Vectors | None = None,
        *,
        partial_vectors: PartialVectors | None = None,
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
        return int(self._call(self.client.count, index=index, body=None)["count"])

    # -- the alias -------------------------------------------------------------------------

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
