"""The search log's interfaces: where records go (`SearchLogSink`) and what the search
logger hands to the behaviour log (`SearchEventWriter`).

A sink may buffer in `write`; the logger calls `flush` once per batch it drains, so a sink
that sends one bulk request per batch needs no timer of its own. A sink that writes at once
has an empty `flush`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from shoprank.events.model import Event
from shoprank.searchlog.record import SearchRecord


@runtime_checkable
class SearchLogSink(Protocol):
    def write(self, record: SearchRecord) -> None:
        """Take one search (buffer it or write it); may raise, the logger counts it."""
        ...

    def flush(self) -> None:
        """Send whatever `write` buffered."""
        ...


class SearchEventWriter(Protocol):
    """The behaviour log's side of a search: impressions and the logged ranker window
    (`EventService.log_search`)."""

    def log_search(
        self,
        *,
        query: str | None,
        product_ids: Sequence[str],
        user_id: str | None = None,
        session_id: str | None = None,
        index: str | None = None,
        query_id: str | None = None,
        window: Sequence[dict[str, Any]] = (),
        experiment: dict[str, Any] | None = None,
    ) -> str | None: ...


@runtime_checkable
class EventIngest(Protocol):
    """A behaviour log that takes whole events (`EventService.ingest`): recommendation
    lists are logged through it with their `rec_id` and strategy."""

    def ingest(
        self, events: Sequence[Event], *, fold: bool = True, now: float | None = None
    ) -> dict[str, Any]: ...
