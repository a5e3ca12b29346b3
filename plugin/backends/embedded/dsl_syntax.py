"""The Lucene query-string syntax subset of `query_string` / `simple_query_string`, parsed
into clauses (`parse`), and the shopper's words of any text query (`query_text_of`).

Pure Python (no index needed), so the serving pipeline can read a query's words with it.
Supported syntax: terms, "phrases", AND / OR / NOT (`&&`, `||`, `!`), `+` / `-`,
parentheses, `field:value`, `field:(a b)`, wildcards `*` / `?`; `simple` reads `+` `|`
`-` and treats AND/OR/NOT as words. Regex `/…/`, ranges `[a TO b]`, `~` and `^` are a 400
naming them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from shoprank.errors import BadRequestError, UnsupportedQueryError

_TOKEN = re.compile(r'\s+|"(?:[^"\\]|\\.)*"?|&&|\|\||[()!+\-|]|(?:[^\s()"\\:]|\\.)+:?')


@dataclass
class Node:
    """One clause: a leaf (`text`, `phrase`) or a group (`children`), on `fields`."""

    occur: str = "default"  # must, should, must_not or default (the default_operator's)
    text: str | None = None
    phrase: bool = False
    fields: list[str] | None = None
    children: list[Node] = field(default_factory=list)


def _refuse(what: str, construct: str) -> UnsupportedQueryError:
    return UnsupportedQueryError(
        f"[query_string] {what} is not supported by shoprank's embedded backend; use terms, "
        '"phrases", AND/OR/NOT, field:value and * or ? wildcards',
        construct=f"query_string.{construct}",
    )


def parse(text: str, *, simple: bool) -> list[Node]:
    """The clauses of a query string (see the module doc for the syntax)."""
    tokens = [t for t in _TOKEN.findall(text) if t and not t.isspace()]
    nodes, rest = _group(tokens, 0, simple=simple, fields=None)
    if rest < len(tokens):
        raise BadRequestError(f"[query_string] unbalanced ')' in {text!r}")
    return nodes


def _group(
    tokens: list[str], i: int, *, simple: bool, fields: list[str] | None
) -> tuple[list[Node], int]:
    nodes: list[Node] = []
    pending = "default"
    while i < len(tokens):
        tok = tokens[i]
        upper = tok if simple else tok.upper() if tok in ("AND", "OR", "NOT") else tok
        if tok == ")":
            return nodes, i
        if upper in ("AND", "&&") or (simple and tok == "+" and nodes):
            if nodes and nodes[-1].occur == "default":
                nodes[-1].occur = "must"
            pending = "must"
            i += 1
            continue
        if upper in ("OR", "||") or (simple and tok == "|"):
            if nodes and nodes[-1].occur == "default":
                nodes[-1].occur = "should"
            pending = "should"
            i += 1
            continue
        if upper in ("NOT", "!", "-"):
            pending = "must_not"
            i += 1
            continue
        if tok == "+":
            pending = "must"
            i += 1
            continue
        node, i = _clause(tokens, i, simple=simple, fields=fields)
        node.occur = pending
        pending = "default"
        nodes.append(node)
    return nodes, i


def _clause(
    tokens: list[str], i: int, *, simple: bool, fields: list[str] | None
) -> tuple[Node, int]:
    tok = tokens[i]
    if tok.endswith(":") and not simple and len(tok) > 1:
        name = tok[:-1].replace("\\", "")
        if name == "_exists_":
            raise _refuse("_exists_", "_exists_")
        if i + 1 >= len(tokens):
            raise BadRequestError(f"[query_string] field [{name}] has no value")
        inner, j = _clause(tokens, i + 1, simple=simple, fields=[name])
        return inner, j
    if tok == "(":
        children, j = _group(tokens, i + 1, simple=simple, fields=fields)
        if j >= len(tokens):
            raise BadRequestError("[query_string] unbalanced '(': missing ')'")
        return Node(fields=fields, children=children), j + 1
    if tok.startswith('"'):
        if len(tok) < 2 or not tok.endswith('"'):
            raise BadRequestError(f"[query_string] unterminated phrase {tok!r}")
        phrase = tok[1:-1].replace('\\"', '"')
        return Node(text=phrase, phrase=True, fields=fields), _after(tokens, i + 1, simple)
    _check_term(tok, simple)
    return Node(text=_unescape(tok), fields=fields), i + 1


def _after(tokens: list[str], i: int, simple: bool) -> int:
    if i < len(tokens) and tokens[i].startswith(("~", "^")):
        raise _refuse("proximity `~` / boost `^`", tokens[i][0])
    return i


def _check_term(tok: str, simple: bool) -> None:
    if not simple and tok.startswith("/"):
        raise _refuse("a regular expression /…/", "regexp")
    if not simple and (tok.startswith(("[", "{", ">", "<", "=")) or " TO " in tok):
        raise _refuse("a range [a TO b]", "range")
    bare = re.sub(r"\\.", "", tok)
    if "~" in bare:
        raise _refuse("fuzzy or proximity `~`", "fuzzy")
    if "^" in bare:
        raise _refuse("a boost `^`", "boost")
    if not simple and any(c in bare for c in "[]{}/"):
        raise _refuse(f"the syntax of {tok!r}", "syntax")


def _unescape(tok: str) -> str:
    return re.sub(r"\\(.)", r"\1", tok)


def words_of(nodes: list[Node]) -> list[str]:
    """The shopper's words of parsed clauses (no operators, fields or wildcards), in order;
    words under NOT are left out."""
    out: list[str] = []
    for node in nodes:
        if node.occur == "must_not":
            continue
        if node.children:
            out += words_of(node.children)
        elif node.text:
            out.append(node.text.replace("*", "").replace("?", ""))
    return [w for w in out if w.strip()]


TEXT_QUERIES = ("match", "match_phrase", "match_phrase_prefix", "match_bool_prefix")
PATTERN_QUERIES = ("prefix", "wildcard", "fuzzy")


def query_text_of(query: Any) -> str | None:
    """The shopper's words of one ES text query (`{"match": {...}}` and friends), or None
    when `query` is not a text query (compound queries are the caller's to walk).

    Knows match, match_phrase, match_phrase_prefix, match_bool_prefix, multi_match of any
    type, query_string and simple_query_string (syntax, field prefixes, operators and NOT
    clauses stripped), and prefix, wildcard (without its wildcards) and fuzzy values."""
    if not isinstance(query, dict) or len(query) != 1:
        return None
    ((name, body),) = query.items()
    text: Any = None
    if name == "multi_match" and isinstance(body, dict):
        text = body.get("query")
    elif name in ("query_string", "simple_query_string") and isinstance(body, dict):
        raw = body.get("query")
        if isinstance(raw, str):
            try:
                text = " ".join(words_of(parse(raw, simple=name == "simple_query_string")))
            except BadRequestError:
                text = re.sub(r"[^\w\s]+", " ", raw)
    elif name in TEXT_QUERIES + PATTERN_QUERIES and isinstance(body, dict):
        values = [v for k, v in body.items() if k not in ("boost", "_name")]
        if len(values) == 1:
            value = values[0]
            if isinstance(value, dict):
                value = value.get("query", value.get("value", value.get("wildcard")))
            text = value
            if name == "wildcard" and isinstance(text, str):
                text = text.replace("*", " ").replace("?", " ")
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        return None
    words = " ".join(str(text).split())
    return words or None
