"""CLIP query text vectors served from the exported text tower: onnxruntime + tokenizers only.

`ClipTextOnnxEncoder` implements `TextEncoder` on a folder written by
`shoprank.indexing.encoders.export_clip` (`text_encoder.onnx`, `tokenizer.json`,
`manifest.json`); the query path never imports torch, transformers or Pillow.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shoprank.errors import ConfigError

from .base import F32, LazyEncoder, check_encode_args, length_batches

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "INPUTS",
    "MANIFEST_NAME",
    "ONNX_NAME",
    "OUTPUT",
    "TOKENIZER_NAME",
    "ClipTextOnnxEncoder",
]

MANIFEST_NAME = "manifest.json"
ONNX_NAME = "text_encoder.onnx"
TOKENIZER_NAME = "tokenizer.json"
FORMAT = "shoprank-clip-text-onnx"
FORMAT_VERSION = 1
INPUTS = ("input_ids", "attention_mask")
OUTPUT = "text_embeds"


def _read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST_NAME
    fix = "export one with `export_clip_text_onnx(model, out_dir)`"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"no {MANIFEST_NAME} in {directory}: not a CLIP text export; {fix}"
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}; {fix}") from exc
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ConfigError(f"{path} is not a {FORMAT} manifest; {fix}")
    if raw.get("format_version") != FORMAT_VERSION:
        raise ConfigError(
            f"{path} has format_version {raw.get('format_version')!r}, this shoprank reads "
            f"{FORMAT_VERSION}; re-export the model"
        )
    for key, kind in (("model_id", str), ("dims", int), ("max_length", int), ("pad_id", int)):
        if not isinstance(raw.get(key), kind) or isinstance(raw.get(key), bool):
            raise ConfigError(f"{path}: {key!r} is missing or not a {kind.__name__}; {fix}")
    return raw


@dataclass(frozen=True)
class _OnnxText:
    session: Any
    tokenizer: Tokenizer


class ClipTextOnnxEncoder(LazyEncoder[_OnnxText]):
    """CLIP query text vectors with onnxruntime and tokenizers: no torch, no transformers.

    `model_dir` is an `export_clip_text_onnx` folder. `model_id` is the source CLIP's, the id
    `ClipImageEncoder` reports for the same weights, so text and image vectors can be matched.
    Special-token strings typed into a query are tokenised as plain text. Thread-safe.
    """

    def __init__(self, model_dir: str | Path, *, threads: int | None = None) -> None:
        directory = Path(model_dir).expanduser()
        self._setup(directory, _read_manifest(directory), threads)

    @classmethod
    def _from_manifest(cls, directory: Path, manifest: dict[str, Any]) -> ClipTextOnnxEncoder:
        """An encoder on a manifest not yet written to disk (export verification)."""
        encoder = cls.__new__(cls)
        encoder._setup(directory, manifest, None)
        return encoder

    def _setup(self, directory: Path, manifest: dict[str, Any], threads: int | None) -> None:
        super().__init__()
        self.directory = directory
        self.threads = threads
        self._manifest = manifest

    def __repr__(self) -> str:
        return f"ClipTextOnnxEncoder({str(self.directory)!r})"

    def _fingerprint(self) -> str:
        """The source CLIP's `<name>@<weights sha256[:12]>`, from the manifest."""
        return str(self._manifest["model_id"])

    @property
    def dims(self) -> int:
        """The CLIP projection dimension, from the manifest."""
        return int(self._manifest["dims"])

    @property
    def max_length(self) -> int:
        """Tokens per text, BOS and EOS included (CLIP's position count); longer texts are cut."""
        return int(self._manifest["max_length"])

    def _load(self) -> _OnnxText:
        """Load the tokenizer and the ONNX session."""
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise ConfigError(
                f"the CLIP text encoder needs onnxruntime and tokenizers ({exc}); "
                "`pip install onnxruntime tokenizers`"
            ) from exc
        onnx_path = self.directory / str(self._manifest.get("onnx", ONNX_NAME))
        tokenizer_path = self.directory / str(self._manifest.get("tokenizer", TOKENIZER_NAME))
        for path in (onnx_path, tokenizer_path):
            if not path.is_file():
                raise ConfigError(f"CLIP text export {self.directory} lacks {path.name}")
        try:
            tokenizer = Tokenizer.from_file(str(tokenizer_path))
        except Exception as exc:  # tokenizers raises its own exception type
            raise ConfigError(f"cannot read {tokenizer_path}: {exc}") from exc
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=self.max_length)
        tokenizer.encode_special_tokens = True
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.threads is not None:
            options.intra_op_num_threads = self.threads
        try:
            session = ort.InferenceSession(
                str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ConfigError(f"cannot load {onnx_path}: {exc}") from exc
        names = [node.name for node in session.get_inputs()]
        if sorted(names) != sorted(INPUTS):
            raise ConfigError(f"{onnx_path} takes inputs {names}, expected {list(INPUTS)}")
        return _OnnxText(session=session, tokenizer=tokenizer)

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> F32:
        """Embed texts, batching similar token lengths together; output keeps input order."""
        check_encode_args(texts, batch_size)
        state = self._loaded()
        out = np.empty((len(texts), self.dims), dtype=np.float32)
        if len(texts) == 0:
            return out
        encodings = state.tokenizer.encode_batch(list(texts), add_special_tokens=True)
        token_ids = [encoding.ids for encoding in encodings]
        pad_id = int(self._manifest["pad_id"])
        for rows, ids, mask in length_batches(token_ids, batch_size, pad_id):
            (vectors,) = state.session.run([OUTPUT], {"input_ids": ids, "attention_mask": mask})
            out[rows] = vectors
        return out
