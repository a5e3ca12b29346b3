"""Interleaving vs A/B on live traffic (issue 18, item 5a): `shoprank simulate`'s shoppers
search and click through a real `shoprank serve`; each experiment pits the cold-start scorer
(control, live) against a ranker trained on earlier simulated traffic (challenger); after
every batch the decision rule (`results()` → `decide`, the sequential tests) looks at the
behaviour log the server wrote. Reported per method and seed: searches served under the
experiment until its first promote/rollback, or "not decided" at the cap.

    nice -n 10 .venv/bin/python benchmarks/bench_experiments_live.py \\
        --data-dir /tmp/livebench/full/data --seeds 3 --clients 4 --max-searches 2400 \\
        --max-searches-interleave 3000 --out benchmarks/results/experiments-live.json

The recorded result is that command cut after seed 0 (wall time: see below), then more runs
on the same data dir and candidate, added to the file's `extensions` (`--extend`), and the
summary rebuilt over all runs:

    ... --skip-load --candidate ranker-20261203-135327-7107 --extend --methods interleave \\
        --first-seed 1 --seeds 2 --clients 4 --max-searches-interleave 3000 --out <same>
    ... --skip-load --candidate ranker-20261203-135327-7107 --extend --methods ab \\
        --first-seed 1 --seeds 1 --clients 4 --max-searches 2400 --time-budget-s B --out <same>
    .venv/bin/python benchmarks/bench_experiments_live.py --summarise --out <same>

1. The demo catalog (400 products) is written and loaded with the real CLI (numpy MiniLM).
2. The real server runs with the schedule off (this script decides when to look) and
   budgets no busy machine overruns, one worker.
3. Warm-up: `simulate.run` (60 shoppers × 4 sessions), then `shoprank train ranker
   --no-promote` gives the challenger (its offline lines are reported); default-v1 stays
   live.
4. Per seed and method, an experiment (own id, so own salt and interleaving coins) runs on a
   fixed population of `--population` (240) simulated shoppers whose first 60 are the
   warm-up's (same ids, same tastes: `make_shoppers` from the warm-up seed draws the same
   people first), so the profiles the server built are theirs. (Fresh `simulate.run` seeds
   per batch would reuse ids `sim-0000…` with new tastes: every profile would describe
   somebody else.) One batch = one session of 2 searches for each of 60 shoppers drawn at
   random (120 searches), sent by `--clients` concurrent keep-alive clients (a shopper's
   searches stay in order on one client), with simulate's click model (`_engage`). After a
   batch the script reads the log until it holds every enrolled search and every click
   posted for them, then looks. The method order alternates per seed (profiles keep growing).
5. Ground truth: the simulator knows each shopper's true grades, so every served page's
   true DCG@10 is recorded per variant; the A/B arms' means say which ranker is truly better.

MDE: interleave 0.1 (share of decided queries), A/B 0.05 (absolute click rate). Both are only
the mixture scale of the always-valid tests; the result's `mde_check` shows how little the
sample size they need depends on them. `max_searches` is set to the cap so the experiment's own
horizon rule does not end a run before the cap.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoprank.events.model import Event
from shoprank.events.service import EventService
from shoprank.experiments.model import Experiment
from shoprank.experiments.results import experiment_store, results
from shoprank.experiments.sequential import msprt_proportions, msprt_sign
from shoprank.settings import Settings
from shoprank.simulate import (
    Catalog,
    Client,
    Shopper,
    _engage,
    make_query,
    make_shoppers,
    search_body,
)
from shoprank.simulate import run as simulate

INDEX = "demo"
MDE = {"interleave": 0.1, "ab": 0.05}
ENV = {
    "HF_HUB_OFFLINE": "1",
    "SHOPRANK_ENCODER_BACKEND": "numpy",
    "SHOPRANK_PRODUCT_INDEX": INDEX,
    "SHOPRANK_RETRAIN_INTERVAL_S": "0",
    "SHOPRANK_SEARCH_BUDGET_MS": "600000",
    "SHOPRANK_RERANK_TIMEOUT_MS": "600000",
    "SHOPRANK_REQUEST_TIMEOUT_MS": "600000",
    "SHOPRANK_MAX_QUEUE_MS": "600000",
    "SHOPRANK_WORKERS": "1",
}
SYNC_TIMEOUT_S = 120.0


def cli(data_dir: Path, *args: str) -> str:
    """Run the real command line; its output (stdout + stderr), or exit naming the failure."""
    out = subprocess.run(
        [sys.executable, "-m", "shoprank.cli", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **ENV},
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"shoprank {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout + out.stderr


class Server:
    """`shoprank serve` on a free loopback port, logging to data_dir/livebench-server.log."""

    def __init__(self, data_dir: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / "livebench-server.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "shoprank.cli", "--data-dir", str(data_dir), "serve"]
                + ["--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **ENV},
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"the server exited:\n{self.log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + "/", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        raise SystemExit(f"the server did not start:\n{self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def dcg(grades: list[int]) -> float:
    """DCG of a page's true grades (gain 2^g - 1)."""
    return float(sum((2.0**g - 1) / math.log2(pos + 1) for pos, g in enumerate(grades, start=1)))


