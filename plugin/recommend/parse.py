"""The body of `POST /_shoprank/recommend`, checked key by key: every mistake is a 400 in
the Elasticsearch error shape that names the key, shows the value and says the fix."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from shoprank.errors import BadRequestError
from shoprank.events.model import MAX_ID_CHARS, RECOMMEND_STRATEGIES
from shoprank.settings import Settings

STRATEGIES: Final = RECOMMEND_STRATEGIES
# Products named by one request (`product_ids` of a cart, `exclude`).
MAX_IDS: Final = 1000
KEYS: Final = frozenset(
    {
        "strategy",
        "index",
        "product_id",
        "product_ids",
        "user_id",
        "session_id",
        "category",
        "filter",
        "exclude",
        "size",
        "diversity",
        "explain",
    }
)
# Which strategies need which anchor.
NEEDS_PRODUCT: Final = ("similar", "bought_together")


@dataclass(frozen=True)
class RecommendRequest:
    """One recommendation request, validated."""

    strategy: str
    index: str
    product_ids: tuple[str, ...] = ()
    user_id: str | None = None
    session_id: str | None = None
    category: str | None = None
    filters: tuple[dict[str, Any], ...] = ()
    exclude: tuple[str, ...] = ()
    size: int = 10
    diversity: Any = None
    explain: bool = False


def _bad(key: str, message: str) -> BadRequestError:
    return BadRequestError(f"[{key}] {message}", es_type="x_content_parse_exception")


def _id(key: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _bad(key, f"must be a product id (a string), got {value!r}")
    text = str(value).strip()
    if not text or len(text) > MAX_ID_CHARS:
        raise _bad(key, f"must be a non-empty id of at most {MAX_ID_CHARS} characters")
    return text


def _ids(key: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str | int) and not isinstance(value, bool):
        return (_id(key, value),)
    if not isinstance(value, list):
        raise _bad(key, f"must be a list of product ids, got {type(value).__name__}")
    if len(value) > MAX_IDS:
        raise _bad(key, f"names {len(value)} products; at most {MAX_IDS}")
    return tuple(dict.fromkeys(_id(key, v) for v in value))


def _opt_text(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _bad(key, f"must be a non-empty string, got {value!r}")
    if len(value) > MAX_ID_CHARS:
        raise _bad(key, f"is longer than {MAX_ID_CHARS} characters")
    return value.strip()


def parse_filters(value: Any) -> tuple[dict[str, Any], ...]:
    """ES filter clauses: one query object or a list of them (applied in the backend)."""
    if value is None:
        return ()
    clauses = value if isinstance(value, list) else [value]
    for clause in clauses:
        if not isinstance(clause, dict) or len(clause) != 1:
            raise _bad(
                "filter",
                "must be an ES query clause (an object with one key, e.g. "
                f'{{"range": {{"price": {{"lte": 100}}}}}}) or a list of them, got {clause!r}',
            )
    return tuple(clauses)


def parse_size(value: Any, settings: Settings) -> int:
    limit = settings.recommend_max_size
    if value is None:
        return 10
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise _bad("size", f"must be an integer, got {value!r}")
    if not 1 <= int(value) <= limit:
        raise _bad(
            "size",
            f"must be between 1 and {limit} (SHOPRANK_RECOMMEND_MAX_SIZE), got {int(value)}",
        )
    return int(value)


def parse_recommend(
    body: dict[str, Any] | None,
    *,
    settings: Settings,
    user_id: str | None = None,
    session_id: str | None = None,
) -> RecommendRequest:
    """The request of `body`; `user_id` / `session_id` come from the headers (the body's own
    `user_id` wins)."""
    if body is None:
        raise _bad("strategy", f"is required: one of {list(STRATEGIES)}")
    if not isinstance(body, dict):
        raise BadRequestError("request body must be a JSON object")
    unknown = sorted(set(body) - KEYS)
    if unknown:
        raise _bad(unknown[0], f"is not a recommendation option; the options are {sorted(KEYS)}")
    strategy = body.get("strategy")
    if strategy not in STRATEGIES:
        raise _bad("strategy", f"must be one of {list(STRATEGIES)}, got {strategy!r}")
    index = _opt_text("index", body.get("index")) or settings.product_index
    anchors = _ids("product_id", body.get("product_id")) + _ids(
        "product_ids", body.get("product_ids")
    )
    anchors = tuple(dict.fromkeys(anchors))
    if strategy in NEEDS_PRODUCT and not anchors:
        key = "product_id" if strategy == "similar" else "product_id] or [product_ids"
        raise _bad(key, f"is required for the {strategy} strategy")
    if strategy == "similar" and len(anchors) > 1:
        raise _bad("product_ids", "similar takes one product: send [product_id]")
    user = _opt_text("user_id", body.get("user_id")) or user_id
    session = _opt_text("session_id", body.get("session_id")) or session_id
    if strategy == "for_you" and not user and not session:
        raise _bad(
            "user_id",
            "is required for the for_you strategy (in the body, the X-Shoprank-User header "
            "or ?user_id=)",
        )
    explain = body.get("explain", False)
    if not isinstance(explain, bool):
        raise _bad("explain", f"must be true or false, got {explain!r}")
    return RecommendRequest(
        strategy=str(strategy),
        index=index,
        product_ids=anchors,
        user_id=user,
        session_id=session,
        category=_opt_text("category", body.get("category")),
        filters=parse_filters(body.get("filter")),
        exclude=_ids("exclude", body.get("exclude")),
        size=parse_size(body.get("size"), settings),
        diversity=body.get("diversity"),
        explain=explain,
    )


def check_strategy(strategy: str) -> None:
    if strategy not in STRATEGIES:
        raise _bad("strategy", f"must be one of {list(STRATEGIES)}, got {strategy!r}")


def as_tuple(ids: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(str(i) for i in ids))
