"""CLIP: image vectors for indexing (torch) and query text vectors for serving (onnxruntime).

CLIP puts images and texts in one vector space, so a query's text vector can be searched
against the products' image vectors (the text-to-image kNN leg).

- `ClipImageEncoder` runs `transformers.CLIPModel` on torch (the `[ml]` extra), in workers.
- `export_clip_text_onnx` writes the text tower, EOS pooling, projection and L2 normalisation
  as one ONNX graph, plus `tokenizer.json` and `manifest.json`.
- `ClipTextOnnxEncoder` implements `TextEncoder` on that export with onnxruntime and
  `tokenizers` only: the query path never imports torch or transformers.
- `make_tiny_clip` builds a small randomly initialised CLIP (with its own BPE tokenizer) for
  tests and demos, since real checkpoints cannot be downloaded here.

Models are never downloaded: `model` is a local directory, or a Hugging Face name that is
already in the local cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import threading
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from shoprank.errors import ConfigError

if TYPE_CHECKING:
    from PIL.Image import Image
    from tokenizers import Tokenizer

__all__ = [
    "MANIFEST_NAME",
    "ClipImageEncoder",
    "ClipTextOnnxEncoder",
    "export_clip_text_onnx",
    "make_tiny_clip",
    "resolve_clip_dir",
]

F32 = npt.NDArray[np.float32]

MANIFEST_NAME = "manifest.json"
_ONNX_NAME = "text_encoder.onnx"
_TOKENIZER_NAME = "tokenizer.json"
_FORMAT = "shoprank-clip-text-onnx"
_FORMAT_VERSION = 1
_INPUTS = ("input_ids", "attention_mask")
_OUTPUT = "text_embeds"
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")
_ML_HINT = "install torch==2.13.0 (CPU build) first, then `pip install 'shoprank[ml]'`"
_MODEL_FIX = (
    "fix: point the CLIP model setting at a local directory holding a transformers CLIP "
    "checkpoint (config.json, model.safetensors, tokenizer and preprocessor files), or at a "
    "Hugging Face model name that is already in the local cache; models are never downloaded"
)
_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_MIN_COSINE = 0.9999
_MAX_ASPECT = 4.0  # longer side / shorter side kept before CLIP's own resize + centre crop


# --------------------------------------------------------------------------------------------
# Model location and identity


def _cached_hub_dir(name: str) -> Path | None:
    """The snapshot folder of an already-cached Hugging Face model, without network access."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        found = try_to_load_from_cache(name, "config.json")
    except Exception:  # invalid repo ids raise the hub's own validation errors
        return None
    return Path(found).parent if isinstance(found, str) else None


def resolve_clip_dir(model: str) -> Path:
    """The local directory of a CLIP model (a path, or a cached hub name); ConfigError if none."""
    if not isinstance(model, str) or not model.strip():
        raise ConfigError(f"the CLIP model setting is empty; {_MODEL_FIX}")
    path = Path(model).expanduser()
    if path.is_dir():
        return path.resolve()
    if not path.exists() and _HUB_NAME.match(model):
        cached = _cached_hub_dir(model)
        if cached is not None:
            return cached
    raise ConfigError(
        f"CLIP model {model!r} is neither an existing directory nor a Hugging Face model in "
        f"the local cache; {_MODEL_FIX}"
    )