@dataclass
class Batch:
    """What one batch sent: the enrolled searches' query ids, the clicks posted for them,
    and each served page's true DCG@10 by variant (A, B, interleave, none)."""

    searches: int = 0
    enrolled: set[str] = field(default_factory=set)
    clicks: int = 0
    truth: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def merge(self, other: Batch) -> None:
        self.searches += other.searches
        self.enrolled |= other.enrolled
        self.clicks += other.clicks
        for k, v in other.truth.items():
            self.truth[k].extend(v)


class Shop:
    """The warm-up's simulated shoppers, searching and clicking through the real endpoint."""

    def __init__(self, url: str, *, shoppers: int, population_seed: int, clients: int) -> None:
        self.url = url
        self.clients = [Client(url, timeout=600) for _ in range(clients)]
        self.catalog = Catalog.fetch(self.clients[0], INDEX)
        # simulate.run(seed=s) draws its shoppers first from random.Random(s): the same people.
        self.people = make_shoppers(self.catalog, shoppers, random.Random(population_seed))

    def _sessions(self, client: Client, work: list[tuple[Shopper, int]]) -> Batch:
        out = Batch()
        for shopper, coin in work:
            rng = random.Random(coin)
            session_id = f"{shopper.id}-live-{uuid.UUID(int=rng.getrandbits(128)).hex[:8]}"
            for _ in range(2):
                query = make_query(shopper, self.catalog, rng)
                body = search_body(
                    query.text, mode="full", user_id=shopper.id, session_id=session_id
                )
                resp = client.post(f"/{INDEX}/_search", body)
                out.searches += 1
                ids = [str(h["_id"]) for h in resp["hits"]["hits"]]
                meta = resp.get("_shoprank") or {}
                query_id = meta.get("query_id")
                variant = str((meta.get("experiment") or {}).get("variant") or "none")
                grades = [
                    shopper.grade(self.catalog.by_id[i], query) if i in self.catalog.by_id else 0
                    for i in ids
                ]
                out.truth[variant].append(dcg(grades))
                events: list[dict[str, Any]] = []
                for kind, pid, pos in _engage(shopper, query, ids, self.catalog, rng, 1.0):
                    event: dict[str, Any] = {
                        "type": kind,
                        "user_id": shopper.id,
                        "session_id": session_id,
                        "product_id": pid,
                        "position": pos,
                    }
                    if query_id:
                        event["query_id"] = query_id
                    if kind == "purchase":
                        event.update(quantity=1, price=self.catalog.by_id[pid].price)
                    events.append(event)
                if variant != "none" and query_id:
                    out.enrolled.add(str(query_id))
                    out.clicks += sum(e["type"] == "click" for e in events)
                if events:
                    client.post("/_shoprank/events", events)
        return out

    def batch(self, rng: random.Random, shoppers: int) -> Batch:
        """One session of two searches for each of `shoppers` shoppers drawn at random,
        spread over the clients (each shopper's searches in order on one client)."""
        order = rng.sample(self.people, k=min(shoppers, len(self.people)))
        work: list[list[tuple[Shopper, int]]] = [[] for _ in self.clients]
        for i, shopper in enumerate(order):
            work[i % len(work)].append((shopper, rng.getrandbits(64)))
        total = Batch()
        with ThreadPoolExecutor(len(self.clients)) as pool:
            for part in pool.map(self._sessions, self.clients, work):
                total.merge(part)
        return total

    def close(self) -> None:
        for client in self.clients:
            client.close()


