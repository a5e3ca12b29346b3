"""Export MiniLM's BERT encoder to ONNX for `OnnxTextEncoder` (needs the `[ml]` extra).

`export_text_onnx` traces the BERT encoder of the packaged all-MiniLM-L6-v2 with torch and
quantises its weight MatMuls dynamically to int8 with per-channel scales; the graph
optimisation settings that measured fastest are recorded in the manifest for the session. It
writes `model.onnx`, `tokenizer.json` and `manifest.json` into one directory. The serving path
never imports this module; torch, transformers and onnx are imported when it runs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from shoprank.errors import ConfigError

from .base import F32, check_max_length, file_sha256
from .bert_numpy import NumpyBertEncoder
from .minilm import DEFAULT_MODEL, resolve_model_dir
from .onnx_text import (
    FORMAT,
    INPUTS,
    MANIFEST_FILE,
    MODEL_FILE,
    OUTPUT,
    TOKENIZER_FILE,
    OnnxTextEncoder,
)

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = ["export_text_onnx"]

_ML_HINT = (
    "exporting the ONNX text model needs torch and transformers: install torch==2.13.0 "
    "(CPU build) first, then `pip install 'shoprank[ml]'`"
)
# Graph optimisation, chosen by measurement on the development machine (2-core AMD EPYC with
# AVX512-VNNI, onnxruntime 1.32, 2,000 Icecat titles, batch 64; see
# benchmarks/bench_text_encoders.py --with-fusions). onnxruntime's session optimiser (level ALL)
# already fuses Gelu, LayerNormalization and the int8 MatMul chains. Its SkipLayerNormalization
# fusion measured 10-25 % slower than Add + LayerNormalization, and onnxruntime.transformers'
# BERT optimiser was slower still: int8 ~2,060 products/s unfused with SkipLayerNormFusion off,
# ~1,660 with fused QAttention and ~1,310 with fp32 Attention (TorchScript export, the only one
# whose attention it fuses). So `optimize=True` leaves the graph unfused and the session skips
# SkipLayerNormFusion; `optimize="transformers"` applies the BERT fusions for comparison.
_SESSION_DISABLED_OPTIMIZERS = ("SkipLayerNormFusion",)

# Sentences the export checks the ONNX model against torch with (recorded in the manifest).
_PARITY_SENTENCES = (
    "HP 80 Original Cyan 1 pc(s)",
    "APC Back-UPS uninterruptible power supply (UPS) Standby (Offline) 500 VA 300 W",
    "Intel PWLA8490MFBLK5 networking card",
    "wireless mouse",
    "27 inch monitor",
    "Lenovo ThinkPad X1 Carbon 14 inch business laptop, Intel Core i7, 16 GB RAM, 512 GB SSD",
    "cat6 patch cable 2m",
    "DYMO LT Fabric Iron-On",
    "toner cartridge black",
    "Samsung 970 EVO Plus NVMe M.2 SSD 1 TB",
    "",
    "ups",
)


class _DropLogRecords(logging.Filter):
    """Drops log records whose message starts with one of `prefixes`."""

    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefixes)


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """Silence the exporter's and quantiser's known, harmless warnings and log lines only."""
    from transformers.utils import logging as transformers_logging

    hf_logging: Any = transformers_logging  # untyped module
    torch_onnx_log = logging.getLogger("torch.onnx")
    level = torch_onnx_log.level
    progress_bar = hf_logging.is_progress_bar_enabled()
    root_filter = _DropLogRecords(("Please consider to run pre-processing",))
    root = logging.getLogger()
    with warnings.catch_warnings():
        # torch.export / torch.onnx (dynamo) notes on shared dynamic axes and pytree internals.
        warnings.filterwarnings("ignore", message=r".*The axis name: .* will not be used")
        warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
        # The TorchScript fallback exporter's deprecation and tracing notes.
        warnings.filterwarnings("ignore", message=r".*legacy TorchScript-based ONNX export")
        warnings.filterwarnings("ignore", message=r".*feature will be removed")
        warnings.filterwarnings("ignore", message=r".*Converting a tensor to a Python boolean")
        warnings.filterwarnings("ignore", message=r".*Exporting aten::index operator")
        torch_onnx_log.setLevel(logging.ERROR)  # "torchvision is not installed. Skipping ..."
        root.addFilter(root_filter)
        hf_logging.disable_progress_bar()  # "Loading weights" bars
        try:
            yield
        finally:
            if progress_bar:
                hf_logging.enable_progress_bar()
            root.removeFilter(root_filter)
            torch_onnx_log.setLevel(level)


def _import_torch() -> tuple[Any, Any]:
    """(torch, transformers.AutoModel), or ConfigError with the install hint."""
    try:
        import torch
        from transformers import AutoModel
    except ImportError as exc:
        raise ConfigError(f"{_ML_HINT} ({exc})") from exc
    return torch, AutoModel


def _export_graph(torch: Any, bert: Any, path: Path) -> str:
    """Trace BERT's embeddings + encoder to ONNX with dynamic batch and sequence axes.

    The attention mask is turned into the classic additive (B, 1, 1, L) mask here rather than
    by transformers' mask utilities, which keeps the graph small. Returns the exporter used:
    torch.export (`dynamo`), or the TorchScript exporter if that fails.
    """

    class Encoder(torch.nn.Module):  # type: ignore[misc]
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.model.embeddings(input_ids=input_ids)
            blocked = 1.0 - attention_mask[:, None, None, :].to(hidden.dtype)
            additive = blocked * torch.finfo(hidden.dtype).min
            return self.model.encoder(hidden, attention_mask=additive).last_hidden_state

    wrapper = Encoder(bert).eval()
    example = (
        torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]], dtype=torch.long),
        torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.long),
    )
    common: dict[str, Any] = {"input_names": list(INPUTS), "output_names": [OUTPUT]}
    axes = {0: "batch", 1: "sequence"}
    with torch.no_grad():
        try:
            batch = torch.export.Dim("batch")
            sequence = torch.export.Dim("sequence", max=int(bert.config.max_position_embeddings))
            shape = {0: batch, 1: sequence}
            torch.onnx.export(
                wrapper,
                example,
                str(path),
                dynamo=True,
                external_data=False,
                verbose=False,
                dynamic_shapes={name: shape for name in INPUTS},
                **common,
            )
            return "dynamo"
        except Exception as exc:  # torch.export raises many types; fall back below
            logging.getLogger(__name__).info("torch.export ONNX export failed (%r)", exc)
        torch.onnx.export(
            wrapper,
            example,
            str(path),
            dynamo=False,
            opset_version=17,
            dynamic_axes={**{name: axes for name in INPUTS}, OUTPUT: axes},
            **common,
        )
        return "torchscript"


def _transformer_optimize(source: Path, target: Path, heads: int, hidden: int) -> dict[str, Any]:
    """onnxruntime.transformers' BERT fusions; on any failure keep the plain graph and say so."""
    try:
        from onnxruntime.transformers.optimizer import optimize_model

        optimized = optimize_model(
            str(source), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=0
        )
        optimized.save_model_to_file(str(target))
        fused = {k: int(v) for k, v in optimized.get_fused_operator_statistics().items() if v}
    except Exception as exc:  # the optimiser is best effort
        shutil.copyfile(source, target)
        return {"applied": False, "error": f"{type(exc).__name__}: {exc}"[:500]}
    return {"applied": True, "fused_ops": fused}


