"""End-to-end re-index of the Icecat sample on the embedded backend: cold (every product
embedded), then the unchanged catalog again: `warm` is the default incremental re-index
(the new generation starts as a clone of the live one and only changed products go
through the pipeline: none here), `warm_full` rebuilds every product with `--full`
(every vector from the content-hash cache), and `changed_1pct` is an incremental re-index
after 1% of the products changed their title.

    python benchmarks/bench_reindex.py --encoder onnx     # exports int8 MiniLM first if needed
    python benchmarks/bench_reindex.py --encoder numpy --rows 5000

Both loads run through the same pipeline steps the Celery tasks run (in-process here).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from shoprank.indexing.catalog import FieldRoles  # noqa: E402
from shoprank.indexing.loader import load_catalog  # noqa: E402
from shoprank.settings import Settings  # noqa: E402
from shoprank.wiring import embedding_cache, make_backend, text_encoder  # noqa: E402

ICECAT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "icecat-products.jsonl.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=0, help="Icecat rows (0 = all 19,406)")
    parser.add_argument("--encoder", choices=["onnx", "numpy", "torch"], default="onnx")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if not ICECAT.exists():
        sys.exit(f"Icecat sample not found at {ICECAT}")
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="shoprank-reindex-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings(data_dir=data_dir, encoder_backend=args.encoder)
    if args.encoder == "onnx" and not (settings.onnx_text_dir / "model.onnx").exists():
        from shoprank.indexing.encoders.export_text import export_text_onnx

        t0 = time.perf_counter()
        export_text_onnx(settings.onnx_text_dir, max_length=settings.max_text_tokens)
        print(f"exported int8 ONNX MiniLM in {time.perf_counter() - t0:.1f}s", flush=True)
    catalog = data_dir / "icecat.jsonl"
    with gzip.open(ICECAT, "rt", encoding="utf-8") as src, open(catalog, "w") as dst:
        for i, line in enumerate(src):
            if args.rows and i >= args.rows:
                break
            dst.write(line)
    encoder = text_encoder(settings)
    encoder.warm_up()
    cache = embedding_cache(settings)
    results: dict[str, Any] = {"encoder": encoder.model_id, "rows": args.rows or "all"}
    changed = data_dir / "icecat-changed.jsonl"
    lines = [line for line in catalog.read_text().split("\n") if line.strip()]
    step = 100  # every 100th product gets a new title: 1% of the catalog changes
    with open(changed, "w") as dst:
        for i, line in enumerate(lines):
            row = json.loads(line)
            if i % step == 0:
                row["title"] = f"{row.get('title', '')} (2026 edition)"
            dst.write(json.dumps(row) + "\n")
    runs = [
        ("cold", catalog, True),
        ("warm", catalog, True),
        ("warm_full", catalog, False),
        ("changed_1pct", changed, True),
    ]
    for label, path, incremental in runs:
        report = load_catalog(
            path,
            index="icecat",
            backend=make_backend(settings),
            encoder=encoder,
            lock_dir=data_dir / "locks",
            roles=FieldRoles.parse("brand=supplier,description=short_description"),
            price_multiplier=0.01,
            cache=cache,
            max_failure_rate=1.0,
            incremental=incremental,
        )
        results[label] = report.as_dict()
        print(
            f"{label}: {json.dumps(report.as_dict()['seconds'])} "
            f"{report.products_per_s:,.0f} products/s",
            flush=True,
        )
    cold = results["cold"]["seconds"]["total"]
    for label in ("warm", "warm_full", "changed_1pct"):
        results[f"{label}_speedup"] = round(cold / results[label]["seconds"]["total"], 1)
    print(json.dumps(results, indent=2))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
