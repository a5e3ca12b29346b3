"""Turn an `Intent` into Elasticsearch DSL changes on the client's `_search` body.

The client's query is kept whole (its own filters, scoring, `minimum_should_match`) inside
a new `bool.must`; its top-level filters are repeated in the outer `bool.filter`, where
shoprank's vector leg looks for them. shoprank adds:

- `filter`: the price range (explicit constraints always), attribute values matched
  exactly (confidence ≥ the attribute threshold), the deepest category whose probability
  is ≥ the category threshold;
- `should`: boosts for probable categories and matched attributes, weighted by confidence,
  and exact `term` lookups of SKU-like tokens;
- text edits: words that became filters (and price words) leave the `match` texts; a
  clause left with no words becomes `match_all`.

Aggregations, sorting, pagination, `_source`, `post_filter` are untouched. A `relax` level
undoes parts of the rewrite for zero-result recovery (see `RELAXATIONS`); `RewritePlan`
carries the rewrite and its recovery steps to the search pipeline, which runs them.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .predictor import Understanding
from .price import parse_price
from .text import remove_spans, tokenize
from .types import Intent

# Field-keyed full-text queries whose text loses the words that became filters; other
# queries (query_string syntax, prefix, …) are kept whole inside the rewrite's `bool.must`.
MATCH_QUERIES = ("match", "match_phrase", "match_phrase_prefix", "match_bool_prefix")

#: What each recovery step drops, in order; the last one runs the client's own body.
RELAXATIONS = ("drop_category_filter", "drop_attribute_filters", "original_query")


@dataclass(frozen=True)
class RewriteConfig:
    category_filter_threshold: float = 0.9
    attribute_filter_threshold: float = 0.9
    boost: float = 2.0
    min_boost_probability: float = 0.15
    sku_boost: float = 10.0
    category_field: str = "category_levels"
    price_field: str = "price"
    sku_fields: tuple[str, ...] = ("id", "sku", "mpn", "ean")


@dataclass(frozen=True)
class RewritePlan:
    """What query understanding decided for one search, without touching the request.

    `body` is the rewritten client body and `actions` what was done to it (for explain and
    the search log); `relaxations()` lists the recovery steps the search may run, in order,
    when the rewritten query finds too little.
    """

    original: dict[str, Any]
    understanding: Understanding
    config: RewriteConfig
    body: dict[str, Any]
    actions: tuple[dict[str, Any], ...]

    @property
    def intent(self) -> Intent:
        return self.understanding.intent

    def relaxations(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Each recovery step's name and the body it searches, computed when asked for."""
        for level, step in enumerate(RELAXATIONS, start=1):
            body, _ = rewrite(self.original, self.understanding, self.config, relax=level)
            yield step, body


def plan_rewrite(
    body: dict[str, Any], understanding: Understanding, config: RewriteConfig
) -> RewritePlan:
    """The rewrite of `body` for `understanding` as a plan (`body` is left as it is)."""
    rewritten, actions = rewrite(body, understanding, config)
    return RewritePlan(
        original=body,
        understanding=understanding,
        config=config,
        body=rewritten,
        actions=tuple(actions),
    )


