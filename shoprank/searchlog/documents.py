"""Search-log documents in the spirit of OpenSearch's User Behavior Insights (UBI) schema.

One search becomes one *query* document plus one *impression* event per returned product;
shoppers' clicks, carts and purchases become *events* keyed by the same `query_id`:

    query       doc_type=query, query_id, timestamp, client_id, user_query, mode, intent.*,
                rewrite.*, relaxation, model_version, latency_ms.*, total_hits, zero_results,
                query_response_object_ids, window (rank before/after, score, features),
                experiment.id / .method / .variant (a search of an online experiment)
    impression  doc_type=event, action_name=impression, query_id, event_attributes.object
                .object_id, event_attributes.position.ordinal (rank after reranking),
                event_attributes.rank_before, .rank_shift, .score, .features.*,
                experiment.*, event_attributes.experiment_arm (the arm that showed it)
    event       doc_type=event, action_name=click|add_to_cart|purchase|view, query_id,
                event_attributes.object.object_id, .position.ordinal, .rank_before (joined)

UBI keys its `ubi_queries` and `ubi_events` by `query_id`, `object_id` and `position.ordinal`;
the index template adds filtered aliases of those names, so UBI tooling can read the log.
User and session ids are pseudonyms (the keyed hash of `shoprank.events.privacy`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shoprank.searchlog.record import SearchRecord

APPLICATION = "shoprank"
OBJECT_ID_FIELD = "_id"
MAX_QUERY_CHARS = 2048
# Timing keys of the search pipeline, grouped into the logged latency stages.
RETRIEVAL_TIMINGS = ("embed_ms", "lexical_ms", "vector_ms", "image_ms")
INTENT_TIMINGS = ("intent_ms",)
FEATURE_TIMINGS = ("features_ms",)
FETCH_TIMINGS = ("fetch_ms",)
# Parts of another timing (the batched legs' round trip is inside `vector_ms`): not summed.
PART_TIMINGS = ("msearch_ms",)


def iso(ts: float) -> str:
    """Epoch seconds as the ISO-8601 UTC string ES/OpenSearch date fields parse."""
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds")


def latency_breakdown(timings_ms: dict[str, float]) -> dict[str, float]:
    """The pipeline's timings as stages: intent, retrieval, features, rerank, fetch, total.

    Unknown `<stage>_ms` keys (each reranking stage names its own) count as rerank time.
    """
    known = set(RETRIEVAL_TIMINGS + INTENT_TIMINGS + FEATURE_TIMINGS + FETCH_TIMINGS + PART_TIMINGS)
    out = {
        "intent": sum(timings_ms.get(k, 0.0) for k in INTENT_TIMINGS),
        "retrieval": sum(timings_ms.get(k, 0.0) for k in RETRIEVAL_TIMINGS),
        "features": sum(timings_ms.get(k, 0.0) for k in FEATURE_TIMINGS),
        "rerank": sum(v for k, v in timings_ms.items() if k not in known),
        "fetch": sum(timings_ms.get(k, 0.0) for k in FETCH_TIMINGS),
    }
    out["total"] = sum(v for k, v in timings_ms.items() if k not in PART_TIMINGS)
    return {k: round(v, 3) for k, v in out.items()}


def _intent_fields(intent: dict[str, Any] | None) -> dict[str, Any] | None:
    """The predicted intent, flattened for aggregation (top category, attributes, price)."""
    if not intent:
        return None
    out: dict[str, Any] = {}
    categories = intent.get("categories") or []
    names: list[str] = []
    for item in categories:
        if isinstance(item, dict) and item.get("category") is not None:
            names.append(str(item["category"]))
        elif isinstance(item, list | tuple) and item:
            names.append(str(item[0]))
    if names:
        out["category"] = names[0]
        out["categories"] = names
        first = categories[0]
        prob = first.get("probability") if isinstance(first, dict) else None
        if prob is None and isinstance(first, list | tuple) and len(first) > 1:
            prob = first[1]
        if isinstance(prob, int | float):
            out["category_probability"] = float(prob)
    attributes = intent.get("attributes")
    if isinstance(attributes, dict) and attributes:
        out["attributes"] = {
            str(k): [str(v) for v in (vals if isinstance(vals, list) else [vals])]
            for k, vals in attributes.items()
        }
    price = intent.get("price")
    if isinstance(price, dict):
        out["price"] = {k: float(v) for k, v in price.items() if isinstance(v, int | float)}
    for key in ("query_type", "model_version", "residual_text"):
        if intent.get(key):
            out[key] = str(intent[key])
    if intent.get("skus"):
        out["skus"] = [str(s) for s in intent["skus"]]
    return out


def experiment_fields(experiment: dict[str, Any] | None) -> dict[str, str] | None:
    """The experiment a search ran under, as keywords to aggregate on: its id, method and
    the variant served ("A", "B", or "interleave" for a page mixing both arms)."""
    if not isinstance(experiment, dict) or not experiment.get("id"):
        return None
    return {k: str(experiment[k]) for k in ("id", "method", "variant") if experiment.get(k)}


def experiment_arm(experiment: dict[str, Any] | None, product_id: str | None) -> str | None:
    """The arm that put `product_id` on the page: its team on an interleaved page, the
    served variant on an A/B one; None outside experiments (or for a product no arm chose)."""
    if not isinstance(experiment, dict) or product_id is None:
        return None
    teams = experiment.get("teams")
    if isinstance(teams, dict):
        arm = teams.get(product_id)
        return str(arm) if arm in ("A", "B") else None
    variant = experiment.get("variant")
    return str(variant) if variant in ("A", "B") else None


def _rewrite_fields(rewrite: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Rewrite actions: their names (for aggregation) and the actions themselves (stored)."""
    if not rewrite:
        return None
    actions = [
        str(a.get("action") or a.get("type") or a.get("name") or "rewrite")
        for a in rewrite
        if isinstance(a, dict)
    ]
    return {"actions": actions, "count": len(rewrite), "details": rewrite}


