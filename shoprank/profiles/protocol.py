"""`ProfileStore`: per-user (and per-session) profiles and product statistics; and
`ProfileReader`, the read side the ranker's features see.

Stores apply batches of `(offset, event)` from the event log. Each apply writes the new
profiles, the statistics and the applied-offset watermark in one transaction and skips
offsets at or below the watermark, so at-least-once delivery folds every event exactly once.
Profiles are keyed by subject: a user pseudonym, or `s:<session pseudonym>`. An event that
cannot be folded is quarantined (kept with its error) and the watermark moves past it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

from shoprank.events.model import Event
from shoprank.profiles.folding import ProductLookup, Profile


@runtime_checkable
class ProfileStore(Protocol):
    name: str

    def apply(
        self, batch: Sequence[tuple[str, Event]], *, lookup: ProductLookup | None = None
    ) -> int:
        """Fold the events past the watermark; returns how many were applied."""
        ...

    def watermark(self) -> str | None:
        """The highest log offset already folded (None before the first)."""
        ...

    def get(self, subject: str) -> Profile | None: ...

    def get_many(self, subjects: Sequence[str]) -> dict[str, Profile]:
        """Profiles of those subjects that have one, in one round trip."""
        ...

    def product_stats(
        self, ids: Sequence[str], *, query: str | None = None
    ) -> dict[str, dict[str, float]]:
        """Counts and smoothed CTR per product (per query × product with `query`)."""
        ...

    def profiles(self) -> Iterator[tuple[str, Profile]]:
        """Every stored profile (for export and rebuild checks)."""
        ...

    def forget(self, subjects: Iterable[str]) -> int:
        """Delete these subjects' profiles; returns how many existed."""
        ...

    def enforce_retention(self, now: float, *, retention_s: float) -> int:
        """Delete profiles whose last event is older than `now - retention_s`."""
        ...

    def clear(self) -> None: ...

    def stats_snapshot(self) -> dict[str, Any]:
        """All product and query × product counters (for rebuild checks)."""
        ...

    def quarantined(self) -> list[dict[str, Any]]:
        """The events the fold left out, in log order: `offset`, `subject`, `t`, the event
        `record` and the `error` (see `shoprank.profiles.quarantine`)."""
        ...

    # Behaviour statistics for recommendations (`shoprank.profiles.cooccur`): `kind` is
    # "view" (views, clicks) or "buy" (carts, purchases).

    def neighbours(
        self, ids: Sequence[str], *, kind: str, limit: int = 200
    ) -> dict[str, dict[str, float]]:
        """For each id: the products that occurred with it in one session → how many
        sessions had both, strongest first, at most `limit` (ids without any left out)."""
        ...

    def cooccur_totals(self, *, kind: str) -> dict[str, float]:
        """`sessions`: how many sessions had an interaction of this kind (lift's N)."""
        ...

    def item_sessions(self, ids: Sequence[str], *, kind: str) -> dict[str, float]:
        """How many sessions each product occurred in, for this kind."""
        ...

    def trending(self, *, now: float, limit: int = 200) -> list[tuple[str, float]]:
        """Products by decayed event velocity at `now`, highest first."""
        ...


@runtime_checkable
class ProfileReader(Protocol):
    """What the ranker's features read from profiles: the shopper's profiles and product
    statistics. Raw ids go in (the reader pseudonymises them); a reader that cannot reach
    its store answers None for the profiles, so ranking goes on unpersonalised."""

    def shopper_profiles(
        self, *, user_id: str | None = None, session_id: str | None = None
    ) -> tuple[Profile | None, Profile | None] | None:
        """(user profile, session profile) in one round trip; None when neither exists or
        the store is unavailable."""
        ...

    def product_stats(
        self, ids: Sequence[str], *, query: str | None = None
    ) -> dict[str, dict[str, float]]:
        """Counts and smoothed CTR per product (per query × product with `query`)."""
        ...
