"""Train the intent model: catalog weak supervision plus query → clicked-category pairs.

Each product with a category gives training texts shaped like queries (its title and short
word windows of it, with and without the brand); every logged search whose result was
clicked gives (query, the clicked product's category). The texts are embedded with the
serving text encoder, and a small head (MLP over the embedding + linear over hashed words)
is trained with torch, then written as plain ONNX. Products are split by a hash of their
id: the held-out share measures top-1/top-3 category accuracy and is not trained on.
"""

from __future__ import annotations

import json
import random
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from shoprank.errors import ConfigError, ShoprankError
from shoprank.settings import Settings

from .model import BOW_DIMS, Vocabulary, ancestors, build_head_onnx, price_bands
from .predictor import looks_like_sku
from .product_types import induce
from .service import intent_dir
from .text import hashed_bag, tokenize

MAX_PER_CATEGORY = 2000
SCAN_PAGE = 5000
CLICK_WEIGHT = 3
Encode = Callable[[Sequence[str]], npt.NDArray[np.float32]]


@dataclass
class Example:
    text: str
    label: str
    product: str | None
    source: str  # "title", "window", "click"


def _held_out(product_id: str, share: float) -> bool:
    return (zlib.crc32(product_id.encode("utf-8")) % 10_000) < share * 10_000


def query_texts(product: dict[str, Any], rng: random.Random, *, windows: int = 2) -> list[str]:
    """Query-shaped texts for one product: the title and short windows of its words."""
    title = str(product.get("title") or "")
    brand = str(product.get("brand") or "")
    words = [t.text for t in tokenize(title)]
    brand_keys = {t.key for t in tokenize(brand)}
    plain = [w for w in words if w.lower() not in brand_keys and not looks_like_sku(w)]
    plain = [w for w in plain if not w.isdigit()]
    out = [title]
    for _ in range(windows):
        if not plain:
            break
        n = rng.choice((1, 2, 2, 3))
        start = rng.randrange(max(1, len(plain) - n + 1))
        text = " ".join(plain[start : start + n])
        if brand and rng.random() < 0.3:
            text = f"{brand} {text}"
        out.append(text.lower() if rng.random() < 0.7 else text)
    return out


def catalog_products(
    settings: Settings,
    *,
    index: str | None,
    catalog: Path | None,
    fields: str | None = None,
    price_multiplier: float = 1.0,
) -> Iterator[dict[str, Any]]:
    """Products from a catalog file, or (by category, to stay under result windows) an index."""
    if catalog is not None:
        from shoprank.indexing.catalog import FieldRoles, read_catalog

        yield from read_catalog(
            catalog, roles=FieldRoles.parse(fields), price_multiplier=price_multiplier
        )
        return
    if index is None:
        raise ConfigError("train intent needs --index or --catalog")
    from shoprank.wiring import make_backend

    backend = make_backend(settings)
    aggs = {"c": {"terms": {"field": "category", "size": 100_000}}}
    buckets = backend.search(index, {"size": 0, "aggs": aggs})["aggregations"]["c"]["buckets"]
    if len(buckets) < 2:
        # No taxonomy: every product is read (its types are induced from all of them).
        wanted = ["id", "title", "brand", "price", "category", *settings.intent_attributes]
        yield from scan_products(backend, index, list(dict.fromkeys(wanted)))
        return
    for bucket in buckets:
        body = {
            "query": {"bool": {"filter": [{"term": {"category": bucket["key"]}}]}},
            "size": min(MAX_PER_CATEGORY, 10_000),
        }
        for hit in backend.search(index, body)["hits"]["hits"]:
            yield {"id": hit["_id"], **hit.get("_source", {})}


def scan_products(backend: Any, index: str, fields: Sequence[str]) -> Iterator[dict[str, Any]]:
    """Every product of `index` (those `_source` fields), in pages sorted by `id`."""
    after: list[Any] | None = None
    while True:
        body: dict[str, Any] = {
            "size": SCAN_PAGE,
            "sort": [{"id": "asc"}],
            "_source": list(fields),
            "query": {"match_all": {}},
        }
        if after is not None:
            body["search_after"] = after
        hits = backend.search(index, body)["hits"]["hits"]
        for hit in hits:
            yield {**hit.get("_source", {}), "id": hit["_id"]}
        if len(hits) < SCAN_PAGE:
            return
        after = hits[-1]["sort"]


