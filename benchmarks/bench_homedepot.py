"""Relevance on real human judgments: the Home Depot product search data set (54,667 product
titles, queries graded 1–3 by people) through every mode of the pipeline, side by side with
an exact-scoring reference.

    python benchmarks/bench_homedepot.py --data-dir /tmp/hd                 # load + evaluate
    python benchmarks/bench_homedepot.py --data-dir /tmp/hd --skip-load     # reuse the index
    python benchmarks/bench_homedepot.py --data-dir /tmp/hd --skip-load --diagnose

The catalog is loaded with the project's own CLI (`shoprank index load`, the encoder that
`SHOPRANK_ENCODER_BACKEND=auto` picks unless `--encoder` says otherwise); each mode is judged
by `shoprank.evaluation.offline` — what `shoprank evaluate --judgments` runs — on:

- `cndcg@10`: condensed nDCG@10 over the top 100 (unjudged hits dropped first);
- `jndcg@10`: nDCG@10 of the mode's ranking of only the query's judged products;
- p50 / p99 latency of the top-100 search, in process. Query vectors are embedded once, in
  batches, before the modes run (3,537 single-query encodes per mode would take longer than
  everything else on 2 cores) — with the spelling-corrected texts `full` embeds instead —
  so mode latencies exclude embedding the query; `embed` is
  the single-query encoder latency on a sample of the queries, to add to the vector modes.

`exact` is the reference: BM25 top 100 from the same index and exact cosine over every
product vector (top 100), fused by RRF with k = 60. `--diagnose` adds where the hybrid
mode's score goes: the HNSW leg's recall against exact search and offline fusions of the
raw legs (HNSW vs exact vector leg, per-leg depth, RRF constant) — diagnosis only, never a
tuning loop: the numbers that decide are on a held-out query set.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import tantivy  # noqa: E402

from shoprank import heap  # noqa: E402
from shoprank.evaluation import offline  # noqa: E402
from shoprank.evaluation.metrics import condensed_ndcg_at_k  # noqa: E402
from shoprank.indexing.mapping import TEXT_VECTOR_FIELD  # noqa: E402
from shoprank.plugin.fusion import LegHit, linear, rrf  # noqa: E402
from shoprank.settings import Settings  # noqa: E402
from shoprank.wiring import (  # noqa: E402
    make_service,
    query_text_encoder,
    text_encoder_backend,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "homedepot"
MODES = ["lexical", "vector", "hybrid", "full"]
FIELDS = list(offline.DEFAULT_FIELDS)


def load(settings: Settings, catalog: Path, index: str, encoder: str) -> dict[str, Any]:
    """`shoprank index load` in a child process, as a user runs it."""
    env = {**os.environ, "SHOPRANK_ENCODER_BACKEND": encoder, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "shoprank.cli", "--data-dir", str(settings.data_dir)]
    cmd += ["index", "load", str(catalog), "--index", index, "--json"]
    print("$", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    report["wall_s"] = round(seconds, 1)
    print(f"loaded in {seconds:.0f} s", flush=True)
    return report


def prefill_query_vectors(service: Any, encoder: Any, queries: Sequence[str]) -> dict[str, Any]:
    """Embed `queries` in batches and put them in the service's query-vector cache."""
    vectors = encoder.encode(list(queries), batch_size=64)
    lookup = dict(zip(queries, vectors, strict=True))

    class Precomputed:
        # The query-vector cache is keyed by model id: the batch-embedded vectors must be
        # found under the id of the encoder the service will use afterwards.
        model_id = encoder.model_id

        def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> Any:
            return np.stack([lookup[t] for t in texts])

    real = service.vectors.text_factory
    service.vector_cache_size = len(queries) + 1024
    service.vectors.text_factory = lambda: Precomputed()
    for query in queries:
        service.vectors.embed(query)
    service.vectors.text_factory = real
    return lookup


def spelled_texts(service: Any, index: str, queries: Sequence[str]) -> list[str]:
    """The corrected text of each query that `full` mode's spelling step changes."""
    out = []
    for query in queries:
        body = {"query": {"multi_match": {"query": query, "fields": FIELDS}}}
        spelled = service.understanding.spell(index, query, body, [])
        if spelled.changed:
            out.append(spelled.corrected)
    return out


