"""Product images → CLIP vectors for the `image_vector` field, with the embedding cache.

Images are keyed in the cache by a hash of their decoded pixels, so a product whose picture
did not change is not embedded again even if its URL did. A product whose image cannot be
loaded or embedded is reported (id and reason) and indexed without an image vector.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from shoprank.errors import ConfigError
from shoprank.indexing.cache import EmbeddingCache


class ClipProductImages:
    """The pipeline's image embedder (see `ImageEmbedder` in `shoprank.indexing.pipeline`)."""

    def __init__(self, model: str) -> None:
        from shoprank.indexing.encoders.clip_image import ClipImageEncoder

        self.encoder = ClipImageEncoder(model)

    @property
    def model_id(self) -> str:
        return str(self.encoder.model_id)

    @property
    def dims(self) -> int:
        return int(self.encoder.dims)

    def embed_products(
        self,
        docs: list[dict[str, Any]],
        cache: EmbeddingCache | None,
        *,
        base_dir: Path | None = None,
    ) -> tuple[dict[int, np.ndarray], list[dict[str, str]], int]:
        from shoprank.indexing.images import load_images

        rows = [i for i, d in enumerate(docs) if isinstance(d.get("image"), str) and d["image"]]
        if not rows:
            return {}, [], 0
        images, errors = load_images([docs[i]["image"] for i in rows], base_dir=base_dir)
        failures = [
            {
                "id": str(docs[row]["_id"] if "_id" in docs[row] else docs[row]["id"]),
                "reason": str(reason),
            }
            for row, reason in zip(rows, errors, strict=True)
            if reason is not None
        ]
        loaded = [(row, img) for row, img in zip(rows, images, strict=True) if img is not None]
        hashes = [_pixel_hash(img) for _, img in loaded]
        key = f"{self.model_id}/image"
        found = cache.get_many(key, hashes) if cache is not None else {}
        todo = [j for j, h in enumerate(hashes) if h not in found]
        embedded = 0
        if todo:
            try:
                matrix = self.encoder.encode_images([loaded[j][1] for j in todo])
            except ConfigError:
                raise  # a broken model fails the chunk (and the job), not every product
            except Exception:
                # One image the model cannot take must not fail the chunk: go one by one.
                matrix = None
            fresh: dict[str, np.ndarray] = {}
            for offset, j in enumerate(todo):
                try:
                    vector = (
                        matrix[offset]
                        if matrix is not None
                        else self.encoder.encode_images([loaded[j][1]])[0]
                    )
                except ConfigError:
                    raise
                except Exception as exc:
                    row = loaded[j][0]
                    failures.append(
                        {
                            "id": str(docs[row].get("_id", docs[row].get("id"))),
                            "reason": f"cannot embed image: {exc}",
                        }
                    )
                    continue
                fresh[hashes[j]] = np.asarray(vector, dtype=np.float32)
            if cache is not None and fresh:
                cache.put_many(key, fresh.items())
            found.update(fresh)
            embedded = len(fresh)
        vectors = {row: found[h] for (row, _), h in zip(loaded, hashes, strict=True) if h in found}
        return vectors, failures, embedded


def _pixel_hash(image: Any) -> str:
    digest = hashlib.sha256(f"{image.mode}:{image.size}".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()