class LogReader:
    """The behaviour log the server writes, read on from where the last read stopped;
    keeps one experiment's search events and the engagement events that cite them."""

    def __init__(self, settings: Settings) -> None:
        self.log = EventService(settings).log
        self.cursor: str | None = None
        for offset, _ in self.log.read():
            self.cursor = offset

    def follow(self, experiment_id: str) -> None:
        self.experiment_id = experiment_id
        self.searches: dict[str, Event] = {}
        self.engagement: list[Event] = []

    def read(self) -> None:
        for offset, event in self.log.read(self.cursor):
            self.cursor = offset
            if event.type == "search":
                tag = event.experiment
                mine = isinstance(tag, dict) and tag.get("id") == self.experiment_id
                if mine and event.query_id:
                    self.searches[event.query_id] = event
            elif event.query_id:
                self.engagement.append(event)

    def sync(self, enrolled: set[str], clicks: int) -> bool:
        """Read until the log holds every enrolled search and every click posted for them."""
        deadline = time.monotonic() + SYNC_TIMEOUT_S
        while True:
            self.read()
            seen = sum(q in self.searches for q in enrolled)
            clicked = sum(
                e.type == "click" and e.query_id in self.searches for e in self.engagement
            )
            if seen >= len(enrolled) and clicked >= clicks:
                return True
            if time.monotonic() > deadline:
                print(f"  log behind: {seen}/{len(enrolled)} searches, {clicked}/{clicks} clicks")
                return False
            time.sleep(1.0)  # a read parses the log's current segment: not too often

    def events(self) -> list[Event]:
        wanted = set(self.searches)
        return [*self.searches.values(), *(e for e in self.engagement if e.query_id in wanted)]


def run_experiment(
    settings: Settings,
    shop: Shop,
    reader: LogReader,
    *,
    candidate: str,
    method: str,
    seed: int,
    cap: int,
    batch_shoppers: int,
    time_budget_s: float = math.inf,
) -> dict[str, Any]:
    store = experiment_store(settings)
    exp = Experiment.new(
        f"live-{method}-s{seed}-{uuid.uuid4().hex[:6]}",
        control={"ranker": "default-v1"},
        challenger={"ranker": candidate},
        method=method,
        metric="click",
        mde=MDE[method],
        max_searches=cap,
        now=time.time(),
    )
    store.create(exp)
    reader.read()
    reader.follow(exp.id)
    exp = store.start(exp.id, now=time.time())
    time.sleep(1.5)  # the server re-reads running experiments at most once a second
    rng = random.Random(seed * 7919 + 17)
    sent = Batch()
    looks: list[dict[str, Any]] = []
    out_of_time = False
    started = time.perf_counter()
    try:
        while True:
            sent.merge(shop.batch(rng, batch_shoppers))
            synced = reader.sync(sent.enrolled, sent.clicks)
            found = results(settings, [exp], events=reader.events())[exp.id]
            decision, ev = found["decision"], found["evidence"]
            seq = ev["sequential"]
            looks.append({"searches": ev["searches"], "p": seq["p_value"], "leader": seq["leader"]})
            print(
                f"  {exp.id}: {ev['searches']} enrolled / {sent.searches} sent, "
                f"p={seq['p_value']:.3g} leader={seq['leader']} → {decision['action']}"
                + ("" if synced else " (log behind)"),
                flush=True,
            )
            if decision["action"] != "continue" or ev["searches"] >= cap:
                break
            if time.perf_counter() - started > time_budget_s:
                out_of_time = True
                break
    finally:
        store.stop(exp.id, now=time.time(), why="benchmark run over")
    done = decision["action"] != "continue" and decision["reason"] != "inconclusive_at_horizon"
    truth = {k: round(statistics.fmean(v), 4) for k, v in sent.truth.items() if v}
    return {
        "method": method,
        "seed": seed,
        "experiment": exp.id,
        "decided": done,
        "decision": f"{decision['action']}/{decision['reason']}",
        "message": decision["message"],
        "searches": ev["searches"],
        "searches_sent": sent.searches,
        "p_value": ev["sequential"]["p_value"],
        "effect": ev.get("preference") or ev.get("difference"),
        "arms": {
            arm: {"searches": a["searches"], "click_rate": a["rates"]["click"]["rate"]}
            for arm, a in ev["arms"].items()
        },
        "true_dcg10_by_variant": truth,
        "looks": looks,
        "cap": cap,
        "out_of_time": out_of_time,
        "wall_s": round(time.perf_counter() - started, 1),
    }


def mde_check() -> dict[str, Any]:
    """Decided queries (interleave) / searches (A/B) the always-valid tests need for a few
    true effects, per mixture scale: the choice of mde barely matters."""
    out: dict[str, Any] = {"interleave": {}, "ab": {}}
    for share in (0.55, 0.6, 0.65):
        for mde in (0.05, 0.1, 0.15):
            n = 20
            while not msprt_sign(n - round(n * share), round(n * share), mde=mde).significant:
                n += 5
            out["interleave"][f"share {share} mde {mde}"] = n
    for diff in (0.03, 0.05):
        for tau in (0.02, 0.05):
            n = 100
            while not msprt_proportions(
                round(n * 0.6), n, round(n * (0.6 + diff)), n, tau=tau
            ).significant:
                n += 50
            out["ab"][f"rate 0.6 vs {0.6 + diff:.2f} tau {tau}"] = 2 * n  # both arms
    return out