def embed_latency(encoder: Any, queries: Sequence[str]) -> dict[str, float]:
    took = []
    for query in queries:
        t0 = time.perf_counter()
        encoder.encode([query])
        took.append((time.perf_counter() - t0) * 1000)
    return {"p50_ms": offline.percentile(took, 50), "p99_ms": offline.percentile(took, 99)}


class Exact:
    """Exact scoring over the same index: BM25 hits from the backend, cosine similarity
    against every stored product vector (read once from the vector file)."""

    def __init__(self, service: Any, index: str, vectors: dict[str, Any]) -> None:
        self.service = service
        self.backend = service.backend
        self.index = index
        self.vectors = vectors  # query text → vector (prefilled)
        gen = self.backend.store.generation(index)
        store = gen.vectors[TEXT_VECTOR_FIELD]
        searcher = gen.searcher()
        hits = searcher.search(tantivy.Query.all_query(), limit=searcher.num_docs).hits
        addresses = [a for _, a in hits]
        keys = searcher.fast_field_values("_key", addresses)
        pairs = [
            (int(key), str(searcher.doc(addr).get_first("_id")))
            for addr, key in zip(addresses, keys, strict=True)
            if key is not None and int(key) in store.index
        ]
        self.ids = [pid for _, pid in pairs]
        self.row = {pid: i for i, pid in enumerate(self.ids)}
        got = store.index.get(np.asarray([k for k, _ in pairs], np.uint64), dtype="f32")
        matrix = np.vstack(got) if isinstance(got, tuple) else np.asarray(got)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        self.matrix = (matrix / np.where(norms == 0, 1.0, norms)).astype(np.float32)

    def query_vector(self, text: str) -> Any:
        vector = np.asarray(self.vectors[text], np.float32)
        return vector / (np.linalg.norm(vector) or 1.0)

    def bm25(self, text: str, depth: int, ids: Sequence[str] | None = None) -> list[LegHit]:
        query: dict[str, Any] = {"multi_match": {"query": text, "fields": FIELDS}}
        if ids is not None:
            query = {"bool": {"must": [query], "filter": [{"ids": {"values": list(ids)}}]}}
        body = {"query": query, "size": depth, "_source": False, "track_total_hits": False}
        hits = self.backend.search(self.index, body)["hits"]["hits"]
        return [LegHit(h["_id"], float(h["_score"]), i + 1) for i, h in enumerate(hits)]

    def cosine(self, text: str, depth: int, ids: Sequence[str] | None = None) -> list[LegHit]:
        vector = self.query_vector(text)
        if ids is None:
            sims = self.matrix @ vector
            top = np.argpartition(-sims, min(depth, len(sims) - 1))[:depth]
            top = top[np.argsort(-sims[top], kind="stable")]
            return [LegHit(self.ids[i], float(sims[i]), r + 1) for r, i in enumerate(top)]
        rows = [self.row[pid] for pid in ids if pid in self.row]
        sims = self.matrix[rows] @ vector
        order = np.argsort(-sims, kind="stable")[:depth]
        return [
            LegHit(self.ids[rows[i]], float(sims[i]), r + 1) for r, i in enumerate(order.tolist())
        ]

    def cosine_of(self, text: str, ids: Sequence[str]) -> dict[str, float]:
        vector = self.query_vector(text)
        rows = [self.row[pid] for pid in ids if pid in self.row]
        sims = (self.matrix[rows] @ vector).tolist()
        return {self.ids[r]: float(s) for r, s in zip(rows, sims, strict=True)}

    def hnsw(self, text: str, window: int) -> list[LegHit]:
        """The vector leg as the pipeline asks the backend for it."""
        from shoprank.plugin.pipeline.legs import knn_spec

        vector = self.query_vector(text).tolist()
        factor = self.service.settings.knn_candidates_factor
        spec = knn_spec(TEXT_VECTOR_FIELD, vector, window, None, candidates_factor=factor)
        body = {"knn": spec, "size": window, "_source": False, "track_total_hits": False}
        hits = self.backend.search(self.index, body)["hits"]["hits"]
        return [LegHit(h["_id"], float(h["_score"]), i + 1) for i, h in enumerate(hits)]


