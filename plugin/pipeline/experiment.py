"""Online experiments in the search path (`shoprank.experiments`): which searches an
experiment takes, what each arm changes, and the interleaved page.

A search is enrolled when a running experiment's assigner enrols its unit (the user id,
else the session id, read only through the experiment's keyed hash) and the two arms would
search differently: a `ranker` arm only changes `full` searches, `fusion` / `window` only
fused ones, and searches that page one backend order (scroll, pit, search_after, an explicit
sort, `size: 0`) are never enrolled. The first running experiment that takes a search
serves it; experiments on the same setting cannot run together (the store refuses).

- A/B: the unit's arm configuration is applied to the request and the search runs once.
- Interleaving: both arms run, each from the first hit to the end of the requested page;
  `team_draft` merges the two rankings (coins seeded by the experiment and the query id, so
  a page is reproducible from the log), and each returned hit records the arm that put it
  there. Totals, aggregations and suggestions come from the control's search, which answers
  the client's body like any other search; the challenger's search skips them.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from typing import Any

from shoprank.experiments.assign import Assigner, Assignment
from shoprank.experiments.interleave import Interleaving, seed, team_draft
from shoprank.experiments.model import Arm, Experiment
from shoprank.experiments.store import RunningAssigners
from shoprank.plugin.pipeline.request import SearchRequest, Trace, effective_mode
from shoprank.searchlog.record import WindowItem
from shoprank.settings import Settings

ANSWER_KEYS = ("aggs", "aggregations", "suggest", "profile")


@dataclass(frozen=True, slots=True)
class Enrolment:
    """One search's experiment: the experiment, its assignment and, for interleaving, the
    query id the page's coins are seeded with (the search is logged under it)."""

    experiment: Experiment
    assignment: Assignment
    query_id: str

    @property
    def interleaved(self) -> bool:
        return self.assignment.arm is None


def with_config(
    request: SearchRequest, config: dict[str, Any], settings: Settings
) -> SearchRequest:
    """`request` under one arm's configuration (validated when the experiment was made)."""
    changes: dict[str, Any] = {}
    if "mode" in config:
        changes["mode"] = config["mode"]
    if "fusion" in config:
        changes["fusion"] = config["fusion"]
    if "window" in config:
        changes["window"] = min(int(config["window"]), settings.max_window_size)
    if "ranker" in config:
        changes["ranker_version"] = str(config["ranker"])
    return replace(request, **changes) if changes else request


def _effect(
    request: SearchRequest, config: dict[str, Any], *, lexical: bool, max_window: int
) -> tuple[str, str | None, int | None, str | None]:
    """What an arm's configuration makes of a search, as far as its result can differ:
    its mode (`lexical` when the body only runs lexical, e.g. sorted or paged), and only
    where they apply the fusion, the window and the ranker version."""
    mode = "lexical" if lexical else str(config.get("mode", request.mode))
    fused = mode != "lexical"
    ranker = config.get("ranker", request.ranker_version) if mode == "full" else None
    return (
        mode,
        str(config.get("fusion", request.fusion)) if fused else None,
        min(int(config.get("window", request.window)), max_window) if fused else None,
        None if ranker in (None, "live") else str(ranker),
    )


def _runs_lexical(request: SearchRequest) -> bool:
    """Whether the body itself makes the search lexical in any mode (a sort, a scroll, a
    prefix-only query, no text to embed …): `effective_mode` for a fused mode."""
    probe = request if request.mode != "lexical" else replace(request, mode="full")
    return effective_mode(probe, Trace()) == "lexical"


class ExperimentArms:
    """The search path's view of the running experiments."""

    def __init__(self, running: RunningAssigners, settings: Settings) -> None:
        self.running = running
        self.settings = settings

    def enrol(self, request: SearchRequest) -> Enrolment | None:
        """The experiment that takes this search, if one does."""
        unit = request.user_id or request.session_id
        if not unit:
            return None
        assigners: tuple[Assigner, ...] = self.running.current()
        if not assigners:
            return None
        lexical: bool | None = None
        for assigner in assigners:
            assignment = assigner.assign(unit)
            if assignment is None:
                continue
            if lexical is None:
                lexical = _runs_lexical(request)
            exp = assigner.experiment
            cap = self.settings.max_window_size
            a = _effect(request, exp.control, lexical=lexical, max_window=cap)
            b = _effect(request, exp.challenger, lexical=lexical, max_window=cap)
            if a != b:
                return Enrolment(exp, assignment, secrets.token_hex(16))
        return None

    def arm_request(self, request: SearchRequest, enrolment: Enrolment, arm: Arm) -> SearchRequest:
        """The search one arm runs: its configuration; interleaved, from the first hit to
        the end of the page (and the challenger without aggregations or suggestions)."""
        out = with_config(request, enrolment.experiment.config(arm), self.settings)
        if not enrolment.interleaved:
            return out
        start, size = request.page
        body = {k: v for k, v in out.body.items() if not (arm == "B" and k in ANSWER_KEYS)}
        body["from"], body["size"] = 0, start + size
        return replace(out, body=body)


def interleave_pages(
    enrolment: Enrolment,
    responses: dict[Arm, dict[str, Any]],
    logged: dict[Arm, list[WindowItem]],
    *,
    start: int,
    size: int,
) -> tuple[list[dict[str, Any]], dict[str, Arm], list[WindowItem]]:
    """The interleaved page (its hits), each shown hit's arm, and the logged window (the
    contributing arm's ranks and features, at the hit's place on the merged page)."""
    hits: dict[Arm, list[dict[str, Any]]] = {
        arm: list(r.get("hits", {}).get("hits", [])) for arm, r in responses.items()
    }
    ids = {arm: [str(h["_id"]) for h in arm_hits] for arm, arm_hits in hits.items()}
    merged: Interleaving = team_draft(
        ids.get("A", []),
        ids.get("B", []),
        seed=seed(enrolment.experiment.id, enrolment.query_id),
        size=start + size,
    )
    by_arm = {arm: {str(h["_id"]): h for h in arm_hits} for arm, arm_hits in hits.items()}
    items = {arm: {w.product_id: w for w in window} for arm, window in logged.items()}
    page: list[dict[str, Any]] = []
    teams: dict[str, Arm] = {}
    window: list[WindowItem] = []
    for rank, (pid, arm) in enumerate(zip(merged.items, merged.teams, strict=True), start=1):
        if rank <= start:
            continue
        page.append(by_arm[arm][pid])
        teams[pid] = arm
        item = items.get(arm, {}).get(pid)
        before = item.rank_before if item is not None else rank
        features = item.features if item is not None else None
        score = float(by_arm[arm][pid].get("_score") or 0.0)
        window.append(WindowItem(pid, before, rank, score, features))
    return page, teams, window