@lru_cache(maxsize=16)
def _sha256_prefix(path: str, size: int, mtime_ns: int) -> str:
    """First 12 hex digits of a file's SHA-256; size and mtime key the cache."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()[:12]


def _clip_model_id(model: str, directory: Path) -> str:
    """`<name>@<weights sha256[:12]>`; the name is the folder's, or a hub name's last part."""
    name = directory.name if Path(model).expanduser().is_dir() else model.rstrip("/")
    name = name.rsplit("/", 1)[-1]
    for filename in _WEIGHT_FILES:
        weights = directory / filename
        if weights.is_file():
            stat = weights.stat()
            return f"{name}@{_sha256_prefix(str(weights), stat.st_size, stat.st_mtime_ns)}"
    raise ConfigError(f"no weights ({' or '.join(_WEIGHT_FILES[:2])}) in {directory}; {_MODEL_FIX}")


def _read_clip_config(directory: Path) -> dict[str, Any]:
    """config.json of a CLIP checkpoint (model_type 'clip'); ConfigError otherwise."""
    path = directory / "config.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}; {_MODEL_FIX}") from exc
    if not isinstance(raw, dict) or raw.get("model_type") != "clip":
        kind = raw.get("model_type") if isinstance(raw, dict) else None
        raise ConfigError(f"{path} is not a CLIP config (model_type={kind!r}); {_MODEL_FIX}")
    return raw


def _projection_dim(config: dict[str, Any]) -> int:
    return int(config.get("projection_dim", 512))  # CLIPConfig's default


def _import_ml(purpose: str) -> tuple[Any, Any]:
    """(torch, transformers), or ConfigError naming the extra to install."""
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise ConfigError(
            f"{purpose} needs torch and transformers, which are not installed ({exc}); {_ML_HINT}"
        ) from exc
    return torch, transformers


def _load_clip_model(transformers: Any, directory: Path, **kwargs: Any) -> Any:
    """CLIPModel from a local folder, float32, eval mode; never downloads."""
    try:
        model = transformers.CLIPModel.from_pretrained(
            str(directory), local_files_only=True, **kwargs
        )
    except Exception as exc:  # OSError, ValueError, safetensors' own errors, ...
        raise ConfigError(
            f"cannot load CLIP weights from {directory}: {exc}; {_MODEL_FIX}"
        ) from exc
    return model.float().eval()


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


# --------------------------------------------------------------------------------------------
# Image encoder (torch)


@dataclass(frozen=True)
class _TorchClip:
    torch: Any
    model: Any
    processor: Any


class ClipImageEncoder:
    """CLIP image embeddings with torch + transformers (`[ml]` extra), L2-normalised float32.

    Construction only resolves the model directory; `warm_up` (or the first encode) imports
    torch and loads the weights and image processor, once, under a lock.
    """

    def __init__(self, model: str, *, device: str = "cpu") -> None:
        self.model = model
        self.device = device
        self.directory = resolve_clip_dir(model)
        self._lock = threading.Lock()
        self._clip: _TorchClip | None = None
        self._id: str | None = None
        self._dims: int | None = None

    def __repr__(self) -> str:
        return f"ClipImageEncoder({self.model!r}, device={self.device!r})"

    @property
    def model_id(self) -> str:
        """`<name>@<sha256[:12] of the weights>`; ClipTextOnnxEncoder exports carry the same."""
        if self._id is None:
            with self._lock:
                if self._id is None:
                    self._id = _clip_model_id(self.model, self.directory)
        return self._id

    @property
    def dims(self) -> int:
        """The projection dimension from config.json (loads no weights)."""
        if self._dims is None:
            self._dims = _projection_dim(_read_clip_config(self.directory))
        return self._dims

    def warm_up(self) -> None:
        """Import torch/transformers, load weights and image processor, fingerprint weights."""
        self._loaded()

    def _loaded(self) -> _TorchClip:
        clip = self._clip
        if clip is not None:
            return clip
        with self._lock:
            if self._clip is None:
                self._clip = self._load()
            return self._clip

    def _load(self) -> _TorchClip:
        torch, transformers = _import_ml("the CLIP image encoder")
        config = _read_clip_config(self.directory)
        if self._id is None:
            self._id = _clip_model_id(self.model, self.directory)
        if not (self.directory / "preprocessor_config.json").is_file():
            raise ConfigError(f"{self.directory} lacks preprocessor_config.json; {_MODEL_FIX}")
        # The PIL image processor on purpose: the same pixels whether or not torchvision is
        # installed (transformers 5 prefers a torchvision backend that resizes differently).
        processor_class = getattr(transformers, "CLIPImageProcessorPil", None)
        if processor_class is None:
            processor_class = transformers.CLIPImageProcessor
        try:
            processor = processor_class.from_pretrained(str(self.directory), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot load the image processor of {self.directory}: {exc}"
            ) from exc
        model = _load_clip_model(transformers, self.directory)
        try:
            model = model.to(self.device)
        except (RuntimeError, AssertionError, ValueError) as exc:
            raise ConfigError(
                f"cannot move the CLIP model to device {self.device!r}: {exc}"
            ) from exc
        self._dims = _projection_dim(config)
        return _TorchClip(torch=torch, model=model, processor=processor)

    def encode_images(self, images: Sequence[Image], *, batch_size: int = 32) -> F32:
        """Embed PIL images in order: float32, shape (len(images), dims), rows of unit length."""
        from shoprank.indexing.images import to_rgb

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if hasattr(images, "size") and hasattr(images, "mode"):
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
            try:
                block = self.encode_images([images[i] for i in rows], batch_size=batch_size)
            except ConfigError:
                raise
            except Exception:  # find the image that breaks the batch, embed the others
                block = None
            for offset, i in enumerate(rows):
                image = images[i]
                images[i] = None  # release the pixels once embedded
                if block is not None:
                    vectors[i] = block[offset]
                    continue
                try:
                    vectors[i] = self.encode_images([image])[0]
                except ConfigError:
                    raise
                except Exception as exc:
                    errors[i] = f"cannot embed image: {type(exc).__name__}: {exc}"
        return vectors, errors


# --------------------------------------------------------------------------------------------
# ONNX export of the text tower


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
    torch, transformers = _import_ml("exporting the CLIP text tower")
    name = str(model)
    directory = resolve_clip_dir(name)
    config = _read_clip_config(directory)
    model_id = _clip_model_id(name, directory)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            str(directory), local_files_only=True
        )
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load the CLIP tokenizer of {directory}: {exc}") from exc
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ConfigError(f"the tokenizer of {directory} has no fast (tokenizers) backend")
    clip = _load_clip_model(transformers, directory, attn_implementation="eager")
    max_length = int(clip.config.text_config.max_position_embeddings)
    dims = _projection_dim(config)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST_NAME).unlink(missing_ok=True)
    # Saved before the transformers tokenizer is called: calls leave padding/truncation state
    # on the backend, which would otherwise end up in tokenizer.json.
    backend.save(str(out_dir / _TOKENIZER_NAME))

    tower = _text_tower(torch, clip)
    example = tokenizer(
        ["a photo of red running shoes", "a photo"], padding=True, return_tensors="pt"
    )
    batch_dim = torch.export.Dim("batch", min=1)
    seq_dim = torch.export.Dim("seq", min=2, max=max_length)
    shapes = {key: {0: batch_dim, 1: seq_dim} for key in _INPUTS}
    param_bytes = sum(p.numel() * p.element_size() for p in tower.parameters())
    with _quiet_export(), torch.no_grad():
        try:
            torch.onnx.export(
                tower,
                (example["input_ids"], example["attention_mask"]),
                str(out_dir / _ONNX_NAME),
                input_names=list(_INPUTS),
                output_names=[_OUTPUT],
                dynamic_shapes=shapes,
                dynamo=True,
                external_data=param_bytes > 1_500_000_000,  # protobuf's 2 GB limit
                verbose=False,
            )
        except Exception as exc:
            raise ConfigError(f"ONNX export of the CLIP text tower failed: {exc}") from exc

    manifest = {
        "format": _FORMAT,
        "format_version": _FORMAT_VERSION,
        "model_id": model_id,
        "source": name,
        "dims": dims,
        "max_length": max_length,
        "pad_id": int(pad_id),
        "onnx": _ONNX_NAME,
        "tokenizer": _TOKENIZER_NAME,
        "inputs": list(_INPUTS),
        "output": _OUTPUT,
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


# --------------------------------------------------------------------------------------------
# Text encoder (onnxruntime + tokenizers only)


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
    if not isinstance(raw, dict) or raw.get("format") != _FORMAT:
        raise ConfigError(f"{path} is not a {_FORMAT} manifest; {fix}")
    if raw.get("format_version") != _FORMAT_VERSION:
        raise ConfigError(
            f"{path} has format_version {raw.get('format_version')!r}, this shoprank reads "
            f"{_FORMAT_VERSION}; re-export the model"
        )
    for key, kind in (("model_id", str), ("dims", int), ("max_length", int), ("pad_id", int)):
        if not isinstance(raw.get(key), kind) or isinstance(raw.get(key), bool):
            raise ConfigError(f"{path}: {key!r} is missing or not a {kind.__name__}; {fix}")
    return raw


@dataclass(frozen=True)
class _OnnxText:
    session: Any
    tokenizer: Tokenizer


class ClipTextOnnxEncoder:
    """CLIP query text vectors with onnxruntime and tokenizers: no torch, no transformers.

    `model_dir` is an `export_clip_text_onnx` folder. `model_id` is the source CLIP's, the id
    `ClipImageEncoder` reports for the same weights, so text and image vectors can be matched.
    Special-token strings typed into a query are tokenised as plain text. Thread-safe.
    """

    def __init__(self, model_dir: str | Path, *, threads: int | None = None) -> None:
        self.directory = Path(model_dir).expanduser()
        self.threads = threads
        self._manifest = _read_manifest(self.directory)
        self._lock = threading.Lock()
        self._state: _OnnxText | None = None

    @classmethod
    def _from_manifest(cls, directory: Path, manifest: dict[str, Any]) -> ClipTextOnnxEncoder:
        """An encoder on a manifest not yet written to disk (export verification)."""
        encoder = cls.__new__(cls)
        encoder.directory = directory
        encoder.threads = None
        encoder._manifest = manifest
        encoder._lock = threading.Lock()
        encoder._state = None
        return encoder

    def __repr__(self) -> str:
        return f"ClipTextOnnxEncoder({str(self.directory)!r})"

    @property
    def model_id(self) -> str:
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

    def warm_up(self) -> None:
        """Load the tokenizer and the ONNX session now."""
        self._loaded()

    def _loaded(self) -> _OnnxText:
        state = self._state
        if state is not None:
            return state
        with self._lock:
            if self._state is None:
                self._state = self._load()
            return self._state

    def _load(self) -> _OnnxText:
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise ConfigError(
                f"the CLIP text encoder needs onnxruntime and tokenizers ({exc}); "
                "`pip install onnxruntime tokenizers`"
            ) from exc
        onnx_path = self.directory / str(self._manifest.get("onnx", _ONNX_NAME))
        tokenizer_path = self.directory / str(self._manifest.get("tokenizer", _TOKENIZER_NAME))
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
        if sorted(names) != sorted(_INPUTS):
            raise ConfigError(f"{onnx_path} takes inputs {names}, expected {list(_INPUTS)}")
        return _OnnxText(session=session, tokenizer=tokenizer)

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> F32:
        """Embed texts, batching similar token lengths together; output keeps input order."""
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of strings, not a single string")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        state = self._loaded()
        count = len(texts)
        out = np.empty((count, self.dims), dtype=np.float32)
        if count == 0:
            return out
        encodings = state.tokenizer.encode_batch(list(texts), add_special_tokens=True)
        token_ids = [encoding.ids for encoding in encodings]
        lengths = np.fromiter(map(len, token_ids), dtype=np.int64, count=count)
        order = np.argsort(lengths, kind="stable")
        pad_id = int(self._manifest["pad_id"])
        for start in range(0, count, batch_size):
            rows = order[start : start + batch_size]
            width = int(lengths[rows].max())
            ids = np.full((len(rows), width), pad_id, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for row, index in enumerate(rows):
                seq = token_ids[index]
                ids[row, : len(seq)] = seq
                mask[row, : len(seq)] = 1
            (vectors,) = state.session.run([_OUTPUT], {"input_ids": ids, "attention_mask": mask})
            out[rows] = vectors
        return out


# --------------------------------------------------------------------------------------------
# A tiny random CLIP for tests and demos


# Words the tiny tokenizer keeps whole; anything else falls back to byte-level pieces.
_TINY_VOCABULARY = """
a an the of and with for in on to by photo picture image product red blue green black
white grey gray yellow orange pink purple brown silver gold running shoes shoe sneakers
boots shirt t dress jacket jeans hat bag backpack watch laptop phone mouse keyboard
monitor printer toner cartridge cable charger headphones camera tablet speaker wireless
usb leather cotton men women kids small large
"""
_TINY_WORDS = tuple(_TINY_VOCABULARY.split())


def _byte_alphabet() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for bytes, in GPT-2/CLIP order."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("\xa1"), ord("\xac") + 1),
        *range(ord("\xae"), ord("\xff") + 1),
    ]
    codes = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            codes.append(256 + extra)
            extra += 1
    return [chr(code) for code in codes]


def _apply_merges(symbols: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """Greedy BPE: repeatedly merge the adjacent pair with the lowest rank."""
    while len(symbols) > 1:
        best: tuple[int, int] | None = None
        for i in range(len(symbols) - 1):
            rank = ranks.get((symbols[i], symbols[i + 1]))
            if rank is not None and (best is None or rank < best[0]):
                best = (rank, i)
        if best is None:
            break
        i = best[1]
        symbols = [*symbols[:i], symbols[i] + symbols[i + 1], *symbols[i + 2 :]]
    return symbols


def _tiny_bpe(words: Sequence[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A CLIP-style byte-level BPE vocabulary in which every word of `words` is one token.

    Layout as in CLIP: 256 byte symbols, the same with `</w>`, merge results, then
    `<|startoftext|>` and `<|endoftext|>`. Each word's merges are appended after all earlier
    ones and always join the leftmost pair left, so later words cannot split earlier ones.
    """
    alphabet = _byte_alphabet()
    vocab = {symbol: i for i, symbol in enumerate(alphabet)}
    for symbol in alphabet:
        vocab[symbol + "</w>"] = len(vocab)
    merges: list[tuple[str, str]] = []
    ranks: dict[tuple[str, str], int] = {}
    for word in words:
        symbols = [*word[:-1], word[-1] + "</w>"]
        while len(symbols := _apply_merges(symbols, ranks)) > 1:
            pair = (symbols[0], symbols[1])
            ranks[pair] = len(merges)
            merges.append(pair)
            vocab.setdefault(pair[0] + pair[1], len(vocab))
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    return vocab, merges