def fused_ids(legs: dict[str, list[LegHit]], k: int, window: int) -> list[str]:
    return [h.id for h in rrf(legs, k=k)][:window]


def reference_runs(
    exact: Exact, cases: Sequence[offline.Case], *, window: int, rrf_k: int = 60
) -> dict[str, list[offline.QueryRun]]:
    """The exact vector leg alone and its RRF with BM25, as `QueryRun`s (scored like modes)."""
    out: dict[str, list[offline.QueryRun]] = {"exact vector": [], "exact rrf": []}
    for case in cases:
        judged_ids = sorted(case.grades)
        t0 = time.perf_counter()
        lexical = exact.bm25(case.query, window)
        vector = exact.cosine(case.query, window)
        ranked = fused_ids({"lexical": lexical, "vector": vector}, rrf_k, window)
        took = (time.perf_counter() - t0) * 1000
        j_lex = exact.bm25(case.query, len(judged_ids), judged_ids)
        j_vec = exact.cosine(case.query, len(judged_ids), judged_ids)
        for name, top, judged in (
            ("exact vector", [h.id for h in vector], [h.id for h in j_vec]),
            ("exact rrf", ranked, fused_ids({"lexical": j_lex, "vector": j_vec}, rrf_k, window)),
        ):
            seen = set(judged)
            judged = judged + offline.fixed_order(case, [p for p in judged_ids if p not in seen])
            out[name].append(offline.QueryRun(case, tuple(top), tuple(judged), took))
    return out


def convex(
    lexical: dict[str, float], vector: dict[str, float], *, weight: float, window: int
) -> list[str]:
    """Theoretical-min-max convex combination: BM25 / max (BM25 ≥ 0), (cos + 1) / (max + 1)
    (cosine ≥ −1); a product a leg has no score for gets that leg's 0."""
    top_l = max(lexical.values(), default=0.0) or 1.0
    top_v = max(vector.values(), default=0.0) + 1.0
    ids = list(dict.fromkeys([*lexical, *vector]))
    score = {
        pid: (1 - weight) * lexical.get(pid, 0.0) / top_l
        + weight * ((vector[pid] + 1.0) / top_v if pid in vector else 0.0)
        for pid in ids
    }
    return sorted(ids, key=lambda pid: -score[pid])[:window]


def diagnose(exact: Exact, cases: Sequence[offline.Case], *, window: int) -> dict[str, Any]:
    """Where hybrid's condensed nDCG@10 goes: offline fusions of the raw legs."""
    deep = 1000
    recall, judged_hnsw, judged_exact = [], [], []
    variants: dict[str, list[float]] = {}

    def add(name: str, ranked: list[str], case: offline.Case) -> None:
        variants.setdefault(name, []).append(condensed_ndcg_at_k(ranked, case.grades, 10))

    for case in cases:
        lex = exact.bm25(case.query, deep)
        vec = exact.cosine(case.query, deep)
        ann = exact.hnsw(case.query, window)
        top_exact = {h.id for h in vec[:window]}
        recall.append(len(top_exact.intersection(h.id for h in ann)) / max(len(top_exact), 1))
        judged_hnsw.append(sum(h.id in case.grades for h in ann))
        judged_exact.append(sum(h.id in case.grades for h in vec[:window]))
        add("lexical top-100", [h.id for h in lex[:window]], case)
        add("hnsw top-100", [h.id for h in ann], case)
        add("exact top-100", [h.id for h in vec[:window]], case)
        add("rrf60 bm25@100 + hnsw@100", fused_ids({"l": lex[:window], "v": ann}, 60, window), case)
        for depth in (window, 200, 300, deep):
            legs = {"l": lex[:depth], "v": vec[:depth]}
            add(f"rrf60 bm25@{depth} + exact@{depth}", fused_ids(legs, 60, window), case)
        for k in (10, 20, 30, 100):
            legs = {"l": lex[:window], "v": vec[:window]}
            add(f"rrf{k} bm25@100 + exact@100", fused_ids(legs, k, window), case)
        legs = {"lexical": lex[:window], "vector": vec[:window]}
        mm = linear(legs, weights={"lexical": 0.5, "vector": 0.5})
        add("linear min-max 0.5 bm25@100 + exact@100", [h.id for h in mm][:window], case)
        l100 = {h.id: h.score for h in lex[:window]}
        v100 = {h.id: h.score for h in vec[:window]}
        add("convex tmm 0.5, missing = 0", convex(l100, v100, weight=0.5, window=window), case)
        # Every candidate of either leg scored by both: cosine from its stored vector, BM25
        # from the deep lexical list (absent = does not match).
        l_all = {h.id: h.score for h in lex}
        pool = list(dict.fromkeys([*l100, *v100]))
        full_l = {pid: l_all.get(pid, 0.0) for pid in pool}
        full_v = exact.cosine_of(case.query, pool)
        add("convex tmm 0.5, both scores", convex(full_l, full_v, weight=0.5, window=window), case)
    n = max(len(cases), 1)
    return {
        "hnsw recall@100 vs exact": sum(recall) / n,
        "judged in top-100 (hnsw / exact)": [sum(judged_hnsw) / n, sum(judged_exact) / n],
        "condensed ndcg@10": {name: sum(v) / n for name, v in variants.items()},
    }