def click_pairs(settings: Settings, categories: dict[str, str]) -> list[tuple[str, str]]:
    """(query, category of the clicked product) from the behaviour log, when there is one."""
    try:
        from shoprank.events.stores import make_event_log

        log = make_event_log(settings)
        queries: dict[str, str] = {}
        clicks: list[tuple[str, str]] = []
        for _, event in log.read():
            if event.type == "search" and event.query and event.query_id:
                queries[event.query_id] = event.query
            elif event.type in ("click", "add_to_cart", "purchase") and event.query_id:
                clicks += [(event.query_id, event.product_id)] if event.product_id else []
    except (ShoprankError, OSError):
        return []
    out = []
    for query_id, product_id in clicks:
        if query_id in queries and product_id in categories:
            out.append((queries[query_id], categories[product_id]))
    return out


def build_examples(
    products: Iterable[dict[str, Any]],
    *,
    attribute_fields: Sequence[str],
    holdout: float,
    seed: int,
) -> tuple[list[Example], list[Example], Vocabulary, dict[str, str]]:
    rng = random.Random(seed)
    train: list[Example] = []
    test: list[Example] = []
    values: dict[str, Counter[str]] = defaultdict(Counter)
    prices: dict[str, list[float]] = defaultdict(list)
    per_category: Counter[str] = Counter()
    leaf_of: dict[str, str] = {}
    for product in products:
        for name in attribute_fields:
            value = product.get(name)
            if isinstance(value, str) and value.strip() and len(value) <= 64:
                values[name][value.strip()] += 1
        category = product.get("category")
        if isinstance(product.get("price"), int | float):
            for level in ["*"] + (ancestors(category) if isinstance(category, str) else []):
                prices[level].append(float(product["price"]))
        if not isinstance(category, str) or not category.strip():
            continue
        pid = str(product.get("id", ""))
        leaf_of[pid] = category
        per_category[category] += 1
        if per_category[category] > MAX_PER_CATEGORY:
            continue
        target = test if holdout > 0 and _held_out(pid, holdout) else train
        for i, text in enumerate(query_texts(product, rng)):
            target.append(Example(text, category, pid, "title" if i == 0 else "window"))
    vocab = Vocabulary(
        attributes={name: sorted(counter) for name, counter in values.items()},
        price_bands=price_bands(prices),
    )
    return train, test, vocab, leaf_of


