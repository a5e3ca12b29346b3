"""The event log and the profile store a settings object asks for.

Without `SHOPRANK_REDIS_URL` the log is local JSONL (`data_dir/events`) and profiles live
in SQLite (`data_dir/profiles`); with it, the log is a Redis Stream and profiles are Redis
hashes. Building either opens nothing: the first call connects.
"""

from __future__ import annotations

from typing import Any

from shoprank.events.protocol import EventLog
from shoprank.profiles.folding import FoldConfig
from shoprank.profiles.protocol import ProfileStore
from shoprank.settings import Settings


def redis_client(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)


def make_event_log(settings: Settings, *, client: Any = None) -> EventLog:
    if settings.redis_url:
        from shoprank.events.redis_log import RedisEventLog

        return RedisEventLog(
            client or redis_client(settings.redis_url),
            idempotency_ttl_s=int(settings.retention_days * 86_400),
            dedupe_window_s=settings.event_dedupe_window_s,
        )
    from shoprank.events.embedded import EmbeddedEventLog

    return EmbeddedEventLog(
        settings.data_dir / "events", dedupe_window_s=settings.event_dedupe_window_s
    )


def make_profile_store(settings: Settings, *, client: Any = None) -> ProfileStore:
    cfg = FoldConfig.from_settings(settings)
    clicks, impressions = settings.ctr_prior_clicks, settings.ctr_prior_impressions
    if settings.redis_url:
        from shoprank.profiles.redis_store import RedisProfileStore

        return RedisProfileStore(
            client or redis_client(settings.redis_url),
            cfg,
            query_ttl_s=int(settings.retention_days * 86_400),
            prior_clicks=clicks,
            prior_impressions=impressions,
        )
    from shoprank.profiles.embedded import EmbeddedProfileStore

    return EmbeddedProfileStore(
        settings.data_dir / "profiles" / "profiles.sqlite",
        cfg,
        prior_clicks=clicks,
        prior_impressions=impressions,
    )
