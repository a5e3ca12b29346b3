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

Aggregations, sorting, pagination, `_source`, `post_filter` are untouched. A hard filter
the intent adds (a category or an attribute, not an explicit price) is a `Constraint`: the
search pipeline checks it against the query's own top hits (`shoprank.rerankers.intent.
evidence`) and turns it into a boost — its words back in the text — when it would drop most
of them (`soft`). `RewritePlan` carries the rewrite and its recovery steps, one constraint
at a time, to the search pipeline, which runs them.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from .attributes import AttributeMatch
from .predictor import Understanding
from .price import parse_price
from .text import remove_spans, tokenize
from .types import Intent

# Field-keyed full-text queries whose text loses the words that became filters; other
# queries (query_string syntax, prefix, …) are kept whole inside the rewrite's `bool.must`.
MATCH_QUERIES = ("match", "match_phrase", "match_phrase_prefix", "match_bool_prefix")

#: The levels of `rewrite(relax=...)`: what each drops, in order; the last one is the
#: client's own body. The search relaxes one constraint at a time (`RewritePlan.relaxations`).
RELAXATIONS = ("drop_category_filter", "drop_attribute_filters", "original_query")
ORIGINAL_QUERY = "original_query"

#: The lexical matches of each body of a list (None where its search failed).
Count = Callable[[list[dict[str, Any]]], Sequence[int | None]]


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
    # The evidence check: how many of the query's own top hits a filter is judged on, and
    # the share of them it must keep to stay a filter (else it becomes a boost).
    evidence_hits: int = 20
    evidence_min_kept: float = 0.5


@dataclass(frozen=True)
class Constraint:
    """A hard filter the intent adds (not the explicit price): `key` is its field, `clause`
    its ES filter, `confidence` the match confidence or category probability."""

    key: str
    kind: Literal["category", "attribute"]
    clause: dict[str, Any]
    confidence: float
    # The query's words the filter stands for ("hp" for `brand: HP`); none for a category.
    words: tuple[str, ...] = ()

    @property
    def step(self) -> str:
        """The name of the relaxation step that drops it."""
        if self.kind == "category":
            return "drop_category_filter"
        return f"drop_attribute_filter:{self.key}"


@dataclass(frozen=True)
class RewritePlan:
    """What query understanding decided for one search, without touching the request.

    `body` is the rewritten client body and `actions` what was done to it (for explain and
    the search log); `soft` maps the constraints turned into boosts to why. `relaxations()`
    lists the recovery steps the search may run, in order, when the rewritten query finds
    too little; the evidence check's `kept` (the share of the top hits with a constraint's
    words that pass it) and `support` (how many such hits there are) order them.
    """

    original: dict[str, Any]
    understanding: Understanding
    config: RewriteConfig
    body: dict[str, Any]
    actions: tuple[dict[str, Any], ...]
    soft: Mapping[str, str] = dataclasses.field(default_factory=dict)
    kept: Mapping[str, float] = dataclasses.field(default_factory=dict)
    support: Mapping[str, int] = dataclasses.field(default_factory=dict)
    # Set by the evidence check: whether it ran, the relaxation steps it took, and whether
    # the planned query matches no product (`shoprank.rerankers.intent.evidence`).
    checked: bool = False
    relaxed: tuple[str, ...] = ()
    starved: bool = False

    @property
    def intent(self) -> Intent:
        return self.understanding.intent

    @property
    def constraints(self) -> list[Constraint]:
        """The hard filters this plan still applies, the first to relax first: the least
        agreement with the query's top hits, then the fewest top hits with its words, then
        the least confidence (`kept` and `support` come from the evidence check)."""
        left = [c for c in constraints(self.understanding, self.config) if c.key not in self.soft]
        most = self.config.evidence_hits
        return sorted(
            left,
            key=lambda c: (
                self.kept.get(c.key, 1.0),
                self.support.get(c.key, most),
                c.confidence,
            ),
        )

    def soften(self, reasons: Mapping[str, str], *, kept: Mapping[str, float]) -> RewritePlan:
        """This plan with the constraints in `reasons` as boosts (their words back in the
        text); actions not made by the rewrite itself (added by the caller) stay first."""
        soft = {**self.soft, **reasons}
        shares = {**self.kept, **kept}
        own = self._rewrite(self.soft, self.kept)[1]
        added = [a for a in self.actions if a not in own]
        body, actions = self._rewrite(soft, shares)
        return replace(
            self, body=body, actions=(*added, *actions), soft=soft, kept=shares, checked=True
        )

    def baseline(self) -> dict[str, Any]:
        """The body the constraints are judged against: the rewrite with none of them (not
        even as a boost), so the shopper's words all search, under the explicit price."""
        every = constraints(self.understanding, self.config)
        return self._rewrite({c.key: "baseline" for c in every}, {c.key: 0.0 for c in every})[0]

    def _rewrite(
        self, soft: Mapping[str, str], kept: Mapping[str, float]
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        return rewrite(self.original, self.understanding, self.config, soft=soft, kept=kept)

    def relaxations(self, count: Count | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
        """Each recovery step's name and the body it searches, computed when asked for: one
        constraint more as a boost per step, then the client's own body.

        With `count` (the lexical matches of each of a list of bodies, in one round trip)
        each step drops the constraint whose removal brings back the most matches; without
        it, or when none would, they go in `constraints` order."""
        soft = dict(self.soft)
        left = self.constraints
        while left:
            options = []
            for constraint in left:
                body, _ = self._rewrite({**soft, constraint.key: "relaxed"}, self.kept)
                options.append((constraint, body))
            chosen = options[0]
            if count is not None and len(options) > 1:
                found = count([body for _, body in options])
                if len(found) == len(options):
                    best = max(range(len(options)), key=lambda i: (found[i] or 0, -i))
                    chosen = options[best] if found[best] else chosen
            constraint, body = chosen
            soft[constraint.key] = "relaxed"
            left = [c for c in left if c.key != constraint.key]
            yield constraint.step, body
        yield ORIGINAL_QUERY, copy.deepcopy(self.original)


def constraints(understanding: Understanding, config: RewriteConfig) -> list[Constraint]:
    """The category and attribute filters `rewrite` adds for `understanding`, in its order."""
    out: list[Constraint] = []
    by_field: dict[str, list[AttributeMatch]] = {}
    for m in understanding.matches:
        if m.confidence >= config.attribute_filter_threshold:
            by_field.setdefault(m.field, []).append(m)
    for name, matches in by_field.items():
        values = list(dict.fromkeys(m.value for m in matches))
        confidence = min(m.confidence for m in matches)
        words = tuple(dict.fromkeys(understanding.intent.query[m.start : m.end] for m in matches))
        clause: dict[str, Any] = {"terms": {name: values}}
        out.append(Constraint(name, "attribute", clause, confidence, words))
    best = _confident_category(understanding.intent, config)
    if best is not None:
        clause = {"term": {config.category_field: best[0]}}
        out.append(Constraint(config.category_field, "category", clause, best[1]))
    return out


def _confident_category(intent: Intent, config: RewriteConfig) -> tuple[str, float] | None:
    """The deepest category whose probability reaches the filter threshold."""
    best: tuple[str, float] | None = None
    for name, prob in intent.categories:
        if prob >= config.category_filter_threshold and (
            best is None or name.count(">") > best[0].count(">")
        ):
            best = (name, prob)
    return best


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


def words_query(query: Any, words: str) -> Any | None:
    """`query` with each match-style text replaced by `words`, all of them required: what
    finds the products that contain the words where the client searches. None when the
    query has no such text (a `query_string`, a `term`)."""
    found: list[bool] = []
    edited = _with_words(query, words, found)
    return edited if found else None


def _with_words(node: Any, words: str, found: list[bool]) -> Any:
    """`words_query`'s copy of `node` (a module function: a self-calling closure would be a
    reference cycle per search)."""
    if isinstance(node, list):
        return [_with_words(item, words, found) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for name, body in node.items():
        if name in ("filter", "must_not"):
            out[name] = copy.deepcopy(body)
        elif name == "multi_match" and isinstance(body, dict) and "query" in body:
            found.append(True)
            spec = {k: v for k, v in body.items() if k != "minimum_should_match"}
            out[name] = {**spec, "query": words, "operator": "and"}
        elif name in MATCH_QUERIES and isinstance(body, dict) and len(body) == 1:
            ((field, spec),) = body.items()
            found.append(True)
            options = spec if isinstance(spec, dict) else {}
            new = {k: v for k, v in options.items() if k != "minimum_should_match"}
            new["query"] = words
            if name == "match":
                new["operator"] = "and"
            out[name] = {field: new}
        else:
            out[name] = _with_words(body, words, found)
    return out


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
    soft: Mapping[str, str] | None = None,
    kept: Mapping[str, float] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The rewritten body and the list of actions taken (for explain and the search log).

    `soft` names constraints (by field) that become boosts, with why; a soft boost weighs
    in proportion to the share of the query's top hits its filter kept (`kept`): a field
    the relevant products lack boosts nothing. `relax` is a level of `RELAXATIONS`."""
    soft = soft or {}
    kept = kept or {}
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
    boosts: dict[tuple[str, float, str], list[str]] = {}
    phrases: list[tuple[str, ...]] = []
    for m in understanding.matches:
        hard = m.confidence >= config.attribute_filter_threshold
        if relax < 2 and hard and m.field not in soft:
            values = filtered_fields.setdefault(m.field, [])
            if m.value not in values:
                values.append(m.value)
            phrase = tuple(t.key for t in tokenize(intent.query[m.start : m.end]))
            if phrase and phrase not in phrases:
                phrases.append(phrase)
        else:
            share = kept.get(m.field, 1.0) if m.field in soft else 1.0
            weight = round(config.boost * m.confidence * share, 3)
            reason = soft.get(m.field) or ("attribute filter relaxed" if hard else "fuzzy match")
            group = boosts.setdefault((m.field, weight, reason), [])
            if m.value not in group:
                group.append(m.value)
    # One boost per field and weight: a list value's parts ("blue" → Blue, Blue,White, …)
    # boost together as one `terms`.
    for (name, weight, reason), values in boosts.items():
        action: dict[str, Any] = {"action": "boost", "field": name}
        clause: dict[str, Any]
        if len(values) == 1:
            clause = {"term": {name: {"value": values[0], "boost": weight}}}
            action["value"] = values[0]
        else:
            clause = {"terms": {name: values, "boost": weight}}
            action["values"] = values
        if weight > 0:
            should.append(clause)
        actions.append({**action, "weight": weight, "reason": reason})
    for field, values in filtered_fields.items():
        filters.append({"terms": {field: values}})
        actions.append(
            {"action": "filter", "field": field, "values": values, "reason": "attribute"}
        )

    best = _confident_category(intent, config)
    if relax < 1 and config.category_field not in soft and best is not None:
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
        softened = best is not None and name == best[0] and config.category_field in soft
        share = kept.get(config.category_field, 1.0) if softened else 1.0
        weight = round(config.boost * prob * share, 3)
        if weight > 0:
            should.append({"term": {config.category_field: {"value": name, "boost": weight}}})
        boost: dict[str, Any] = {"action": "boost", "field": config.category_field}
        boost.update(value=name, weight=weight)
        if softened:
            boost["reason"] = soft[config.category_field]
        actions.append(boost)

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
