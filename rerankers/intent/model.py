"""The intent model's artefacts and their onnxruntime runner.

`data_dir/models/intent/` holds:

- `head.onnx` — inputs `embedding` [N, D] (the query's text embedding, the one retrieval
  already computed) and `bow` [N, H] (hashed word uni/bigrams); output `probs` [N, C] over
  the leaf categories. A one-hidden-layer MLP over the embedding plus a linear layer over
  the bag of words, written as a plain ONNX graph (no torch needed to run it).
- `labels.json` — the C leaf category paths, in output order.
- `vocab.json` — catalog values of each attribute field, price bands per category.
- `types.json` + `types.npz` — instead of the head, for a catalog without categories: the
  product types induced from its text vectors (`product_types.py`).
- `metadata.json` — model_version, index, encoder, dims, training counts and accuracy.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from shoprank.errors import ShoprankError

from .product_types import ProductTypes

CATEGORY_SEPARATOR = " > "
BOW_DIMS = 4096


@dataclass
class Vocabulary:
    """What the catalog offers: attribute values and price bands (per category and `*`)."""

    attributes: dict[str, list[str]] = field(default_factory=dict)
    price_bands: dict[str, dict[str, float]] = field(default_factory=dict)
    source: str = "catalog"

    def band(self, category: str | None, which: str) -> float | None:
        for name in (category, "*"):
            if name and name in self.price_bands and which in self.price_bands[name]:
                return float(self.price_bands[name][which])
        return None

    def to_json(self) -> dict[str, Any]:
        return {"attributes": self.attributes, "price_bands": self.price_bands}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, source: str = "model") -> Vocabulary:
        return cls(
            attributes={str(k): [str(v) for v in vs] for k, vs in data["attributes"].items()},
            price_bands={
                str(k): {str(b): float(x) for b, x in v.items()}
                for k, v in data.get("price_bands", {}).items()
            },
            source=source,
        )


def price_bands(prices_by_category: Mapping[str, Sequence[float]]) -> dict[str, dict[str, float]]:
    """Low (33rd percentile) and high (67th) price of each category with ≥ 3 prices."""
    out: dict[str, dict[str, float]] = {}
    for name, prices in prices_by_category.items():
        if len(prices) >= 3:
            arr = np.asarray(prices, dtype=np.float64)
            out[name] = {
                "low": round(float(np.percentile(arr, 33)), 2),
                "high": round(float(np.percentile(arr, 67)), 2),
            }
    return out


def ancestors(path: str) -> list[str]:
    """ "A > B > C" → ["A", "A > B", "A > B > C"] (what `category_levels` holds)."""
    parts = [p.strip() for p in path.split(">") if p.strip()]
    return [CATEGORY_SEPARATOR.join(parts[: i + 1]) for i in range(len(parts))]


class IntentHead:
    """The category classifier in onnxruntime; load once, call per query (~tens of µs)."""

    def __init__(self, model_dir: Path) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(model_dir / "head.onnx"), options, providers=["CPUExecutionProvider"]
        )
        self.labels: list[str] = json.loads((model_dir / "labels.json").read_text())
        inputs = {i.name: i.shape for i in self.session.get_inputs()}
        self.embedding_dims = int(inputs["embedding"][1])
        self.bow_dims = int(inputs["bow"][1])
        # Leaf probabilities → probabilities of every level (a leaf counts for its ancestors).
        levels: list[str] = []
        for label in self.labels:
            for level in ancestors(label):
                if level not in levels:
                    levels.append(level)
        self.levels = levels
        position = {name: i for i, name in enumerate(levels)}
        self.to_levels = np.zeros((len(self.labels), len(levels)), dtype=np.float32)
        for i, label in enumerate(self.labels):
            for level in ancestors(label):
                self.to_levels[i, position[level]] = 1.0

    def leaf_probs(
        self, embedding: npt.NDArray[np.float32], bow: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.float32]:
        out = self.session.run(
            ["probs"], {"embedding": embedding.reshape(1, -1), "bow": bow.reshape(1, -1)}
        )[0]
        return np.asarray(out[0], dtype=np.float32)

    def level_probs(self, leaf: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        return np.asarray(leaf @ self.to_levels, dtype=np.float32)


def build_head_onnx(
    *,
    w1: npt.NDArray[np.float32],
    b1: npt.NDArray[np.float32],
    w2: npt.NDArray[np.float32],
    b2: npt.NDArray[np.float32],
    wb: npt.NDArray[np.float32],
) -> bytes:
    """Serialise softmax(relu(E·W1 + b1)·W2 + b2 + B·Wb) as an ONNX model (opset 17)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    dims, classes, bow = w1.shape[0], w2.shape[1], wb.shape[0]
    inits = [
        numpy_helper.from_array(np.asarray(a, dtype=np.float32), name)
        for name, a in (("w1", w1), ("b1", b1), ("w2", w2), ("b2", b2), ("wb", wb))
    ]
    nodes = [
        helper.make_node("MatMul", ["embedding", "w1"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h2"]),
        helper.make_node("MatMul", ["h2", "w2"], ["l0"]),
        helper.make_node("Add", ["l0", "b2"], ["l1"]),
        helper.make_node("MatMul", ["bow", "wb"], ["lb"]),
        helper.make_node("Add", ["l1", "lb"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "shoprank_intent_head",
        [
            helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", dims]),
            helper.make_tensor_value_info("bow", TensorProto.FLOAT, ["N", bow]),
        ],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", classes])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


@dataclass
class IntentArtefacts:
    head: IntentHead | None
    vocab: Vocabulary
    metadata: dict[str, Any]
    types: ProductTypes | None = None


def load_artefacts(model_dir: Path) -> IntentArtefacts | None:
    """The trained model in `model_dir`, or None when there is none."""
    meta_path = model_dir / "metadata.json"
    if not meta_path.is_file():
        return None
    try:
        metadata = json.loads(meta_path.read_text())
        vocab = Vocabulary.from_json(json.loads((model_dir / "vocab.json").read_text()))
        head = IntentHead(model_dir) if (model_dir / "head.onnx").is_file() else None
        types = ProductTypes.load(model_dir) if head is None else None
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise ShoprankError(
            f"intent model in {str(model_dir)!r} is unreadable ({type(exc).__name__}: {exc}); "
            "retrain it with `shoprank train intent`"
        ) from exc
    return IntentArtefacts(head, vocab, metadata, types)