def make_tiny_clip(out_dir: Path, *, seed: int = 0) -> Path:
    """Save a small randomly initialised CLIP that loads offline; returns `out_dir`.

    Vision: 32x32 images, 8x8 patches, width 32, 2 layers, 2 heads. Text: a byte-level BPE
    tokenizer of about 600 tokens (common product words are single tokens), width 32,
    2 layers, 2 heads, 32 positions. Projection: 16 dims. The same seed gives the same weights.
    """
    torch, transformers = _import_ml("building a tiny CLIP")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab, merges = _tiny_bpe(_TINY_WORDS)
    (out_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    merge_lines = "".join(f"{left} {right}\n" for left, right in merges)
    (out_dir / "merges.txt").write_text("#version: 0.2\n" + merge_lines, encoding="utf-8")
    positions = 32
    tokenizer = transformers.CLIPTokenizerFast.from_pretrained(
        str(out_dir), local_files_only=True, model_max_length=positions
    )
    tokenizer.save_pretrained(str(out_dir))

    config = transformers.CLIPConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": positions,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={
            "image_size": 32,
            "patch_size": 8,
            "num_channels": 3,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
        },
        projection_dim=16,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = transformers.CLIPModel(config).eval()
    model.save_pretrained(str(out_dir))

    processor_class = getattr(transformers, "CLIPImageProcessorPil", None)
    if processor_class is None:
        processor_class = transformers.CLIPImageProcessor
    processor_class(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    ).save_pretrained(str(out_dir))
    return out_dir
