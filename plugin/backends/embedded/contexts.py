"""Point-in-time and scroll ids of the embedded backend, stateless across worker processes.

`shoprank serve --workers N` runs several processes behind one port, so an id issued by
one may come back to another. Each id therefore carries everything needed to continue:
the concrete generation it pins, when it expires and, for a scroll, the search body and
the position reached (the last hit's sort values). Ids are base64url JSON signed with an
HMAC key kept in the data directory (created once, shared by every worker), so a forged
or altered id is refused.

The little shared state lives next to that key, one small file per context under
`contexts/`: a point in time's renewed expiry (a search with `pit.keep_alive` extends it,
as in ES, even when the client keeps sending the first id, as `elasticsearch.dsl` does)
and the tombstone a close or clear leaves. Nothing keeps a generation alive: when the
pinned generation has been pruned, the id answers ES's 404
`search_context_missing_exception`. Expiry reads an injectable clock (`time.time` by
default), so tests advance time themselves.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from shoprank.errors import BadRequestError, ShoprankError

Clock = Callable[[], float]
MAX_KEEP_ALIVE_MS = 24 * 3600 * 1000  # ES's search.max_keep_alive default
_UNITS = {
    "nanos": 1e-6,
    "micros": 1e-3,
    "ms": 1,
    "s": 1000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
}
_DURATION = re.compile(r"^\s*(\d+)\s*(nanos|micros|ms|s|m|h|d)\s*$")
_SWEEP_EVERY = 64  # contexts opened between two sweeps of expired context files


class SearchContextMissingError(ShoprankError):
    """An expired, cleared, unknown or orphaned point in time or scroll (ES's 404)."""

    status = 404
    es_type = "search_context_missing_exception"


def keep_alive_ms(value: Any, what: str = "keep_alive") -> int:
    """An ES time value (`1m`, `30s`, `500ms`) in milliseconds, at most 24 hours."""
    match = _DURATION.match(str(value)) if isinstance(value, str) else None
    if match is None:
        raise BadRequestError(
            f"failed to parse [{what}] value [{value}]: a time value such as 1m or 30s",
            es_type="illegal_argument_exception",
        )
    ms = int(int(match.group(1)) * _UNITS[match.group(2)])
    if ms > MAX_KEEP_ALIVE_MS:
        raise BadRequestError(
            f"Keep alive for request ({value}) is too large. It must be less than (1d). "
            "This limit can be set by changing the [search.max_keep_alive] cluster level "
            "setting.",
            es_type="illegal_argument_exception",
        )
    return ms


class Contexts:
    """Issues and checks the ids of one data directory (`root`)."""

    def __init__(self, root: Path, *, clock: Clock = time.time) -> None:
        self.dir = root / "contexts"
        self.clock = clock
        self._key_path = root / ".context-key"
        self._key: bytes | None = None
        self._opened = 0

    # -- the signing key -------------------------------------------------------------------

    def _signing_key(self) -> bytes:
        if self._key is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            if not self._key_path.exists():
                tmp = self._key_path.with_name(f".context-key.{os.getpid()}.{secrets.token_hex(4)}")
                tmp.touch(mode=0o600)
                tmp.write_bytes(secrets.token_bytes(32))
                try:
                    os.link(tmp, self._key_path)  # the first worker's key wins
                except FileExistsError:
                    pass
                finally:
                    tmp.unlink(missing_ok=True)
            self._key = self._key_path.read_bytes()
        return self._key

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # -- ids -------------------------------------------------------------------------------

    def issue(self, payload: dict[str, Any]) -> str:
        raw = zlib.compress(orjson.dumps(payload))
        sig = hmac.new(self._signing_key(), raw, hashlib.sha256).digest()[:16]
        return _b64(raw) + "." + _b64(sig)

    def decode(self, token: Any, kind: str) -> dict[str, Any]:
        """The payload of a valid, live id of `kind` (`pit` or `scroll`); 404 otherwise."""
        if not isinstance(token, str) or "." not in token:
            raise BadRequestError(f"malformed {kind} id", es_type="illegal_argument_exception")
        body, _, sig = token.partition(".")
        try:
            raw, got = _unb64(body), _unb64(sig)
        except ValueError:
            raise BadRequestError(
                f"malformed {kind} id", es_type="illegal_argument_exception"
            ) from None
        want = hmac.new(self._signing_key(), raw, hashlib.sha256).digest()[:16]
        if not hmac.compare_digest(want, got):
            raise SearchContextMissingError(f"No search context found for id [{token[:32]}…]")
        payload: dict[str, Any] = orjson.loads(zlib.decompress(raw))
        if payload.get("k") != kind:
            raise BadRequestError(
                f"this id is a {payload.get('k')} id, not a {kind} id",
                es_type="illegal_argument_exception",
            )
        state = self._state(str(payload["c"]))
        if state == "closed":
            raise SearchContextMissingError(f"No search context found for id [{payload['c']}]")
        expires = max(int(payload["e"]), int(state) if state else 0)
        if self.now_ms() > expires:
            raise SearchContextMissingError(
                f"No search context found for id [{payload['c']}] (expired)"
            )
        return payload

    def new_context(self, kind: str, generation: str, keep_alive: Any, **extra: Any) -> str:
        ms = keep_alive_ms(keep_alive, "keep_alive" if kind == "pit" else "scroll")
        self._opened += 1
        if self._opened % _SWEEP_EVERY == 1:
            self.sweep()
        payload = {
            "k": kind,
            "c": secrets.token_hex(8),
            "g": generation,
            "e": self.now_ms() + ms,
            **extra,
        }
        return self.issue(payload)

    def renewed(self, payload: dict[str, Any], keep_alive: Any, **changes: Any) -> str:
        """An id for the same context with a new expiry (`keep_alive` from now); for a
        point in time the renewal is also recorded, so the first id stays valid too."""
        ms = keep_alive_ms(keep_alive, "keep_alive" if payload["k"] == "pit" else "scroll")
        expires = self.now_ms() + ms
        if payload["k"] == "pit":
            self._write_state(str(payload["c"]), str(expires))
        return self.issue({**payload, **changes, "e": expires})

    def close(self, token: Any, kind: str) -> bool:
        """Whether a live context was closed (later uses answer 404)."""
        try:
            payload = self.decode(token, kind)
        except SearchContextMissingError:
            return False
        self._write_state(str(payload["c"]), "closed", expires=int(payload["e"]))
        return True

    # -- the shared state files -------------------------------------------------------------

    def _state(self, cid: str) -> str | None:
        try:
            return (self.dir / cid).read_text().split(" ")[0] or None
        except (FileNotFoundError, ValueError):
            return None

    def _write_state(self, cid: str, value: str, *, expires: int | None = None) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        until = expires if expires is not None else int(value)
        tmp = self.dir / f".{cid}.{os.getpid()}.{secrets.token_hex(4)}"
        tmp.write_text(f"{value} {max(until, self.now_ms())}")
        os.replace(tmp, self.dir / cid)

    def sweep(self) -> int:
        """Remove context files whose context can no longer be used; returns how many."""
        removed = 0
        now = self.now_ms()
        try:
            entries = list(self.dir.iterdir())
        except FileNotFoundError:
            return 0
        for path in entries:
            try:
                parts = path.read_text().split(" ")
                until = int(parts[1]) if len(parts) > 1 else 0
            except (OSError, ValueError):
                continue
            if until + MAX_KEEP_ALIVE_MS < now:
                path.unlink(missing_ok=True)
                removed += 1
        return removed


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError(str(exc)) from None