def query_document(
    record: SearchRecord, *, client_id: str | None, session_id: str | None
) -> dict[str, Any]:
    """The UBI-style query document of one search (ids already pseudonymised)."""
    doc: dict[str, Any] = {
        "doc_type": "query",
        "application": APPLICATION,
        "query_id": record.query_id,
        "timestamp": iso(record.timestamp),
        "index": record.index,
        "client_id": client_id,
        "session_id": session_id,
        "user_query": (record.query or "")[:MAX_QUERY_CHARS],
        "mode": record.mode,
        "model_version": record.model_version,
        "relaxation": record.relaxation,
        "total_hits": int(record.total_hits),
        "zero_results": 1 if record.total_hits == 0 else 0,
        "degraded": list(record.degraded),
        "latency_ms": latency_breakdown(record.timings_ms),
        "timings_ms": dict(record.timings_ms),
        "query_response_object_ids": [w.product_id for w in record.window],
        "window": [
            {
                "object_id": w.product_id,
                "rank_before": w.rank_before,
                "rank_after": w.rank_after,
                "score": float(w.score),
                **({"features": dict(w.features)} if w.features else {}),
            }
            for w in record.window
        ],
    }
    if record.surface != "search":
        doc["surface"] = record.surface
        doc["rec_id"] = record.query_id
    if record.strategy:
        doc["strategy"] = record.strategy
    intent = _intent_fields(record.intent)
    if intent:
        doc["intent"] = intent
    rewrite = _rewrite_fields(record.rewrite)
    if rewrite:
        doc["rewrite"] = rewrite
    experiment = experiment_fields(record.experiment)
    if experiment:
        doc["experiment"] = experiment
    return doc


def impression_documents(
    record: SearchRecord, *, client_id: str | None, session_id: str | None
) -> list[dict[str, Any]]:
    """One UBI `impression` event per returned product, with its rank shift."""
    ts = iso(record.timestamp)
    experiment = experiment_fields(record.experiment)
    out = []
    for item in record.window:
        attrs: dict[str, Any] = {
            "object": {"object_id": item.product_id, "object_id_field": OBJECT_ID_FIELD},
            "position": {"ordinal": item.rank_after},
            "rank_before": item.rank_before,
            # Positive: reranking moved the product up.
            "rank_shift": item.rank_before - item.rank_after,
            "score": float(item.score),
        }
        if item.features:
            attrs["features"] = {k: float(v) for k, v in item.features.items()}
        arm = experiment_arm(record.experiment, item.product_id)
        if arm is not None:
            attrs["experiment_arm"] = arm
        doc: dict[str, Any] = {
            "doc_type": "event",
            "application": APPLICATION,
            "action_name": "impression",
            "query_id": record.query_id,
            "timestamp": ts,
            "index": record.index,
            "client_id": client_id,
            "session_id": session_id,
            "user_query": (record.query or "")[:MAX_QUERY_CHARS],
            "mode": record.mode,
            "model_version": record.model_version,
            "message_type": "IMPRESSION",
            "event_attributes": attrs,
        }
        if experiment:
            doc["experiment"] = experiment
        out.append(doc)
    return out


def event_document(
    *,
    action: str,
    query_id: str | None,
    timestamp: float,
    product_id: str | None,
    position: int | None,
    client_id: str | None,
    session_id: str | None,
    rank_before: int | None = None,
    quantity: int | None = None,
    price: float | None = None,
    experiment: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A shopper's click / add_to_cart / purchase / view as a UBI event. `experiment`: the
    `experiment` field of the search it cites, when known (its id and variant, and the arm
    that showed the product, so clicks count per arm on interleaved pages too)."""
    attrs: dict[str, Any] = {}
    if product_id is not None:
        attrs["object"] = {"object_id": product_id, "object_id_field": OBJECT_ID_FIELD}
    if position is not None:
        attrs["position"] = {"ordinal": int(position)}
    if rank_before is not None:
        attrs["rank_before"] = int(rank_before)
        if position is not None:
            attrs["rank_shift"] = int(rank_before) - int(position)
    if quantity is not None:
        attrs["quantity"] = int(quantity)
    if price is not None:
        attrs["price"] = float(price)
    arm = experiment_arm(experiment, product_id)
    if arm is not None:
        attrs["experiment_arm"] = arm
    doc: dict[str, Any] = {
        "doc_type": "event",
        "application": APPLICATION,
        "action_name": action,
        "query_id": query_id,
        "timestamp": iso(timestamp),
        "client_id": client_id,
        "session_id": session_id,
        "message_type": action.upper(),
        "event_attributes": attrs,
    }
    fields = experiment_fields(experiment)
    if fields:
        doc["experiment"] = fields
    return doc
