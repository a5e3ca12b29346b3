"""A search as shoprank sees it: the frozen request read from `ext.shoprank`, and the trace
the pipeline fills while it runs (notes, degradations, timings, what reranking reported).

`parse_request` validates the options and peels `ext` off a copy of the client's body;
the request never changes after that (a rewrite or a relaxation is a new request made with
`SearchRequest.with_body`), so every stage reads the same inputs.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field, replace
from typing import Any

from shoprank.errors import BadRequestError, UnsupportedQueryError
from shoprank.indexing.mapping import TEXT_VECTOR_FIELD
from shoprank.plugin.fusion import Fusion
from shoprank.plugin.shapes import int_param
from shoprank.rerankers.diversity import NO_DIVERSITY, DiversitySpec, parse_diversity
from shoprank.rerankers.intent.types import Intent
from shoprank.searchlog.record import WindowItem
from shoprank.settings import Settings
from shoprank.types import MODES, Mode

EXT_KEYS = {
    "mode",
    "user_id",
    "session_id",
    "explain",
    "fusion",
    "window",
    "query",
    "vector_field",
    "image",
    "diversity",
}
# Where the shopper's words are (extract_query_text): full-text queries by shape.
QUERY_KEYED = ("multi_match", "combined_fields")
FIELD_KEYED = ("match", "match_phrase", "match_phrase_prefix", "match_bool_prefix")
SYNTAX_QUERIES = ("query_string", "simple_query_string")
TERM_LEVEL = ("prefix", "wildcard", "fuzzy")
FILTER_CONTEXT = ("filter", "must_not", "post_filter")
# Constructs that only make sense in one order: run lexical (no fusion, no rewrite).
LEXICAL_ONLY = {
    "search_after": "search_after pages one sorted order",
    "pit": "a point in time pages one sorted order",
    "collapse": "collapse groups one lexical order",
    "slice": "a sliced scroll/pit pages one sorted order",
}
# Sorts that keep relevance order (so fusion still applies).
SCORE_SORTS: tuple[list[Any], ...] = (
    ["_score"],
    [{"_score": "desc"}],
    [{"_score": {"order": "desc"}}],
)


def listify(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def extract_query_text(query: Any) -> str | None:
    """The shopper's words in an ES query, for the query vector and query understanding.

    Every full-text query counts (`match` and its phrase/prefix forms, `multi_match` of any
    type, `combined_fields`, `query_string` and `simple_query_string` with their syntax
    stripped) and so do the values of `prefix`, `wildcard` and `fuzzy`, wherever they sit
    in scoring context (`bool` must/should, `dis_max`, `function_score`, `nested`, …).
    Filter context (`filter`, `must_not`, `post_filter`) holds constraints, not words.
    """
    parts: list[str] = []
    walk_query_text(query, parts)
    unique = list(dict.fromkeys(p.strip() for p in parts if p.strip()))
    return " ".join(unique) or None


def walk_query_text(node: Any, parts: list[str]) -> None:
    if isinstance(node, list):
        for item in node:
            walk_query_text(item, parts)
        return
    if not isinstance(node, dict):
        return
    for name, body in node.items():
        if name in FILTER_CONTEXT:
            continue
        if name in QUERY_KEYED and isinstance(body, dict):
            if isinstance(body.get("query"), str):
                parts.append(body["query"])
        elif name in SYNTAX_QUERIES and isinstance(body, dict):
            if isinstance(body.get("query"), str):
                parts.append(strip_query_syntax(body["query"]))
        elif name in FIELD_KEYED and isinstance(body, dict):
            for value in body.values():
                text = value.get("query") if isinstance(value, dict) else value
                if isinstance(text, str):
                    parts.append(text)
        elif name in TERM_LEVEL and isinstance(body, dict):
            for value in body.values():
                text = (
                    value.get("value", value.get("wildcard")) if isinstance(value, dict) else value
                )
                if isinstance(text, str):
                    parts.append(re.sub(r"[*?]+", " ", text))
        elif isinstance(body, dict | list):
            walk_query_text(body, parts)


PREFIX_TYPES = ("bool_prefix", "phrase_prefix")
PREFIX_QUERIES = ("match_bool_prefix", "match_phrase_prefix", "prefix")


def prefix_only(query: Any) -> bool:
    """Whether every text clause of `query` completes a partly typed word (Search UI's and
    Searchkit's autocomplete send `multi_match` `bool_prefix` alone). The last word is a
    fragment, so neither its embedding nor its intent means anything: such a search is
    answered lexically, in the order a search-as-you-type box expects."""
    kinds: list[bool] = []
    _text_clause_kinds(query, kinds)
    return bool(kinds) and all(kinds)


def _text_clause_kinds(node: Any, kinds: list[bool]) -> None:
    """Append, for each text clause under `node` (filters aside), whether it completes a
    prefix. A module function rather than a closure: a nested function calling itself is a
    reference cycle, left for the cyclic collector on every search."""
    if isinstance(node, list):
        for item in node:
            _text_clause_kinds(item, kinds)
        return
    if not isinstance(node, dict):
        return
    for name, body in node.items():
        if name in FILTER_CONTEXT:
            continue
        if name in QUERY_KEYED and isinstance(body, dict):
            kinds.append(body.get("type") in PREFIX_TYPES)
        elif name in PREFIX_QUERIES:
            kinds.append(True)
        elif name in FIELD_KEYED or name in SYNTAX_QUERIES or name in TERM_LEVEL:
            kinds.append(False)
        elif isinstance(body, dict | list):
            _text_clause_kinds(body, kinds)


def strip_query_syntax(text: str) -> str:
    """The words of a `query_string` / `simple_query_string`: no operators, field prefixes,
    quotes, wildcards, boosts, fuzziness or ranges, and no negated words."""
    text = re.sub(r"[\w.*]*:?[\[{][^\]}]*[\]}]", " ", text)  # ranges: price:[10 TO 20]
    text = re.sub(r"[()]", " ", text)
    words: list[str] = []
    negate = False
    for token in re.findall(r'[-+!]?(?:[\w.*]+:)?"[^"]*"|\S+', text):
        if token in ("AND", "OR", "&&", "||", "|", "+"):
            continue
        if token in ("NOT", "-", "!"):
            negate = True
            continue
        if negate or token[0] in "-!":
            negate = False
            continue
        token = re.sub(r"^[\w.*]+:(?=.)", "", token.lstrip("+"))
        if token[:1] in "<>=":
            continue
        token = re.sub(r"[\^~][\d.]*", " ", token)
        token = re.sub(r'["*?\\]', " ", token)
        if token.strip():
            words.append(" ".join(token.split()))
    return " ".join(words)


def extract_filters(query: Any) -> list[dict[str, Any]]:
    """The hard constraints of a query (its top-level bool filter / must_not)."""
    if not isinstance(query, dict) or "bool" not in query or not isinstance(query["bool"], dict):
        return []
    body = query["bool"]
    filters: list[dict[str, Any]] = []
    for clause in listify(body.get("filter")):
        filters.append(clause)
    must_not = listify(body.get("must_not"))
    if must_not:
        filters.append({"bool": {"must_not": must_not}})
    return filters


@dataclass(frozen=True)
class SearchRequest:
    """One search after peeling off `ext.shoprank`: what the client asked for.

    `body` is shoprank's own copy of the client's body, without `ext`; `deadline` is the
    `time.perf_counter()` value after which optional stages are skipped
    (`SHOPRANK_SEARCH_BUDGET_MS` after the search started). `client_body` is the body as
    the client sent it (before any rewrite or relaxation; `with_body` leaves it): totals,
    aggregations and highlights come from it. `scroll` is the `scroll` URL parameter.
    `diversity` is how the page is diversified (`ext.shoprank.diversity`, else the
    `SHOPRANK_DIVERSITY*` settings; `shoprank.rerankers.diversity`). `ranker_version` pins
    the learned ranker's model (an experiment arm; None: the live model).
    """

    index: str
    body: dict[str, Any]
    mode: Mode
    user_id: str | None
    explain: bool
    fusion: Fusion
    window: int
    query_text: str | None
    vector_field: str
    image: bool = True
    session_id: str | None = None
    deadline: float | None = None
    client_body: dict[str, Any] = field(default_factory=dict)
    scroll: str | None = None
    diversity: DiversitySpec = NO_DIVERSITY
    ranker_version: str | None = None
    # The shopper's words after spelling correction (`full` mode), which the vector legs
    # embed; None: as typed.
    spelled_text: str | None = None

    def with_body(self, body: dict[str, Any]) -> SearchRequest:
        """The same search over another body (a rewrite, a relaxation step)."""
        return replace(self, body=body)

    @property
    def vector_text(self) -> str:
        """What the vector legs embed: the corrected words, else the query text."""
        text = self.spelled_text or self.query_text
        assert text is not None
        return text

    @property
    def page(self) -> tuple[int, int]:
        """`from` and `size` of the requested page."""
        return int_param(self.body, "from", 0), int_param(self.body, "size", 10)

    @property
    def rewritten(self) -> bool:
        """Whether the body searched is no longer the client's (intent rewrite)."""
        return self.body != self.client_body

    def lexical_only(self) -> str | None:
        """Why this search runs as the backend's own lexical search of the client's query,
        if it must: a construct that pages or groups one order (scroll, pit, search_after,
        collapse), or `size: 0`, which only counts."""
        if self.scroll is not None:
            return "scroll pages one sorted order"
        if self.page[1] == 0:
            return "size 0 ranks nothing (totals and aggregations only)"
        for key, reason in LEXICAL_ONLY.items():
            if self.body.get(key) is not None:
                return reason
        if self.query_text is not None and prefix_only(self.body.get("query")):
            return "search-as-you-type (every text clause is a prefix query)"
        return None


@dataclass
class Trace:
    """What happened during one search, for `_shoprank`, the metrics and the search log."""

    notes: list[str] = field(default_factory=list)
    # Stages that degraded instead of failing (`shoprank.metrics.degrade`); always reported.
    degraded: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    # The returned page as the logs see it (ranks before/after reranking, logged features).
    logged: list[WindowItem] = field(default_factory=list)
    # What reranking stages report (model version, …) under `_shoprank`.
    rerank_info: dict[str, Any] = field(default_factory=dict)
    # Query understanding (`full` mode): the intent, the rewrite actions, and the relaxation
    # step that recovered an empty result.
    intent: Intent | None = None
    rewrite: list[dict[str, Any]] = field(default_factory=list)
    relaxation: str | None = None
    # The spelling correction searched instead of the shopper's words (`_shoprank.spelling`).
    spelling: dict[str, Any] | None = None

    def add_time(self, name: str, ms: float) -> None:
        self.timings[name] = self.timings.get(name, 0.0) + ms

    def rounded_timings(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in self.timings.items()}

    @property
    def model_version(self) -> Any:
        return self.rerank_info.get("model_version")


def parse_request(
    index: str,
    body: dict[str, Any] | None,
    *,
    settings: Settings,
    user_id: str | None,
    session_id: str | None = None,
    scroll: str | None = None,
) -> SearchRequest:
    """Validate `ext.shoprank` (a 400 names the option and the value) into a request."""
    body = copy.deepcopy(body) if body else {}
    if not isinstance(body, dict):
        raise BadRequestError("the search body must be a JSON object")
    ext = body.pop("ext", None) or {}
    if not isinstance(ext, dict):
        raise BadRequestError("[ext] must be an object")
    unknown_ext = set(ext) - {"shoprank"}
    if unknown_ext:
        raise UnsupportedQueryError(
            f"search [ext] section(s) {sorted(unknown_ext)} are not "
            "supported; shoprank reads ext.shoprank"
        )
    opts = ext.get("shoprank") or {}
    if not isinstance(opts, dict):
        raise BadRequestError("[ext.shoprank] must be an object")
    unknown = set(opts) - EXT_KEYS
    if unknown:
        raise BadRequestError(
            f"unknown ext.shoprank option(s) {sorted(unknown)}; known: {sorted(EXT_KEYS)}"
        )
    mode = opts.get("mode", settings.default_mode)
    if mode not in MODES:
        raise BadRequestError(f"ext.shoprank.mode must be one of {', '.join(MODES)}, got {mode!r}")
    fusion = opts.get("fusion", settings.fusion)
    if fusion not in ("rrf", "linear"):
        raise BadRequestError(f"ext.shoprank.fusion must be rrf or linear, got {fusion!r}")
    window = int_param(opts, "window", settings.window_size, minimum=1)
    if window > settings.max_window_size:
        raise BadRequestError(
            f"ext.shoprank.window must be at most {settings.max_window_size}, got {window}"
        )
    user = opts.get("user_id", user_id)
    if user is not None and not isinstance(user, str | int):
        raise BadRequestError(f"ext.shoprank.user_id must be a string, got {user!r}")
    if opts.get("query") is not None and not isinstance(opts["query"], str):
        raise BadRequestError(f"ext.shoprank.query must be a string, got {opts['query']!r}")
    text = opts.get("query") or extract_query_text(body.get("query"))
    return SearchRequest(
        index=index,
        body=body,
        mode=mode,
        user_id=str(user) if user is not None else None,
        explain=bool(opts.get("explain", False)),
        fusion=fusion,
        window=window,
        query_text=text,
        vector_field=str(opts.get("vector_field", TEXT_VECTOR_FIELD)),
        image=bool(opts.get("image", True)),
        session_id=str(opts["session_id"]) if opts.get("session_id") else session_id,
        client_body=body,
        scroll=scroll,
        diversity=parse_diversity(opts.get("diversity"), settings),
    )


def effective_mode(request: SearchRequest, trace: Trace) -> Mode:
    """The mode the search can honour: fusion needs relevance order and something to embed."""
    body = request.body
    if request.mode == "lexical":
        return "lexical"
    only = request.lexical_only()
    if only is not None:
        trace.notes.append(f"{only}: the client's query runs lexical, fusion skipped")
        return "lexical"
    sort = body.get("sort")
    if sort and listify(sort) not in SCORE_SORTS:
        trace.notes.append("explicit sort: results follow the sort, fusion skipped")
        return "lexical"
    if body.get("min_score") is not None:
        trace.notes.append("min_score applies to lexical scores: fusion skipped")
        return "lexical"
    if request.query_text is None and not body.get("knn"):
        trace.notes.append("no query text to embed: lexical only")
        return "lexical"
    return request.mode
