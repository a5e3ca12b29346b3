"""all-MiniLM-L6-v2 in pure numpy: the torch-free text encoder the serving path defaults to.

`NumpyBertEncoder` needs only numpy, tokenizers and safetensors and reproduces
sentence-transformers' embeddings (BERT encoder, mean pooling, L2 normalisation) to float32
rounding. Tokenizers and safetensors are imported when the encoder is warmed up.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from shoprank.errors import ConfigError

from .base import F32, Lazy, LazyEncoder, check_encode_args, check_max_length, length_batches
from .minilm import DEFAULT_MODEL, MODEL_FIX, REQUIRED_FILES, minilm_model_id, resolve_model_dir

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = ["NumpyBertEncoder"]


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
            raise ConfigError(f"cannot read {path}: {exc}; {MODEL_FIX}") from exc
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
        raise ConfigError(f"cannot read weights {path}: {exc}; {MODEL_FIX}") from exc
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

    missing = [name for name in REQUIRED_FILES if not (directory / name).is_file()]
    if missing:
        raise ConfigError(f"model directory {directory} lacks {', '.join(missing)}; {MODEL_FIX}")
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


class NumpyBertEncoder(LazyEncoder[_Bert]):
    """all-MiniLM-L6-v2 (or any BERT + mean pooling model) in pure numpy: no torch needed.

    Construction only resolves the model directory; `warm_up` (or the first `encode`) loads the
    tokenizer and weights, once, under a lock. Safe to share between threads.
    """

    def __init__(self, model: str = DEFAULT_MODEL, *, max_length: int = 128) -> None:
        super().__init__()
        self.model = model
        self.max_length = check_max_length(max_length)
        self.directory = resolve_model_dir(model)
        self._config = Lazy(lambda: _BertConfig.read(self.directory))

    def __repr__(self) -> str:
        return f"NumpyBertEncoder({self.model!r}, max_length={self.max_length})"

    @property
    def dims(self) -> int:
        """Hidden size from config.json (384 for MiniLM); does not load the weights."""
        return self._config.get().hidden

    def _fingerprint(self) -> str:
        """`all-MiniLM-L6-v2@<sha256[:12] of model.safetensors>`."""
        return minilm_model_id(self.model, self.directory)

    def _load(self) -> _Bert:
        bert = _load_bert(self.directory, self.max_length)
        self._identity.get()  # warming up also fingerprints the weights
        return bert

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> F32:
        """Embed texts, batching similar token lengths together; output keeps input order."""
        check_encode_args(texts, batch_size)
        bert = self._loaded()
        out = np.empty((len(texts), bert.config.hidden), dtype=np.float32)
        if len(texts) == 0:
            return out
        encodings = bert.tokenizer.encode_batch(list(texts), add_special_tokens=True)
        token_ids = [encoding.ids for encoding in encodings]
        for rows, ids, mask in length_batches(token_ids, batch_size, bert.config.pad_id):
            out[rows] = _forward(bert, ids, mask.astype(np.float32))
        return out
