"""What shoprank costs per search in front of Elasticsearch / OpenSearch, with no network.

    python benchmarks/bench_cluster_proxy.py --out benchmarks/results/cluster-proxy.json

Each search runs through `SearchService` on the ES and OpenSearch backends, whose official
clients send to the contract tests' recording transport (`ScriptedCluster`, 500 products
with 384-float vectors). Reported per search and mode: requests sent to the cluster, bytes
sent, and shoprank's own time — total time minus the time the scripted
cluster spent answering, i.e. body rewriting, the clients' serialisation / deserialisation,
fusion and the page fetch. The query vector is computed once (embedding is measured in
bench_embedded.py); a real cluster adds its own search time and one network round trip per
request on top.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from shoprank.indexing.mapping import product_mapping
from shoprank.plugin.backends.elasticsearch import ElasticsearchBackend
from shoprank.plugin.backends.opensearch import OpenSearchBackend
from shoprank.plugin.search import SearchService
from shoprank.settings import Settings
from shoprank.testing.recording import (
    ScriptedCluster,
    recording_elasticsearch,
    recording_opensearch,
)

BRANDS = ["HP", "Dell", "Sony", "Lenovo", "Apple", "Logitech"]
BODIES: dict[str, dict[str, Any]] = {
    "lexical": {"query": {"match": {"title": "wireless mouse"}}},
    "vector": {"query": {"match": {"title": "wireless mouse"}}},
    "hybrid": {"query": {"match": {"title": "wireless mouse"}}},
    "hybrid + filter + aggs": {
        "query": {"bool": {"must": {"match": {"title": "wireless mouse"}},
                           "filter": {"range": {"price": {"lte": 100}}}}},
        "aggs": {"brands": {"terms": {"field": "brand"}}, "price": {"stats": {"field": "price"}}},
    },
    "hybrid, native fusion": {"query": {"match": {"title": "wireless mouse"}}},
}  # fmt: skip


class Vectors:
    """A fixed query vector: this measures the cluster path, not the encoder."""

    dims = 384

    def __init__(self) -> None:
        rng = np.random.default_rng(7)
        vector = rng.normal(size=(1, self.dims)).astype(np.float32)
        self.vector = vector / np.linalg.norm(vector)

    def warm_up(self) -> None:
        pass

    def encode(self, texts: list[str]) -> Any:
        return np.repeat(self.vector, len(texts), axis=0)


def _timed_cluster(cluster: ScriptedCluster) -> list[float]:
    spent: list[float] = []
    handle = cluster.handle

    def timed(method: str, target: str, raw: bytes | None) -> tuple[int, Any]:
        started = time.perf_counter()
        try:
            return handle(method, target, raw)
        finally:
            spent.append(time.perf_counter() - started)

    cluster.handle = timed  # type: ignore[method-assign]
    return spent


def run(engine: str, products: int, repeats: int) -> dict[str, Any]:
    client = recording_elasticsearch() if engine == "elasticsearch" else recording_opensearch()
    backend: Any = (ElasticsearchBackend if engine == "elasticsearch" else OpenSearchBackend)(
        client
    )
    cluster: ScriptedCluster = client.scripted
    rng = np.random.default_rng(1)
    generation = backend.create_generation("products", product_mapping(text_dims=384))
    docs = [
        {"_id": f"p{i}", "title": f"wireless mouse model {i}", "brand": BRANDS[i % 6],
         "price": float(5 + i % 200), "description": "A product description " * 8}
        for i in range(products)
    ]  # fmt: skip
    vectors = rng.normal(size=(products, 384)).astype(np.float32)
    backend.write_batch(generation, docs, {"text_vector": vectors})
    backend.commit(generation, ready=True)
    backend.swap_alias("products", generation)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for shape, body in BODIES.items():
            mode = "hybrid" if shape.startswith("hybrid") else shape
            settings = Settings(data_dir=Path(tmp), native_fusion=shape.endswith("native fusion"))
            encoder = Vectors()
            service = SearchService(
                backend=backend, settings=settings, encoder=lambda enc=encoder: enc
            )
            request = {**body, "ext": {"shoprank": {"mode": mode}}}
            for _ in range(20):  # warm-up (and OpenSearch's one-off pipeline creation)
                service.search("products", request)
            spent = _timed_cluster(cluster)
            cluster.reset()
            totals, own = [], []
            for _ in range(repeats):
                before = len(spent)
                started = time.perf_counter()
                service.search("products", request)
                total = time.perf_counter() - started
                totals.append(total * 1000)
                own.append((total - sum(spent[before:])) * 1000)
            requests = cluster.requests
            cluster.handle = ScriptedCluster.handle.__get__(cluster)  # type: ignore[method-assign]
            sent = sum(len(r.raw or b"") for r in requests) / repeats
            out[shape] = {
                "requests_per_search": len(requests) / repeats,
                "endpoints": sorted({f"{r.method} {r.path}" for r in requests}),
                "bytes_sent_per_search": round(sent),
                "total_ms_p50": round(statistics.median(totals), 3),
                "shoprank_ms_p50": round(statistics.median(own), 3),
                "shoprank_ms_p99": round(sorted(own)[int(0.99 * (len(own) - 1))], 3),
            }
            print(engine, shape, out[shape])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--products", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    results = {
        "products": args.products,
        "repeats": args.repeats,
        "window": Settings().window_size,
        "engines": {
            e: run(e, args.products, args.repeats) for e in ("elasticsearch", "opensearch")
        },
    }
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
