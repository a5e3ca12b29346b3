"""`query_string` and `simple_query_string` on the embedded backend: a safe subset of the
Lucene syntax, translated to ES DSL (multi_match, wildcard, bool) and compiled as such.

Supported: terms, "phrases", AND / OR / NOT (`&&`, `||`, `!`), `+` / `-`, parentheses,
`field:value`, `field:(a b)`, `field:"a phrase"`, wildcards `*` / `?` (bounded like the
`wildcard` query), `default_operator`, `fields` (with `^boost`), `default_field`.
`simple_query_string` reads `+` `|` `-` `"…"` `*` `( )` and treats AND/OR/NOT as words,
as ES does. Anything else — regex `/…/`, ranges `[a TO b]` / `{…}` / `>10`, fuzzy or
proximity `~`, boosts `^` inside the query — is a 400 naming it.
Wildcard terms match the indexed terms case-insensitively and are not stemmed, with or
without `analyze_wildcard` (ES lower-cases them on text fields too; on keyword fields ES
stays case-sensitive). `allow_leading_wildcard: false` refuses `*x`; `lenient` skips
numeric fields the words cannot match.
"""

from __future__ import annotations

from typing import Any

import tantivy

from shoprank.errors import BadRequestError, UnsupportedQueryError

from .dsl_syntax import Node, parse
from .dsl_text import check_options

QS_OPTIONS = {"query", "fields", "default_field", "default_operator", "boost", "_name"}
QS_OPTIONS |= {"analyze_wildcard", "lenient", "allow_leading_wildcard"}
SQS_OPTIONS = {"query", "fields", "default_operator", "boost", "_name", "analyze_wildcard"}
SQS_OPTIONS |= {"lenient", "flags"}


class QueryStringQueries:
    """The handlers; `QueryCompiler` provides `_compile` and `expand_fields`."""

    def _compile(self, query: Any) -> tantivy.Query:
        raise NotImplementedError

    def _q_query_string(self, body: Any) -> tantivy.Query:
        return self._query_string(body, simple=False)

    def _q_simple_query_string(self, body: Any) -> tantivy.Query:
        return self._query_string(body, simple=True)

    def _query_string(self, body: Any, *, simple: bool) -> tantivy.Query:
        name = "simple_query_string" if simple else "query_string"
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            raise BadRequestError(f"[{name}] requires a [query] string")
        check_options(name, body, SQS_OPTIONS if simple else QS_OPTIONS)
        if simple and body.get("flags") not in (None, "ALL"):
            raise UnsupportedQueryError(
                f"[{name}] flags {body['flags']!r} are not supported; only ALL",
                construct=f"{name}.flags",
            )
        operator = str(body.get("default_operator", "or")).lower()
        if operator not in ("or", "and"):
            raise BadRequestError(f"[{name}] default_operator must be OR or AND")
        fields = body.get("fields")
        if fields is None and body.get("default_field") not in (None, "*"):
            fields = [body["default_field"]]
        if isinstance(fields, str):
            fields = [fields]
        if fields == ["*"]:
            fields = None
        nodes = parse(body["query"], simple=simple)
        if body.get("allow_leading_wildcard") is False and _leading_wildcard(nodes):
            raise BadRequestError(
                f"[{name}] a term starts with a wildcard and allow_leading_wildcard is false"
            )
        dsl = _group_dsl(nodes, fields, operator, lenient=bool(body.get("lenient", False)))
        if "boost" in body:
            dsl = {"bool": {"must": [dsl], "boost": body["boost"]}}
        return self._compile(dsl)


def _leading_wildcard(nodes: list[Node]) -> bool:
    return any(
        _leading_wildcard(n.children) if n.children else (n.text or "")[:1] in ("*", "?")
        for n in nodes
        if not n.phrase
    )


def _group_dsl(
    nodes: list[Node], fields: list[str] | None, operator: str, *, lenient: bool
) -> dict[str, Any]:
    if not nodes:
        return {"match_none": {}}
    must: list[dict[str, Any]] = []
    should: list[dict[str, Any]] = []
    must_not: list[dict[str, Any]] = []
    for node in nodes:
        leaf = _node_dsl(node, fields, operator, lenient=lenient)
        occur = node.occur
        if occur == "default":
            occur = "must" if operator == "and" else "should"
        {"must": must, "should": should, "must_not": must_not}[occur].append(leaf)
    query: dict[str, Any] = {"must": must, "should": should, "must_not": must_not}
    if should and not must:
        query["minimum_should_match"] = 1
    return {"bool": query}


def _node_dsl(
    node: Node, fields: list[str] | None, operator: str, *, lenient: bool
) -> dict[str, Any]:
    on = node.fields if node.fields is not None else fields
    if node.children:
        return _group_dsl(node.children, on, operator, lenient=lenient)
    text = node.text or ""
    if not node.phrase and any(c in text for c in "*?"):
        if on is None:
            stem = text[:-1]
            if not text.endswith("*") or any(c in stem for c in "*?"):
                raise BadRequestError(
                    f"[query_string] the wildcard {text!r} needs [fields] or [default_field]"
                )
            return {"multi_match": {"query": stem, "type": "bool_prefix"}}
        alternatives = []
        for item in on:
            name, _, boost = item.partition("^")
            pattern: dict[str, Any] = {
                "value": text,
                "case_insensitive": True,
                "boost": float(boost or 1),
            }
            alternatives.append({"wildcard": {name: pattern}})
        return {"dis_max": {"queries": alternatives}}
    spec: dict[str, Any] = {"query": text, "type": "phrase" if node.phrase else "best_fields"}
    if on is not None:
        spec["fields"] = on
    if lenient:
        spec["lenient"] = True
    return {"multi_match": spec}
