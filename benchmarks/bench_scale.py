"""Embedded backend at scale: load time, disk, server RSS and search latency per mode for
catalogs of hundreds of thousands to a million products.

    python benchmarks/bench_scale.py                                  # 200k, then 1M
    python benchmarks/bench_scale.py --sizes 200000 --queries 100     # quicker
    python benchmarks/bench_scale.py --sizes 200000 --data-dir /tmp/s --keep

Products recombine the Icecat sample (titles, descriptions, brands, prices; seeded, unique
ids). Only speed is measured, so the text vectors are random unit vectors of 384
dimensions, written through the same `GenerationStore` calls a re-index makes
(`create_generation`, `write_batch` with vectors per chunk, `commit(ready=True)`,
`swap_alias`); the text encoder never runs over the catalog.

Then a fresh `shoprank serve --workers 1` serves the data directory and each mode
(lexical, hybrid, full) answers `--queries` searches over HTTP on loopback: size 10, a
filter (a price range or a brand term, alternating) and facets (terms on brand, range on
price). Query text is drawn from catalog title words; hybrid and full searches carry a
random unit `knn.query_vector` under the same filter, so no query is embedded. The
server's RSS (/proc/<pid>/status VmRSS) is read after the warm-up searches and at the end.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from shoprank.indexing.mapping import TEXT_VECTOR_FIELD, product_mapping  # noqa: E402
from shoprank.plugin.backends.embedded import vectors as vector_module  # noqa: E402
from shoprank.plugin.backends.protocol import GenerationStore  # noqa: E402
from shoprank.settings import Settings  # noqa: E402
from shoprank.wiring import make_backend  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ICECAT = ROOT.parent / "shared" / "data" / "icecat-products.jsonl.gz"
ALIAS = "scale"
DIMS = 384
MODES = ("lexical", "hybrid", "full")
PRICE_RANGES = [{"to": 25}, {"from": 25, "to": 100}, {"from": 100, "to": 500}, {"from": 500}]


# -- the catalog -----------------------------------------------------------------------------


class Pool:
    """The Icecat columns products are recombined from."""

    def __init__(self, path: Path) -> None:
        titles, descriptions, brands, prices = [], [], [], []
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                if not row.get("title") or not row.get("supplier"):
                    continue
                titles.append(str(row["title"]))
                descriptions.append(str(row.get("short_description") or ""))
                brands.append(str(row["supplier"]))
                prices.append(float(row.get("price") or 1000) / 100.0)
        self.titles = titles
        self.descriptions = descriptions
        self.brands = brands
        self.prices = np.asarray(prices, dtype=np.float64)
        self.words = sorted({w for t in titles for w in t.split() if w.isalpha() and len(w) > 2})
        counts: dict[str, int] = {}
        for brand in brands:
            counts[brand] = counts.get(brand, 0) + 1
        self.top_brands = sorted(counts, key=lambda b: (-counts[b], b))[:20]
        self.brand_names = sorted(counts)


def products(pool: Pool, n: int, *, seed: int, batch: int) -> Iterator[list[dict[str, Any]]]:
    """`n` products in batches: an Icecat title with a word of another title appended, its
    description, mostly its own brand, and its price jittered; ids p0000000…"""
    rng = np.random.default_rng(seed)
    for start in range(0, n, batch):
        size = min(batch, n - start)
        base = rng.integers(0, len(pool.titles), size)
        extra = rng.integers(0, len(pool.words), size)
        other_brand = rng.integers(0, len(pool.brand_names), size)
        keep_brand = rng.random(size) < 0.9
        jitter = rng.lognormal(0.0, 0.25, size)
        docs = []
        for j in range(size):
            b = int(base[j])
            pid = f"p{start + j:07d}"
            brand = pool.brands[b] if keep_brand[j] else pool.brand_names[int(other_brand[j])]
            doc: dict[str, Any] = {
                "_id": pid,
                "id": pid,
                "title": f"{pool.titles[b]} {pool.words[int(extra[j])]}",
                "brand": brand,
                "price": round(float(pool.prices[b] * jitter[j]), 2),
            }
            if pool.descriptions[b]:
                doc["description"] = pool.descriptions[b]
            docs.append(doc)
        yield docs


def unit_vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    matrix = rng.standard_normal((n, DIMS), dtype=np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix


# -- loading ---------------------------------------------------------------------------------


class HnswClock:
    """Time spent in the HNSW graph (adds, saves) while the real write path runs."""

    def __init__(self) -> None:
        self.add_s = 0.0
        self.save_s = 0.0

    @contextmanager
    def installed(self) -> Iterator[None]:
        cls = vector_module.VectorField
        add, save = cls.add, cls.save
        clock = self

        def timed_add(field: Any, keys: Any, vectors: Any) -> None:
            t0 = time.perf_counter()
            add(field, keys, vectors)
            clock.add_s += time.perf_counter() - t0

        def timed_save(field: Any) -> None:
            t0 = time.perf_counter()
            save(field)
            clock.save_s += time.perf_counter() - t0

        cls.add, cls.save = timed_add, timed_save  # type: ignore[method-assign]
        try:
            yield
        finally:
            cls.add, cls.save = add, save  # type: ignore[method-assign]


def load(store: GenerationStore, pool: Pool, n: int, *, seed: int, batch: int) -> dict[str, Any]:
    """Write `n` products as one generation of ALIAS, as a re-index does, and time it."""
    rng = np.random.default_rng(seed + 1)
    clock = HnswClock()
    generate_s = write_s = 0.0
    started = time.perf_counter()
    with clock.installed():
        generation = store.create_generation(ALIAS, product_mapping(text_dims=DIMS))
        t0 = time.perf_counter()
        for number, docs in enumerate(products(pool, n, seed=seed, batch=batch), start=1):
            matrix = unit_vectors(rng, len(docs))
            generate_s += time.perf_counter() - t0
            t0 = time.perf_counter()
            store.write_batch(generation, docs, {TEXT_VECTOR_FIELD: matrix})
            write_s += time.perf_counter() - t0
            t0 = time.perf_counter()
            if number % max(1, 100_000 // batch) == 0:
                print(f"  written {number * batch:,} of {n:,}", flush=True)
        t0 = time.perf_counter()
        count = store.commit(generation, ready=True)
        commit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        store.swap_alias(ALIAS, generation)
        swap_s = time.perf_counter() - t0
    total_s = time.perf_counter() - started - generate_s
    if count != n:
        raise SystemExit(f"generation {generation} holds {count} documents, expected {n}")
    return {
        "generation": generation,
        "documents": count,
        "batch_size": batch,
        "load_s": round(total_s, 1),
        "write_batches_s": round(write_s, 1),
        "hnsw_add_s": round(clock.add_s, 1),
        "hnsw_save_s": round(clock.save_s, 1),
        "final_commit_s": round(commit_s, 2),
        "swap_s": round(swap_s, 3),
        "products_per_s": round(n / total_s, 1),
        "generate_s (not in load_s)": round(generate_s, 1),
    }


def disk_usage(directory: Path) -> dict[str, int]:
    """Bytes on disk under `directory`: all, the tantivy index, the HNSW files."""
    out = {"total": 0, "tantivy": 0, "hnsw": 0}
    for path in directory.rglob("*"):
        if path.is_file():
            size = path.stat().st_blocks * 512
            out["total"] += size
            if "tantivy" in path.parts:
                out["tantivy"] += size
            elif path.suffix == ".usearch":
                out["hnsw"] += size
    return out


# -- serving ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of a process, in MB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = round(int(value.split()[0]) / 1024, 1)
    return out


@contextmanager
def server(data_dir: Path, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`shoprank serve --workers 1` on `data_dir`, as a subprocess, until it answers."""
    import httpx

    exe = Path(sys.executable).with_name("shoprank")
    command = [str(exe), "--data-dir", str(data_dir), "serve", "--port", str(port)]
    command += ["--workers", "1", "--log-level", "warning"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"the server exited ({proc.returncode}); see {log}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"the server did not answer within 300 s; see {log}")
            time.sleep(0.5)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def search_body(
    mode: str, text: str, filter_clause: dict[str, Any], vector: np.ndarray | None
) -> dict[str, Any]:
    match = {"multi_match": {"query": text, "fields": ["title^3", "brand.text^2", "description"]}}
    body: dict[str, Any] = {
        "query": {"bool": {"must": match, "filter": [filter_clause]}},
        "size": 10,
        "aggs": {
            "brands": {"terms": {"field": "brand", "size": 10}},
            "prices": {"range": {"field": "price", "ranges": PRICE_RANGES}},
        },
        "ext": {"shoprank": {"mode": mode}},
    }
    if vector is not None:
        body["knn"] = {
            "field": TEXT_VECTOR_FIELD,
            "query_vector": [round(float(x), 6) for x in vector],
            "k": 10,
            "num_candidates": 100,
            "filter": [filter_clause],
        }
    return body


def query_plan(pool: Pool, count: int, seed: int) -> list[tuple[str, dict[str, Any]]]:
    """(text, filter) pairs: one or two words of a catalog title; a price range or a brand
    term, alternating."""
    rng = np.random.default_rng(seed + 2)
    plan = []
    for i in range(count):
        words = [w for w in pool.titles[int(rng.integers(len(pool.titles)))].split() if len(w) > 2]
        words = words or ["cable"]
        start = int(rng.integers(len(words)))
        text = " ".join(words[start : start + 1 + int(rng.integers(2))])
        if i % 2 == 0:
            low = float(rng.choice([10, 20, 50, 100]))
            clause: dict[str, Any] = {"range": {"price": {"gte": low, "lte": low * 10}}}
        else:
            clause = {"term": {"brand": pool.top_brands[int(rng.integers(len(pool.top_brands)))]}}
        plan.append((text, clause))
    return plan


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def measure(
    port: int, pid: int, pool: Pool, *, queries: int, warmup: int, seed: int
) -> dict[str, Any]:
    import httpx

    rng = np.random.default_rng(seed + 3)
    plan = query_plan(pool, queries + warmup, seed)
    out: dict[str, Any] = {"rss_idle_mb": rss_mb(pid)}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:

        def run(mode: str, text: str, clause: dict[str, Any]) -> tuple[float, dict[str, Any]]:
            vector = unit_vectors(rng, 1)[0] if mode != "lexical" else None
            body = search_body(mode, text, clause, vector)
            t0 = time.perf_counter()
            response = client.post(f"/{ALIAS}/_search", json=body)
            elapsed = (time.perf_counter() - t0) * 1000
            response.raise_for_status()
            return elapsed, response.json()

        for mode in MODES:
            for text, clause in plan[:warmup]:
                run(mode, text, clause)
        out["rss_after_warmup_mb"] = rss_mb(pid)
        for mode in MODES:
            samples, took, degraded, hits = [], [], 0, 0
            for text, clause in plan[warmup:]:
                elapsed, result = run(mode, text, clause)
                samples.append(elapsed)
                took.append(float(result.get("took", 0)))
                degraded += bool(result.get("_shoprank", {}).get("degraded"))
                hits += len(result["hits"]["hits"])
            out[mode] = {
                "n": len(samples),
                "p50_ms": round(pct(samples, 0.5), 1),
                "p99_ms": round(pct(samples, 0.99), 1),
                "mean_ms": round(statistics.fmean(samples), 1),
                "took_p50_ms": round(pct(took, 0.5), 1),
                "took_p99_ms": round(pct(took, 0.99), 1),
                "degraded": degraded,
                "mean_hits": round(hits / len(samples), 1),
            }
            print(f"  {mode}: {out[mode]}", flush=True)
    out["rss_end_mb"] = rss_mb(pid)
    return out


# -- the run ---------------------------------------------------------------------------------


def run_size(pool: Pool, n: int, data_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    print(f"== {n:,} products in {data_dir}", flush=True)
    started = time.perf_counter()
    settings = Settings(data_dir=data_dir)
    store = make_backend(settings)
    report: dict[str, Any] = {"products": n}
    if args.searches_only:
        # A kept data directory from an earlier run: measure its searches again.
        generations = sorted((data_dir / "embedded" / "indices").iterdir(), key=_mtime)
        report["load"] = {"generation": generations[-1].name, "load_s": float("nan")}
    else:
        report["load"] = load(store, pool, n, seed=args.seed, batch=args.batch_size)
    print(f"  load: {report['load']}", flush=True)
    gen_dir = data_dir / "embedded" / "indices" / report["load"]["generation"]
    report["disk_bytes"] = disk_usage(gen_dir)
    print(f"  disk: {report['disk_bytes']}", flush=True)
    del store
    port = free_port()
    t0 = time.perf_counter()
    with server(data_dir, port, data_dir / "serve.log") as proc:
        report["server_start_s"] = round(time.perf_counter() - t0, 1)
        report["search"] = measure(
            port, proc.pid, pool, queries=args.queries, warmup=args.warmup, seed=args.seed
        )
    report["total_s"] = round(time.perf_counter() - started, 1)
    return report


def _mtime(path: Path) -> float:
    return path.stat().st_mtime


def table(results: list[dict[str, Any]]) -> str:
    head = (
        "| products | load | disk | server RSS | lexical p50 / p99 | hybrid p50 / p99 "
        "| full p50 / p99 |"
    )
    lines = [head, "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        s = r["search"]
        cells = [
            f"{r['products']:,}",
            f"{r['load']['load_s']:.0f} s",
            f"{r['disk_bytes']['total'] / 1e9:.2f} GB",
            f"{s['rss_after_warmup_mb']['VmRSS'] / 1024:.2f} GB",
        ]
        cells += [f"{s[m]['p50_ms']:.0f} / {s[m]['p99_ms']:.0f} ms" for m in MODES]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="200000,1000000", help="comma-separated")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/scale.json")
    parser.add_argument("--data-dir", type=Path, default=None, help="default: a temp dir")
    parser.add_argument("--keep", action="store_true", help="keep the data directories")
    parser.add_argument(
        "--searches-only",
        action="store_true",
        help="reuse the kept data directories of an earlier --keep run: searches only",
    )
    parser.add_argument("--queries", type=int, default=200, help="timed searches per mode")
    parser.add_argument("--warmup", type=int, default=20, help="untimed searches per mode")
    parser.add_argument("--batch-size", type=int, default=20_000, help="products per write_batch")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if not ICECAT.exists():
        sys.exit(f"the Icecat sample is not at {ICECAT}")
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    pool = Pool(ICECAT)
    base = args.data_dir or Path(tempfile.mkdtemp(prefix="shoprank-scale-"))
    results: list[dict[str, Any]] = []
    meta = {"cpu_count": os.cpu_count(), "load_average_start": os.getloadavg()}
    try:
        for n in sizes:
            data_dir = base / f"n{n}"
            if args.searches_only:
                args.keep = True
            elif data_dir.exists():
                shutil.rmtree(data_dir)
            data_dir.mkdir(parents=True, exist_ok=True)
            try:
                results.append(run_size(pool, n, data_dir, args))
                results[-1]["load_average_end"] = os.getloadavg()
            finally:
                if not args.keep:
                    shutil.rmtree(data_dir, ignore_errors=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps({**meta, "results": results}, indent=2) + "\n")
    finally:
        if not args.keep and args.data_dir is None:
            shutil.rmtree(base, ignore_errors=True)
    print(table(results))


if __name__ == "__main__":
    main()
