"""Text encoder benchmark: torch fp32, numpy fp32, ONNX fp32 and ONNX int8 side by side.

    python benchmarks/bench_text_encoders.py                     # 2,000 Icecat titles
    python benchmarks/bench_text_encoders.py --model-dir /tmp/onnx-minilm --out result.json
    python benchmarks/bench_text_encoders.py --with-fusions      # + onnxruntime.transformers row

Throughput: every encoder embeds the same N titles (`title` field of the Icecat sample) with
the same batch size and max_length 128; rounds are interleaved across encoders, and the best
round (other load only ever slows a round) and the median round are reported. Parity: cosine
of each encoder's vectors with the torch (sentence-transformers) vectors, row by row.
Latency: one `encode([query])` call per query for 200 distinct short queries derived from
Icecat titles, one block per encoder and pass.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

from shoprank.indexing.encoders import (  # noqa: E402
    NumpyBertEncoder,
    TextEncoder,
    TorchSentenceEncoder,
)
from shoprank.indexing.encoders.export_text import export_text_onnx  # noqa: E402
from shoprank.indexing.encoders.onnx_text import OnnxTextEncoder  # noqa: E402

ICECAT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "icecat-products.jsonl.gz"
MAX_LENGTH = 128
SETTLE_S = 0.3  # pause before each timed block so the previous encoder's threads go idle
F32 = npt.NDArray[np.float32]


@dataclass
class Result:
    """One encoder's numbers."""

    name: str
    model_id: str
    products_per_s: float = 0.0  # best round: contention only ever slows a round down
    median_products_per_s: float = 0.0
    round_seconds: list[float] = field(default_factory=list)
    mean_cosine: float | None = None
    min_cosine: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    latency_samples: int = 0


def read_titles(path: Path, limit: int) -> list[str]:
    """The first `limit` non-empty titles of the Icecat sample."""
    titles: list[str] = []
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            title = json.loads(line).get("title")
            if title:
                titles.append(str(title))
                if len(titles) >= limit:
                    break
    return titles


def short_queries(titles: list[str], count: int) -> list[str]:
    """`count` distinct lower-case queries of 1-4 leading words of titles (deterministic)."""
    seen: dict[str, None] = {}
    for index, title in enumerate(reversed(titles)):
        words = title.lower().split()
        query = " ".join(words[: 1 + index % 4])
        if query:
            seen.setdefault(query, None)
        if len(seen) >= count:
            break
    return list(seen)


def onnx_dirs(root: Path, with_fusions: bool) -> dict[str, Path]:
    """Export int8 and fp32 (and the fused int8 variant) under root, reusing existing ones."""
    wanted: dict[str, dict[str, Any]] = {
        "int8": {"quantize": "int8"},
        "fp32": {"quantize": "none"},
    }
    if with_fusions:
        wanted["int8-fused"] = {"quantize": "int8", "optimize": "transformers"}
    dirs: dict[str, Path] = {}
    for name, options in wanted.items():
        target = root / name
        if not (target / "manifest.json").is_file():
            started = time.perf_counter()
            export_text_onnx(target, max_length=MAX_LENGTH, **options)
            print(f"exported {name} to {target} in {time.perf_counter() - started:.1f} s")
        dirs[name] = target
    return dirs


def measure_throughput(
    encoders: dict[str, TextEncoder], titles: list[str], batch_size: int, rounds: int
) -> tuple[dict[str, Result], dict[str, F32]]:
    """Best- and median-round products/s per encoder, rounds interleaved; round-one vectors."""
    results = {name: Result(name=name, model_id=enc.model_id) for name, enc in encoders.items()}
    vectors: dict[str, F32] = {}
    for enc in encoders.values():
        enc.warm_up()
        enc.encode(titles[: batch_size * 2], batch_size=batch_size)
    for _ in range(rounds):
        for name, enc in encoders.items():
            time.sleep(SETTLE_S)
            started = time.perf_counter()
            out = enc.encode(titles, batch_size=batch_size)
            results[name].round_seconds.append(time.perf_counter() - started)
            vectors.setdefault(name, out)
    for result in results.values():
        result.products_per_s = len(titles) / min(result.round_seconds)
        result.median_products_per_s = len(titles) / statistics.median(result.round_seconds)
    return results, vectors


def measure_latency(
    encoders: dict[str, TextEncoder], queries: list[str], passes: int
) -> dict[str, list[float]]:
    """Milliseconds per single-query `encode` call.

    Each pass times every encoder over all queries in one block (encoders alternate between
    blocks, not between queries: onnxruntime's spinning and torch's OpenMP threads would
    otherwise steal the next encoder's cores), after a short settle and a few warm-up calls.
    """
    timings: dict[str, list[float]] = {name: [] for name in encoders}
    for _ in range(passes):
        for name, enc in encoders.items():
            time.sleep(SETTLE_S)
            for query in queries[:10]:
                enc.encode([query])
            for query in queries:
                started = time.perf_counter()
                enc.encode([query])
                timings[name].append((time.perf_counter() - started) * 1000.0)
    return timings


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q, method="nearest"))


