"""Whether the intent's hard filters keep the products the query itself finds.

A filter the intent adds ("black" → `colour: Black`) is only as good as the catalog's data:
where ink cartridges carry no colour field it removes every one of them. So before a
rewrite filters, each constraint is judged by the query's own top hits that contain the
words it stands for (the query's words all searching, under the explicit price —
`RewritePlan.baseline` — and "black" required): the share of them that pass the filter.

- A constraint that fewer than `RewriteConfig.evidence_min_kept` of them pass becomes a
  boost, weighted by that share, and its words go back into the text.
- The hard filters left are judged together on the top hits that contain all their words;
  while too few pass them all, they relax one at a time, the one with the least agreement
  (then the least confidence) first.
- Fewer than `MIN_EVIDENCE` such hits (a category has no words, nor a query without
  match-style text: they are judged on the query's top hits) say too little: the filter
  stays, and the zero-result recovery (`shoprank.rerankers.intent.recovery`) still runs.

Filtering does not change a hit's score, so a top hit passes a filter exactly when it is
among the filtered search's top hits: the check is two id-only searches per constraint,
plus a count of the planned rewrite (a rewrite whose query matches nothing relaxes even
when the vector leg would fill the page), in one `msearch` of plain ES DSL (every backend
runs it). The decisions and the counts behind them are actions of the rewrite
(`_shoprank.rewrite`, the search log).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from .rewriter import Constraint, RewritePlan, words_query

#: Runs a list of `_search` bodies as one `msearch`; a failed entry is an exception.
Msearch = Callable[[list[dict[str, Any]]], Sequence[Any]]

MIN_EVIDENCE = 3


def evidence_bodies(plan: RewritePlan, checked: Sequence[Constraint]) -> list[dict[str, Any]]:
    """Per constraint: the query's top `evidence_hits` that contain its words, then the same
    under its filter."""
    query = plan.baseline().get("query")
    top: dict[str, Any] = {
        "size": plan.config.evidence_hits,
        "_source": False,
        "track_total_hits": False,
    }
    bodies: list[dict[str, Any]] = []
    for constraint in checked:
        words = [words_query(query, w) for w in constraint.words]
        required = [w for w in words if w is not None]
        base: dict[str, Any] = {"bool": {"must": [query]}}
        if required:
            base["bool"]["filter"] = [{"bool": {"should": required, "minimum_should_match": 1}}]
        filtered = {"bool": {"must": [base], "filter": [constraint.clause]}}
        bodies += [{"query": base, **top}, {"query": filtered, **top}]
    return bodies


def _ids(response: Any) -> list[str] | None:
    if not isinstance(response, dict):
        return None  # that search failed: no evidence
    try:
        return [str(h["_id"]) for h in response["hits"]["hits"]]
    except (KeyError, TypeError):
        return None


def check(plan: RewritePlan, msearch: Msearch) -> RewritePlan:
    """`plan` with the constraints the query's top hits do not support as boosts (and
    `checked`, `relaxed`, `starved` set)."""
    checked = plan.constraints
    if plan.checked or not checked or plan.original.get("query") is None:
        return replace(plan, checked=True)
    # One more: how many products the rewrite as planned matches (size 0).
    rewritten = {"query": plan.body.get("query"), "size": 0, "track_total_hits": True}
    responses = list(msearch([*evidence_bodies(plan, checked), rewritten]))
    if len(responses) != 2 * len(checked) + 1:
        return replace(plan, checked=True)
    matches = total_of(responses.pop())
    # Per constraint: the top hits with its words, and those of them its filter keeps.
    seen: dict[str, set[str]] = {}
    passed: dict[str, set[str]] = {}
    support: dict[str, int] = {}
    for i, constraint in enumerate(checked):
        found, kept = _ids(responses[2 * i]), _ids(responses[2 * i + 1])
        if found is not None:
            support[constraint.key] = len(found)
        if found is not None and kept is not None and len(found) >= MIN_EVIDENCE:
            seen[constraint.key] = set(found)
            passed[constraint.key] = set(found).intersection(kept)
    share = {key: round(len(passed[key]) / len(hits), 3) for key, hits in seen.items()}
    floor = plan.config.evidence_min_kept
    reasons: dict[str, str] = {}
    for constraint in checked:
        key = constraint.key
        if key in seen and share[key] < floor:
            reasons[key] = (
                f"evidence: {len(passed[key])}/{len(seen[key])} top hits with its words "
                "pass the filter"
            )
    judged = [c for c in checked if c.key in seen and c.key not in reasons]
    steps: list[str] = []
    while len(judged) > 1:
        common = set.intersection(*(seen[c.key] for c in judged))
        if len(common) < MIN_EVIDENCE:
            break
        together = common.intersection(*(passed[c.key] for c in judged))
        if len(together) / len(common) >= floor:
            break
        weakest = min(judged, key=lambda c: (share[c.key], c.confidence))
        reasons[weakest.key] = (
            f"relaxed: {len(together)}/{len(common)} top hits with all the words "
            "pass the filters together"
        )
        steps.append(weakest.step)
        judged.remove(weakest)
    note: dict[str, Any] = {
        "action": "evidence",
        "top_hits": plan.config.evidence_hits,
        "with_words": {key: len(hits) for key, hits in seen.items()},
        "passing": {key: len(hits) for key, hits in passed.items()},
        "boosts": list(reasons),
    }
    softened = plan.soften(reasons, kept=share) if reasons else replace(plan, kept=share)
    # A softened plan matches more than `matches` counted; the zero-result recovery still runs.
    return replace(
        softened,
        actions=(*softened.actions, note),
        support=support,
        checked=True,
        relaxed=tuple(steps),
        starved=not reasons and matches == 0,
    )


def total_of(response: Any) -> int | None:
    """`hits.total.value` of a response; None for a failed search."""
    if not isinstance(response, dict):
        return None
    total = response.get("hits", {}).get("total")
    if isinstance(total, dict) and isinstance(total.get("value"), int):
        return int(total["value"])
    return total if isinstance(total, int) else None