def _features(
    examples: Sequence[Example], encode: Encode
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    texts = [e.text for e in examples]
    emb = np.asarray(encode(texts), dtype=np.float32) if texts else np.zeros((0, 1), np.float32)
    bow = np.stack([hashed_bag([t.key for t in tokenize(x)], BOW_DIMS) for x in texts])
    return emb, bow


def fit_head(
    emb: npt.NDArray[np.float32],
    bow: npt.NDArray[np.float32],
    labels: npt.NDArray[np.int64],
    classes: int,
    *,
    epochs: int,
    seed: int,
    hidden: int = 256,
) -> dict[str, npt.NDArray[np.float32]]:
    """Train the head with torch (imported here only); returns the weights as numpy."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is in the [ml] extra
        raise ConfigError(
            "training the intent model needs torch: pip install 'shoprank[ml]'"
        ) from exc
    torch.manual_seed(seed)
    x_e = torch.from_numpy(emb)
    x_b = torch.from_numpy(bow)
    y = torch.from_numpy(labels)
    l1 = torch.nn.Linear(emb.shape[1], hidden)
    l2 = torch.nn.Linear(hidden, classes)
    lb = torch.nn.Linear(bow.shape[1], classes, bias=False)
    torch.nn.init.zeros_(lb.weight)
    params = list(l1.parameters()) + list(l2.parameters()) + list(lb.parameters())
    opt = torch.optim.AdamW(params, lr=3e-3, weight_decay=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.05)
    n = len(labels)
    batch = 256
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        for i in range(0, n, batch):
            idx = order[i : i + batch]
            hidden_act = torch.nn.functional.dropout(torch.relu(l1(x_e[idx])), 0.2, True)
            logits = l2(hidden_act) + lb(x_b[idx])
            loss = loss_fn(logits, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        return {
            "w1": l1.weight.T.contiguous().numpy().astype(np.float32),
            "b1": l1.bias.numpy().astype(np.float32),
            "w2": l2.weight.T.contiguous().numpy().astype(np.float32),
            "b2": l2.bias.numpy().astype(np.float32),
            "wb": lb.weight.T.contiguous().numpy().astype(np.float32),
        }


def _accuracy(
    probs: npt.NDArray[np.float32], labels: npt.NDArray[np.int64], examples: Sequence[Example]
) -> dict[str, Any]:
    if len(labels) == 0:
        return {}
    top = np.argsort(-probs, axis=1)[:, :3]
    out: dict[str, Any] = {}
    for source in ("title", "window", "click", "all"):
        mask = np.array([source in ("all", e.source) for e in examples])
        if not mask.any():
            continue
        hit1 = top[mask, 0] == labels[mask]
        hit3 = (top[mask] == labels[mask][:, None]).any(axis=1)
        out[source] = {
            "n": int(mask.sum()),
            "top1": round(float(hit1.mean()), 4),
            "top3": round(float(hit3.mean()), 4),
        }
    return out


def train_intent(
    settings: Settings,
    *,
    index: str | None = None,
    catalog: Path | None = None,
    fields: str | None = None,
    price_multiplier: float = 1.0,
    holdout: float = 0.2,
    epochs: int = 25,
    seed: int = 13,
    use_clicks: bool = True,
    encode: Encode | None = None,
    encoder_name: Callable[[], str] | None = None,
    out_dir: Path | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """Build the intent model from `catalog` (a file) or `index`; returns its metadata.

    `encode` defaults to the serving text encoder; `encoder_name` names a passed-in `encode`
    in the metadata (asked once it has embedded; else "custom"); `limit` trains on the
    first N products.
    """
    started = time.time()
    products: Iterable[dict[str, Any]] = catalog_products(
        settings, index=index, catalog=catalog, fields=fields, price_multiplier=price_multiplier
    )
    if limit is not None:
        products = (p for i, p in zip(range(limit), products, strict=False))
    records: list[tuple[str, str, float | None]] = []  # what product types are induced from

    def recording(items: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for product in items:
            price = product.get("price")
            number = float(price) if isinstance(price, int | float) else None
            records.append((str(product.get("id", "")), str(product.get("title") or ""), number))
            yield product

    train, test, vocab, leaf_of = build_examples(
        recording(products), attribute_fields=settings.intent_attributes, holdout=holdout, seed=seed
    )
    clicks = click_pairs(settings, leaf_of) if use_clicks else []
    for query, category in clicks:
        for _ in range(CLICK_WEIGHT):
            train.append(Example(query, category, None, "click"))
    labels = sorted({e.label for e in train})
    if len(labels) < 2 and (index is None or catalog is not None):
        raise ConfigError(
            f"train intent needs products in at least 2 categories, found {len(labels)}: "
            "load a catalog with a `category` column (a path `A > B > C`), or train on the "
            "loaded index (--index), whose product types are then induced from its vectors"
        )
    position = {name: i for i, name in enumerate(labels)}
    test = [e for e in test if e.label in position]
    if encode is None:
        from shoprank.wiring import text_encoder

        encoder = text_encoder(settings)
        dims = encoder.dims
        model_name = f"{encoder.__class__.__name__}:{settings.text_model}"

        def encode_fn(texts: Sequence[str]) -> npt.NDArray[np.float32]:
            return np.asarray(encoder.encode(list(texts), batch_size=128), dtype=np.float32)

        encode = encode_fn
    else:
        dims = int(np.asarray(encode(["probe"])).shape[1])
        model_name = encoder_name() if encoder_name is not None else "custom"
    target = out_dir or intent_dir(settings)
    if len(labels) < 2:
        assert index is not None
        return _train_types(
            settings,
            index=index,
            records=records,
            vocab=vocab,
            encode=encode,
            dims=dims,
            model_name=lambda: encoder_name() if encoder_name is not None else model_name,
            target=target,
            seed=seed,
            started=started,
        )
    emb, bow = _features(train, encode)
    y = np.array([position[e.label] for e in train], dtype=np.int64)
    weights = fit_head(emb, bow, y, len(labels), epochs=epochs, seed=seed)
    onnx_bytes = build_head_onnx(**weights)

    accuracy: dict[str, Any] = {}
    if test:
        import onnxruntime as ort

        session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
        t_emb, t_bow = _features(test, encode)
        probs = session.run(["probs"], {"embedding": t_emb, "bow": t_bow})[0]
        accuracy = _accuracy(probs, np.array([position[e.label] for e in test]), test)

    version = time.strftime("%Y%m%d%H%M%S", time.gmtime()) + f"-{zlib.crc32(onnx_bytes):08x}"
    metadata: dict[str, Any] = {
        "model_version": f"intent-{version}",
        "index": index,
        "catalog": str(catalog) if catalog else None,
        "encoder": model_name,
        "embedding_dims": dims,
        "bow_dims": BOW_DIMS,
        "categories": len(labels),
        "train_examples": len(train),
        "held_out_examples": len(test),
        "click_pairs": len(clicks),
        "holdout": holdout,
        "accuracy": accuracy,
    }

    def write_head() -> None:
        tmp = target / ".head.onnx.tmp"
        tmp.write_bytes(onnx_bytes)
        tmp.replace(target / "head.onnx")
        (target / "labels.json").write_text(json.dumps(labels, ensure_ascii=False))

    return _write_model(
        target, vocab, metadata, started, stale=("types.json", "types.npz"), write=write_head
    )


def _write_model(
    target: Path,
    vocab: Vocabulary,
    metadata: dict[str, Any],
    started: float,
    *,
    stale: Sequence[str],
    write: Callable[[], None],
) -> dict[str, Any]:
    """One kind of intent model into `target`: the other kind's files removed, `write`, the
    vocabulary, the metadata last (its mtime is what serving processes watch to reload)."""
    metadata.update(
        attribute_values={k: len(v) for k, v in vocab.attributes.items()},
        trained_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        train_seconds=round(time.time() - started, 1),
    )
    target.mkdir(parents=True, exist_ok=True)
    for name in stale:
        (target / name).unlink(missing_ok=True)
    write()
    (target / "vocab.json").write_text(json.dumps(vocab.to_json(), ensure_ascii=False))
    (target / "metadata.json").write_text(json.dumps(metadata, indent=2, ensure_ascii=False))
    return metadata


def _train_types(
    settings: Settings,
    *,
    index: str,
    records: Sequence[tuple[str, str, float | None]],
    vocab: Vocabulary,
    encode: Encode,
    dims: int,
    model_name: Callable[[], str],
    target: Path,
    seed: int,
    started: float,
) -> dict[str, Any]:
    """The intent model of a catalog without categories: product types induced from the
    index's text vectors (`product_types.py`) instead of a trained head; price bands per
    type. Written like the head's model, metadata last."""
    from shoprank.indexing.mapping import TEXT_VECTOR_FIELD
    from shoprank.wiring import make_backend

    backend = make_backend(settings)
    ids = [pid for pid, _, _ in records]
    vectors: dict[str, npt.NDArray[np.float32]] = {}
    if TEXT_VECTOR_FIELD in backend.vector_fields(index):
        for i in range(0, len(ids), SCAN_PAGE):
            vectors.update(backend.vectors_of(index, ids[i : i + SCAN_PAGE], TEXT_VECTOR_FIELD))
    if not vectors:
        raise ConfigError(
            f"index [{index}] has no categories and no `{TEXT_VECTOR_FIELD}` to induce product "
            "types from: load it with text vectors, or with a `category` column"
        )
    stored = len(next(iter(vectors.values())))
    if stored != dims:
        raise ConfigError(
            f"index [{index}] holds {stored}-dimensional text vectors but the text encoder "
            f"gives {dims}: re-index with the serving encoder before training intent"
        )
    try:
        types = induce(
            [(pid, title) for pid, title, _ in records],
            vectors,
            encode=encode,
            windows_of=lambda title, rng: query_texts({"title": title}, rng)[1:],
            seed=seed,
        )
    except ValueError as exc:
        raise ConfigError(f"train intent: index [{index}] has no categories and {exc}") from exc
    prices: dict[str, list[float]] = defaultdict(list)
    for pid, _, price in records:
        name = types.of(pid)
        if name is not None and price is not None:
            prices[name].append(price)
    vocab.price_bands.update(price_bands(prices))
    sizes = Counter(types.names[int(label)] for label in types.labels)
    fingerprint = zlib.crc32(types.centroids.tobytes())
    version = time.strftime("%Y%m%d%H%M%S", time.gmtime()) + f"-{fingerprint:08x}"
    metadata: dict[str, Any] = {
        "model_version": f"intent-{version}",
        "kind": "product_types",
        "index": index,
        "catalog": None,
        "encoder": model_name(),
        "embedding_dims": dims,
        "categories": 0,
        "product_types": len(types.names),
        "largest_types": [name for name, _ in sizes.most_common(10)],
        "temperature": types.temperature,
        "train_examples": len(types.ids),
        "held_out_examples": int((types.accuracy.get("all") or {}).get("n", 0)),
        "click_pairs": 0,
        "accuracy": types.accuracy,
    }
    return _write_model(
        target,
        vocab,
        metadata,
        started,
        stale=("head.onnx", "labels.json"),
        write=lambda: types.save(target),
    )
