"""Point in time, scroll, `_mget`, `_mapping` and `_field_caps` on the embedded backend.

A point in time pins the concrete generation behind an index; searches with `pit` run on
it with the implicit `_shard_doc` tiebreaker (a stable per-generation document order),
so `search_after` pages never repeat or skip a document. A scroll is the same thing
carried in its id: the generation, the body and the last hit's sort values, so the next
page is `search_after` of that position on that generation — any worker process can
answer it (`contexts`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shoprank.errors import BadRequestError, IndexNotFoundError
from shoprank.plugin.shapes import filter_source

from .contexts import Contexts, SearchContextMissingError
from .generation import Generation
from .sort import parse_sort
from .store import EmbeddedStore

# Body keys a scroll's later pages keep (aggregations and suggestions come once, first).
SCROLL_KEEPS = (
    "query",
    "sort",
    "size",
    "_source",
    "post_filter",
    "min_score",
    "track_total_hits",
    "track_scores",
    "highlight",
    "fields",
    "docvalue_fields",
    "explain",
    "version",
    "seq_no_primary_term",
    "stored_fields",
    "knn",
    "timeout",
)
MAPPING_META_FIELDS = {
    "_id": "_id",
    "_index": "_index",
    "_source": "_source",
    "_version": "_version",
    "_seq_no": "_seq_no",
    "_routing": "_routing",
    "_ignored": "_ignored",
}

Search = Callable[[Generation, dict[str, Any]], dict[str, Any]]


def pinned(store: EmbeddedStore, payload: dict[str, Any]) -> Generation:
    """The generation a context pins; 404 `search_context_missing_exception` once gone."""
    try:
        return store.generation(str(payload["g"]))
    except IndexNotFoundError:
        raise SearchContextMissingError(
            f"No search context found for id [{payload['c']}]: generation [{payload['g']}] "
            "is gone (pruned after an alias swap)"
        ) from None


def pit_search(
    store: EmbeddedStore, contexts: Contexts, body: dict[str, Any], run: Search
) -> dict[str, Any]:
    """A search with `pit` in its body, on the generation the point in time pins."""
    pit = body["pit"]
    if not isinstance(pit, dict) or not isinstance(pit.get("id"), str):
        raise BadRequestError("[pit] must be an object with an [id]")
    unknown = set(pit) - {"id", "keep_alive"}
    if unknown:
        raise BadRequestError(f"[pit] option(s) {sorted(unknown)} are not supported")
    payload = contexts.decode(pit["id"], "pit")
    gen = pinned(store, payload)
    rest = {k: v for k, v in body.items() if k != "pit"}
    response = run(gen, rest)
    keep = pit.get("keep_alive")
    response["pit_id"] = contexts.renewed(payload, keep) if keep is not None else pit["id"]
    return response


def scroll_start_body(
    store: EmbeddedStore, contexts: Contexts, index: str, body: dict[str, Any], scroll: str
) -> dict[str, Any]:
    """The first page of a scroll as a point-in-time search (what the pipeline runs)."""
    for key, why in (
        ("search_after", "[search_after] cannot be used in a scroll context"),
        ("collapse", "cannot use `collapse` in a scroll context"),
        ("pit", "cannot use [pit] with the [scroll] parameter"),
    ):
        if body.get(key) is not None:
            raise BadRequestError(why, es_type="illegal_argument_exception")
    if int(body.get("from", 0) or 0) > 0:
        raise BadRequestError(
            "using [from] is not allowed in a scroll context", es_type="illegal_argument_exception"
        )
    gen = store.generation(index)
    pit = contexts.new_context("pit", gen.name, scroll, i=index)
    return {**body, "pit": {"id": pit}}


def scroll_response(
    contexts: Contexts, response: dict[str, Any], body: dict[str, Any], scroll: str
) -> dict[str, Any]:
    """A point-in-time response as the first page of a scroll (`_scroll_id`)."""
    pit_id = response.pop("pit_id", None)
    payload = contexts.decode(pit_id, "pit")
    kept = {k: body[k] for k in SCROLL_KEEPS if k in body}
    return _page(contexts, response, str(payload["g"]), kept, None, scroll)


def _page(
    contexts: Contexts,
    response: dict[str, Any],
    generation: str,
    kept: dict[str, Any],
    after: Any,
    scroll: str,
) -> dict[str, Any]:
    hits = response.get("hits", {}).get("hits", [])
    if hits and hits[-1].get("sort") is not None:
        after = hits[-1]["sort"]
    # A scroll shows the sort values the client asked for, without the implicit tiebreaker.
    shown = len(parse_sort(kept["sort"])) if "sort" in kept else 0
    for hit in hits:
        if shown == 0:
            hit.pop("sort", None)
        elif "sort" in hit:
            hit["sort"] = hit["sort"][:shown]
    scroll_id = contexts.new_context("scroll", generation, scroll, b=kept, a=after)
    return {"_scroll_id": scroll_id, **response}


def scroll_next(
    store: EmbeddedStore, contexts: Contexts, scroll_id: Any, scroll: str | None, run: Search
) -> dict[str, Any]:
    """The next page of a scroll."""
    payload = contexts.decode(scroll_id, "scroll")
    gen = pinned(store, payload)
    kept = dict(payload["b"])
    body = dict(kept)
    if payload.get("a") is not None:
        body["search_after"] = payload["a"]
    response = run(gen, body)
    remaining = max(0, int(payload["e"]) - contexts.now_ms())
    keep = scroll if scroll is not None else f"{max(remaining, 1)}ms"
    return _page(contexts, response, gen.name, kept, payload.get("a"), keep)


def clear_scroll(contexts: Contexts, ids: Any) -> dict[str, Any]:
    """ES's clear-scroll answer; `_all` cannot list stateless ids (`num_freed` 0)."""
    items = ids if isinstance(ids, list) else [ids]
    if items == ["_all"] or ids == "_all":
        return {"succeeded": True, "num_freed": 0}
    freed = 0
    for item in items:
        if isinstance(item, str):
            for part in item.split(","):
                freed += contexts.close(part, "scroll")
    return {"succeeded": True, "num_freed": freed}


