"""Pseudonymous ids: a raw user or session id never reaches a store or a log line.

Ids are replaced by a keyed hash (HMAC-SHA256 with `SHOPRANK_USER_ID_SECRET`), so the
stores cannot be joined back to users without the key, and forgetting a user needs only
their raw id (hashed again) to find everything.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from functools import cached_property
from pathlib import Path

from shoprank.settings import Settings


def pseudonymise(user_id: str, secret: str | bytes) -> str:
    """The keyed hash (32 hex chars of HMAC-SHA256) that stands for `user_id` everywhere."""
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    return hmac.new(key, user_id.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


class Pseudonyms:
    """The pseudonyms of one deployment: its secret is read (or created) on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def secret(self) -> str:
        return resolve_secret(self.settings)

    def of(self, raw_id: str) -> str:
        return pseudonymise(raw_id, self.secret)

    def subject(self, *, user_id: str | None = None, session_id: str | None = None) -> str:
        """The profile key of a raw user id (else a raw session id)."""
        if user_id:
            return self.of(user_id)
        if session_id:
            return "s:" + self.of(session_id)
        raise ValueError("a user_id or a session_id is needed")


def resolve_secret(settings: Settings) -> str:
    """`SHOPRANK_USER_ID_SECRET`, or a random key kept (mode 0600) in data_dir/events/secret."""
    if settings.user_id_secret:
        return settings.user_id_secret
    path = settings.data_dir / "events" / "secret"
    if path.exists():
        return path.read_text().strip()
    return _create_secret(path)


def _create_secret(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".secret-{os.getpid()}-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32))
    try:
        os.link(tmp, path)  # atomic: the first process to link wins, the others read its key
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()
