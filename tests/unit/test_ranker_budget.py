"""The ranker's budget is its own CPU time: a busy machine, which stretches the wall time
of the same work, does not change whether the ranker applies (and so the order a shopper
sees); real overwork and a stalled store still fall back to the retrieval order.

Clocks are injected: each reading advances a fixed step, so "the machine is busy" is a
wall clock that runs fast, with no timing in the test."""

from __future__ import annotations

from pathlib import Path

from shoprank.rerankers.ltr.reranker import LearnedRanker

from .test_ranker_serving import FACTS, Source, ctx, window


class Ticking:
    """A clock whose every reading is `step` seconds after the previous one."""

    def __init__(self, step: float) -> None:
        self.step = step
        self.now = 0.0

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def ranker(tmp_path: Path, *, cpu_step: float, wall_step: float) -> LearnedRanker:
    return LearnedRanker(
        model_dir=tmp_path,
        source=Source(FACTS),  # type: ignore[arg-type]
        timeout_ms=25.0,
        wall_timeout_ms=250.0,
        cpu_clock=Ticking(cpu_step),
        wall_clock=Ticking(wall_step),
    )


def test_a_busy_machine_does_not_skip_the_ranker(tmp_path: Path) -> None:
    # 1 ms of work per step, stretched to 40 ms of wall time per step by a loaded machine:
    # past a 25 ms wall-clock budget, well inside the 25 ms CPU budget.
    context = ctx()
    out = ranker(tmp_path, cpu_step=0.001, wall_step=0.040).rerank(context, window())
    assert not context.info["degraded"]
    assert [c.id for c in out].index("p4") < 3  # reranked: the favourite brand climbs


def test_real_overwork_falls_back_to_the_retrieval_order(tmp_path: Path) -> None:
    context = ctx()
    out = ranker(tmp_path, cpu_step=0.030, wall_step=0.030).rerank(context, window())
    assert [c.id for c in out] == ["p1", "p2", "p3", "p4", "p5"]
    assert context.info["degraded"] == ["rerank: timeout"]


def test_a_stall_past_the_wall_bound_falls_back(tmp_path: Path) -> None:
    context = ctx()
    out = ranker(tmp_path, cpu_step=0.0, wall_step=0.300).rerank(context, window())
    assert [c.id for c in out] == ["p1", "p2", "p3", "p4", "p5"]
    assert context.info["degraded"] == ["rerank: timeout"]
