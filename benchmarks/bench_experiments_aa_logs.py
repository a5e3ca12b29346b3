"""A/A experiments replayed offline from a real behaviour log (issue 18, item 5b): how often
is an experiment between two *identical* configurations declared significant?

The log is a data dir's behaviour log (searches with the page each shopper saw, and the
clicks that cite them) — e.g. the traffic `shoprank simulate` sent through the real
endpoint in `benchmarks/bench_experiments_live.py`. Each A/A test draws a fresh salt:

- **A/B**: every logged search's user is assigned to an arm by the experiment's keyed hash
  (sticky, as serving does); arm B "serves" the same page, so any difference in click rate
  between the arms is chance. Analysed with the shopper as the unit (`ab`, what `decide`
  does) and, for comparison, as if every search were independent (`ab_per_search`).
- **Interleaving**: every logged page is team-drafted with itself (`team_draft(page,
  page)`, coins seeded by the test's id and the query id, as serving does); the page's
  real clicks credit the arm that "contributed" each clicked product.

Each test is looked at after every `--batch` searches, in log order, with the experiment's
sequential test (`primary_test`, what `decide` uses) and with the naive fixed-horizon test
re-run at every look (what peeking at a dashboard does). Nominal rate: alpha = 0.05.

    python benchmarks/bench_experiments_aa_logs.py --data-dir DIR --tests 200 \\
        --out benchmarks/results/experiments-aa-logs.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from shoprank.events.service import EventService
from shoprank.experiments.assign import Assigner
from shoprank.experiments.decide import ab_variance, primary_test
from shoprank.experiments.interleave import seed, team_draft
from shoprank.experiments.model import Experiment
from shoprank.experiments.sequential import naive_fixed_test
from shoprank.experiments.stats import difference, preference
from shoprank.experiments.tally import ArmRun, EventRecord, SearchRecord, Tallies
from shoprank.settings import Settings

Page = tuple[str, str, list[str]]  # (query id, user pseudonym, product ids shown)


def read_log(data_dir: Path) -> tuple[list[Page], dict[str, list[EventRecord]]]:
    pages: list[Page] = []
    events: dict[str, list[EventRecord]] = defaultdict(list)
    for _, event in EventService(Settings(data_dir=data_dir)).log.read():
        if event.type == "search" and event.query_id and event.product_ids:
            unit = event.user_id or event.session_id or ""
            pages.append((event.query_id, unit, list(event.product_ids)))
        elif event.type in ("click", "add_to_cart", "purchase") and event.query_id:
            events[event.query_id].append(EventRecord(event.query_id, event.type, event.product_id))
    return pages, events


def one_test(
    method: str,
    test: int,
    pages: list[Page],
    events: dict[str, list[EventRecord]],
    *,
    batch: int,
    mde: float,
    alpha: float,
    per_search: bool = False,
) -> tuple[bool, bool, int]:
    """(sequential ever significant, naive ever significant, looks) for one A/A test."""
    exp = Experiment.new(
        f"aa-{method}-{test}",
        control={"ranker": "live"},
        challenger={"ranker": "live-copy"},
        method=method,  # type: ignore[arg-type]
        mde=mde,
        alpha=alpha,
        now=0.0,
        salt=f"aa-salt-{method}-{test}",
    )
    running = Experiment.from_dict({**exp.to_dict(), "status": "running"})
    assigner = Assigner(running)
    tallies = Tallies.for_experiment(running)
    seq = naive = False
    looks = 0
    for n, (qid, unit, shown) in enumerate(pages, start=1):
        if method == "ab":
            arm = assigner.arm(unit) or "A"
            # per_search: analysed as if every search were an independent draw (the first
            # version did so); otherwise with the shopper, the unit of assignment.
            who = None if per_search else unit or None
            record = SearchRecord(qid, arm, {arm: ArmRun(False, 0.0)}, unit=who)
            tallies.add(record, events.get(qid, ()))
        else:
            page = team_draft(shown, shown, seed=seed(running.id, qid), size=len(shown))
            record = SearchRecord(qid, "interleave", {}, page.team_of())
            tallies.add(record, events.get(qid, ()))
        if n % batch:
            continue
        looks += 1
        seq = seq or primary_test(running, tallies).significant
        if method == "ab":
            a, b = tallies.arms["A"], tallies.arms["B"]
            counts = (a.converted["click"], a.searches, b.converted["click"], b.searches)
            p = difference(*counts, variance=ab_variance(tallies, "click")).p_value
        else:
            p = preference(tallies.wins_a, tallies.wins_b, tallies.ties).p_value
        naive = naive or naive_fixed_test(p, alpha=alpha)
    return seq, naive, looks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--tests", type=int, default=200)
    parser.add_argument("--batch", type=int, default=50, help="searches between looks")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    started = time.perf_counter()
    pages, events = read_log(args.data_dir)
    clicked = sum(1 for qid, _, _ in pages if any(e.kind == "click" for e in events.get(qid, ())))
    out: dict[str, Any] = {
        "log": {
            "searches": len(pages),
            "searches_with_a_click": clicked,
            "users": len({u for _, u, _ in pages}),
        },
        "alpha": args.alpha,
        "batch": args.batch,
    }
    for name, method, mde in (
        ("ab", "ab", 0.05),
        ("ab_per_search", "ab", 0.05),
        ("interleave", "interleave", 0.1),
    ):
        seq_fp = naive_fp = looks = 0
        for t in range(args.tests):
            s, n, looks = one_test(
                method,
                t,
                pages,
                events,
                batch=args.batch,
                mde=mde,
                alpha=args.alpha,
                per_search=name == "ab_per_search",
            )
            seq_fp += s
            naive_fp += n
        out[name] = {
            "tests": args.tests,
            "mde": mde,
            "looks_per_test": looks,
            "sequential_false_positives": seq_fp,
            "sequential_rate": round(seq_fp / args.tests, 4),
            "naive_false_positives": naive_fp,
            "naive_rate": round(naive_fp / args.tests, 4),
        }
    out["wall_s"] = round(time.perf_counter() - started, 1)
    text = json.dumps(out, indent=1)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