def per_query(a: list[offline.QueryRun], b: list[offline.QueryRun]) -> dict[str, Any]:
    """How many queries `b` scores higher / lower / the same as `a` (condensed nDCG@10),
    and the queries `b` loses by more than 0.2."""
    diff = [
        condensed_ndcg_at_k(y.ranked, y.case.grades, 10)
        - condensed_ndcg_at_k(x.ranked, x.case.grades, 10)
        for x, y in zip(a, b, strict=True)
    ]
    losses = sorted((d, x.case.query) for d, x in zip(diff, a, strict=True) if d < -0.2)
    return {
        "higher": sum(d > 1e-9 for d in diff),
        "lower": sum(d < -1e-9 for d in diff),
        "same": sum(abs(d) <= 1e-9 for d in diff),
        "lower by > 0.2": len(losses),
        "losses": [{"query": q, "delta": round(d, 4)} for d, q in losses],
    }


def loss_reasons(service: Any, index: str, losses: list[dict[str, Any]]) -> dict[str, Any]:
    """What `full` logged for each query it loses by > 0.2 (its `_shoprank` rewrite actions,
    relaxation, and the ranker's nudges in the hits' explanations, e.g. `ranker:intent_cat_prob`
    for a product demoted as of a ruled-out type): a loss with none is a loss without a
    logged reason."""
    explained = []
    for loss in losses:
        body = {
            "query": {"multi_match": {"query": loss["query"], "fields": FIELDS}},
            "size": 100,
            "_source": False,
            "ext": {"shoprank": {"mode": "full", "explain": True}},
        }
        response = service.without_log().search(index, body)
        meta = response.get("_shoprank", {})
        reasons = [a.get("action") for a in meta.get("rewrite") or []]
        if meta.get("relaxation"):
            reasons.append(f"relaxed:{meta['relaxation']}")
        nudged = {
            name
            for hit in response["hits"]["hits"]
            for name, value in ((hit.get("_shoprank") or {}).get("contributions") or {}).items()
            if value and name != "retrieval_rr"
        }
        reasons += [f"ranker:{name}" for name in sorted(nudged)]
        explained.append({**loss, "reasons": reasons})
    return {
        "without a logged reason": sum(not e["reasons"] for e in explained),
        "queries": explained,
    }


def print_table(results: dict[str, dict[str, float]]) -> None:
    cols = ["cndcg@10", "jndcg@10", "ndcg@10", "recall@10", "p50_ms", "p99_ms"]
    print(f"{'mode':<14}" + "".join(f"{c:>11}" for c in cols))
    for mode, row in results.items():
        cells = (
            f"{row[c]:>11.2f}" if c.endswith("_ms") else f"{row[c]:>11.4f}"
            for c in cols
            if c in row
        )
        print(f"{mode:<14}" + "".join(cells))


