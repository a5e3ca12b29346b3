"""A recording transport for the official clients, for tests and benchmarks without a cluster.

`recording_elasticsearch()` / `recording_opensearch()` return real `Elasticsearch` /
`OpenSearch` clients whose lowest layer (the `elastic_transport` node / the `opensearch-py`
connection) records every request — method, path, query parameters and the exact body
bytes the client serialised — and answers from a `ScriptedCluster`: a small in-memory
stand-in for a cluster (indices with `_meta`, aliases, documents in insertion order, no
scoring) that is just enough for shoprank's flows to run end to end. Its answers are not
search results worth judging; what is recorded is what a real cluster would receive.
"""

from __future__ import annotations

import fnmatch
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from shoprank.plugin.shapes import filter_source


@dataclass
class Recorded:
    method: str
    path: str
    params: dict[str, str]
    raw: bytes | None

    @property
    def body(self) -> Any:
        """The body as JSON (a list of objects for NDJSON), or None."""
        if not self.raw:
            return None
        text = self.raw.strip()
        if b"\n" in text or self.path.endswith(("_bulk", "_msearch")):
            return [orjson.loads(line) for line in text.split(b"\n") if line.strip()]
        return orjson.loads(text)


@dataclass
class _Index:
    mappings: dict[str, Any]
    settings: dict[str, Any]
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)


def _error(status: int, es_type: str, reason: str, **extra: Any) -> tuple[int, Any]:
    cause = {"type": es_type, "reason": reason, **extra}
    return status, {"error": {"root_cause": [cause], **cause}, "status": status}