def _listify(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _strip(text: str, phrases: list[tuple[str, ...]]) -> str:
    """`text` without the word sequences in `phrases` (matched by key) and price words."""
    tokens = tokenize(text)
    keys = [t.key for t in tokens]
    spans: list[tuple[int, int]] = []
    for phrase in phrases:
        n = len(phrase)
        for i in range(len(keys) - n + 1):
            if tuple(keys[i : i + n]) == phrase:
                spans.append((tokens[i].start, tokens[i + n - 1].end))
    spans += parse_price(text).spans
    return remove_spans(text, spans)


def _edit_text(node: Any, phrases: list[tuple[str, ...]], edits: list[dict[str, str]]) -> Any:
    """A copy of `node` with the phrases removed from match-style and multi_match texts (of
    any type, `bool_prefix` included; not in filters)."""
    if isinstance(node, list):
        return [_edit_text(item, phrases, edits) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for name, body in node.items():
        if name in ("filter", "must_not"):
            out[name] = copy.deepcopy(body)
        elif (
            name == "multi_match" and isinstance(body, dict) and isinstance(body.get("query"), str)
        ):
            new = _strip(body["query"], phrases)
            if new != body["query"]:
                edits.append({"before": body["query"], "after": new})
            if not new:
                return {"match_all": {}}
            out[name] = {**body, "query": new}
        elif name in MATCH_QUERIES and isinstance(body, dict) and len(body) == 1:
            ((field, spec),) = body.items()
            text = spec.get("query") if isinstance(spec, dict) else spec
            if not isinstance(text, str):
                out[name] = copy.deepcopy(body)
                continue
            new = _strip(text, phrases)
            if new != text:
                edits.append({"before": text, "after": new})
            if not new:
                return {"match_all": {}}
            out[name] = {field: {**spec, "query": new} if isinstance(spec, dict) else new}
        else:
            out[name] = _edit_text(body, phrases, edits)
    return out


def rewrite(
    body: dict[str, Any],
    understanding: Understanding,
    config: RewriteConfig,
    *,
    relax: int = 0,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The rewritten body and the list of actions taken (for explain and the search log)."""
    new_body = copy.deepcopy(body)
    query = body.get("query")
    if relax >= len(RELAXATIONS) or query is None:
        return new_body, []
    intent = understanding.intent
    actions: list[dict[str, Any]] = []
    filters: list[dict[str, Any]] = []
    should: list[dict[str, Any]] = []

    if intent.price:
        filters.append({"range": {config.price_field: dict(intent.price)}})
        actions.append(
            {
                "action": "filter",
                "field": config.price_field,
                "range": dict(intent.price),
                "reason": "price band" if not understanding.price.explicit else "explicit price",
            }
        )

    filtered_fields: dict[str, list[str]] = {}
    phrases: list[tuple[str, ...]] = []
    for m in understanding.matches:
        if relax < 2 and m.confidence >= config.attribute_filter_threshold:
            values = filtered_fields.setdefault(m.field, [])
            if m.value not in values:
                values.append(m.value)
            phrase = tuple(t.key for t in tokenize(intent.query[m.start : m.end]))
            if phrase and phrase not in phrases:
                phrases.append(phrase)
        else:
            weight = round(config.boost * m.confidence, 3)
            should.append({"term": {m.field: {"value": m.value, "boost": weight}}})
            actions.append(
                {
                    "action": "boost",
                    "field": m.field,
                    "value": m.value,
                    "weight": weight,
                    "reason": "fuzzy match" if m.confidence < 1.0 else "attribute filter relaxed",
                }
            )
    for field, values in filtered_fields.items():
        filters.append({"terms": {field: values}})
        actions.append(
            {"action": "filter", "field": field, "values": values, "reason": "attribute"}
        )

    if relax < 1:
        best: tuple[str, float] | None = None
        for name, prob in intent.categories:
            if prob >= config.category_filter_threshold and (
                best is None or name.count(">") > best[0].count(">")
            ):
                best = (name, prob)
        if best is not None:
            filters.append({"term": {config.category_field: best[0]}})
            actions.append(
                {
                    "action": "filter",
                    "field": config.category_field,
                    "value": best[0],
                    "probability": best[1],
                    "reason": "confident category",
                }
            )
    for name, prob in intent.categories:
        if prob < config.min_boost_probability:
            continue
        weight = round(config.boost * prob, 3)
        should.append({"term": {config.category_field: {"value": name, "boost": weight}}})
        actions.append(
            {"action": "boost", "field": config.category_field, "value": name, "weight": weight}
        )

    for sku in intent.skus:
        variants = list(dict.fromkeys([sku, sku.upper()]))
        for field in config.sku_fields:
            for value in variants:
                should.append({"term": {field: {"value": value, "boost": config.sku_boost}}})
        actions.append({"action": "sku_lookup", "value": sku, "fields": list(config.sku_fields)})

    edits: list[dict[str, str]] = []
    inner = _edit_text(query, phrases, edits) if (phrases or understanding.price.spans) else query
    for edit in edits:
        actions.append({"action": "remove_words", **edit})
    if not filters and not should and not edits:
        return new_body, []

    outer: dict[str, Any] = {"must": [copy.deepcopy(inner)]}
    client_filters: list[Any] = []
    client_must_not: list[Any] = []
    if isinstance(query, dict) and isinstance(query.get("bool"), dict):
        client_filters = copy.deepcopy(_listify(query["bool"].get("filter")))
        client_must_not = copy.deepcopy(_listify(query["bool"].get("must_not")))
    if client_filters or filters:
        outer["filter"] = client_filters + filters
    if client_must_not:
        outer["must_not"] = client_must_not
    if should:
        outer["should"] = should
    new_body["query"] = {"bool": outer}
    return new_body, actions
