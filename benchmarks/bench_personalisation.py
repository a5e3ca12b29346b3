"""Personalisation on a second simulator, built unlike `shoprank simulate`:

- catalog: the real Icecat sample (no category field), loaded as the README says
  (`--fields brand=supplier,description=short_description --price-multiplier 0.01`); the
  simulator's product types come from its own keyword rules on the title and description,
  which shoprank never sees;
- shoppers: brand-loyal (one favourite brand per product type, a strong preference) and
  price-sensitive (a preferred price per product type, utility falling with the log-price
  gap); a share of shoppers is neither;
- clicks: a cascade model (top-down; stop after a satisfying click; abandon with a
  constant probability per position), not a position-based one.

Per seed: a fresh copy of the loaded index; warm-up searches in `full` mode (the live
scorer) through the in-process `SearchService` and events through the events path
(`validate_event` + `EventService.ingest`, what `POST /_shoprank/events` runs); then
`train_ranker` (the real training and gate); held-out queries of the same shoppers are
judged by their true grades for `hybrid`, `full` with the cold-start scorer, `full` with the
trained candidate, and `full` with whatever the gate left live.

    python benchmarks/bench_personalisation.py --work /tmp/pers --seeds 0,1,2 \
        --out benchmarks/results/personalisation-icecat.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ICECAT = Path(__file__).resolve().parents[2] / "shared" / "data" / "icecat-products.jsonl.gz"
INDEX = "icecat"
FIELDS = ["title^3", "brand.text^2", "description"]
# Product types, most specific first (the first that matches names the product's type).
TYPES = [
    "toner cartridge",
    "ink cartridge",
    "drum",
    "patch cable",
    "audio cable",
    "usb cable",
    "video cable",
    "docking station",
    "graphics card",
    "hard drive",
    "power supply",
    "notebook",
    "monitor",
    "processor",
    "ups",
    "keyboard",
    "mouse",
    "label",
    "printer",
    "projector",
    "memory",
    "switch",
    "scanner",
    "battery",
    "paper",
    "webcam",
    "kvm",
    "camera",
    "tv",
    "headset",
    "speaker",
]
PATTERNS = [(t, re.compile(r"\b" + re.escape(t) + r"s?\b", re.IGNORECASE)) for t in TYPES]
# Cascade click model: an examined product is clicked with P(click | grade); a click
# satisfies (ends the session) with P(stop | grade); each position is left for the next
# one with probability CONTINUE.
CLICK = (0.03, 0.25, 0.55, 0.85)
STOP = (0.0, 0.2, 0.5, 0.8)
CART = (0.0, 0.1, 0.3, 0.6)
BUY = (0.0, 0.2, 0.4, 0.7)
CONTINUE = 0.85


@dataclass
class Product:
    id: str
    kind: str
    brand: str
    price: float
    log_price: float = 0.0


@dataclass
class Shopper:
    id: str
    kinds: list[str]
    brand: dict[str, str] = field(default_factory=dict)  # type → favourite brand
    loyalty: float = 0.0
    price: dict[str, float] = field(default_factory=dict)  # type → preferred log price
    sensitivity: float = 0.0

    def grade(self, p: Product, kind: str, brand: str | None) -> int:
        if p.kind != kind or (brand is not None and p.brand != brand):
            return 0
        u = 1.0
        if self.brand.get(kind) == p.brand:
            u += self.loyalty
        if kind in self.price:
            u -= self.sensitivity * abs(p.log_price - self.price[kind])
        return 3 if u >= 2.0 else 2 if u >= 1.4 else 1 if u >= 0.7 else 0


class Shop:
    def __init__(self, products: list[Product]) -> None:
        self.by_id = {p.id: p for p in products}
        self.by_kind: dict[str, list[Product]] = defaultdict(list)
        for p in products:
            p.log_price = math.log1p(p.price)
            self.by_kind[p.kind].append(p)
        self.kinds = sorted(k for k, v in self.by_kind.items() if len({p.brand for p in v}) >= 3)

    def shoppers(self, n: int, rng: random.Random) -> list[Shopper]:
        out = []
        for i in range(n):
            s = Shopper(f"pb-{i:04d}", rng.sample(self.kinds, k=rng.randint(2, 4)))
            roll = rng.random()
            loyal, thrifty = roll < 0.75, 0.25 <= roll < 0.9
            for kind in s.kinds:
                items = self.by_kind[kind]
                if loyal:
                    # favourite brands follow the type's assortment (popular brands more often)
                    s.brand[kind] = rng.choice(items).brand
                if thrifty or loyal:
                    logs = sorted(p.log_price for p in items)
                    s.price[kind] = logs[int(rng.uniform(0.1, 0.9) * (len(logs) - 1))]
            s.loyalty = rng.uniform(1.0, 1.6) if loyal else 0.0
            s.sensitivity = rng.uniform(0.6, 1.2) if s.price else 0.0
            out.append(s)
        return out

    def query(self, s: Shopper, rng: random.Random) -> tuple[str, str, str | None]:
        kind = rng.choice(s.kinds)
        if rng.random() < 0.1:
            brand = rng.choice(self.by_kind[kind]).brand
            return f"{brand.lower()} {kind}", kind, brand
        return kind, kind, None


def load_products(limit_per_type: int) -> tuple[list[dict[str, Any]], list[Product]]:
    rng = random.Random(0)
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    with gzip.open(ICECAT, "rt", encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            if r.get("price") is None or not r.get("supplier"):
                continue
            text = f"{r.get('title') or ''} {r.get('short_description') or ''}"
            for kind, pattern in PATTERNS:
                if pattern.search(text):
                    rows[kind].append(r)
                    break
    raw: list[dict[str, Any]] = []
    products = []
    for kind in TYPES:
        items = rows[kind]
        rng.shuffle(items)
        for r in items[:limit_per_type]:
            raw.append(r)
            products.append(Product(str(r["id"]), kind, str(r["supplier"]), r["price"] * 0.01))
    return raw, products


def ensure_base(work: Path, raw: list[dict[str, Any]], *, intent: bool = False) -> Path:
    """The loaded index every seed copies; with `intent`, `index load` also trains the
    intent model (product types induced from the vectors: the catalog has no categories)."""
    base = work / ("base-intent" if intent else "base")
    if (base / ".loaded").exists():
        return base
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    catalog = work / "icecat-typed.jsonl"
    catalog.write_text("".join(json.dumps(r) + "\n" for r in raw))
    cmd = [sys.executable, "-m", "shoprank.cli", "--data-dir", str(base), "index", "load"]
    cmd += ([] if intent else ["--no-train-intent"]) + [str(catalog), "--index", INDEX]
    cmd += ["--fields", "brand=supplier,description=short_description"]
    cmd += ["--price-multiplier", "0.01"]
    subprocess.run(cmd, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    (base / ".loaded").write_text("ok")
    return base


def ndcg10(ranked: list[str], grades: dict[str, int]) -> float:
    from shoprank.evaluation.metrics import ndcg_at_k

    return float(ndcg_at_k(ranked, {k: float(v) for k, v in grades.items()}, 10))


def body(text: str, mode: str, user: str | None, session: str | None, size: int) -> dict[str, Any]:
    opts: dict[str, Any] = {"mode": mode}
    if user:
        opts["user_id"] = user
    if session:
        opts["session_id"] = session
    query = {"multi_match": {"query": text, "fields": FIELDS}}
    return {"query": query, "size": size, "_source": False, "ext": {"shoprank": opts}}


def cascade(
    s: Shopper, kind: str, brand: str | None, ids: list[str], shop: Shop, rng: random.Random
) -> list[tuple[str, str, int]]:
    out: list[tuple[str, str, int]] = []
    for pos, pid in enumerate(ids, start=1):
        p = shop.by_id.get(pid)
        g = s.grade(p, kind, brand) if p is not None else 0
        if rng.random() < CLICK[g]:
            out.append(("click", pid, pos))
            if rng.random() < CART[g]:
                out.append(("add_to_cart", pid, pos))
                if rng.random() < BUY[g]:
                    out.append(("purchase", pid, pos))
            if rng.random() < STOP[g]:
                break
        if rng.random() >= CONTINUE:
            break
    return out


def run_seed(args: argparse.Namespace, base: Path, shop: Shop, seed: int) -> dict[str, Any]:
    data_dir = Path(args.work) / f"seed-{seed}"
    shutil.rmtree(data_dir, ignore_errors=True)
    shutil.copytree(base, data_dir)  # the loaded index only: no events, profiles, rankers
    os.environ["SHOPRANK_DATA_DIR"] = str(data_dir)
    os.environ["SHOPRANK_PRODUCT_INDEX"] = INDEX
    os.environ.setdefault("SHOPRANK_RERANK_TIMEOUT_MS", "600000")
    os.environ.setdefault("SHOPRANK_SEARCH_BUDGET_MS", "600000")
    from shoprank.events.model import validate_event
    from shoprank.rerankers.ltr import ranker_dir
    from shoprank.rerankers.ltr.registry import ModelRegistry
    from shoprank.rerankers.ltr.reranker import load_scorer
    from shoprank.rerankers.ltr.train import NotEnoughDataError, train_ranker
    from shoprank.settings import Settings
    from shoprank.wiring import event_service, make_service

    settings = Settings()
    service = make_service(settings)
    service.warm_up()
    events = event_service(settings)
    rng = random.Random(seed)
    people = shop.shoppers(args.users, rng)
    counts = {"searches": 0, "clicks": 0}

    def warm(svc: Any, n: int) -> None:
        """`n` searches of the shoppers in turn, in `full` mode, and their engagement."""
        for i in range(n):
            s = people[i % len(people)]
            session = f"{s.id}-{uuid.UUID(int=rng.getrandbits(128)).hex[:8]}"
            text, kind, brand = shop.query(s, rng)
            resp = svc.search(INDEX, body(text, "full", s.id, session, args.page))
            counts["searches"] += 1
            ids = [h["_id"] for h in resp["hits"]["hits"]]
            qid = (resp.get("_shoprank") or {}).get("query_id")
            batch = []
            for kind_, pid, pos in cascade(s, kind, brand, ids, shop, rng):
                e: dict[str, Any] = {
                    "type": kind_,
                    "user_id": s.id,
                    "session_id": session,
                    "product_id": pid,
                    "position": pos,
                }
                if qid:
                    e["query_id"] = qid
                if kind_ == "purchase":
                    e.update(quantity=1, price=shop.by_id[pid].price)
                batch.append(validate_event(e, now=time.time()))
                counts["clicks"] += kind_ == "click"
            if batch:
                events.ingest(batch)
        if svc.search_logger is not None:
            svc.search_logger.flush(timeout=120)

    def service_for_round() -> Any:
        svc = make_service(settings)  # a fresh ranker: whatever is live now
        svc.warm_up()
        return svc

    t0 = time.perf_counter()
    warm(service, args.warmup)
    warm_s = time.perf_counter() - t0

    holdout = []
    for s in people:
        for _ in range(args.holdout_per_user):
            text, kind, brand = shop.query(s, rng)
            grades = {p.id: g for p in shop.by_kind[kind] if (g := s.grade(p, kind, brand)) > 0}
            if grades:
                holdout.append((s, text, grades))

    def evaluate(mode: str) -> float:
        svc = make_service(settings)  # a fresh ranker: whatever is live now
        svc.search_logger = None  # held-out searches are not traffic
        svc.warm_up()
        scores = []
        for s, text, grades in holdout:
            hits = svc.search(INDEX, body(text, mode, s.id, None, 10))["hits"]["hits"]
            scores.append(ndcg10([h["_id"] for h in hits], grades))
        return statistics.fmean(scores)

    out: dict[str, Any] = {"seed": seed, "warmup_searches": args.warmup}
    out["warmup_s"] = round(warm_s, 1)
    out["holdout_queries"] = len(holdout)
    out["hybrid"] = evaluate("hybrid")
    out["full_cold_start"] = evaluate("full")
    registry = ModelRegistry(ranker_dir(settings))
    from shoprank.cli_ranker import load_dataset

    # Round 1: the cold-start scorer is live. Round 2 (more traffic under whatever the gate
    # left live): a retrained candidate against that model. Then two weaker candidates an
    # operator might train (the latest 200 searches only; no position-bias correction),
    # which the gate should refuse when they are worse.
    from shoprank.rerankers.ltr.dataset import Dataset, LoggedSearch
    from shoprank.rerankers.ltr.train import TrainParams, latest_searches

    def without_new_features(data: Dataset) -> Dataset:
        drop = ("user_brand_weight", "user_sim_max", "user_sim_brand", "user_sim_price_fit")
        return Dataset(
            [
                LoggedSearch(
                    **{
                        **s.__dict__,
                        "features": [
                            {k: v for k, v in f.items() if k not in drop} for f in s.features
                        ],
                    }
                )
                for s in data.searches
            ]
        )

    decisions = []
    live_true = out["full_cold_start"]
    plan = [
        ("retrain", 1, None, None),
        ("retrain", 2, None, None),
        ("latest 200 searches only", 2, 200, None),
        ("no position-bias correction", 2, None, TrainParams(debias=False)),
    ]
    for name, round_no, latest, params in plan:
        if round_no == 2 and name == "retrain":
            warm(service_for_round(), args.warmup2)
        data = load_dataset(settings)
        if latest is not None:
            data = latest_searches(data, latest)
        before = registry.live()
        try:
            report = train_ranker(
                data,
                registry=registry,
                live=load_scorer(registry),
                params=params,
                min_searches=settings.ranker_min_searches,
                gate_metric=settings.ranker_gate_metric,
                gate_margin=settings.ranker_gate_margin,
                promote=False,
            )
        except NotEnoughDataError as exc:
            out["train_error"] = str(exc)
            break
        registry.promote(report.version, reason="benchmark: measure the candidate")
        candidate_true = evaluate("full")
        passed = report.gate.endswith("pass")
        if not passed:
            registry.promote(before or "default-v1", reason="benchmark: gate failed")
        decisions.append(
            {
                "candidate": name,
                "round": round_no,
                "live_version": before or "default-v1",
                "live_true_ndcg@10": live_true,
                "candidate_true_ndcg@10": candidate_true,
                "gate_passed": passed,
                "gate": report.gate,
                "gain": report.gate_gain,
                "gain_se": report.gate_gain_se,
                "training_searches": report.searches,
                "truly_better": candidate_true > live_true,
            }
        )
        if passed:
            live_true = candidate_true
        if round_no == 1 and args.ablation:
            # The same training without this change's new features (never promoted).
            keep = registry.live()
            ablated = train_ranker(
                without_new_features(load_dataset(settings)),
                registry=registry,
                live=load_scorer(registry),
                min_searches=1,
                promote=False,
            )
            registry.promote(ablated.version, reason="benchmark: ablation")
            out["round1_without_new_features"] = evaluate("full")
            registry.promote(keep or "default-v1", reason="benchmark: ablation done")
    out["decisions"] = decisions
    out["full_live_after_gate"] = live_true
    out["ratio_full_live_vs_hybrid"] = live_true / out["hybrid"]
    print(json.dumps(out), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="/tmp/shoprank-personalisation")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=2400)
    ap.add_argument("--warmup2", type=int, default=1200, help="searches before round 2")
    ap.add_argument("--ablation", action="store_true", help="round 1 without new features")
    ap.add_argument("--holdout-per-user", type=int, default=3)
    ap.add_argument("--page", type=int, default=10)
    ap.add_argument("--per-type", type=int, default=250)
    ap.add_argument(
        "--intent", action="store_true", help="train the intent model (product types) at load"
    )
    ap.add_argument("--out", default="")
    ap.add_argument("--seed-run", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    raw, products = load_products(args.per_type)
    base = ensure_base(work, raw, intent=args.intent)
    shop = Shop(products)
    if args.seed_run is not None:  # one seed, in its own process (settings are per process)
        run_seed(args, base, shop, args.seed_run)
        return
    runs = []
    for seed in args.seeds.split(","):
        cmd = [sys.executable, __file__, "--seed-run", seed, *sys.argv[1:]]
        proc = subprocess.run(cmd, check=True, capture_output=True, text=True)
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(json.dumps(runs[-1]), flush=True)
    decisions = [d for r in runs for d in r.get("decisions", [])]
    summary = {
        "simulator": "icecat cascade, brand-loyal + price-sensitive (bench_personalisation.py)",
        "users": args.users,
        "warmup": args.warmup,
        "warmup2": args.warmup2,
        "products": len(products),
        "runs": runs,
        "mean_ratio_full_live_vs_hybrid": statistics.fmean(
            r["ratio_full_live_vs_hybrid"] for r in runs if "ratio_full_live_vs_hybrid" in r
        ),
        "gate_decisions": len(decisions),
        "gate_promoted": sum(d["gate_passed"] for d in decisions),
        "gate_promoted_worse": sum(d["gate_passed"] and not d["truly_better"] for d in decisions),
        "gate_refused_better": sum(not d["gate_passed"] and d["truly_better"] for d in decisions),
        # what a gate on the mean alone (z = 0) would have done
        "mean_only_gate_promoted_worse": sum(
            d["gain"] > 0 and not d["truly_better"] for d in decisions
        ),
    }
    print(json.dumps(summary, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
