"""MiniLM served from an ONNX export with onnxruntime (int8 or fp32): no torch, no transformers.

`OnnxTextEncoder` reads a directory written by `shoprank.indexing.encoders.export_text`
(`model.onnx`, `tokenizer.json`, `manifest.json`) and needs onnxruntime, tokenizers and numpy
only. Mean pooling and L2 normalisation run in numpy on the encoder's last hidden state
(measured as fast as doing them in the graph, and the graph stays a plain BERT encoder).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from shoprank.errors import ConfigError

from .base import (
    F32,
    I64,
    LazyEncoder,
    check_encode_args,
    check_max_length,
    file_sha256,
    length_batches,
)

if TYPE_CHECKING:
    from onnxruntime import InferenceSession
    from tokenizers import Tokenizer

__all__ = [
    "FORMAT",
    "INPUTS",
    "MANIFEST_FILE",
    "MODEL_FILE",
    "OUTPUT",
    "TOKENIZER_FILE",
    "OnnxTextEncoder",
]

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
MANIFEST_FILE = "manifest.json"
FORMAT = "shoprank-onnx-text/1"
# Inputs the exported graph takes, in this order. BERT's token_type_ids are all zero for
# single sentences, so the graph computes them instead of taking them as an input.
INPUTS = ("input_ids", "attention_mask")
OUTPUT = "last_hidden_state"

_EXPORT_FIX = "run `shoprank models export-text` to (re)create it"


@dataclass(frozen=True)
class _Manifest:
    """What `OnnxTextEncoder` needs from manifest.json."""

    name: str
    dims: int
    max_positions: int
    pad_id: int
    disabled_optimizers: tuple[str, ...]

    @classmethod
    def read(cls, directory: Path) -> _Manifest:
        """Parse and check `directory/manifest.json`; ConfigError naming the path if unusable."""
        if not directory.is_dir():
            raise ConfigError(
                f"ONNX text model directory {directory} does not exist; {_EXPORT_FIX}"
            )
        missing = [
            name
            for name in (MODEL_FILE, TOKENIZER_FILE, MANIFEST_FILE)
            if not (directory / name).is_file()
        ]
        if missing:
            raise ConfigError(
                f"ONNX text model directory {directory} lacks {', '.join(missing)}; {_EXPORT_FIX}"
            )
        path = directory / MANIFEST_FILE
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(raw, dict) or raw.get("format") != FORMAT:
                raise ValueError(f"format is not {FORMAT!r}")
            runtime = raw.get("runtime", {})
            return cls(
                name=str(raw["name"]),
                dims=int(raw["dims"]),
                max_positions=int(raw["max_positions"]),
                pad_id=int(raw["pad_id"]),
                disabled_optimizers=tuple(str(x) for x in runtime.get("disabled_optimizers", ())),
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(
                f"cannot read ONNX text model manifest {path}: {exc!r}; {_EXPORT_FIX}"
            ) from exc


def _default_threads() -> int:
    """CPUs this process may run on (capped at 8: MiniLM gains little beyond that)."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        count = os.cpu_count() or 1
    return max(1, min(count, 8))


@dataclass(frozen=True)
class _Runtime:
    session: InferenceSession
    tokenizer: Tokenizer
    input_names: tuple[str, ...]


class OnnxTextEncoder(LazyEncoder[_Runtime]):
    """A `TextEncoder` over an exported ONNX MiniLM, run with onnxruntime on CPU.

    The constructor only checks the directory and reads the manifest; `warm_up` (or the first
    `encode`) builds the session and tokenizer, once, under a lock. Safe to share between
    threads. Needs onnxruntime, tokenizers and numpy, never torch.
    """

    def __init__(
        self, model_dir: Path | str, *, max_length: int = 128, threads: int | None = None
    ) -> None:
        super().__init__()
        self.directory = Path(model_dir).expanduser().resolve()
        self.max_length = check_max_length(max_length)
        if threads is not None and (isinstance(threads, bool) or threads < 1):
            raise ConfigError(f"threads must be a positive integer or None, got {threads!r}")
        self.threads = threads if threads is not None else _default_threads()
        self._manifest = _Manifest.read(self.directory)
        if self.max_length > self._manifest.max_positions:
            raise ConfigError(
                f"max_length {self.max_length} exceeds the {self._manifest.max_positions} "
                f"positions of the model in {self.directory}"
            )

    def __repr__(self) -> str:
        return (
            f"OnnxTextEncoder({str(self.directory)!r}, max_length={self.max_length}, "
            f"threads={self.threads})"
        )

    def _fingerprint(self) -> str:
        """`<name>@<sha256[:12] of model.onnx>`, e.g. `all-MiniLM-L6-v2-onnx-int8@...`."""
        digest = file_sha256(self.directory / MODEL_FILE)
        return f"{self._manifest.name}@{digest[:12]}"

    @property
    def dims(self) -> int:
        """Vector width, from the manifest."""
        return self._manifest.dims

    def _load(self) -> _Runtime:
        """Build the onnxruntime session and the tokenizer."""
        import onnxruntime as ort
        from tokenizers import Tokenizer

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only
        path = self.directory / MODEL_FILE
        try:
            session = ort.InferenceSession(
                str(path),
                options,
                providers=["CPUExecutionProvider"],
                disabled_optimizers=list(self._manifest.disabled_optimizers),
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ConfigError(f"onnxruntime cannot load {path}: {exc}; {_EXPORT_FIX}") from exc
        names = tuple(i.name for i in session.get_inputs())
        unknown = set(names) - {*INPUTS, "token_type_ids"}
        if unknown or not set(INPUTS) <= set(names):
            raise ConfigError(
                f"{path} takes inputs {list(names)}, expected {list(INPUTS)}; {_EXPORT_FIX}"
            )
        try:
            tokenizer = Tokenizer.from_file(str(self.directory / TOKENIZER_FILE))
        except Exception as exc:  # tokenizers raises a bare Exception
            raise ConfigError(
                f"cannot read {self.directory / TOKENIZER_FILE}: {exc}; {_EXPORT_FIX}"
            ) from exc
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=self.max_length)
        return _Runtime(session=session, tokenizer=tokenizer, input_names=names)

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> F32:
        """Embed texts, batching similar token lengths together; output keeps input order."""
        check_encode_args(texts, batch_size)
        runtime = self._loaded()
        count = len(texts)
        out = np.empty((count, self.dims), dtype=np.float32)
        if count == 0:
            return out
        if count == 1:
            token_ids = [runtime.tokenizer.encode(texts[0], add_special_tokens=True).ids]
        else:
            encodings = runtime.tokenizer.encode_batch(list(texts), add_special_tokens=True)
            token_ids = [encoding.ids for encoding in encodings]
        for rows, ids, mask in length_batches(token_ids, batch_size, self._manifest.pad_id):
            out[rows] = self._forward(runtime, ids, mask)
        return out

    @staticmethod
    def _forward(runtime: _Runtime, ids: I64, mask: I64) -> F32:
        """Mean-pooled, L2-normalised vectors for one padded batch."""
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in runtime.input_names:
            feed["token_type_ids"] = np.zeros_like(ids)
        (hidden,) = runtime.session.run([OUTPUT], feed)
        weights = mask.astype(np.float32)
        summed: F32 = np.matmul(weights[:, None, :], hidden)[:, 0, :]
        summed /= np.maximum(weights.sum(axis=1, keepdims=True), np.float32(1e-9))
        summed /= np.maximum(np.linalg.norm(summed, axis=1, keepdims=True), np.float32(1e-12))
        return summed