def _quantize_int8(source: Path, target: Path) -> dict[str, Any]:
    """Dynamic int8: per-channel symmetric int8 weights on MatMuls with constant weights."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    settings: dict[str, Any] = {
        "method": "dynamic",
        "op_types": ["MatMul"],
        "per_channel": True,
        "reduce_range": False,
        "weight_type": "QInt8",
        "activation_type": "QUInt8 (dynamic, per tensor)",
    }
    quantize_dynamic(
        str(source),
        str(target),
        op_types_to_quantize=settings["op_types"],
        per_channel=True,
        reduce_range=False,
        weight_type=QuantType.QInt8,
        # Fused com.microsoft ops defeat onnx shape inference; their outputs are float.
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT, "MatMulConstBOnly": True},
    )
    return settings


def _torch_reference(torch: Any, bert: Any, tokenizer: Tokenizer, texts: Sequence[str]) -> F32:
    """sentence-transformers' recipe (mean pooling + L2) on the loaded torch model."""
    encodings = tokenizer.encode_batch(list(texts))
    width = max(len(e.ids) for e in encodings)
    ids = torch.zeros((len(texts), width), dtype=torch.long)
    mask = torch.zeros((len(texts), width), dtype=torch.long)
    for row, encoding in enumerate(encodings):
        ids[row, : len(encoding.ids)] = torch.tensor(encoding.ids)
        mask[row, : len(encoding.ids)] = 1
    with torch.no_grad():
        hidden = bert(input_ids=ids, attention_mask=mask).last_hidden_state
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
        pooled = torch.nn.functional.normalize(pooled, p=2.0, dim=1)
    return np.asarray(pooled.numpy(), dtype=np.float32)


