"""The quarantine: events the fold left out because they cannot be folded, with the error.

Each profile store keeps them beside its profiles (the embedded store in a `quarantine`
table of its SQLite file, Redis in the hash `shoprank:quarantine`), written in the same
transaction as the watermark that moves past them, keyed by log offset so a refold (a
rebuild) keeps one entry per event. They hold pseudonyms only, and go with `forget` and
retention like the rest of a shopper's data. `shoprank_events_quarantined_total` counts
them as they are folded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from prometheus_client import Counter

from shoprank.events.model import Event

QUARANTINED = Counter(
    "shoprank_events_quarantined_total",
    "Events the fold left out (kept in the profile store's quarantine with the error)",
)


def entries(
    todo: Sequence[tuple[str, Event]], quarantined: Sequence[tuple[int, str]]
) -> list[dict[str, Any]]:
    """One quarantine entry per left-out event: `offset`, `subject`, `t` (the event time,
    0 when it is not a number, so retention removes it), the event `record`, `error`."""
    out: list[dict[str, Any]] = []
    for position, error in quarantined:
        offset, event = todo[position]
        t = event.timestamp
        finite = isinstance(t, int | float) and math.isfinite(t)
        out.append(
            {
                "offset": offset,
                "subject": event.subject,
                "t": float(t) if finite else 0.0,
                "record": event.to_record(),
                "error": error,
            }
        )
    return out


def encode(entry: dict[str, Any]) -> bytes:
    """The entry as JSON; a record that will not encode is kept as its text instead."""
    import orjson

    try:
        return orjson.dumps(entry)
    except TypeError:
        return orjson.dumps({**entry, "record": repr(entry["record"])[:4000]})