def mget_docs(
    get: Callable[[str, str], dict[str, Any]],
    index: str | None,
    body: dict[str, Any],
    source: Any,
) -> dict[str, Any]:
    """ES `_mget`: `docs` ([{_index, _id, _source}]) or `ids` (with an index)."""
    unknown = set(body) - {"docs", "ids"}
    if unknown:
        raise BadRequestError(f"unknown key(s) {sorted(unknown)} in the _mget body")
    wanted: list[tuple[str, str, Any]] = []
    if "ids" in body:
        if index is None:
            raise BadRequestError(
                "[ids] needs an index in the path: /{index}/_mget",
                es_type="action_request_validation_exception",
            )
        if not isinstance(body["ids"], list):
            raise BadRequestError("[ids] must be a list")
        wanted += [(index, str(i), source) for i in body["ids"]]
    for doc in body.get("docs", []) or []:
        if not isinstance(doc, dict) or "_id" not in doc:
            raise BadRequestError("each of [docs] needs an [_id]")
        bad = set(doc) - {"_index", "_id", "_source", "routing"}
        if bad:
            raise BadRequestError(f"unknown key(s) {sorted(bad)} in an _mget doc")
        target = doc.get("_index", index)
        if not target:
            raise BadRequestError(
                "index is missing for doc " + str(doc["_id"]),
                es_type="action_request_validation_exception",
            )
        wanted.append((str(target), str(doc["_id"]), doc.get("_source", source)))
    if not wanted:
        raise BadRequestError("no documents to get", es_type="action_request_validation_exception")
    out = []
    for target, doc_id, spec in wanted:
        try:
            result = get(target, doc_id)
        except IndexNotFoundError as exc:
            out.append({"_index": target, "_id": doc_id, "error": exc.to_es_body()["error"]})
            continue
        if result.get("found") and "_source" in result:
            filtered = filter_source(result["_source"], spec)
            if filtered is None:
                result.pop("_source")
            else:
                result["_source"] = filtered
        out.append(result)
    return {"docs": out}


def mapping_response(gen: Generation) -> dict[str, Any]:
    """`GET /{index}/_mapping`, keyed by the concrete index as ES answers for an alias."""
    return {gen.name: {"mappings": gen.schema.mapping}}


def _es_fields(properties: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for name, spec in properties.items():
        path = f"{prefix}{name}"
        es_type = str(spec.get("type", "object" if "properties" in spec else "object"))
        out[path] = es_type
        if "properties" in spec:
            out.update(_es_fields(spec["properties"], f"{path}."))
        for sub, subspec in spec.get("fields", {}).items():
            out[f"{path}.{sub}"] = str(subspec.get("type", "keyword"))
    return out


def field_caps_response(gen: Generation, fields: str | None) -> dict[str, Any]:
    """`GET /{index}/_field_caps?fields=` for the generation's mapping."""
    import fnmatch

    patterns = [p.strip() for p in (fields or "*").split(",") if p.strip()]
    if not patterns:
        raise BadRequestError(
            "specified fields can't be empty", es_type="illegal_argument_exception"
        )
    types = _es_fields(gen.schema.mapping.get("properties", {}))
    caps: dict[str, Any] = {}
    for path, es_type in {**types, **MAPPING_META_FIELDS}.items():
        if not any(fnmatch.fnmatchcase(path, p) for p in patterns):
            continue
        meta = path in MAPPING_META_FIELDS
        searchable = es_type not in ("object", "_source")
        aggregatable = es_type not in ("text", "object", "_source", "dense_vector", "_id")
        caps[path] = {
            es_type: {
                "type": es_type,
                "metadata_field": meta,
                "searchable": searchable,
                "aggregatable": aggregatable,
            }
        }
    return {"indices": [gen.name], "fields": caps}