def export_text_onnx(
    out_dir: Path,
    *,
    model: str = DEFAULT_MODEL,
    max_length: int = 128,
    quantize: Literal["int8", "none"] = "int8",
    optimize: bool | Literal["transformers"] = True,
) -> Path:
    """Export MiniLM's BERT encoder to `out_dir` as ONNX (int8 by default) for OnnxTextEncoder.

    Writes `model.onnx`, `tokenizer.json` and `manifest.json` (source model id, quantisation
    and optimisation settings, parity with torch on a few fixed sentences) and returns
    `out_dir`. Needs torch and transformers (the `[ml]` extra).

    `optimize=True` keeps the graph unfused and has the session skip SkipLayerNormFusion (the
    fastest measured here); `"transformers"` applies onnxruntime.transformers' BERT fusions
    instead (for comparison or other hardware); `False` uses onnxruntime's defaults.
    """
    check_max_length(max_length)
    if quantize not in ("int8", "none"):
        raise ConfigError(f"quantize must be 'int8' or 'none', got {quantize!r}")
    if optimize not in (True, False, "transformers"):
        raise ConfigError(f"optimize must be True, False or 'transformers', got {optimize!r}")
    source = resolve_model_dir(model)
    source_encoder = NumpyBertEncoder(model, max_length=max_length)
    torch, auto_model = _import_torch()
    import onnxruntime
    from tokenizers import Tokenizer

    started = time.perf_counter()
    with _quiet_export():
        bert = auto_model.from_pretrained(str(source), attn_implementation="eager").eval()
    config = bert.config
    if not (hasattr(bert, "embeddings") and hasattr(bert, "encoder")):
        raise ConfigError(f"{source} is not a BERT-style encoder ({type(bert).__name__})")
    if max_length > int(config.max_position_embeddings):
        raise ConfigError(
            f"max_length {max_length} exceeds the model's "
            f"{config.max_position_embeddings} positions"
        )
    heads, hidden = int(config.num_attention_heads), int(config.hidden_size)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".export-", dir=out_dir) as scratch, _quiet_export():
        work = Path(scratch)
        current = work / "encoder.onnx"
        exporter = _export_graph(torch, bert, current)
        optimisation: dict[str, Any] = {
            "applied": False,
            "reason": (
                "optimize=True: unfused graph, session skips SkipLayerNormFusion (measured fastest)"
                if optimize
                else "optimize=False: onnxruntime session defaults"
            ),
        }
        if optimize == "transformers":
            optimisation = _transformer_optimize(current, work / "fused.onnx", heads, hidden)
            current = work / "fused.onnx"
        disabled = _SESSION_DISABLED_OPTIMIZERS if optimize is True else ()
        quantisation: dict[str, Any] = {"method": "none"}
        if quantize == "int8":
            quantisation = _quantize_int8(current, work / "int8.onnx")
            current = work / "int8.onnx"
        os.replace(current, out_dir / MODEL_FILE)
    shutil.copyfile(source / TOKENIZER_FILE, out_dir / TOKENIZER_FILE)

    short = source_encoder.model_id.split("@", 1)[0]
    name = f"{short}-onnx-{'int8' if quantize == 'int8' else 'fp32'}"
    digest = file_sha256(out_dir / MODEL_FILE)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "name": name,
        "model_id": f"{name}@{digest[:12]}",  # what OnnxTextEncoder.model_id reports
        "source_model": model,
        "source_model_id": source_encoder.model_id,
        "dims": hidden,
        "max_length": max_length,
        "max_positions": int(config.max_position_embeddings),
        "pad_id": int(config.pad_token_id or 0),
        "inputs": list(INPUTS),
        "output": OUTPUT,
        "pooling": "mean over attention mask, then L2 normalisation (done by the encoder)",
        "exporter": f"torch {torch.__version__} ({exporter})",
        "onnxruntime_version": onnxruntime.__version__,
        "transformer_optimizer": optimisation,
        "quantization": quantisation,
        "runtime": {"disabled_optimizers": list(disabled)},
        "sha256": digest,
        "exported_on": platform.machine(),
    }
    _write_json(out_dir / MANIFEST_FILE, manifest)

    tokenizer = Tokenizer.from_file(str(source / TOKENIZER_FILE))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_length)
    reference = _torch_reference(torch, bert, tokenizer, _PARITY_SENTENCES)
    encoder = OnnxTextEncoder(out_dir, max_length=max_length)
    cosines = np.sum(encoder.encode(list(_PARITY_SENTENCES)) * reference, axis=1)
    manifest["parity_vs_torch"] = {
        "sentences": len(_PARITY_SENTENCES),
        "mean_cosine": round(float(cosines.mean()), 6),
        "min_cosine": round(float(cosines.min()), 6),
    }
    manifest["export_seconds"] = round(time.perf_counter() - started, 2)
    _write_json(out_dir / MANIFEST_FILE, manifest)
    return out_dir


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
