"""The `shoprank-searches-*` index template: one mapping for Elasticsearch and OpenSearch.

Daily indices (`shoprank-searches-2026.11.24`) hold query documents and UBI-style events
(see `documents.py`). The root is `dynamic: false`, so an unexpected key is kept in
`_source` but never grows the mapping; only `event_attributes.features.*` (the ranker's
logged features, numbers) and `intent.attributes.*` (facet values) map new keys, by rule.
Filtered aliases `shoprank_ubi_queries` / `shoprank_ubi_events` give UBI tooling its view.
"""

from __future__ import annotations

import copy
from typing import Any

DEFAULT_PREFIX = "shoprank-searches"
TEMPLATE_NAME = "shoprank-searches"
TEMPLATE_VERSION = 2  # 2: experiment.* and event_attributes.experiment_arm

_KEYWORD = {"type": "keyword"}
_FLOAT = {"type": "float"}
_INT = {"type": "integer"}

MAPPINGS: dict[str, Any] = {
    # Strings, not booleans: both engines accept them and the ES specification types them so.
    "dynamic": "false",
    "_meta": {"shoprank": {"template_version": TEMPLATE_VERSION}},
    "dynamic_templates": [
        {
            "features_as_numbers": {
                "path_match": "event_attributes.features.*",
                "mapping": {"type": "float"},
            }
        },
        {
            "intent_attributes_as_keywords": {
                "path_match": "intent.attributes.*",
                "mapping": {"type": "keyword", "ignore_above": 256},
            }
        },
    ],
    "properties": {
        "doc_type": _KEYWORD,
        "application": _KEYWORD,
        "query_id": _KEYWORD,
        "timestamp": {"type": "date"},
        "index": _KEYWORD,
        "client_id": _KEYWORD,
        "session_id": _KEYWORD,
        "user_query": {
            "type": "keyword",
            "ignore_above": 512,
            "fields": {"text": {"type": "text"}},
        },
        "mode": _KEYWORD,
        "surface": _KEYWORD,
        "strategy": _KEYWORD,
        "rec_id": _KEYWORD,
        "model_version": _KEYWORD,
        "relaxation": _KEYWORD,
        "total_hits": {"type": "long"},
        # Bumped by shipped events (cluster sink): queries without clicks have clicks 0.
        "clicks": _INT,
        "carts": _INT,
        "purchases": _INT,
        "zero_results": {"type": "byte"},
        "degraded": _KEYWORD,
        "latency_ms": {
            "type": "object",
            "properties": {
                name: _FLOAT
                for name in ("intent", "retrieval", "features", "rerank", "fetch", "total")
            },
        },
        "timings_ms": {"type": "object", "enabled": False},
        "query_response_object_ids": _KEYWORD,
        "window": {"type": "object", "enabled": False},
        "intent": {
            "type": "object",
            "properties": {
                "category": _KEYWORD,
                "categories": _KEYWORD,
                "category_probability": _FLOAT,
                "query_type": _KEYWORD,
                "model_version": _KEYWORD,
                "residual_text": {"type": "keyword", "ignore_above": 512},
                "skus": _KEYWORD,
                "price": {
                    "type": "object",
                    "properties": {"gte": _FLOAT, "lte": _FLOAT, "gt": _FLOAT, "lt": _FLOAT},
                },
                "attributes": {"type": "object", "dynamic": "true"},
            },
        },
        "rewrite": {
            "type": "object",
            "properties": {
                "actions": _KEYWORD,
                "count": _INT,
                "details": {"type": "object", "enabled": False},
            },
        },
        # A search of an online experiment, and the events of its page (documents.py).
        "experiment": {
            "type": "object",
            "properties": {"id": _KEYWORD, "method": _KEYWORD, "variant": _KEYWORD},
        },
        "action_name": _KEYWORD,
        "message_type": _KEYWORD,
        "event_attributes": {
            "type": "object",
            "properties": {
                "object": {
                    "type": "object",
                    "properties": {"object_id": _KEYWORD, "object_id_field": _KEYWORD},
                },
                "position": {"type": "object", "properties": {"ordinal": _INT}},
                "rank_before": _INT,
                "rank_shift": _INT,
                "score": _FLOAT,
                "quantity": _INT,
                "price": _FLOAT,
                # The arm ("A" control, "B" challenger) that put the product on the page.
                "experiment_arm": _KEYWORD,
                "features": {"type": "object", "dynamic": "true"},
            },
        },
    },
}


def index_template(prefix: str = DEFAULT_PREFIX) -> dict[str, Any]:
    """The composable index template body (`PUT _index_template/<name>`), same on both engines."""
    return {
        "index_patterns": [f"{prefix}-*"],
        "priority": 200,
        "version": TEMPLATE_VERSION,
        "_meta": {"shoprank": {"description": "search log: queries and UBI-style events"}},
        "template": {
            "settings": {"refresh_interval": "5s"},
            "mappings": copy.deepcopy(MAPPINGS),
            "aliases": {
                prefix: {},
                "shoprank_ubi_queries": {"filter": {"term": {"doc_type": "query"}}},
                "shoprank_ubi_events": {"filter": {"term": {"doc_type": "event"}}},
            },
        },
    }


def field_paths(mappings: dict[str, Any] | None = None) -> dict[str, str]:
    """Every mapped field (`event_attributes.position.ordinal`, `user_query.text`, …) and its
    type; objects with `dynamic: true` are listed as `object` (their children map by rule)."""
    out: dict[str, str] = {}

    def walk(props: dict[str, Any], prefix: str) -> None:
        for name, spec in props.items():
            path = f"{prefix}{name}"
            if "properties" in spec:
                walk(spec["properties"], path + ".")
                continue
            out[path] = spec.get("type", "object")
            for sub, sub_spec in spec.get("fields", {}).items():
                out[f"{path}.{sub}"] = sub_spec["type"]

    walk((mappings or MAPPINGS)["properties"], "")
    return out


def dynamic_prefixes(mappings: dict[str, Any] | None = None) -> list[str]:
    """Prefixes whose children map by a dynamic template (`event_attributes.features.`)."""
    return [
        rule["path_match"].rstrip("*")
        for entry in (mappings or MAPPINGS)["dynamic_templates"]
        for rule in entry.values()
    ]
