"""The connection under the Elasticsearch and OpenSearch backends: the official client,
error translation, and which concrete index an alias stands for.

`ClusterReads` (the read side) and `ClusterGenerations` (the write side) build on this;
`RemoteBackend` is both. The engine-specific parts (the vector mapping, the client's
exceptions and response type) are the subclass's hooks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from shoprank.errors import IndexNotFoundError, ShoprankError

# How long the concrete index behind an alias is trusted on the search path; an alias swap
# made by this process invalidates it at once, one made elsewhere is seen within this time.
RESOLVE_TTL_S = 2.0

BulkHelper = Callable[..., Iterable[tuple[bool, dict[str, Any]]]]
# Seconds from an arbitrary origin that never go backwards (`time.monotonic`); tests pass
# one they advance themselves, so the alias cache never depends on how fast a machine is.
Clock = Callable[[], float]


class ClusterConnection:
    """An `Elasticsearch` or `OpenSearch` client (`client`) and the calls made through it;
    `clock` times how long a resolved alias is trusted (`RESOLVE_TTL_S`)."""

    name = "remote"

    def __init__(
        self,
        client: Any,
        *,
        bulk: BulkHelper,
        bulk_chunk_size: int = 500,
        clock: Clock = time.monotonic,
    ) -> None:
        self.client = client
        self._streaming_bulk = bulk
        self.bulk_chunk_size = bulk_chunk_size
        self._clock = clock
        self._lock = threading.Lock()
        self._resolved: dict[str, tuple[float, str]] = {}
        self._vector_fields: dict[str, dict[str, int]] = {}

    # -- hooks -----------------------------------------------------------------------------

    def translate_error(self, exc: Exception) -> ShoprankError | None:
        """The shoprank error for a client exception, or None when it is not one."""
        raise NotImplementedError

    def response_body(self, response: Any) -> Any:
        """The decoded body of a client call's result (some clients wrap it)."""
        return response

    # -- calling the cluster ---------------------------------------------------------------

    def _call(self, fn: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            response = fn(**kwargs)
        except Exception as exc:
            mapped = self.translate_error(exc)
            if mapped is None:
                raise
            raise mapped from exc
        return self.response_body(response)

    def _exists(self, index: str) -> bool:
        try:
            return bool(self._call(self.client.indices.exists, index=index))
        except IndexNotFoundError:
            return False

    # -- aliases ---------------------------------------------------------------------------

    def _remember(self, name: str, concrete: str) -> None:
        with self._lock:
            self._resolved[name] = (self._clock(), concrete)

    def resolve(self, index: str) -> str:
        """The concrete index behind `index` (itself when it is no alias)."""
        with self._lock:
            cached = self._resolved.get(index)
        if cached is not None and self._clock() - cached[0] < RESOLVE_TTL_S:
            return cached[1]
        targets = self._alias_targets(index)
        if targets:
            concrete = sorted(targets)[-1]
        elif self._exists(index):
            concrete = index
        else:
            raise IndexNotFoundError(index)
        self._remember(index, concrete)
        return concrete

    def _alias_targets(self, alias: str) -> list[str]:
        """The concrete indices an alias points at (empty when it is no alias)."""
        try:
            result = self._call(self.client.indices.get_alias, name=alias)
        except ShoprankError as exc:
            if exc.status == 404:
                return []
            raise
        return sorted(str(name) for name in result)
