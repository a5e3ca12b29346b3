"""The event schema and its parser: one event, a JSON array, or NDJSON, validated one by one.

    {"type": "click", "user_id": "u1", "product_id": "sku-1", "query_id": "q-…",
     "position": 3, "timestamp": "2026-01-02T10:00:00Z", "event_id": "e-1"}

A bad event in a batch is reported with its index and reason; the valid ones are kept.
Types: `search` (logged by shoprank; `query`, `product_ids` shown), `view`, `click`,
`add_to_cart`, `purchase` (`quantity`, `price`).

Recommendations: any event may carry the `rec_id` of the recommendation list it came from
(`_shoprank.rec_id` of a `POST /_shoprank/recommend` answer) and its `strategy`; `rec_id`
stands in for `query_id`, so clicks join the logged list as they join a search. An
`impression` (the products a frontend showed from a list, `product_ids`) is stored as a
`search` event carrying the `rec_id`.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any, Final

import orjson

from shoprank.errors import BadRequestError
from shoprank.errors import PayloadTooLargeError as PayloadTooLargeError  # the events API's 413

EVENT_TYPES: Final = ("search", "view", "click", "add_to_cart", "purchase")
# Accepted from clients and stored as the event type it names.
TYPE_ALIASES: Final = {"impression": "search"}
RECOMMEND_STRATEGIES: Final = ("similar", "bought_together", "for_you", "trending")
_FIELDS: Final = frozenset(
    {
        "type",
        "user_id",
        "session_id",
        "product_id",
        "query_id",
        "position",
        "timestamp",
        "event_id",
        "quantity",
        "price",
        "query",
        "product_ids",
        "index",
        "rec_id",
        "strategy",
    }
)
MAX_ID_CHARS: Final = 256
MAX_QUERY_CHARS: Final = 2048
MAX_IMPRESSIONS: Final = 1000
# Sane ranges for the numbers of an event: beyond them an event is refused (400), so no
# value can overflow a profile's arithmetic or the log's integer encoding.
MAX_PRICE: Final = 1e12
MAX_QUANTITY: Final = 1_000_000
MAX_POSITION: Final = 1_000_000
# Event times further in the future than this are rejected (clock skew is tolerated).
MAX_FUTURE_S: Final = 24 * 3600.0


class EventError(ValueError):
    """One event is invalid; the message is the reason returned to the client."""


@dataclass(frozen=True, slots=True)
class Event:
    """One behaviour event. In a log or store, `user_id`/`session_id` are pseudonyms."""

    type: str
    timestamp: float
    event_id: str
    user_id: str | None = None
    session_id: str | None = None
    product_id: str | None = None
    query_id: str | None = None
    position: int | None = None
    quantity: int | None = None
    price: float | None = None
    query: str | None = None
    product_ids: tuple[str, ...] = field(default_factory=tuple)
    index: str | None = None
    # On `search` events logged by shoprank: the returned window, one
    # {"id", "before", "after", "features"?} per product (ranker features, when sampled).
    window: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    # True when the client sent `event_id`: only then are duplicates detectable.
    idempotent: bool = False
    # The recommendation list the event came from, and the strategy that made it.
    rec_id: str | None = None
    strategy: str | None = None
    # On `search` events of an online experiment (`shoprank.experiments.logs`): the
    # experiment id, the variant served, each arm's run and, interleaved, each hit's arm.
    experiment: dict[str, Any] | None = None

    @property
    def subject(self) -> str:
        """The profile this event updates: the user, else the session (`s:` prefix)."""
        if self.user_id:
            return self.user_id
        return f"s:{self.session_id}"

    def to_record(self) -> dict[str, Any]:
        """A compact JSON-able dict (None and empty fields left out)."""
        out = {
            k: v for k, v in asdict(self).items() if v is not None and v != () and v is not False
        }
        if self.product_ids:
            out["product_ids"] = list(self.product_ids)
        if self.window:
            out["window"] = list(self.window)
        return out

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Event:
        data = dict(record)
        data["product_ids"] = tuple(data.get("product_ids", ()))
        data["window"] = tuple(data.get("window", ()))
        return cls(**data)

    def with_ids(self, user_id: str | None, session_id: str | None) -> Event:
        return replace(self, user_id=user_id, session_id=session_id)


def _opt_str(raw: dict[str, Any], name: str, *, limit: int = MAX_ID_CHARS) -> str | None:
    value = raw.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise EventError(f"[{name}] must be a string, got {type(value).__name__}")
    text = str(value).strip()
    if not text:
        raise EventError(f"[{name}] must not be empty")
    if len(text) > limit:
        raise EventError(f"[{name}] is longer than {limit} characters")
    return text


def _opt_int(raw: dict[str, Any], name: str, *, minimum: int, maximum: int) -> int | None:
    value = raw.get(name)
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value != int(value)
    ):
        raise EventError(f"[{name}] must be an integer, got {value!r}")
    if value < minimum:
        raise EventError(f"[{name}] must be >= {minimum}, got {value!r}")
    if value > maximum:
        raise EventError(f"[{name}] must be <= {maximum}, got {value!r}")
    return int(value)


def _opt_price(raw: dict[str, Any]) -> float | None:
    price = raw.get("price")
    if price is None:
        return None
    if isinstance(price, bool) or not isinstance(price, int | float):
        raise EventError(f"[price] must be a number, got {price!r}")
    if not math.isfinite(price) or not 0 <= price <= MAX_PRICE:
        raise EventError(
            f"[price] must be a finite number >= 0 and <= {MAX_PRICE:.0f}, got {price!r}"
        )
    return float(price)


def parse_timestamp(value: Any, *, now: float) -> float:
    """Epoch seconds (or milliseconds) or an ISO 8601 string → epoch seconds."""
    if value is None:
        return now
    if isinstance(value, bool):
        raise EventError(f"[timestamp] must be epoch seconds or ISO 8601, got {value!r}")
    if isinstance(value, int | float):
        ts = float(value) / 1000.0 if value > 1e11 else float(value)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise EventError(f"[timestamp] is not ISO 8601: {value[:64]!r}") from None
        if parsed.tzinfo is None:
            raise EventError(f"[timestamp] needs a timezone (e.g. Z): {value[:64]!r}")
        ts = parsed.timestamp()
    else:
        raise EventError(f"[timestamp] must be epoch seconds or ISO 8601, got {value!r}")
    if not math.isfinite(ts) or ts < 0:
        raise EventError(f"[timestamp] out of range: {value!r}")
    if ts > now + MAX_FUTURE_S:
        raise EventError(f"[timestamp] is more than a day in the future: {value!r}")
    return ts


def validate_event(raw: Any, *, now: float) -> Event:
    """One event from its JSON form, or `EventError` saying what is wrong."""
    if not isinstance(raw, dict):
        raise EventError(f"an event must be a JSON object, got {type(raw).__name__}")
    unknown = set(raw) - _FIELDS
    if unknown:
        raise EventError(f"unknown field(s) {sorted(unknown)}")
    kind = raw.get("type")
    if isinstance(kind, str):
        kind = TYPE_ALIASES.get(kind, kind)
    if kind not in EVENT_TYPES:
        raise EventError(
            f"[type] must be one of {[*EVENT_TYPES, *TYPE_ALIASES]}, got {raw.get('type')!r}"
        )
    user_id = _opt_str(raw, "user_id")
    session_id = _opt_str(raw, "session_id")
    if user_id is None and session_id is None:
        raise EventError("[user_id] (or [session_id] for an anonymous shopper) is required")
    product_id = _opt_str(raw, "product_id")
    if kind != "search" and product_id is None:
        raise EventError(f"[product_id] is required for a {kind} event")
    quantity = _opt_int(raw, "quantity", minimum=1, maximum=MAX_QUANTITY)
    if kind in ("add_to_cart", "purchase") and quantity is None:
        quantity = 1
    price = _opt_price(raw)
    if kind == "purchase" and price is None:
        raise EventError("[price] (unit price) is required for a purchase event")
    shown = raw.get("product_ids", [])
    if not isinstance(shown, list) or len(shown) > MAX_IMPRESSIONS:
        raise EventError(f"[product_ids] must be a list of at most {MAX_IMPRESSIONS} ids")
    ids = tuple(_opt_str({"product_ids": p}, "product_ids") or "" for p in shown)
    event_id = _opt_str(raw, "event_id")
    rec_id, strategy = _recommendation(raw)
    query_id = _opt_str(raw, "query_id")
    if rec_id is not None and query_id is not None and query_id != rec_id:
        raise EventError(
            f"[rec_id] {rec_id!r} and [query_id] {query_id!r} name different result lists: "
            "send the one the product was shown in"
        )
    if raw.get("type") == "impression" and not ids:
        raise EventError("[product_ids] (the products shown) is required for an impression")
    return Event(
        type=kind,
        timestamp=parse_timestamp(raw.get("timestamp"), now=now),
        event_id=event_id or uuid.uuid4().hex,
        idempotent=event_id is not None,
        user_id=user_id,
        session_id=session_id,
        product_id=product_id,
        query_id=query_id or rec_id,
        position=_opt_int(raw, "position", minimum=0, maximum=MAX_POSITION),
        quantity=quantity,
        price=price,
        query=_opt_str(raw, "query", limit=MAX_QUERY_CHARS),
        product_ids=ids,
        index=_opt_str(raw, "index"),
        rec_id=rec_id,
        strategy=strategy,
    )


def _recommendation(raw: dict[str, Any]) -> tuple[str | None, str | None]:
    """`rec_id` and `strategy` of an event from a recommendation list, checked."""
    rec_id = _opt_str(raw, "rec_id")
    strategy = raw.get("strategy")
    if strategy is not None and strategy not in RECOMMEND_STRATEGIES:
        raise EventError(
            f"[strategy] must be one of {list(RECOMMEND_STRATEGIES)}, got {strategy!r}"
        )
    if raw.get("type") == "impression" and rec_id is None:
        raise EventError("[rec_id] is required for an impression (the list's `_shoprank.rec_id`)")
    return rec_id, strategy


def _split(raw: bytes, content_type: str | None) -> list[Any]:
    """The items of the body: a JSON object, a JSON array, or NDJSON lines."""
    text = raw.strip()
    if not text:
        raise BadRequestError("request body is empty: send an event, a JSON array or NDJSON")
    ndjson = content_type is not None and "ndjson" in content_type
    if not ndjson:
        try:
            body = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            if b"\n" not in text:
                raise BadRequestError(f"request body is not valid JSON: {exc}") from None
        else:
            return body if isinstance(body, list) else [body]
    items: list[Any] = []
    for number, line in enumerate(text.split(b"\n")):
        if not line.strip():
            continue
        try:
            items.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            items.append(EventError(f"line {number + 1} is not valid JSON: {exc}"))
    return items


def parse_events(
    raw: bytes,
    content_type: str | None = None,
    *,
    max_events: int = 10_000,
    now: float,
) -> tuple[list[Event], list[dict[str, Any]]]:
    """Valid events and `[{index, reason}]` for the invalid ones (raw user ids, not yet hashed).

    Raises `BadRequestError` when the body as a whole is unusable (not JSON, empty,
    more than `max_events` items).
    """
    items = _split(raw, content_type)
    if len(items) > max_events:
        raise BadRequestError(
            f"{len(items)} events in one request; at most {max_events} "
            "(SHOPRANK_MAX_EVENTS_PER_REQUEST): split the batch",
            es_type="illegal_argument_exception",
        )
    events: list[Event] = []
    errors: list[dict[str, Any]] = []
    for position, item in enumerate(items):
        try:
            if isinstance(item, EventError):
                raise item
            events.append(validate_event(item, now=now))
        except EventError as exc:
            errors.append({"index": position, "reason": str(exc)})
    return events, errors
