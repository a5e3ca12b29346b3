"""Query understanding: held-out category accuracy and intent + rewrite latency.

    .venv/bin/python benchmarks/bench_intent.py --out benchmarks/results/intent.json \
        [--icecat ../shared/data/icecat-products.jsonl.gz]

Accuracy: the demo catalog (3,000 products, 40 leaf categories, seed 7) and, with
`--icecat`, the Icecat sample with categories derived by the title rules below (Icecat has
no category field). Products are split 80/20 by a hash of their id; the held-out products'
titles and 1–3-word windows of them (query-shaped texts) are classified.

Latency: `IntentPredictor.predict` + `rewrite` on a fixed query list, query embeddings
computed beforehand (retrieval computes and caches that embedding anyway), one thread.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from shoprank.rerankers.intent.model import load_artefacts
from shoprank.rerankers.intent.predictor import IntentPredictor
from shoprank.rerankers.intent.rewriter import RewriteConfig, rewrite
from shoprank.rerankers.intent.training import train_intent
from shoprank.settings import Settings

QUERIES = [
    "hp toner under 40",
    "cheap running shoes",
    "espresso machine",
    "red lipstick",
    "wireless headphones under 100",
    "tent for 4 people",
    "inkwell toner cartridge black",
    "laptop 16gb ram between 500 and 900 euro",
    "gift for dad",
    "006R90321",
    "hp 305 ink",
    "samsung galaxy phone case",
    "office chair",
    "garden hose 30m",
    "dog bed large",
    "usb c cable 2m",
    "running shoes size 42 below $80",
    "premium coffee grinder",
    "4k tv 55 inch",
    "yoga mat purple",
]

# Icecat: (category path, pattern on the lower-cased title), first match wins.
ICECAT_RULES: list[tuple[str, str]] = [
    ("Printing > Supplies > Toner", r"\btoner\b"),
    ("Printing > Supplies > Ink", r"\bink\b|\binkjet cartridge|\bprinthead"),
    ("Printing > Supplies > Drums", r"\bdrum\b"),
    ("Printing > Supplies > Ribbons", r"\bribbon\b"),
    ("Printing > Paper & Labels", r"\blabels?\b|\bpaper\b|\bphoto paper|\bfilm\b"),
    ("Printing > Printers", r"\bprinter\b(?! memory)|\blaserjet\b|\bmultifunctional\b"),
    ("Printing > Scanners", r"\bscanner\b"),
    ("Computers > Processors", r"\bprocessor\b"),
    ("Computers > Memory", r"\bmemory module\b|\bdimm\b|\bprinter memory\b|\bram\b"),
    ("Computers > Storage", r"\bssd\b|\bhdd\b|\bhard drive\b|\binternal hard\b|\bsata hd\b"),
    ("Computers > Servers", r"\bserver\b"),
    ("Computers > Notebooks", r"\bnotebook\b|\blaptop\b"),
    ("Computers > Monitors", r"\bmonitor\b|\blcd\b|\bled display\b"),
    ("Computers > Peripherals > Mice", r"\bmouse\b|\bmice\b"),
    ("Computers > Peripherals > Keyboards", r"\bkeyboard\b"),
    ("Computers > Peripherals > Webcams", r"\bwebcam\b"),
    ("Networking > Switches", r"\bswitch\b"),
    (
        "Networking > Media Converters & Transceivers",
        r"\bmedia converter\b|\btransceiver\b|\bsfp\b",
    ),
    ("Networking > Network Cables", r"\bnetworking cable\b|\bcat ?[56]e?\b|\brj-?45\b|\bpatch\b"),
    ("Cables > Fibre Cables", r"\bfibre optic\b|\bfiber optic\b|\bfiber\b|\bfibre\b"),
    ("Cables > USB Cables", r"\busb cable\b"),
    ("Cables > Video Cables", r"\bhdmi\b|\bvga\b|\bdvi\b|\bdisplayport\b"),
    ("Cables > Audio Cables", r"\baudio cable\b"),
    ("Cables > Power Cables", r"\bpower cable\b|\bpower cord\b"),
    ("Cables > Other Cables", r"\bcable\b"),
    ("Power > UPS", r"\bups\b|\buninterruptible\b"),
    ("Power > PDUs & Surge", r"\bpdu\b|\bpower distribution\b|\bsurge\b"),
    ("Power > Batteries", r"\bbattery\b|\bbatteries\b"),
    ("Power > Adapters", r"\bpower adapter\b|\bcharger\b"),
    ("Audio > Headsets & Headphones", r"\bheadset\b|\bheadphones?\b"),
    ("Audio > Speakers", r"\bspeakers?\b|\bsoundbar\b"),
    ("Projectors > Lamps", r"\bprojector lamp\b"),
    ("Projectors > Projectors", r"\bprojector\b"),
    ("Racks > Cabinets & Accessories", r"\brack\b|\bblanking panel\b"),
    ("Bags & Cases", r"\bcase\b|\bbag\b|\bbackpack\b|\bsleeve\b"),
    ("Media > Optical Discs", r"\bcd-r\b|\bdvd[+-]?r\b|\bblank\b"),
]


def icecat_catalog(path: Path, out: Path, *, per_category: int) -> dict[str, int]:
    rules = [(name, re.compile(pattern)) for name, pattern in ICECAT_RULES]
    counts: dict[str, int] = {}
    with gzip.open(path, "rt", encoding="utf-8") as src, out.open("w", encoding="utf-8") as dst:
        for line in src:
            row = json.loads(line)
            title = str(row.get("title") or "").lower()
            category = next((name for name, rx in rules if rx.search(title)), None)
            if category is None or counts.get(category, 0) >= per_category:
                continue
            counts[category] = counts.get(category, 0) + 1
            price = row.get("price")
            dst.write(
                json.dumps(
                    {
                        "id": row["id"],
                        "title": row["title"],
                        "brand": row.get("supplier"),
                        "category": category,
                        "price": price / 100 if isinstance(price, int | float) else None,
                        "colour": row.get("attr_t_product_colour"),
                    }
                )
                + "\n"
            )
    return counts


def accuracy(catalog: Path, work: Path, *, epochs: int) -> dict[str, Any]:
    settings = Settings(data_dir=work)
    started = time.perf_counter()
    meta = train_intent(settings, catalog=catalog, holdout=0.2, epochs=epochs, use_clicks=False)
    return {
        "categories": meta["categories"],
        "train_examples": meta["train_examples"],
        "held_out_examples": meta["held_out_examples"],
        "accuracy": meta["accuracy"],
        "train_seconds": round(time.perf_counter() - started, 1),
    }


def latency(model_dir: Path, *, passes: int) -> dict[str, Any]:
    from shoprank.wiring import text_encoder

    artefacts = load_artefacts(model_dir)
    assert artefacts is not None
    predictor = IntentPredictor(artefacts.vocab, artefacts.head, model_version="bench")
    encoder = text_encoder(Settings(data_dir=model_dir))
    embeddings = [list(map(float, v)) for v in encoder.encode(QUERIES)]
    config = RewriteConfig()
    out: dict[str, Any] = {}
    for label, use_head in (("with model", True), ("no model (catalog values only)", False)):
        runner = predictor if use_head else IntentPredictor(artefacts.vocab)
        times: list[float] = []
        for _ in range(passes):
            for query, emb in zip(QUERIES, embeddings, strict=True):
                body = {"query": {"multi_match": {"query": query, "fields": ["title^3"]}}}
                t0 = time.perf_counter()
                understanding = runner.predict(query, embedding=emb)
                rewrite(body, understanding, config)
                times.append((time.perf_counter() - t0) * 1000)
        times.sort()
        out[label] = {
            "n": len(times),
            "p50_ms": round(statistics.median(times), 4),
            "p99_ms": round(float(np.percentile(times, 99)), 4),
            "max_ms": round(times[-1], 4),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/intent.json"))
    parser.add_argument("--icecat", type=Path, default=None)
    parser.add_argument("--per-category", type=int, default=250)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--passes", type=int, default=50)
    args = parser.parse_args()
    from shoprank.indexing.demo import write_demo_catalog

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        demo = write_demo_catalog(work / "demo.jsonl", n=3000, seed=7)
        results["demo_accuracy"] = accuracy(demo, work / "demo", epochs=args.epochs)
        print("demo", json.dumps(results["demo_accuracy"]["accuracy"]), flush=True)
        results["latency"] = latency(work / "demo" / "models" / "intent", passes=args.passes)
        print("latency", json.dumps(results["latency"]), flush=True)
        if args.icecat is not None:
            derived = work / "icecat-categories.jsonl"
            counts = icecat_catalog(args.icecat, derived, per_category=args.per_category)
            results["icecat_accuracy"] = accuracy(derived, work / "icecat", epochs=args.epochs)
            results["icecat_accuracy"]["derived_categories"] = counts
            print("icecat", json.dumps(results["icecat_accuracy"]["accuracy"]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