def markdown(results: dict[str, Result], baseline: str) -> str:
    base = results[baseline].products_per_s
    lines = [
        "| encoder | products/s (best) | (median) | vs torch fp32 | mean cos vs torch "
        "| min cos vs torch | query p50 | query p99 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]

    def fmt(value: float | None, spec: str, unit: str = "") -> str:
        return "—" if value is None else f"{value:{spec}}{unit}"

    for r in results.values():
        lines.append(
            f"| {r.name} | {r.products_per_s:,.0f} | {r.median_products_per_s:,.0f} "
            f"| {r.products_per_s / base:.2f}× "
            f"| {fmt(r.mean_cosine, '.4f')} | {fmt(r.min_cosine, '.4f')} "
            f"| {fmt(r.p50_ms, '.2f', ' ms')} | {fmt(r.p99_ms, '.2f', ' ms')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2000, help="Icecat titles (N)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved throughput rounds")
    parser.add_argument("--queries", type=int, default=200, help="distinct latency queries")
    parser.add_argument("--latency-passes", type=int, default=2, help="passes over the queries")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    parser.add_argument("--model-dir", type=Path, default=None, help="reuse/keep ONNX exports")
    parser.add_argument("--data", type=Path, default=ICECAT, help="Icecat JSONL.gz")
    parser.add_argument("--with-fusions", action="store_true", help="add a fused-graph int8 row")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = parser.parse_args(argv)

    if not args.data.is_file():
        print(f"Icecat sample not found at {args.data}", file=sys.stderr)
        return 2
    titles = read_titles(args.data, args.rows)
    queries = short_queries(titles, args.queries)
    load_before = os.getloadavg()

    with tempfile.TemporaryDirectory(prefix="bench-onnx-") as scratch:
        root = args.model_dir if args.model_dir is not None else Path(scratch)
        dirs = onnx_dirs(root, args.with_fusions)
        torch_encoder = TorchSentenceEncoder(max_length=MAX_LENGTH)
        encoders: dict[str, TextEncoder] = {
            "torch fp32 (sentence-transformers)": torch_encoder,
            "numpy fp32": NumpyBertEncoder(max_length=MAX_LENGTH),
            "ONNX fp32": OnnxTextEncoder(dirs["fp32"], max_length=MAX_LENGTH, threads=args.threads),
            "ONNX int8": OnnxTextEncoder(dirs["int8"], max_length=MAX_LENGTH, threads=args.threads),
        }
        if "int8-fused" in dirs:
            encoders["ONNX int8 + ORT transformer fusions"] = OnnxTextEncoder(
                dirs["int8-fused"], max_length=MAX_LENGTH, threads=args.threads
            )
        baseline = "torch fp32 (sentence-transformers)"

        results, vectors = measure_throughput(encoders, titles, args.batch_size, args.rounds)
        reference = vectors[baseline]
        for name, result in results.items():
            cosines = np.sum(vectors[name] * reference, axis=1)
            result.mean_cosine = float(cosines.mean())
            result.min_cosine = float(cosines.min())
        for name, samples in measure_latency(encoders, queries, args.latency_passes).items():
            results[name].p50_ms = percentile(samples, 50)
            results[name].p99_ms = percentile(samples, 99)
            results[name].latency_samples = len(samples)
        manifests = {
            name: json.loads((path / "manifest.json").read_text(encoding="utf-8"))
            for name, path in dirs.items()
        }

    import onnxruntime
    import torch

    load_after = os.getloadavg()
    int8_encoder = encoders["ONNX int8"]
    assert isinstance(int8_encoder, OnnxTextEncoder)
    environment = {
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "onnxruntime_threads": int8_encoder.threads,
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
    }
    print(
        f"\n{len(titles)} Icecat titles, batch {args.batch_size}, max_length {MAX_LENGTH}, "
        f"best and median of {args.rounds} interleaved rounds (ratio on best); latency over "
        f"{len(queries)} distinct "
        f"short queries x {args.latency_passes} passes"
    )
    print(
        f"cpus {environment['cpus']}, onnxruntime {environment['onnxruntime']} "
        f"({environment['onnxruntime_threads']} threads), torch {environment['torch']} "
        f"({environment['torch_threads']} threads); load average before "
        f"{environment['loadavg_before']}, after {environment['loadavg_after']}\n"
    )
    print(markdown(results, baseline))
    if args.out is not None:
        payload = {
            "config": {
                "rows": len(titles),
                "batch_size": args.batch_size,
                "max_length": MAX_LENGTH,
                "rounds": args.rounds,
                "queries": len(queries),
                "latency_passes": args.latency_passes,
            },
            "environment": environment,
            "results": [asdict(r) for r in results.values()],
            "manifests": manifests,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