def projected_ab(rate_a: float, rate_b: float, *, tau: float = MDE["ab"]) -> int | str:
    """Searches (both arms) the A/B test would need to decide if the observed click rates
    were the true ones (a projection, not a measurement); "∞" for no difference."""
    if abs(rate_b - rate_a) < 1e-9:
        return "∞"
    n = 100
    while n < 10_000_000:
        sa, sb = round(n * rate_a), round(n * rate_b)
        if msprt_proportions(sa, n, sb, n, tau=tau).significant:
            return 2 * n
        n = int(n * 1.05) + 1
    return "> 20,000,000"


def summary(runs: list[dict[str, Any]], caps: dict[str, int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for method in ("interleave", "ab"):
        mine = [r for r in runs if r["method"] == method]
        if not mine:
            continue
        decided = [r for r in mine if r["decided"]]
        # An undecided run counts at its cap: the median is then a lower bound.
        values = [r["searches"] for r in mine]
        out[method] = {
            "cap": caps[method],
            "searches": values,
            "decisions": [r["decision"] for r in mine],
            "decided": len(decided),
            "runs": len(mine),
            "median_searches": statistics.median(values),
            "median_is_lower_bound": len(decided) < len(mine),
        }
    if "interleave" in out and "ab" in out:
        ratio = out["ab"]["median_searches"] / max(1, out["interleave"]["median_searches"])
        out["ab_over_interleave_median"] = round(ratio, 2)
        out["ratio_is_lower_bound"] = out["ab"]["median_is_lower_bound"]
    return out


def table(runs: list[dict[str, Any]], summ: dict[str, Any]) -> str:
    lines = [
        "| method | seed | searches to decision | decision | always-valid p | effect |",
        "|---|---|---|---|---|---|",
    ]
    for r in sorted(runs, key=lambda r: (r["method"] != "interleave", r["seed"])):
        eff = r["effect"] or {}
        if r["method"] == "interleave":
            share = eff.get("challenger_share", {}).get("rate", float("nan"))
            effect = f"challenger wins {share:.1%} of decided queries"
        else:
            a, b = r["arms"]["A"]["click_rate"], r["arms"]["B"]["click_rate"]
            t = r["true_dcg10_by_variant"]
            effect = (
                f"click rate {a:.3f} → {b:.3f}; true DCG@10 {t.get('A', 0):.2f} → "
                f"{t.get('B', 0):.2f}; at this difference ≈ {projected_ab(a, b):,} searches"
            )
        n = f"{r['searches']:,}" if r["decided"] else f"not decided within {r['searches']:,}"
        if r.get("out_of_time"):
            n += " (time budget)"
        lines.append(
            f"| {r['method']} | {r['seed']} | {n} | {r['decision']} | {r['p_value']:.2g} | "
            f"{effect} |"
        )
    for method in ("interleave", "ab"):
        s = summ.get(method)
        if s:
            bound = " (lower bound)" if s["median_is_lower_bound"] else ""
            lines.append(
                f"| **{method} median** | | **{s['median_searches']:,}{bound}** | "
                f"{s['decided']}/{s['runs']} decided | | |"
            )
    if "ab_over_interleave_median" in summ:
        bound = "≥ " if summ["ratio_is_lower_bound"] else ""
        lines.append(
            f"\nA/B median / interleaving median: **{bound}{summ['ab_over_interleave_median']}×**"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path, default=None, help="default: a new temp dir")
    ap.add_argument("--skip-load", action="store_true", help="reuse a loaded data dir")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--methods", default="interleave,ab")
    ap.add_argument("--max-searches", type=int, default=6000, help="A/B cap per run")
    ap.add_argument("--max-searches-interleave", type=int, default=6000)
    ap.add_argument("--shoppers", type=int, default=60, help="warm-up shoppers")
    ap.add_argument(
        "--population", type=int, default=240, help="experiment shoppers (warm-up's first)"
    )
    ap.add_argument("--batch-shoppers", type=int, default=60, help="sessions between looks")
    ap.add_argument("--warm-sessions", type=int, default=4)
    ap.add_argument("--warm-seed", type=int, default=1)
    ap.add_argument("--clients", type=int, default=3, help="concurrent simulated clients")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--candidate", default=None, help="skip the warm-up: this challenger")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument(
        "--time-budget-s", type=float, default=math.inf, help="per run: stop undecided after"
    )
    ap.add_argument("--extend", action="store_true", help="add these runs to --out's file")
    ap.add_argument(
        "--summarise", action="store_true", help="only rebuild --out's summary and table"
    )
    args = ap.parse_args()
    if args.summarise:
        summarise(args.out)
        return
    t0 = time.perf_counter()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="livebench-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {
        "machine": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "mde": MDE,
        "mde_check": mde_check(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    if args.extend and (args.out is None or not args.out.exists()):
        raise SystemExit("--extend adds runs to an existing result file: give its --out")
    if not args.skip_load:
        from shoprank.indexing.demo import write_demo_catalog

        catalog = write_demo_catalog(data_dir / "catalog.jsonl", n=400, seed=11)
        cli(data_dir, "index", "load", "--no-train-intent", str(catalog), "--index", INDEX)
    server = Server(data_dir)
    settings = Settings(data_dir=data_dir)
    caps = {"interleave": args.max_searches_interleave, "ab": args.max_searches}
    runs: list[dict[str, Any]] = []
    try:
        if args.candidate:
            candidate = args.candidate  # a dir this script warmed up before (--extend)
        else:
            out["warm_up"] = warm_up(server.url, data_dir, args)
            candidate = out["warm_up"]["candidate"]
        shop = Shop(
            server.url,
            shoppers=args.population,
            population_seed=args.warm_seed,
            clients=args.clients,
        )
        reader = LogReader(settings)
        methods = args.methods.split(",")
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            order = methods if seed % 2 == 0 else methods[::-1]
            for method in order:
                one = run_experiment(
                    settings,
                    shop,
                    reader,
                    candidate=candidate,
                    method=method,
                    seed=seed,
                    cap=caps[method],
                    batch_shoppers=args.batch_shoppers,
                    time_budget_s=args.time_budget_s,
                )
                runs.append(one)
                brief = {k: v for k, v in one.items() if k != "looks"}
                print(json.dumps(brief), flush=True)
                out["runs"] = runs
                save(args, out)
        shop.close()
    finally:
        server.stop()
    out["summary"] = summary(runs, caps)
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    out["table"] = table(runs, out["summary"])
    print(json.dumps(out["summary"], indent=1))
    print(out["table"])
    print(f"done in {out['wall_s']:.0f} s")
    save(args, out)


def summarise(path: Path) -> None:
    """Summary and table of a result file's runs (e.g. one cut short after some seeds)."""
    base = json.loads(path.read_text())
    runs = [*base["runs"], *(r for e in base.get("extensions", []) for r in e["runs"])]
    caps = {"interleave": int(base["args"]["max_searches_interleave"])}
    caps["ab"] = int(base["args"]["max_searches"])
    base["summary"] = summary(runs, caps)
    base["table"] = table(runs, base["summary"])
    print(base["table"])
    path.write_text(json.dumps(base, indent=1) + "\n")


def warm_up(url: str, data_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Simulated traffic for the candidate to learn from, then the candidate (not live)."""
    warm = simulate(
        url,
        index=INDEX,
        shoppers=args.shoppers,
        sessions=args.warm_sessions,
        holdout_per_shopper=0,
        seed=args.warm_seed,
    )
    trained = cli(data_dir, "train", "ranker", "--no-promote")
    match = re.search(r"trained (\S+) on", trained)
    if match is None:
        raise SystemExit(f"no candidate version in:\n{trained}")
    gate = [ln.strip() for ln in trained.splitlines() if "dcg@10" in ln]
    found = {**warm.as_dict(), "candidate": match.group(1), "offline": gate}
    print("warm-up:", json.dumps(found, indent=1), flush=True)
    return found


def save(args: argparse.Namespace, out: dict[str, Any]) -> None:
    """Write the results; with --extend, as an `extensions` entry of an earlier result file
    (more runs on the same data dir and candidate, e.g. with a higher cap)."""
    if args.out is None:
        return
    if not args.extend:
        args.out.write_text(json.dumps(out, indent=1) + "\n")
        return
    base = json.loads(args.out.read_text())
    extensions = [e for e in base.get("extensions", []) if e.get("started") != out["started"]]
    base["extensions"] = [*extensions, out]
    args.out.write_text(json.dumps(base, indent=1) + "\n")


if __name__ == "__main__":
    main()
