"""Behaviour events: validated on the way in, pseudonymised, appended to a durable log.

`model` parses and validates, `privacy` pseudonymises ids, `protocol` is the `EventLog`
interface with `embedded` (local JSONL segments) and `redis_log` (a Redis Stream)
implementations. `stores` builds the log and the profile store (`shoprank.profiles`) from
settings; `ingest`, `fold` (under `locking`'s lock), `retention` and `reads` are the
write, fold and read paths, and `service.EventService` is the facade over them.
"""

from shoprank.events.model import EVENT_TYPES, Event, EventError, PayloadTooLargeError, parse_events
from shoprank.events.privacy import pseudonymise

__all__ = [
    "EVENT_TYPES",
    "Event",
    "EventError",
    "PayloadTooLargeError",
    "parse_events",
    "pseudonymise",
]
