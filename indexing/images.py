"""Product images for the image encoder: read a catalog's image reference into an RGB picture.

A reference is a local path (absolute, or relative to the catalog's folder), a `file://` URL, a
`data:image/...;base64,` URL or an `http(s)://` URL. Every way an image can be unusable (missing,
unreachable, too large, corrupt, not an image) raises `ImageError` with a short reason, so the
indexer can record it against the product and carry on with the rest of the chunk.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import http.client
import io
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from shoprank.errors import ShoprankError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_TIMEOUT",
    "ImageError",
    "load_image",
    "load_images",
    "to_rgb",
]

DEFAULT_TIMEOUT = 5.0
DEFAULT_MAX_BYTES = 20_000_000
_USER_AGENT = "shoprank-image-loader/1"
_REF_PREVIEW = 120


class ImageError(ShoprankError):
    """An image reference that cannot be turned into a picture; `reason` says why, briefly."""

    es_type = "image_exception"


def _preview(ref: str) -> str:
    """The reference shortened for error details (data URLs can be megabytes long)."""
    if ref[:5].lower() == "data:":
        head = ref.split(",", 1)[0]
        return f"{head[:_REF_PREVIEW]},...({len(ref)} chars)"
    return ref if len(ref) <= _REF_PREVIEW else ref[:_REF_PREVIEW] + "..."


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


def _too_large(size: int | None, max_bytes: int) -> ImageError:
    what = f"{_megabytes(size)}" if size is not None else f"more than {_megabytes(max_bytes)}"
    return ImageError(f"too large: {what} (limit {_megabytes(max_bytes)})")


# --------------------------------------------------------------------------------------------
# Reading the bytes


def _read_file(path: Path, max_bytes: int) -> bytes:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ImageError(f"file not found: {path}") from None
    except OSError as exc:
        raise ImageError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not path.is_file():
        raise ImageError(f"not a file: {path}")
    if size > max_bytes:
        raise _too_large(size, max_bytes)
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise ImageError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise _too_large(None, max_bytes)
    return data


def _file_url_path(ref: str) -> Path:
    parts = urllib.parse.urlsplit(ref)
    if parts.netloc not in ("", "localhost"):
        raise ImageError(f"file URL on another host ({parts.netloc}) is not supported")
    return Path(urllib.request.url2pathname(parts.path))


def _read_data_url(ref: str, max_bytes: int) -> bytes:
    header, sep, payload = ref[5:].partition(",")
    if not sep:
        raise ImageError("malformed data URL (no comma)")
    params = [p.strip().lower() for p in header.split(";")]
    media_type = params[0] or "text/plain"
    if not media_type.startswith("image/"):
        raise ImageError(f"data URL is not an image ({media_type})")
    if "base64" not in params[1:]:
        raise ImageError("data URL is not base64-encoded")
    compact = "".join(urllib.parse.unquote(payload).split())
    if len(compact) // 4 * 3 > max_bytes + 2:
        raise _too_large(len(compact) // 4 * 3, max_bytes)
    try:
        data = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise ImageError("invalid base64 in data URL") from None
    if len(data) > max_bytes:
        raise _too_large(len(data), max_bytes)
    return data


def _fetch(url: str, timeout: float, max_bytes: int) -> bytes:
    """GET `url` with a per-operation socket timeout, reading at most `max_bytes`."""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT, "Accept": "image/*"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > max_bytes:
                raise _too_large(int(length), max_bytes)
            data: bytes = response.read(max_bytes + 1)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise ImageError(f"HTTP {exc.code} {exc.reason}".rstrip()) from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise ImageError(f"timed out after {timeout:g}s") from None
        reason = (exc.reason.strerror if isinstance(exc.reason, OSError) else None) or exc.reason
        raise ImageError(f"unreachable: {reason}") from None
    except TimeoutError:
        raise ImageError(f"timed out after {timeout:g}s") from None
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise ImageError(f"fetch failed: {type(exc).__name__}: {exc}") from None
    if len(data) > max_bytes:
        raise _too_large(None, max_bytes)
    return data


def _read_bytes(ref: str, base_dir: Path | None, timeout: float, max_bytes: int) -> bytes:
    if ref[:5].lower() == "data:":
        return _read_data_url(ref, max_bytes)
    if "://" in ref:
        scheme = urllib.parse.urlsplit(ref).scheme.lower()
        if scheme == "file":
            return _read_file(_file_url_path(ref), max_bytes)
        if scheme in ("http", "https"):
            return _fetch(ref, timeout, max_bytes)
        raise ImageError(f"unsupported URL scheme {scheme!r}")
    path = Path(ref).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    return _read_file(path, max_bytes)


# --------------------------------------------------------------------------------------------
# Decoding


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB, with any transparency flattened onto white (how shops show cut-out products)."""
    if image.mode == "RGB":
        return image
    if "transparency" in image.info or image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        canvas.alpha_composite(rgba)
        return canvas.convert("RGB")
    return image.convert("RGB")


