"""Export a CLIP text tower to ONNX for torch-free query serving (needs the `[ml]` extra).

`export_clip_text_onnx` writes the text tower, EOS pooling, projection and L2 normalisation
as one ONNX graph, plus `tokenizer.json` and `manifest.json`, for `ClipTextOnnxEncoder`. The
serving path never imports this module; torch and transformers are imported when it runs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from shoprank.errors import ConfigError

from .base import F32
from .clip_model import (
    clip_model_id,
    import_ml,
    load_clip_model,
    projection_dim,
    read_clip_config,
    resolve_clip_dir,
)
from .clip_text import (
    FORMAT,
    FORMAT_VERSION,
    INPUTS,
    MANIFEST_NAME,
    ONNX_NAME,
    OUTPUT,
    TOKENIZER_NAME,
    ClipTextOnnxEncoder,
)

__all__ = ["export_clip_text_onnx"]

_MIN_COSINE = 0.9999


def _text_tower(torch: Any, clip: Any) -> Any:
    """Module (input_ids, attention_mask) -> unit text embeddings, pooling at the EOS token.

    The tokenizer appends EOS as the last real token and padding goes on the right, so the EOS
    position is `sum(attention_mask) - 1`; with CLIP's causal attention the padded positions
    cannot change it, which makes padded batches exact.
    """

    class ClipTextTower(torch.nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.text_model = clip.text_model
            self.text_projection = clip.text_projection

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.text_model(
                input_ids=input_ids, attention_mask=attention_mask
            ).last_hidden_state
            eos = (attention_mask.sum(dim=-1) - 1).clamp(min=0)
            index = eos.view(-1, 1, 1).expand(-1, 1, hidden.shape[-1])
            pooled = torch.gather(hidden, 1, index).squeeze(1)
            embeds = self.text_projection(pooled)
            return embeds / embeds.norm(dim=-1, keepdim=True).clamp(min=1e-12)

    return ClipTextTower().eval()


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """Silence the exporter's known-harmless chatter (warnings and log lines), nothing else."""
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)  # "torchvision is not installed. Skipping ..."
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*LeafSpec", category=FutureWarning)
            warnings.filterwarnings("ignore", message=r"# The axis name", category=UserWarning)
            yield
    finally:
        registration.setLevel(level)


def _reference_text_embeddings(
    torch: Any, clip: Any, tokenizer: Any, texts: list[str], max_length: int
) -> F32:
    """Normalised `CLIPModel.get_text_features` of `texts`: the export's ground truth."""
    batch = tokenizer(
        texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
    )
    with torch.inference_mode():
        features = clip.get_text_features(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        )
        if not isinstance(features, torch.Tensor):
            features = features.pooler_output
        features = torch.nn.functional.normalize(features.float(), dim=-1)
    return np.asarray(features.numpy(), dtype=np.float32)


_VERIFY_TEXTS = [
    "red running shoes",
    "a photo of a laptop",
    "",
    "HP 305A Black Toner Cartridge, 2-pack (CF530A) for LaserJet Pro M154/M180 printers " * 8,
]


def export_clip_text_onnx(model: str | Path, out_dir: Path, *, verify: bool = True) -> Path:
    """Export a CLIP text tower for torch-free serving; returns `out_dir`.

    Writes `text_encoder.onnx` (inputs input_ids and attention_mask, int64 (batch, seq);
    output text_embeds, float32 (batch, dims), L2-normalised), `tokenizer.json` and, last,
    `manifest.json` (model_id of the source weights, dims, max_length, pad_id). With `verify`
    the export is checked against torch on a few texts (cosine >= 0.9999) before the manifest
    is written, so a folder without a manifest is never a usable export.
    """
    torch, transformers = import_ml("exporting the CLIP text tower")
    name = str(model)
    directory = resolve_clip_dir(name)
    config = read_clip_config(directory)
    model_id = clip_model_id(name, directory)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            str(directory), local_files_only=True
        )
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load the CLIP tokenizer of {directory}: {exc}") from exc
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ConfigError(f"the tokenizer of {directory} has no fast (tokenizers) backend")
    clip = load_clip_model(transformers, directory, attn_implementation="eager")
    max_length = int(clip.config.text_config.max_position_embeddings)
    dims = projection_dim(config)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST_NAME).unlink(missing_ok=True)
    # Saved before the transformers tokenizer is called: calls leave padding/truncation state
    # on the backend, which would otherwise end up in tokenizer.json.
    backend.save(str(out_dir / TOKENIZER_NAME))

    tower = _text_tower(torch, clip)
    example = tokenizer(
        ["a photo of red running shoes", "a photo"], padding=True, return_tensors="pt"
    )
    batch_dim = torch.export.Dim("batch", min=1)
    seq_dim = torch.export.Dim("seq", min=2, max=max_length)
    shapes = {key: {0: batch_dim, 1: seq_dim} for key in INPUTS}
    param_bytes = sum(p.numel() * p.element_size() for p in tower.parameters())
    with _quiet_export(), torch.no_grad():
        try:
            torch.onnx.export(
                tower,
                (example["input_ids"], example["attention_mask"]),
                str(out_dir / ONNX_NAME),
                input_names=list(INPUTS),
                output_names=[OUTPUT],
                dynamic_shapes=shapes,
                dynamo=True,
                external_data=param_bytes > 1_500_000_000,  # protobuf's 2 GB limit
                verbose=False,
            )
        except Exception as exc:
            raise ConfigError(f"ONNX export of the CLIP text tower failed: {exc}") from exc

    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_id": model_id,
        "source": name,
        "dims": dims,
        "max_length": max_length,
        "pad_id": int(pad_id),
        "onnx": ONNX_NAME,
        "tokenizer": TOKENIZER_NAME,
        "inputs": list(INPUTS),
        "output": OUTPUT,
        "normalized": True,
        "torch": str(torch.__version__),
        "transformers": str(transformers.__version__),
    }
    if verify:
        staged = ClipTextOnnxEncoder._from_manifest(out_dir, manifest)
        ours = staged.encode(_VERIFY_TEXTS)
        theirs = _reference_text_embeddings(torch, clip, tokenizer, _VERIFY_TEXTS, max_length)
        worst = float(np.sum(ours * theirs, axis=1).min())
        if worst < _MIN_COSINE:
            raise ConfigError(
                f"the exported CLIP text tower disagrees with torch (min cosine {worst:.6f}); "
                f"not writing {out_dir / MANIFEST_NAME}"
            )
    (out_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return out_dir
