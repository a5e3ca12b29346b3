"""CLIP image vectors for indexing, with torch + transformers (the `[ml]` extra), in workers.

`ClipImageEncoder` embeds PIL images (or image references, loaded by
`shoprank.indexing.images`) into CLIP's shared space; its `model_id` is the one the exported
text tower (`ClipTextOnnxEncoder`) reports, so text and image vectors can be matched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shoprank.errors import ConfigError

from .base import F32, Lazy, LazyEncoder
from .clip_model import (
    MODEL_FIX,
    clip_model_id,
    image_processor_class,
    import_ml,
    load_clip_model,
    projection_dim,
    read_clip_config,
    resolve_clip_dir,
)

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["ClipImageEncoder"]

_MAX_ASPECT = 4.0  # longer side / shorter side kept before CLIP's own resize + centre crop


def _limit_aspect(image: Image) -> Image:
    """Centre-crop extreme panoramas: CLIP keeps only the centre square anyway, and resizing
    a 1x10000 strip's short side to 224 would allocate gigabytes."""
    width, height = image.size
    if max(width, height) <= _MAX_ASPECT * min(width, height):
        return image
    if width > height:
        keep = int(height * _MAX_ASPECT)
        left = (width - keep) // 2
        return image.crop((left, 0, left + keep, height))
    keep = int(width * _MAX_ASPECT)
    top = (height - keep) // 2
    return image.crop((0, top, width, top + keep))


@dataclass(frozen=True)
class _TorchClip:
    torch: Any
    model: Any
    processor: Any


class ClipImageEncoder(LazyEncoder[_TorchClip]):
    """CLIP image embeddings with torch + transformers (`[ml]` extra), L2-normalised float32.

    Construction only resolves the model directory; `warm_up` (or the first encode) imports
    torch and loads the weights and image processor, once, under a lock.
    """

    def __init__(self, model: str, *, device: str = "cpu") -> None:
        super().__init__()
        self.model = model
        self.device = device
        self.directory = resolve_clip_dir(model)
        self._dims = Lazy(lambda: projection_dim(read_clip_config(self.directory)))

    def __repr__(self) -> str:
        return f"ClipImageEncoder({self.model!r}, device={self.device!r})"

    def _fingerprint(self) -> str:
        """`<name>@<sha256[:12] of the weights>`; ClipTextOnnxEncoder exports carry the same."""
        return clip_model_id(self.model, self.directory)

    @property
    def dims(self) -> int:
        """The projection dimension from config.json (loads no weights)."""
        return self._dims.get()

    def _load(self) -> _TorchClip:
        """Import torch/transformers, load weights and image processor, fingerprint weights."""
        torch, transformers = import_ml("the CLIP image encoder")
        read_clip_config(self.directory)
        self._identity.get()
        if not (self.directory / "preprocessor_config.json").is_file():
            raise ConfigError(f"{self.directory} lacks preprocessor_config.json; {MODEL_FIX}")
        try:
            processor = image_processor_class(transformers).from_pretrained(
                str(self.directory), local_files_only=True
            )
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot load the image processor of {self.directory}: {exc}"
            ) from exc
        model = load_clip_model(transformers, self.directory)
        try:
            model = model.to(self.device)
        except (RuntimeError, AssertionError, ValueError) as exc:
            raise ConfigError(
                f"cannot move the CLIP model to device {self.device!r}: {exc}"
            ) from exc
        return _TorchClip(torch=torch, model=model, processor=processor)

    def encode_images(self, images: Sequence[Image], *, batch_size: int = 32) -> F32:
        """Embed PIL images in order: float32, shape (len(images), dims), rows of unit length."""
        from PIL import Image as PILImage

        from shoprank.indexing.images import to_rgb

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if isinstance(images, PILImage.Image):
            raise TypeError("encode_images() takes a sequence of images, not a single image")
        clip = self._loaded()
        torch = clip.torch
        out = np.empty((len(images), self.dims), dtype=np.float32)
        for start in range(0, len(images), batch_size):
            batch = [_limit_aspect(to_rgb(image)) for image in images[start : start + batch_size]]
            pixels = clip.processor(images=batch, return_tensors="pt")["pixel_values"]
            with torch.inference_mode():
                features = clip.model.get_image_features(pixel_values=pixels.to(self.device))
                if not isinstance(features, torch.Tensor):  # transformers 5 returns an output
                    features = features.pooler_output
                features = torch.nn.functional.normalize(features.float(), dim=-1)
            out[start : start + len(batch)] = features.cpu().numpy()
        return out

    def encode_refs(
        self,
        refs: Sequence[str],
        *,
        base_dir: Path | None = None,
        timeout: float = 5.0,
        max_bytes: int = 20_000_000,
        batch_size: int = 32,
        workers: int = 8,
    ) -> tuple[list[F32 | None], list[str | None]]:
        """Load and embed image references: per item a unit vector or None, and the reason.

        A bad reference (missing, unreachable, corrupt, ...) or an image the model cannot
        process gives (None, reason) for that item only; a broken model raises ConfigError.
        """
        from shoprank.indexing.images import load_images

        images, errors = load_images(
            refs, base_dir=base_dir, timeout=timeout, max_bytes=max_bytes, workers=workers
        )
        vectors: list[F32 | None] = [None] * len(images)
        good = [i for i, image in enumerate(images) if image is not None]
        for start in range(0, len(good), batch_size):
            rows = good[start : start + batch_size]
            batch = [image for i in rows if (image := images[i]) is not None]
            try:
                block: F32 | None = self.encode_images(batch, batch_size=batch_size)
            except ConfigError:
                raise
            except Exception:  # find the image that breaks the batch, embed the others
                block = None
            for offset, i in enumerate(rows):
                images[i] = None  # release the pixels once embedded
                if block is not None:
                    vectors[i] = block[offset]
                    continue
                try:
                    vectors[i] = self.encode_images([batch[offset]])[0]
                except ConfigError:
                    raise
                except Exception as exc:
                    errors[i] = f"cannot embed image: {type(exc).__name__}: {exc}"
        return vectors, errors