def _decode(data: bytes) -> Image.Image:
    """Decode fully (so truncation shows up here), apply EXIF orientation, convert to RGB."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError("too many pixels (decompression bomb guard)") from None
    except UnidentifiedImageError:
        raise ImageError("not an image (unrecognised format)") from None
    except Exception as exc:  # Pillow's decoders raise OSError, SyntaxError, ValueError, ...
        raise ImageError(f"corrupt image: {type(exc).__name__}: {exc}") from None
    if image.width < 1 or image.height < 1:
        raise ImageError("empty image (zero width or height)")
    upright: Image.Image = image
    with contextlib.suppress(Exception):  # broken EXIF: keep the stored orientation
        upright = ImageOps.exif_transpose(image)
    try:
        return to_rgb(upright)
    except Exception as exc:
        raise ImageError(f"cannot convert to RGB: {type(exc).__name__}: {exc}") from None


# --------------------------------------------------------------------------------------------
# Public API


def load_image(
    ref: str,
    *,
    base_dir: Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Image.Image:
    """The RGB picture behind an image reference; raises `ImageError` with a short reason.

    `ref` is a local path (relative ones resolve against `base_dir`, else the working folder),
    a `file://`, `data:image/...;base64,` or `http(s)://` URL. `timeout` bounds each network
    operation (connect, each read), `max_bytes` the encoded size.
    """
    if not isinstance(ref, str) or not ref.strip():
        raise ImageError("empty image reference")
    ref = ref.strip()
    try:
        return _decode(_read_bytes(ref, base_dir, timeout, max_bytes))
    except ImageError as exc:
        exc.details.setdefault("ref", _preview(ref))
        raise


def _load_one(
    ref: str, base_dir: Path | None, timeout: float, max_bytes: int
) -> tuple[Image.Image | None, str | None]:
    try:
        return load_image(ref, base_dir=base_dir, timeout=timeout, max_bytes=max_bytes), None
    except ImageError as exc:
        return None, exc.reason
    except Exception as exc:  # one bad item must never fail the batch
        return None, f"unexpected error: {type(exc).__name__}: {exc}"


def load_images(
    refs: Sequence[str],
    *,
    base_dir: Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_bytes: int = DEFAULT_MAX_BYTES,
    workers: int = 8,
) -> tuple[list[Image.Image | None], list[str | None]]:
    """Load every reference, in order: (images, reasons), exactly one of each pair set.

    Never raises for a bad item; `workers` threads overlap network waits (1 = sequential).
    """
    if isinstance(refs, str):
        raise TypeError("load_images() takes a sequence of references, not a single string")
    items = list(refs)
    if workers <= 1 or len(items) <= 1:
        results = [_load_one(ref, base_dir, timeout, max_bytes) for ref in items]
    else:
        with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
            results = list(
                pool.map(lambda ref: _load_one(ref, base_dir, timeout, max_bytes), items)
            )
    return [image for image, _ in results], [reason for _, reason in results]
