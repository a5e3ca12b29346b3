"""Query vectors: the text space (MiniLM) and the image space (CLIP text tower), behind an
LRU cache of recent queries shared by every thread of the process."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from shoprank.errors import BadRequestError, ShoprankError
from shoprank.indexing.encoders.protocol import TextEncoder
from shoprank.plugin.pipeline.request import listify

Space = Literal["text", "image"]
EncoderFactory = Callable[[], TextEncoder]


class QueryVectors:
    """Embeds query text once per (space, text) while it stays among the recent queries."""

    def __init__(
        self,
        *,
        text: EncoderFactory | None = None,
        image_text: EncoderFactory | None = None,
        cache_size: int = 1024,
    ) -> None:
        self.text_factory = text
        self.image_text_factory = image_text
        self.cache_size = cache_size
        # float32 arrays, not lists of floats: a list is one more container each full
        # garbage collection walks, 384 items deep (a few thousand cached queries made one
        # search in a hundred wait tens of milliseconds for the collector).
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def has_text(self) -> bool:
        return self.text_factory is not None

    def warm_up(self) -> None:
        """Load the text encoder now rather than on the first search."""
        if self.text_factory is not None:
            self.text_factory().warm_up()

    def embed(self, text: str, *, space: Space = "text") -> list[float]:
        factory = self.text_factory if space == "text" else self.image_text_factory
        if factory is None:
            raise ShoprankError(f"no {space} query encoder is configured")
        encoder = factory()
        # The model id is part of the key: after the data dir switches encoders (numpy ↔
        # int8 ONNX), vectors of the old model are never served for the new index.
        key = f"{space}\x00{encoder.model_id}\x00{text}"
        with self._lock:  # stages on worker threads embed too
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return list(cached.tolist())
        vector = np.array(encoder.encode([text])[0], dtype=np.float32)
        if self.cache_size > 0:
            with self._lock:
                self._cache[key] = vector
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return list(vector.tolist())

    def resolve_builders(self, body: dict[str, Any]) -> dict[str, Any]:
        """`body` with ES's `query_vector_builder.text_embedding` computed by shoprank: each
        such kNN spec gets a `query_vector` (the body keeps its shape, one spec or a list)."""
        knn = body.get("knn")
        specs = listify(knn)
        if not any(isinstance(s, dict) and "query_vector_builder" in s for s in specs):
            return body
        resolved = [self._resolve(s) for s in specs]
        return {**body, "knn": resolved if isinstance(knn, list) else resolved[0]}

    def _resolve(self, spec: Any) -> Any:
        if not isinstance(spec, dict) or "query_vector_builder" not in spec:
            return spec
        out = dict(spec)
        builder = out.pop("query_vector_builder")
        embedding = builder.get("text_embedding") if isinstance(builder, dict) else None
        text = embedding.get("model_text") if isinstance(embedding, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise BadRequestError(
                "[query_vector_builder] needs text_embedding.model_text (a non-empty string)"
            )
        out["query_vector"] = self.embed(text)
        return out
