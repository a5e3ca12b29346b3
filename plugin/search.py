"""The search pipeline behind the drop-in `_search`: mode → legs → fusion → page.

Modes (`ext.shoprank.mode`): `lexical` runs the body as the backend would; `vector` runs a
kNN leg built from the query text; `hybrid` fuses both over a top-N window; `full` is
hybrid plus query understanding and every configured reranking stage. The client's filters
apply to every leg.

What a frontend shows keeps Elasticsearch's semantics in every mode:

- `hits.total` and `aggregations` answer the client's own body — its query, its filters and
  its `post_filter` (which narrows hits and the total, not aggregations) — before any intent
  rewrite or relaxation: intent filters may narrow the ranked hits, never the count or the
  facets the shopper filters with. The count is exact (`relation: eq`) unless the client's
  `track_total_hits` caps it; semantic hits the query does not match (the vector leg) are
  ranked in but not counted, so a query no document matches has total 0, as in ES (`vector`
  mode, a kNN search of the query text, counts its kNN hits as ES counts a `knn`). Without
  a rewrite the lexical leg carries them; after one the client's body runs as a `size: 0`
  search in the same `msearch` as the legs. A client's own `knn` counts with its hits, as ES
  counts it.
- Highlights and other per-hit options (`fields`, `docvalue_fields`, `explain`, …) come from
  the client's original query, so they mark the shopper's words, not the rewrite's; in fused
  modes the page is fetched by one search of that query under an `ids` filter.
- `from + size` pages up to `SHOPRANK_MAX_RESULT_WINDOW`: past the fused window
  (`ext.shoprank.window`), `hybrid` and `full` pages continue in the lexical order of the
  searched body without the window's ids, so deep pages keep one order and no hit repeats;
  those hits carry their lexical score.
- Constructs that page or group one order — the `scroll` parameter, `pit`, `search_after`,
  `slice`, `collapse`, an explicit non-score `sort`, `min_score` — run the backend's lexical
  search (with a note in `_shoprank.notes`); scroll, pit, search_after, slice and collapse
  run the client's own query, without an intent rewrite. `suggest` answers the client's
  body in every mode.

`SearchService` runs the steps, each in its own module of `shoprank.plugin.pipeline`:
request parsing (`request`), query vectors (`vectors`), legs and batching (`legs`),
fusion (`shoprank.plugin.fusion`), reranking (`rerank`), the page (`page`) and the
explanation and search-log record (`record`).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

from shoprank import logs, metrics
from shoprank.errors import BadRequestError
from shoprank.experiments.logs import experiment_field
from shoprank.experiments.model import Arm
from shoprank.experiments.store import RunningAssigners
from shoprank.experiments.tally import ArmRun
from shoprank.plugin.backends.protocol import SearchBackend
from shoprank.plugin.fusion import FusedHit, fuse
from shoprank.plugin.pipeline.experiment import Enrolment, ExperimentArms, interleave_pages
from shoprank.plugin.pipeline.legs import LegBuilder, Retrieval
from shoprank.plugin.pipeline.page import (
    answer_client,
    decorate,
    estimate_total,
    fetch_page,
    fused_response,
)
from shoprank.plugin.pipeline.record import announced_spelling, explanation, search_record
from shoprank.plugin.pipeline.request import (
    SearchRequest,
    Trace,
    effective_mode,
    extract_filters,
    extract_query_text,
    parse_request,
)
from shoprank.plugin.pipeline.rerank import rerank_window
from shoprank.plugin.pipeline.vectors import EncoderFactory, QueryVectors
from shoprank.plugin.stages import INLINE_STAGES, StageRunner
from shoprank.rerankers.diversity import Diversifier
from shoprank.rerankers.intent.recovery import checked_plan, recover
from shoprank.rerankers.intent.rewriter import RewritePlan
from shoprank.rerankers.intent.service import QueryUnderstanding, hit_count
from shoprank.rerankers.protocol import Candidate, Reranker, WarmUp
from shoprank.settings import Settings
from shoprank.types import Mode

if TYPE_CHECKING:
    from shoprank.searchlog.logger import SearchLogger

__all__ = ["SearchRequest", "SearchService", "Trace", "extract_filters", "extract_query_text"]

Response = dict[str, Any]
NO_LEXICAL_DIVERSITY = (
    "diversity needs a fused mode (hybrid or full): this search ran lexical, in the "
    "backend's own order"
)
NO_NATIVE_DIVERSITY = (
    "diversity needs shoprank's own fusion: native hybrid keeps the backend's order"
)


class SearchService:
    """Runs searches against one backend; safe to share between threads."""

    def __init__(
        self,
        *,
        backend: SearchBackend,
        settings: Settings,
        encoder: EncoderFactory | None = None,
        image_text_encoder: EncoderFactory | None = None,
        rerankers: Sequence[Reranker] = (),
        search_logger: SearchLogger | None = None,
        experiments: RunningAssigners | None = None,
    ) -> None:
        self.search_logger = search_logger
        # Running online experiments (`shoprank.experiments`); None: no experiments here.
        self.arms = ExperimentArms(experiments, settings) if experiments is not None else None
        self.backend = backend
        self.settings = settings
        self.rerankers = list(rerankers)
        self.vectors = QueryVectors(text=encoder, image_text=image_text_encoder)
        self.legs = LegBuilder(backend=backend, settings=settings, vectors=self.vectors)
        # Runs optional stages under the search's deadline (shoprank.plugin.stages); the
        # built-in ones bound their own work and run on the search's thread.
        self.stages = StageRunner(inline=INLINE_STAGES)
        self.understanding = QueryUnderstanding(backend=backend, settings=settings)
        # Diversity of the page (`ext.shoprank.diversity`), with its vector / field cache.
        self.diversity = Diversifier(backend)

    # The query encoders and the vector cache live in `self.vectors`; these read and set them.

    @property
    def _encoder_factory(self) -> EncoderFactory | None:
        return self.vectors.text_factory

    @_encoder_factory.setter
    def _encoder_factory(self, factory: EncoderFactory | None) -> None:
        self.vectors.text_factory = factory

    @property
    def vector_cache_size(self) -> int:
        return self.vectors.cache_size

    @vector_cache_size.setter
    def vector_cache_size(self, size: int) -> None:
        self.vectors.cache_size = size

    def without_log(self) -> SearchService:
        """This service without the search log: it shares the backend, the encoders, the
        rerankers and the query-vector cache, but its searches are not logged."""
        quiet = copy.copy(self)
        quiet.search_logger = None
        quiet.arms = None  # and never enrolled in an experiment
        return quiet

    def parse(
        self,
        index: str,
        body: dict[str, Any] | None,
        *,
        user_id: str | None,
        session_id: str | None = None,
        scroll: str | None = None,
    ) -> SearchRequest:
        return parse_request(
            index,
            body,
            settings=self.settings,
            user_id=user_id,
            session_id=session_id,
            scroll=scroll,
        )

    def warm_up(self) -> None:
        """Load the query encoder, the reranking stages' models and the intent model now
        rather than on the first search."""
        self.vectors.warm_up()
        for reranker in self.rerankers:
            if isinstance(reranker, WarmUp):
                reranker.warm_up()
        self.understanding.warm_up()

    def embed_query(self, text: str, *, space: Literal["text", "image"] = "text") -> list[float]:
        """The query's vector in the text space (MiniLM) or the image space (CLIP text
        tower), from an LRU cache of recent queries."""
        return self.vectors.embed(text, space=space)

    # -- search ----------------------------------------------------------------------------

    def search(
        self,
        index: str,
        body: dict[str, Any] | None,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
        scroll: str | None = None,
    ) -> Response:
        """An ES `_search` response for `body`, in the mode its `ext.shoprank` asks for.

        `scroll` (the URL parameter) makes the search the backend's own lexical one, as do
        `pit`, `search_after`, `slice` and `collapse` in the body. A search a running
        experiment enrols runs under its arm, or interleaves both arms' rankings
        (`shoprank.plugin.pipeline.experiment`)."""
        started = time.perf_counter()
        parsed = self.parse(index, body, user_id=user_id, session_id=session_id, scroll=scroll)
        enrolment = self.arms.enrol(parsed) if self.arms is not None else None
        if enrolment is None:
            run = self._run(parsed, started)
        elif enrolment.interleaved:
            run = self._interleaved(parsed, enrolment, started)
        else:
            arm = enrolment.assignment.arm or "A"
            run = self._run(self.arms_request(parsed, enrolment, arm), started)
            zero = not run.response.get("hits", {}).get("hits")
            latency = (time.perf_counter() - started) * 1000
            run.experiment = experiment_field(
                enrolment.experiment, arm, {arm: ArmRun(zero, latency)}
            )
        response, request, trace, applied = run.response, run.request, run.trace, run.applied
        if request.explain:
            response["_shoprank"] = explanation(request, trace, applied=applied, stages=run.stages)
        if run.experiment is not None:
            # The experiment and variant always (a frontend's own analytics may want them);
            # each arm's run and each hit's arm when explained.
            shown = (
                run.experiment
                if request.explain
                else {k: run.experiment[k] for k in ("id", "variant")}
            )
            response.setdefault("_shoprank", {})["experiment"] = shown
        if trace.degraded:
            response.setdefault("_shoprank", {})["degraded"] = trace.degraded
        if trace.spelling is not None:
            # Always: a frontend shows "Showing results for …" (with a link to the words as
            # typed) whether or not it asked for an explanation.
            response.setdefault("_shoprank", {})["spelling"] = trace.spelling
        if self.search_logger is not None:
            record = search_record(request, trace, applied=applied, response=response)
            record.experiment = run.experiment
            if enrolment is not None:
                record.query_id = enrolment.query_id
            query_id = self.search_logger.log(record)
            if query_id:
                response.setdefault("_shoprank", {})["query_id"] = query_id
                logs.note(query_id=query_id)
        elapsed = time.perf_counter() - started
        metrics.observe_search(applied, trace.timings, elapsed, trace.model_version)
        response["took"] = int(elapsed * 1000)
        return dict(response)

    def arms_request(self, parsed: SearchRequest, enrolment: Enrolment, arm: Arm) -> SearchRequest:
        assert self.arms is not None
        return self.arms.arm_request(parsed, enrolment, arm)

    def _run(self, parsed: SearchRequest, started: float) -> Run:
        """One search of a parsed request: vectors, intent, retrieval, relaxation."""
        trace = Trace()
        t0 = time.perf_counter()
        resolved = self.vectors.resolve_builders(parsed.body)
        request = replace(
            parsed,
            body=resolved,
            client_body=resolved,
            deadline=started + self.settings.search_budget_ms / 1000.0,
        )
        trace.timings["embed_ms"] = (time.perf_counter() - t0) * 1000
        plan = self._plan(request, trace)
        if plan is not None:
            request = request.with_body(plan.body)
            spelled = next((a for a in plan.actions if a.get("action") == "spelling"), None)
            if spelled is not None:
                request = replace(request, spelled_text=spelled["after"])
                trace.spelling = announced_spelling(spelled)
        if plan is not None and plan.constraints:
            # The hard filters are checked against the query's own top hits before
            # retrieval, so a filter that becomes a boost costs no second retrieval.
            plan = checked_plan(
                plan,
                partial(self.backend.msearch, request.index),
                notes=trace.notes,
                degraded=trace.degraded,
                timings=trace.timings,
            )
            request = request.with_body(plan.body)
            trace.rewrite = list(plan.actions)
        applied = effective_mode(request, trace)
        if request.diversity.enabled and applied == "lexical":
            trace.notes.append(NO_LEXICAL_DIVERSITY)
        result = self._retrieve(request, trace, applied)
        if plan is not None and plan.actions:
            result = self._relax(request, trace, applied, plan, result)
        return Run(result.response, result.request, trace, applied, result.stages)

    def _interleaved(self, parsed: SearchRequest, enrolment: Enrolment, started: float) -> Run:
        """Both arms' searches merged into one team-draft page (the control's run answers
        totals and aggregations; the logged window keeps each hit's arm)."""
        runs: dict[Arm, Run] = {}
        arm_runs: dict[Arm, ArmRun] = {}
        for arm in ("A", "B"):
            t0 = time.perf_counter()
            run = self._run(self.arms_request(parsed, enrolment, arm), started)
            zero = not run.response.get("hits", {}).get("hits")
            arm_runs[arm] = ArmRun(zero, (time.perf_counter() - t0) * 1000)
            runs[arm] = run
        start, size = parsed.page
        hits, teams, window = interleave_pages(
            enrolment,
            {arm: r.response for arm, r in runs.items()},
            {arm: r.trace.logged for arm, r in runs.items()},
            start=start,
            size=size,
        )
        control = runs["A"]
        control.response["hits"]["hits"] = hits
        scores = [h["_score"] for h in hits if isinstance(h.get("_score"), int | float)]
        control.response["hits"]["max_score"] = max(scores) if scores else None
        control.trace.logged = window
        for name, ms in runs["B"].trace.timings.items():
            control.trace.timings[f"challenger_{name}"] = ms
        control.trace.degraded.extend(f"challenger: {d}" for d in runs["B"].trace.degraded)
        control.request = replace(
            control.request, body={**control.request.body, **{"from": start, "size": size}}
        )
        control.experiment = experiment_field(enrolment.experiment, "interleave", arm_runs, teams)
        control.stages = [*control.stages, "interleave:team_draft"]
        return control

    def _plan(self, request: SearchRequest, trace: Trace) -> RewritePlan | None:
        """Query understanding of a `full`-mode search: the intent and the rewrite plan."""
        if request.mode != "full" or not request.query_text or request.lexical_only():
            return None
        plan = self.understanding.plan(
            request.index,
            request.query_text,
            request.body,
            embed=self.embed_query if self.vectors.has_text else None,
            notes=trace.notes,
            degraded=trace.degraded,
            timings=trace.timings,
            runner=self.stages,
            deadline=request.deadline,
        )
        if plan is not None:
            trace.intent, trace.rewrite = plan.intent, list(plan.actions)
        return plan

    def _relax(
        self, request: SearchRequest, trace: Trace, applied: Mode, plan: RewritePlan, result: Result
    ) -> Result:
        """Check the rewrite's hard filters, then relax it one constraint at a time
        (`shoprank.rerankers.intent.recovery`)."""
        results = [result]

        def search(body: dict[str, Any]) -> int:
            trace.logged.clear()
            results.append(self._retrieve(request.with_body(body), trace, applied))
            return results[-1].ranked

        msearch = partial(self.backend.msearch, request.index)
        limit = self.settings.intent_min_results
        recover(plan, result.ranked, search, msearch, trace=trace, min_results=limit)
        return results[-1]

    def _retrieve(self, request: SearchRequest, trace: Trace, applied: Mode) -> Result:
        if applied == "lexical":
            if not request.rewritten:
                response = self.backend.search(request.index, request.body)
                return Result(response, ["lexical"], hit_count(response), request)
            ranked, counts = self.legs.rewritten_lexical(request)
            response = decorate(self.backend, request, ranked)
            return Result(
                answer_client(response, request, counts), ["lexical"], hit_count(ranked), request
            )
        if applied == "hybrid":
            engine = self.legs.native(request)
            if engine is not None:
                response = self.legs.native_search(request, engine)
                stages = [f"native:{self.backend.name}"]
                if request.diversity.enabled:
                    trace.notes.append(NO_NATIVE_DIVERSITY)
                return Result(response, stages, hit_count(response), request)
        return self._fused(request, trace, applied)

    def _fused(self, request: SearchRequest, trace: Trace, mode: Mode) -> Result:
        start, size = request.page
        if start + size > self.settings.max_result_window:
            raise BadRequestError(
                f"Result window is too large, from + size must be less than or equal to: "
                f"[{self.settings.max_result_window}] but was [{start + size}]",
                es_type="illegal_argument_exception",
            )
        window = request.window
        retrieval = self.legs.retrieve(request, trace, mode, window)
        fused = fuse(
            retrieval.legs,
            method=request.fusion,
            rrf_k=self.settings.rrf_k,
            vector_weight=self.settings.linear_vector_weight,
        )
        stages = [f"retrieve:{leg}" for leg in retrieval.legs] + [f"fuse:{request.fusion}"]
        retrieval_rank = {h.id: rank for rank, h in enumerate(fused, start=1)}
        candidates: dict[str, Candidate] = {}
        if mode == "full" and self.rerankers:
            fused, applied, candidates = rerank_window(
                request, trace, fused, rerankers=self.rerankers, runner=self.stages
            )
            stages += applied
        diversity_rank: dict[str, int] | None = None
        if request.diversity.enabled:
            fused, diversity_rank = self._diversify(request, trace, fused, start + size, size)
            if diversity_rank is not None:
                stages.append(request.diversity.stage)
        page = fused[start : start + size]
        if len(page) < size and self._beyond_window(retrieval, mode, window):
            deep = self.legs.continuation(
                request,
                [h.id for h in fused],
                offset=max(0, start - len(fused)),
                size=size - len(page),
            )
            if deep:
                trace.notes.append("past the fused window: the lexical order continues")
                stages.append("continue:lexical")
            for hit in deep:
                retrieval_rank[hit.id] = len(fused) + hit.rank
                page.append(FusedHit(hit.id, hit.score, {"lexical": hit}))
        hits = fetch_page(
            self.backend,
            request,
            trace,
            page,
            start=start,
            retrieval_rank=retrieval_rank,
            candidates=candidates,
            diversity_rank=diversity_rank,
        )
        ranked, _ = estimate_total(
            retrieval.lexical,
            retrieval.legs,
            fused,
            has_query=request.body.get("query") is not None,
            mode=mode,
        )
        response = fused_response(request, retrieval, fused, hits, mode=mode)
        return Result(response, stages, ranked, request)

    def _diversify(
        self, request: SearchRequest, trace: Trace, fused: list[FusedHit], end: int, size: int
    ) -> tuple[list[FusedHit], dict[str, int] | None]:
        """The window with its pages up to `end` (from + size) diversified, and each hit's
        rank before; under the search's deadline, a late or failing stage keeps the order
        (reported in `degraded`). Only the ranked hits move: totals and facets stay."""
        spec = request.diversity
        ranked = [(h.id, h.score) for h in fused]
        t0 = time.perf_counter()
        out = self.stages.call(
            spec.stage,
            lambda: self.diversity.apply(request.index, ranked, spec, size=end, page_size=size),
            deadline=request.deadline,
            notes=trace.degraded,
        )
        trace.timings["diversity_ms"] = (time.perf_counter() - t0) * 1000
        by_id = {h.id: h for h in fused}
        if out is None or sorted(i for i, _ in out) != sorted(by_id):
            return fused, None
        before = {h.id: rank for rank, h in enumerate(fused, start=1)}
        return [by_id[pid] for pid, _ in out], before

    @staticmethod
    def _beyond_window(retrieval: Retrieval, mode: Mode, window: int) -> bool:
        """Whether lexical matches may lie past the window: the lexical leg filled it (vector
        mode is a kNN search: its window is all it finds)."""
        return mode != "vector" and len(retrieval.legs.get("lexical", [])) >= window


@dataclass
class Run:
    """One search as the response and the logs need it: the response, the request searched
    (after rewrite and relaxation), the trace, the mode applied, the stages that ran, and
    the `experiment` field it is logged with (None outside experiments)."""

    response: Response
    request: SearchRequest
    trace: Trace
    applied: Mode
    stages: list[str]
    experiment: dict[str, Any] | None = None


@dataclass
class Result:
    """One retrieval: the response, the stages that ran, how many hits the searched body
    ranks (what relaxation looks at) and the request searched."""

    response: Response
    stages: list[str]
    ranked: int
    request: SearchRequest
