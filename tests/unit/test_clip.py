"""CLIP: image loading, image vectors (torch), the ONNX text tower and text-to-image kNN.

The model is a tiny randomly initialised CLIP built once per module (`make_tiny_clip`); nothing
is downloaded. Tests that need torch are marked `ml` and skip without it.
"""

from __future__ import annotations

import base64
import functools
import http.server
import importlib.util
import io
import json
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from shoprank.errors import ConfigError, ShoprankError
from shoprank.indexing.encoders.clip_image import ClipImageEncoder
from shoprank.indexing.encoders.clip_model import resolve_clip_dir
from shoprank.indexing.encoders.clip_text import ClipTextOnnxEncoder
from shoprank.indexing.images import ImageError, load_image, load_images
from shoprank.testing.clip import TINY_WORDS as _TINY_WORDS
from shoprank.testing.clip import make_tiny_clip

_TINY_DIMS = 16


# --------------------------------------------------------------------------------------------
# Image fixtures


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _checkerboard(size: int = 48, cell: int = 6) -> Image.Image:
    yy, xx = np.mgrid[0:size, 0:size]
    board = (((yy // cell) + (xx // cell)) % 2 * 255).astype(np.uint8)
    return Image.fromarray(np.stack([board, 255 - board, board // 2], axis=-1), mode="RGB")


def _closed_port_url() -> str:
    """An http URL on 127.0.0.1 whose port nothing listens on: connection refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/shoe.jpg"


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """red.png, red_copy.png (same pixels), blue.jpg, board.png, corrupt.png, truncated.png."""
    root = tmp_path_factory.mktemp("images")
    Image.new("RGB", (40, 30), (220, 20, 30)).save(root / "red.png")
    Image.new("RGB", (40, 30), (220, 20, 30)).save(root / "red_copy.png")
    Image.new("RGB", (64, 48), (20, 40, 210)).save(root / "blue.jpg", quality=95)
    _checkerboard().save(root / "board.png")
    rng = np.random.default_rng(7)
    (root / "corrupt.png").write_bytes(rng.integers(0, 256, 600, dtype=np.uint8).tobytes())
    whole = _png_bytes(_checkerboard(96))
    (root / "truncated.png").write_bytes(whole[: len(whole) // 2])
    return root


def _data_url(path: Path, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


# --------------------------------------------------------------------------------------------
# Image loading (Pillow only)


def test_load_image_from_paths_and_urls(image_dir: Path) -> None:
    red = image_dir / "red.png"
    for ref, base in (
        (str(red), None),
        ("red.png", image_dir),
        (red.as_uri(), None),
        (_data_url(red), None),
        ("  " + str(red) + "\n", None),
    ):
        image = load_image(ref, base_dir=base)
        assert image.mode == "RGB"
        assert image.size == (40, 30)
        assert image.getpixel((3, 3)) == (220, 20, 30)
    jpeg = load_image(str(image_dir / "blue.jpg"))
    assert jpeg.mode == "RGB" and jpeg.size == (64, 48)


def test_load_image_flattens_transparency_and_converts_modes(tmp_path: Path) -> None:
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    Image.new("L", (8, 8), 100).save(tmp_path / "grey.png")
    palette = Image.new("P", (8, 8), 0)
    palette.putpalette([10, 200, 10] + [0, 0, 0] * 255)
    palette.save(tmp_path / "palette.png", transparency=0)
    assert load_image(str(tmp_path / "clear.png")).getpixel((1, 1)) == (255, 255, 255)
    assert load_image(str(tmp_path / "grey.png")).getpixel((1, 1)) == (100, 100, 100)
    assert load_image(str(tmp_path / "palette.png")).getpixel((1, 1)) == (255, 255, 255)


@pytest.mark.parametrize(
    ("ref", "reason"),
    [
        ("missing.png", "file not found"),
        ("corrupt.png", "not an image"),
        ("truncated.png", "corrupt image"),
        (".", "not a file"),
        ("", "empty image reference"),
        ("ftp://example.com/a.png", "unsupported URL scheme"),
        ("data:text/plain;base64,aGVsbG8=", "data URL is not an image"),
        ("data:image/png;base64,@@not-base64@@", "invalid base64"),
        ("data:image/png,rawbytes", "not base64"),
        ("data:image/png;base64,aGVsbG8=", "not an image"),
    ],
)
def test_load_image_errors(image_dir: Path, ref: str, reason: str) -> None:
    with pytest.raises(ImageError, match=reason) as info:
        load_image(ref, base_dir=image_dir)
    assert isinstance(info.value, ShoprankError)
    assert info.value.reason.startswith(reason) or reason in info.value.reason


def test_load_image_size_limit(image_dir: Path) -> None:
    board = image_dir / "board.png"
    limit = board.stat().st_size - 1
    with pytest.raises(ImageError, match="too large"):
        load_image(str(board), max_bytes=limit)
    with pytest.raises(ImageError, match="too large"):
        load_image(_data_url(board), max_bytes=limit)
    assert load_image(str(board), max_bytes=limit + 1).size == (48, 48)


def test_http_failure_is_clean_and_fast() -> None:
    url = _closed_port_url()
    # A refused connection is reported as such at once, not waited out until the timeout
    # (that would read "timed out after 2s"), so the test needs no stopwatch.
    with pytest.raises(ImageError, match="unreachable") as info:
        load_image(url, timeout=2.0)
    assert "refused" in info.value.reason.lower()
    assert info.value.details["ref"] == url


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No request log on stderr."""


@pytest.fixture(scope="module")
def http_base(image_dir: Path) -> Iterator[str]:
    """A loopback HTTP server over the image folder."""
    handler = functools.partial(_QuietHandler, directory=str(image_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_http_fetch(http_base: str, image_dir: Path) -> None:
    image = load_image(f"{http_base}/red.png", timeout=2.0)
    assert image.size == (40, 30) and image.getpixel((0, 0)) == (220, 20, 30)
    with pytest.raises(ImageError, match="HTTP 404"):
        load_image(f"{http_base}/nope.png", timeout=2.0)
    size = (image_dir / "board.png").stat().st_size
    with pytest.raises(ImageError, match="too large"):
        load_image(f"{http_base}/board.png", timeout=2.0, max_bytes=size - 1)
    with pytest.raises(ImageError, match="not an image"):
        load_image(f"{http_base}/corrupt.png", timeout=2.0)


def test_load_images_reports_per_item(image_dir: Path) -> None:
    refs = ["red.png", "missing.png", "corrupt.png", _closed_port_url(), "board.png"]
    for workers in (1, 4):
        images, errors = load_images(refs, base_dir=image_dir, timeout=2.0, workers=workers)
        assert [image is None for image in images] == [False, True, True, True, False]
        assert [error is None for error in errors] == [True, False, False, False, True]
        assert errors[1] is not None and errors[1].startswith("file not found")
        assert errors[3] is not None and errors[3].startswith("unreachable")
        assert images[4] is not None and images[4].size == (48, 48)
    assert load_images([]) == ([], [])
    with pytest.raises(TypeError):
        load_images("red.png")


# --------------------------------------------------------------------------------------------
# Configuration errors (no torch needed)


def test_bad_model_paths_raise_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="neither an existing directory"):
        ClipImageEncoder(str(tmp_path / "no-such-model"))
    with pytest.raises(ConfigError, match="never downloaded"):
        resolve_clip_dir("nobody-here/no-such-clip-model")
    with pytest.raises(ConfigError, match="empty"):
        resolve_clip_dir(" ")
    (tmp_path / "config.json").write_text('{"model_type": "bert"}', encoding="utf-8")
    with pytest.raises(ConfigError, match="not a CLIP config"):
        _ = ClipImageEncoder(str(tmp_path)).dims
    with pytest.raises(ConfigError, match="no weights"):
        _ = ClipImageEncoder(str(tmp_path)).model_id
    with pytest.raises(ConfigError, match="manifest.json"):
        ClipTextOnnxEncoder(tmp_path)


# --------------------------------------------------------------------------------------------
# The tiny CLIP (torch)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch", reason="needs the [ml] extra")
    pytest.importorskip("transformers", reason="needs the [ml] extra")
    path: Path = make_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip", seed=0)
    return path


@pytest.fixture(scope="module")
def image_encoder(tiny_clip: Path) -> ClipImageEncoder:
    encoder = ClipImageEncoder(str(tiny_clip))
    encoder.warm_up()
    return encoder


def _run_python(code: str, timeout: float = 300) -> str:
    """Run `code` in a fresh interpreter; its stdout, or fail with its stderr."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout


def _require_module(name: str, reason: str) -> None:
    """Skip unless `name` is installed, without importing it into this process."""
    if importlib.util.find_spec(name) is None:
        pytest.skip(reason)


# onnxruntime runs in fresh interpreters: that is what proves the query encoder needs no torch,
# and it keeps these tests independent of native import order (onnxruntime imported after
# usearch segfaults; plugin/backends/embedded/vectors.py imports it first for that reason).
@pytest.fixture(scope="module")
def text_export(tiny_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`export_clip_text_onnx` of the tiny CLIP (it verifies itself against torch)."""
    _require_module("onnxscript", "the ONNX exporter needs onnxscript")
    out = tmp_path_factory.mktemp("clip-text") / "onnx"
    _run_python(
        f"""
        from shoprank.indexing.encoders.export_clip import export_clip_text_onnx
        export_clip_text_onnx({str(tiny_clip)!r}, __import__("pathlib").Path({str(out)!r}))
        """
    )
    return out


_QUERY_TEXTS = [
    "red running shoes",
    "A photo of a BLUE shirt!",
    "",
    "laptop",
    "wireless mouse with usb cable, 2.4 GHz, black " * 6,  # cut to 32 tokens
    "zx-9 ünïcode 日本",
]


@pytest.fixture(scope="module")
def onnx_run(text_export: Path) -> dict[str, Any]:
    """ClipTextOnnxEncoder in a fresh interpreter: vectors (batched and one by one), metadata,
    and which heavy modules the process imported."""
    _require_module("onnxruntime", "needs onnxruntime")
    output = _run_python(
        f"""
        import json, sys
        from shoprank.indexing.encoders.clip_text import ClipTextOnnxEncoder
        from shoprank.indexing.encoders.protocol import TextEncoder
        texts = {_QUERY_TEXTS!r}
        encoder = ClipTextOnnxEncoder({str(text_export)!r})
        encoder.warm_up()
        batched = encoder.encode(texts, batch_size=4)
        singles = [encoder.encode([text])[0].tolist() for text in texts]
        try:
            encoder.encode("red running shoes")
            single_string = "accepted"
        except TypeError:
            single_string = "TypeError"
        print(json.dumps({{
            "protocol": isinstance(encoder, TextEncoder),
            "model_id": encoder.model_id,
            "dims": encoder.dims,
            "max_length": encoder.max_length,
            "dtype": str(batched.dtype),
            "batched": batched.tolist(),
            "singles": singles,
            "empty_shape": list(encoder.encode([]).shape),
            "single_string": single_string,
            "heavy": sorted(
                name for name in sys.modules
                if name.split(".")[0] in {{"torch", "transformers", "PIL"}}
            ),
        }}))
        """
    )
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return result


def _torch_text_embeddings(model_dir: Path, texts: list[str]) -> np.ndarray[Any, Any]:
    """Reference: normalised `CLIPModel.get_text_features` with the transformers tokenizer."""
    import torch
    from transformers import AutoTokenizer, CLIPModel

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    model = CLIPModel.from_pretrained(str(model_dir), local_files_only=True)
    model.eval()  # type: ignore[no-untyped-call]
    batch = tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
    with torch.inference_mode():
        features = model.get_text_features(**batch)
        if not isinstance(features, torch.Tensor):
            features = features.pooler_output
        return torch.nn.functional.normalize(features, dim=-1).numpy()


@pytest.mark.ml
def test_tiny_clip_files_and_tokenizer(tiny_clip: Path) -> None:
    from transformers import AutoTokenizer

    for name in ("config.json", "model.safetensors", "tokenizer.json", "preprocessor_config.json"):
        assert (tiny_clip / name).is_file(), name
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_clip), local_files_only=True)
    tokens = tokenizer.convert_ids_to_tokens(tokenizer("Red running SHOES")["input_ids"])
    assert tokens == ["<|startoftext|>", "red</w>", "running</w>", "shoes</w>", "<|endoftext|>"]
    for word in _TINY_WORDS:
        assert len(tokenizer(word, add_special_tokens=False)["input_ids"]) == 1, word
    odd = tokenizer("zx-9 ünïcode")["input_ids"]  # unseen words fall back to byte symbols
    assert tokenizer.unk_token_id not in odd[1:-1]


@pytest.mark.ml
def test_tiny_clip_is_reproducible(tiny_clip: Path, tmp_path: Path) -> None:
    again = make_tiny_clip(tmp_path / "tiny-clip", seed=0)
    assert ClipImageEncoder(str(again)).model_id == ClipImageEncoder(str(tiny_clip)).model_id


@pytest.mark.ml
def test_catalog_images_to_vectors(image_encoder: ClipImageEncoder, image_dir: Path) -> None:
    assert image_encoder.dims == _TINY_DIMS
    assert image_encoder.model_id.startswith("tiny-clip@")
    refs = [
        "red.png",  # relative to the catalog folder
        str(image_dir / "blue.jpg"),
        _data_url(image_dir / "red.png"),
        "missing.png",
        "corrupt.png",
        _closed_port_url(),
        (image_dir / "red_copy.png").as_uri(),
        "board.png",
    ]
    vectors, errors = image_encoder.encode_refs(refs, base_dir=image_dir, timeout=2.0)
    failed = [i for i, error in enumerate(errors) if error is not None]
    assert failed == [3, 4, 5]
    assert all(vectors[i] is None for i in failed)
    good = {i: v for i, v in enumerate(vectors) if v is not None}
    assert sorted(good) == [0, 1, 2, 6, 7]
    for vector in good.values():
        assert vector.dtype == np.float32 and vector.shape == (_TINY_DIMS,)
        assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5
    # identical pixels (file, data URL, file:// copy) give identical vectors
    np.testing.assert_array_equal(good[0], good[2])
    np.testing.assert_array_equal(good[0], good[6])
    # different pictures give different vectors
    for a, b in ((0, 1), (0, 7), (1, 7)):
        assert float(good[a] @ good[b]) < 0.999, (a, b)


@pytest.mark.ml
def test_encode_images_batches_and_shapes(image_encoder: ClipImageEncoder) -> None:
    images = [
        Image.new("RGB", (32, 32), colour) for colour in ("red", "green", "blue", "white")
    ] + [_checkerboard(), Image.new("RGBA", (3, 90), (10, 10, 10, 255))]
    together = image_encoder.encode_images(images)
    one_by_one = np.concatenate([image_encoder.encode_images([image]) for image in images])
    paired = image_encoder.encode_images(images, batch_size=2)
    assert together.shape == (len(images), _TINY_DIMS)
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)
    np.testing.assert_allclose(together, paired, atol=1e-5)
    assert image_encoder.encode_images([]).shape == (0, _TINY_DIMS)
    with pytest.raises(TypeError):
        image_encoder.encode_images(images[0])


@pytest.mark.ml
def test_onnx_text_tower_matches_torch(
    onnx_run: dict[str, Any], image_encoder: ClipImageEncoder, tiny_clip: Path, text_export: Path
) -> None:
    assert onnx_run["protocol"] is True
    assert onnx_run["model_id"] == image_encoder.model_id  # same space, same id
    assert (onnx_run["dims"], onnx_run["max_length"]) == (_TINY_DIMS, 32)
    manifest = ClipTextOnnxEncoder(text_export)  # reads the manifest only, no onnxruntime
    assert (manifest.model_id, manifest.dims) == (image_encoder.model_id, _TINY_DIMS)
    ours = np.asarray(onnx_run["batched"], dtype=np.float32)
    theirs = _torch_text_embeddings(tiny_clip, _QUERY_TEXTS)
    assert onnx_run["dtype"] == "float32" and ours.shape == (len(_QUERY_TEXTS), _TINY_DIMS)
    cosines = np.sum(ours * theirs, axis=1)
    assert float(cosines.min()) >= 0.9999, cosines
    np.testing.assert_allclose(ours, np.asarray(onnx_run["singles"]), atol=1e-5)
    assert onnx_run["empty_shape"] == [0, _TINY_DIMS]
    assert onnx_run["single_string"] == "TypeError"


@pytest.mark.ml
def test_onnx_text_encoder_never_imports_torch(onnx_run: dict[str, Any]) -> None:
    assert onnx_run["heavy"] == []


@pytest.mark.ml
def test_text_to_image_knn_leg(
    onnx_run: dict[str, Any], image_encoder: ClipImageEncoder, image_dir: Path
) -> None:
    catalog = {"p1": "red.png", "p2": "blue.jpg", "p3": "missing.png", "p4": "board.png"}
    vectors, errors = image_encoder.encode_refs(list(catalog.values()), base_dir=image_dir)
    indexed = {pid: v for pid, v in zip(catalog, vectors, strict=True) if v is not None}
    skipped = {pid: e for pid, e in zip(catalog, errors, strict=True) if e is not None}
    assert sorted(indexed) == ["p1", "p2", "p4"] and list(skipped) == ["p3"]
    ids = list(indexed)
    matrix = np.stack([indexed[pid] for pid in ids])
    query = np.asarray(onnx_run["batched"][0], dtype=np.float32)  # "red running shoes"
    assert query.shape == (matrix.shape[1],)
    scores = matrix @ query
    expected = sorted(ids, key=lambda pid: -float(indexed[pid] @ query))
    assert [ids[i] for i in np.argsort(-scores, kind="stable")] == expected
    assert np.all(np.abs(scores) <= 1.0 + 1e-5)