class ScriptedCluster:
    """Just enough of a cluster for shoprank's calls; every request is kept in `requests`."""

    def __init__(self, *, distribution: str = "elasticsearch") -> None:
        self.distribution = distribution
        self.requests: list[Recorded] = []
        self.indices: dict[str, _Index] = {}
        self.aliases: dict[str, set[str]] = {}
        self.pipelines: dict[str, Any] = {}
        # Set to make the next bulk refuse documents with these ids (per-item errors).
        self.refuse_ids: set[str] = set()

    # -- plumbing --------------------------------------------------------------------------

    def handle(self, method: str, target: str, raw: bytes | None) -> tuple[int, Any]:
        parts = urlsplit(target)
        record = Recorded(method, parts.path, dict(parse_qsl(parts.query)), raw)
        self.requests.append(record)
        segments = [s for s in parts.path.split("/") if s]
        return self._route(method, segments, record)

    def reset(self) -> None:
        self.requests.clear()

    def _expand(self, expression: str, *, allow_empty: bool = False) -> list[str] | None:
        names: list[str] = []
        for part in expression.split(","):
            if "*" in part:
                names += [n for n in self.indices if fnmatch.fnmatchcase(n, part)]
            elif part in self.aliases:
                names += sorted(self.aliases[part])
            elif part in self.indices:
                names.append(part)
            else:
                return None
        if not names and not allow_empty and "*" not in expression:
            return None
        return sorted(set(names))

    def _missing(self, name: str) -> tuple[int, Any]:
        return _error(404, "index_not_found_exception", f"no such index [{name}]", index=name)

    # -- routes ----------------------------------------------------------------------------

    def _route(self, method: str, seg: list[str], req: Recorded) -> tuple[int, Any]:
        body = req.body
        if not seg:
            return 200, self._info()
        if seg[0] == "_aliases" and method == "POST":
            return self._update_aliases(body)
        if seg[0] == "_alias" and len(seg) == 2:
            return self._get_alias(seg[1])
        if seg[0] == "_reindex" and method == "POST":
            return self._reindex(body or {})
        if seg[0] == "_cluster":
            return 200, {"cluster_name": "scripted", "status": "green"}
        if seg[0] == "_msearch" or (len(seg) == 2 and seg[1] == "_msearch"):
            return 200, self._msearch(body or [], seg[0] if len(seg) == 2 else None)
        if seg[0] == "_bulk" or (len(seg) == 2 and seg[1] == "_bulk"):
            return 200, self._bulk(body or [])
        if seg[0] == "_search" and len(seg) >= 3 and seg[1] == "pipeline":
            self.pipelines[seg[2]] = body
            return 200, {"acknowledged": True}
        if seg[0].startswith("_"):
            return _error(400, "illegal_argument_exception", f"unscripted path /{'/'.join(seg)}")
        return self._index_route(method, seg, req, body)

    def _index_route(
        self, method: str, seg: list[str], req: Recorded, body: Any
    ) -> tuple[int, Any]:
        expression = seg[0]
        if len(seg) == 1:
            if method == "PUT":
                if expression in self.indices:
                    return _error(400, "resource_already_exists_exception", expression)
                body = body or {}
                self.indices[expression] = _Index(
                    dict(body.get("mappings") or {}), dict(body.get("settings") or {})
                )
                return 200, {"acknowledged": True, "index": expression}
            names = self._expand(expression)
            if method == "HEAD":
                return (200 if names else 404), ""
            if method == "DELETE":
                if names is None:
                    return self._missing(expression)
                for name in names:
                    self.indices.pop(name, None)
                    for targets in self.aliases.values():
                        targets.discard(name)
                return 200, {"acknowledged": True}
        allow_empty = req.params.get("allow_no_indices") == "true"
        names = self._expand(expression, allow_empty=allow_empty)
        if names is None:
            return self._missing(expression)
        action = seg[1]
        if action == "_mapping":
            if method == "PUT":
                for name in names:
                    self.indices[name].mappings.update(body or {})
                return 200, {"acknowledged": True}
            return 200, {n: {"mappings": self.indices[n].mappings} for n in names}
        if action == "_stats":
            return 200, {
                "indices": {
                    n: {"primaries": {"docs": {"count": len(self.indices[n].docs)}}} for n in names
                }
            }
        if action == "_refresh":
            return 200, {"_shards": {"total": 1, "successful": 1, "failed": 0}}
        if action == "_count":
            return 200, {"count": sum(len(self.indices[n].docs) for n in names)}
        if action == "_search":
            return 200, self._search(names, body or {})
        if action == "_mget":
            return 200, self._mget(names, body or {})
        if action == "_doc" and len(seg) == 3 and method in ("PUT", "POST"):
            created = seg[2] not in self.indices[names[0]].docs
            self.indices[names[0]].docs[seg[2]] = body
            return (201 if created else 200), {
                "_index": names[0],
                "_id": seg[2],
                "result": "created" if created else "updated",
            }
        if action == "_doc" and len(seg) == 3:
            for name in names:
                doc = self.indices[name].docs.get(seg[2])
                if doc is not None:
                    return 200, {"_index": name, "_id": seg[2], "found": True, "_source": doc}
            return 404, {"_index": names[0] if names else expression, "_id": seg[2], "found": False}
        if action == "_alias":
            return 200, {n: {"aliases": {}} for n in names}
        return _error(400, "illegal_argument_exception", f"unscripted path /{'/'.join(seg)}")

    def _reindex(self, body: dict[str, Any]) -> tuple[int, Any]:
        source, dest = body["source"]["index"], body["dest"]["index"]
        names = self._expand(source)
        if names is None or dest not in self.indices:
            return self._missing(source if names is None else dest)
        copied = 0
        for name in names:
            for doc_id, doc in self.indices[name].docs.items():
                self.indices[dest].docs[doc_id] = dict(doc)
                copied += 1
        return 200, {"took": 1, "timed_out": False, "total": copied, "created": copied,
                     "updated": 0, "deleted": 0, "failures": []}  # fmt: skip

    def _info(self) -> dict[str, Any]:
        version: dict[str, Any] = {"number": "9.2.0", "build_flavor": "default"}
        if self.distribution == "opensearch":
            version = {"distribution": "opensearch", "number": "3.2.0"}
        return {"name": "scripted", "cluster_name": "scripted", "version": version}

    def _get_alias(self, name: str) -> tuple[int, Any]:
        targets = self.aliases.get(name)
        if not targets:
            return 404, {"error": f"alias [{name}] missing", "status": 404}
        return 200, {t: {"aliases": {name: {}}} for t in sorted(targets)}

    def _update_aliases(self, body: Any) -> tuple[int, Any]:
        for action in (body or {}).get("actions", []):
            ((kind, spec),) = action.items()
            if kind == "add":
                self.aliases.setdefault(spec["alias"], set()).add(spec["index"])
            elif kind == "remove":
                self.aliases.get(spec["alias"], set()).discard(spec["index"])
        return 200, {"acknowledged": True}

    def _bulk(self, lines: list[Any]) -> dict[str, Any]:
        items, errors, i = [], False, 0
        while i < len(lines):
            ((op, meta),) = lines[i].items()
            index, doc_id = meta.get("_index"), str(meta.get("_id"))
            target = self.indices.get(index) if index else None
            if op == "delete":
                i += 1
                found = target is not None and target.docs.pop(doc_id, None) is not None
                status = 200 if found else 404
                result = "deleted" if found else "not_found"
                items.append({op: {"_index": index, "_id": doc_id, "status": status,
                                   "result": result}})  # fmt: skip
                continue
            source, i = lines[i + 1], i + 2
            if target is None or doc_id in self.refuse_ids:
                errors = True
                reason = "document refused by the script" if target else f"no such index [{index}]"
                items.append({op: {"_index": index, "_id": doc_id, "status": 400,
                                   "error": {"type": "mapper_parsing_exception",
                                             "reason": reason}}})  # fmt: skip
                continue
            created = doc_id not in target.docs
            target.docs[doc_id] = source
            items.append({op: {"_index": index, "_id": doc_id, "status": 201 if created else 200,
                               "result": "created" if created else "updated"}})  # fmt: skip
        return {"took": 1, "errors": errors, "items": items}

    def _search(self, names: list[str], body: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        size = int(body.get("size", 10))
        start = int(body.get("from", 0))
        spec = body.get("_source", True)
        docs = [(n, i, d) for n in names for i, d in self.indices[n].docs.items()]
        page = docs[start : start + size]
        hits = []
        for rank, (name, doc_id, source) in enumerate(page):
            hit: dict[str, Any] = {"_index": name, "_id": doc_id, "_score": 1.0 / (rank + 1)}
            if spec is not False:
                hit["_source"] = filter_source(source, spec)
            hits.append(hit)
        out: dict[str, Any] = {
            "took": int((time.perf_counter() - started) * 1000),
            "timed_out": False,
            "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
            "hits": {
                "total": {"value": len(docs), "relation": "eq"},
                "max_score": hits[0]["_score"] if hits else None,
                "hits": hits,
            },
        }
        aggs = body.get("aggs", body.get("aggregations"))
        if aggs:
            out["aggregations"] = {name: {"buckets": []} for name in aggs}
            for name, spec in aggs.items():
                if spec.get("terms", {}).get("field") == "_index":
                    per_index = {n: len(self.indices[n].docs) for n in names}
                    out["aggregations"][name]["buckets"] = [
                        {"key": n, "doc_count": c} for n, c in per_index.items() if c
                    ]
        return out

    def _msearch(self, lines: list[Any], default: str | None) -> dict[str, Any]:
        responses = []
        for header, body in zip(lines[::2], lines[1::2], strict=True):
            names = self._expand(str(header.get("index", default)))
            if names is None:
                responses.append(self._missing(str(header.get("index")))[1])
            else:
                responses.append({**self._search(names, body), "status": 200})
        return {"took": 1, "responses": responses}

    def _mget(self, names: list[str], body: dict[str, Any]) -> dict[str, Any]:
        docs = []
        for spec in body.get("docs", []):
            doc_id = str(spec["_id"])
            for name in names:
                source = self.indices[name].docs.get(doc_id)
                if source is not None:
                    kept = filter_source(source, spec.get("_source", True))
                    docs.append({"_index": name, "_id": doc_id, "found": True, "_source": kept})
                    break
            else:
                docs.append({"_index": names[0] if names else "", "_id": doc_id, "found": False})
        return {"docs": docs}


def _dumps(body: Any) -> bytes:
    return body if isinstance(body, bytes) else orjson.dumps(body)


def recording_elasticsearch(cluster: ScriptedCluster | None = None) -> Any:
    """An `Elasticsearch` client whose node records requests and asks `cluster`."""
    from elastic_transport import ApiResponseMeta, BaseNode, HttpHeaders
    from elastic_transport._node._base import NodeApiResponse
    from elasticsearch import Elasticsearch

    scripted = cluster or ScriptedCluster()

    class RecordingNode(BaseNode):
        def perform_request(
            self,
            method: str,
            target: str,
            body: bytes | None = None,
            headers: HttpHeaders | None = None,
            request_timeout: Any = None,
        ) -> NodeApiResponse:
            status, answer = scripted.handle(method, target, body)
            meta = ApiResponseMeta(
                status=status,
                http_version="1.1",
                headers=HttpHeaders(
                    {"content-type": "application/json", "x-elastic-product": "Elasticsearch"}
                ),
                duration=0.0,
                node=self.config,
            )
            return NodeApiResponse(meta, _dumps(answer) if answer != "" else b"")

    client = Elasticsearch("http://scripted:9200", node_class=RecordingNode)
    client.scripted = scripted  # type: ignore[attr-defined]
    return client


def recording_opensearch(cluster: ScriptedCluster | None = None) -> Any:
    """An `OpenSearch` client whose connection records requests and asks `cluster`."""
    from urllib.parse import urlencode

    from opensearchpy import Connection, OpenSearch

    scripted = cluster or ScriptedCluster(distribution="opensearch")

    class RecordingConnection(Connection):
        def perform_request(
            self,
            method: str,
            url: str,
            params: Any = None,
            body: Any = None,
            timeout: Any = None,
            ignore: Any = (),
            headers: Any = None,
        ) -> Any:
            target = f"{url}?{urlencode(params)}" if params else url
            raw = body.encode() if isinstance(body, str) else body
            status, answer = scripted.handle(method, target, raw)
            data = _dumps(answer).decode() if answer != "" else ""
            if not (200 <= status < 300) and status not in (ignore or ()):
                self._raise_error(status, data, "application/json")
            return status, {"content-type": "application/json"}, data

    client = OpenSearch([{"host": "scripted", "port": 9200}], connection_class=RecordingConnection)
    client.scripted = scripted  # type: ignore[attr-defined]
    return client
