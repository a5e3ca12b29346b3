"""What a long job prints: periodic lines in a log, a bar on a terminal, one summary."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest

from shoprank.progress import Progress, duration, rate


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += seconds


def _job(
    *,
    total: int | None = None,
    every_s: float = 10.0,
    enabled: bool = True,
    tty: bool | None = None,
    initial: int = 0,
) -> tuple[Progress, io.StringIO, FakeClock]:
    out, clock = io.StringIO(), FakeClock()
    progress = Progress(
        "loading shop",
        unit="products",
        total=total,
        initial=initial,
        stream=out,
        clock=clock,
        every_s=every_s,
        enabled=enabled,
        tty=tty,
    )
    return progress, out, clock


def lines(out: io.StringIO) -> list[str]:
    return out.getvalue().splitlines()


def test_a_log_gets_one_line_per_ten_percent_with_rate_and_eta() -> None:
    progress, out, clock = _job(total=1000, every_s=3600)
    with progress:
        for _ in range(40):
            clock.tick(0.25)
            progress.advance(25)  # 100 products/s
    shown = lines(out)
    assert shown[0] == "loading shop: 100/1,000 products (10%) · 100 products/s · ETA 9.0s"
    assert shown[4] == "loading shop: 500/1,000 products (50%) · 100 products/s · ETA 5.0s"
    # 10 % … 90 %: nine lines for forty updates; 100 % is the summary's to say.
    assert len(shown) == 9
    assert all("%" in line for line in shown)


def test_a_slow_job_still_prints_every_few_seconds() -> None:
    progress, out, clock = _job(total=100_000, every_s=5)
    with progress:
        for _ in range(12):
            clock.tick(1.0)
            progress.advance(10)  # 0.01 % a second: no percent step is crossed
    shown = lines(out)
    assert len(shown) == 2  # at 5 s and 10 s
    assert shown[0] == "loading shop: 50/100,000 products (0%) · 10.0 products/s · ETA 2h46m"


def test_no_line_when_nothing_moved() -> None:
    progress, out, clock = _job(total=10, every_s=1)
    with progress:
        progress.update(3)
        for _ in range(5):
            clock.tick(10)
            progress.update(3)  # a snapshot poll with no new work
    assert len(lines(out)) == 1


def test_unknown_total_shows_count_rate_and_elapsed() -> None:
    progress, out, clock = _job(every_s=2)
    with progress:
        clock.tick(2.5)
        progress.update(500, note="3 failures")
    assert lines(out) == ["loading shop: 500 products · 200 products/s · 2.5s elapsed · 3 failures"]


def test_summary_says_how_fast_and_where_the_time_went() -> None:
    progress, out, clock = _job(total=300, every_s=3600)
    with progress:
        with progress.phase("read"):
            clock.tick(2.0)
        with progress.phase("embed"):
            for _ in range(3):
                clock.tick(10.0)
                progress.advance(100)
        text = progress.finish(parts={"write": 1.5})
    assert text == (
        "loading shop: 300 products in 32.0s (9.4 products/s); read 2.0s, embed 30.0s, write 1.5s"
    )
    assert lines(out)[-1] == text


def test_announced_phase_is_logged_when_it_starts() -> None:
    progress, out, clock = _job()
    with progress, progress.phase("fit", announce=True):
        assert lines(out) == ["loading shop: fit…"]
        clock.tick(4)
    assert progress.phases == {"fit": 4.0}


def test_a_stage_without_a_count_is_logged_and_a_growing_total_keeps_counting() -> None:
    progress, out, clock = _job(total=100, every_s=3600)
    with progress:
        clock.tick(1)
        progress.update(100)  # the training texts are embedded: no line, nothing is left
        progress.stage("fitting the model")
        clock.tick(30)
        progress.add_total(100)  # then the held-out texts
        progress.advance(60)
    assert lines(out) == [
        "loading shop: fitting the model…",
        "loading shop: 160/200 products (80%) · 5.2 products/s · ETA 7.8s · fitting the model",
    ]


def test_a_resumed_job_counts_only_this_runs_speed() -> None:
    progress, out, clock = _job(total=1000, every_s=3600, initial=600)  # before the crash
    with progress:
        clock.tick(4)
        progress.update(800)
    assert lines(out)[-1] == "loading shop: 800/1,000 products (80%) · 50.0 products/s · ETA 4.0s"


def test_disabled_progress_prints_nothing() -> None:
    progress, out, clock = _job(total=10, enabled=False)
    with progress:
        for _ in range(10):
            clock.tick(5)
            progress.advance()
        progress.finish()
    assert out.getvalue() == ""


def test_a_terminal_gets_a_live_bar_with_rate() -> None:
    out, clock = io.StringIO(), FakeClock()
    progress = Progress(
        "loading [shop]", unit="products", total=200, stream=out, clock=clock, tty=True
    )
    with progress:
        clock.tick(2)
        progress.update(100)
        text = progress.finish()
    shown = out.getvalue()
    assert (
        "loading [shop]" in shown and "100/200" in shown
    )  # brackets are not markup and "products/s" in shown
    assert "ETA 2.0s" in shown
    assert "\x1b[" in shown  # drawn with terminal control codes, not log lines
    assert shown.rstrip().endswith(text)


def test_human_units() -> None:
    assert duration(12.34) == "12.3s"
    assert duration(245) == "4m05s"
    assert duration(3725) == "1h02m"
    assert rate(12_345, 10) == "1,234"
    assert rate(34, 10) == "3.4"
    assert rate(1, 4) == "0.25"
    assert rate(5, 0) == "0.00"


class RankingService:
    """Every mode returns the same ranking: enough to watch `evaluate` go."""

    def search(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        return {"hits": {"hits": [{"_id": "a"}, {"_id": "b"}]}}


def test_evaluate_reports_every_judged_query_of_every_mode() -> None:
    from shoprank.evaluation import offline

    cases = [offline.Case(q, {"a": 1.0}) for q in ("shoes", "socks", "hats")]
    seen: list[tuple[int, int, str]] = []
    offline.evaluate(
        RankingService(),
        "shop",
        cases,
        modes=["hybrid", "full"],
        progress=lambda done, total, mode: seen.append((done, total, mode)),
    )
    assert seen == [(n, 6, "hybrid") for n in (1, 2, 3)] + [(n, 6, "full") for n in (4, 5, 6)]


def test_evaluate_command_logs_progress_and_time_per_mode(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from shoprank.cli_ranker import _judge
    from shoprank.evaluation import offline

    cases = [offline.Case(f"q{i}", {"a": 1.0}) for i in range(10)]
    _judge(
        RankingService(),
        "shop",
        cases,
        modes=["hybrid", "full"],
        k=10,
        label="judgments",
        quiet=False,
    )
    shown = capsys.readouterr().err.splitlines()
    assert shown[0].startswith("evaluating judgments: 2/20 queries (10%) · ")
    assert shown[-2].startswith("evaluating judgments: 18/20 queries (90%) · ")
    assert "· full" in shown[-2]  # the mode being judged
    assert re.fullmatch(
        r"evaluating judgments: 20 queries in [\d.]+s \([\d.,]+ queries/s\); "
        r"hybrid [\d.]+s, full [\d.]+s",
        shown[-1],
    ), shown[-1]


def test_quiet_evaluate_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    from shoprank.cli_ranker import _judge
    from shoprank.evaluation import offline

    cases = [offline.Case("q", {"a": 1.0})]
    _judge(RankingService(), "shop", cases, modes=["full"], k=10, label="judgments", quiet=True)
    assert capsys.readouterr().err == ""