def timed(label: str, fn: Callable[[], Any]) -> Any:
    t0 = time.perf_counter()
    value = fn()
    print(f"  {label}: {time.perf_counter() - t0:.0f} s", flush=True)
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/hd"))
    parser.add_argument("--index", default="homedepot")
    parser.add_argument("--catalog", type=Path, default=DATA / "products.jsonl.gz")
    parser.add_argument("--judgments", type=Path, default=DATA / "judgments-dev.csv")
    parser.add_argument("--skip-load", action="store_true", help="reuse the loaded index")
    parser.add_argument("--encoder", choices=["auto", "numpy", "onnx", "torch"], default="auto")
    parser.add_argument("--queries", type=int, default=0, help="first N queries (0 = all)")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--diagnose", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="write results as JSON here")
    args = parser.parse_args()

    settings = Settings(data_dir=args.data_dir, encoder_backend=args.encoder, search_log=False)
    out: dict[str, Any] = {"encoder": text_encoder_backend(settings), "window": args.window}
    if not args.skip_load:
        out["load"] = load(settings, args.catalog, args.index, args.encoder)
    cases = sorted(offline.cases_from_judgments(args.judgments), key=lambda c: c.query)
    if args.queries:
        cases = cases[: args.queries]
    out["queries"] = len(cases)
    print(f"{len(cases)} judged queries, encoder {out['encoder']}", flush=True)

    service = make_service(settings)
    service.search_logger = None
    service.warm_up()
    # A server's first `full` search after a (re)load reads the spelling vocabulary of the
    # index; do it before timing, as a running server has long done it.
    service.search(args.index, {"query": {"match": {"title": "warm up"}}, "size": 1})
    heap.settle()  # as `shoprank serve` does after its warm-up
    # The encoder the server embeds queries with (the one this index was embedded with).
    encoder = query_text_encoder(settings)
    queries = [c.query for c in cases]
    if "full" in args.modes:
        # `full` embeds the spelling-corrected words instead of the typed ones (one encode
        # per search either way): embed those in the batch too, so that no mode's latency
        # includes an encode the others were spared.
        corrected = spelled_texts(service, args.index, queries)
        print(f"spelling corrects {len(corrected)} of {len(queries)} queries", flush=True)
        queries = list(dict.fromkeys([*queries, *corrected]))
    vectors = timed("embed queries", lambda: prefill_query_vectors(service, encoder, queries))
    out["embed"] = embed_latency(encoder, queries[:: max(1, len(queries) // 100)])
    print(f"single-query embed: {out['embed']}", flush=True)
    runs: dict[str, list[offline.QueryRun]] = {}
    for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
        runs[mode] = timed(
            mode,
            lambda mode=mode: offline.run_mode(
                service, args.index, cases, mode=mode, window=args.window
            ),
        )
    exact = None
    if not args.no_reference or args.diagnose:
        exact = timed("read vectors", lambda: Exact(service, args.index, vectors))
    if exact is not None and not args.no_reference:
        runs.update(timed("exact", lambda: reference_runs(exact, cases, window=args.window)))
    results = {name: offline.score(r, k=10) for name, r in runs.items()}
    out["results"] = results
    if "hybrid" in runs and "full" in runs:
        out["full vs hybrid"] = per_query(runs["hybrid"], runs["full"])
        out["full losses"] = loss_reasons(service, args.index, out["full vs hybrid"]["losses"])
    if "hybrid" in runs and "exact rrf" in runs:
        out["hybrid vs exact rrf"] = per_query(runs["exact rrf"], runs["hybrid"])
    print_table(results)
    for key in ("full vs hybrid", "hybrid vs exact rrf"):
        if key in out:
            print(f"{key}: { {k: v for k, v in out[key].items() if k != 'losses'} }")
    if "full losses" in out:
        unexplained = out["full losses"]["without a logged reason"]
        print(f"full loses > 0.2 without a logged reason: {unexplained}")
        for item in out["full losses"]["queries"]:
            print(f"  {item['delta']:+.3f} {item['query']!r} {item['reasons']}")
    if args.diagnose and exact is not None:
        out["diagnosis"] = timed("diagnose", lambda: diagnose(exact, cases, window=args.window))
        print(json.dumps(out["diagnosis"], indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2) + "\n")
        print(f"results → {args.out}")


if __name__ == "__main__":
    main()
