"""CLI of the learned ranker: `train ranker`, `models list|promote|rollback`, `simulate`,
`evaluate`. Registered on the main command by `register(...)`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from shoprank.cli_common import current_settings, fail
from shoprank.errors import ShoprankError
from shoprank.progress import Progress
from shoprank.settings import Settings
from shoprank.types import MODES


def _registry(settings: Settings) -> Any:
    from shoprank.rerankers.ltr import ranker_dir
    from shoprank.rerankers.ltr.registry import ModelRegistry

    return ModelRegistry(ranker_dir(settings))


def load_dataset(settings: Settings, progress: Progress | None = None) -> Any:
    """The logged searches joined with their engagement (the event log read once)."""
    from shoprank.events.service import EventService
    from shoprank.rerankers.ltr.dataset import join

    def events() -> Any:
        for n, (_, event) in enumerate(EventService(settings).log.read(), start=1):
            count[0] = n
            if progress is not None and n % 500 == 0:
                progress.update(n)
            yield event

    count = [0]
    data = join(events())
    if progress is not None:
        progress.update(count[0])
    return data


@click.command("ranker")
@click.option(
    "--holdout",
    default=0.2,
    show_default=True,
    type=click.FloatRange(0.05, 0.9),
    help="Share of the latest searches held out for the gate.",
)
@click.option(
    "--rounds",
    default=None,
    type=click.IntRange(1, 5000),
    help="Boosting rounds (default: training searches / 5, within 40-300).",
)
@click.option("--leaves", default=7, show_default=True, type=click.IntRange(2, 1024))
@click.option("--no-debias", is_flag=True, help="Train without position-bias correction.")
@click.option("--no-promote", is_flag=True, help="Register the model but never promote it.")
@click.option("--force", is_flag=True, help="Promote even if it does not beat the live model.")
@click.option(
    "--min-searches", default=None, type=int, help="Default SHOPRANK_RANKER_MIN_SEARCHES."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def train_ranker_cmd(
    holdout: float,
    rounds: int,
    leaves: int,
    no_debias: bool,
    no_promote: bool,
    force: bool,
    min_searches: int | None,
    as_json: bool,
) -> None:
    """Train the learned ranker from logged windows and engagement; promote it if it beats
    the live model on the held-out latest searches."""
    from shoprank.rerankers.ltr.reranker import load_scorer
    from shoprank.rerankers.ltr.train import NotEnoughDataError, TrainParams, train_ranker

    settings = current_settings()
    registry = _registry(settings)
    progress = Progress("training ranker", unit="events", enabled=not as_json)
    with progress:
        with progress.phase("read"):
            data = load_dataset(settings, progress)
        try:
            with progress.phase("train+gate", announce=True):
                report = train_ranker(
                    data,
                    registry=registry,
                    live=load_scorer(registry),
                    params=TrainParams(rounds=rounds, num_leaves=leaves, debias=not no_debias),
                    holdout=holdout,
                    min_searches=min_searches or settings.ranker_min_searches,
                    gate_metric=settings.ranker_gate_metric,
                    gate_margin=settings.ranker_gate_margin,
                    min_gate_searches=settings.ranker_min_gate_searches,
                    promote=not no_promote,
                    force=force,
                )
        except NotEnoughDataError as exc:
            fail(exc.reason, 3)
        except ShoprankError as exc:
            fail(exc.reason)
        progress.finish(note=f"{report.searches:,} searches")
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
        return
    click.echo(
        f"trained {report.version} on {report.searches} searches "
        f"({report.examples} examples); held out {report.holdout_searches}"
    )
    click.echo(f"ONNX parity: max |diff| {report.parity_max_abs_diff:.2e}")
    for name, values in report.metrics.items():
        click.echo(f"  {name:<10}" + "  ".join(f"{k} {v:.4f}" for k, v in values.items()))
    click.echo(f"gate: {report.gate}")
    click.echo(f"{'promoted: now live' if report.promoted else 'not promoted'}")


@click.command("list")
@click.option("--json", "as_json", is_flag=True)
def models_list(as_json: bool) -> None:
    """Ranker model versions (* = live) with their held-out metrics."""
    from shoprank.rerankers.ltr.scorers import DEFAULT_VERSION

    registry = _registry(current_settings())
    live = registry.live() or DEFAULT_VERSION
    versions = registry.versions()
    why, challenger = registry.why_live(), registry.challenger()
    if as_json:
        out = {
            "live": live,
            "why_live": why,
            "challenger": challenger,
            "rejected": registry.rejected(),
            "versions": versions,
        }
        click.echo(json.dumps(out, indent=2))
        return
    click.echo(f"{'*' if live == DEFAULT_VERSION else ' '} {DEFAULT_VERSION:<34} cold-start scorer")
    for meta in versions:
        cand = (meta.get("offline_metrics") or {}).get("candidate", {})
        metric = " ".join(f"{k} {v:.4f}" for k, v in cand.items())
        mark = "*" if meta["version"] == live else " "
        if challenger and meta["version"] == challenger["version"]:
            mark = "c"
        click.echo(f"{mark} {meta['version']:<34} {metric}")
    click.echo(f"live: {live} ({describe_decision(why)})")
    if challenger:
        click.echo(f"challenger (c): {challenger['version']}, {challenger_state(challenger)}")
    rejected = registry.rejected()
    if rejected:
        last = rejected[-1]
        click.echo(f"last rolled back: {last['version']} ({describe_decision(last)})")


def describe_decision(entry: dict[str, Any] | None) -> str:
    """Why a version went live, in one line: the reason and its evidence."""
    if entry is None:
        return "never promoted: the cold-start scorer"
    import datetime

    at = datetime.datetime.fromtimestamp(float(entry["at"]), datetime.UTC)
    text = f"{entry.get('reason', 'manual')} at {at:%Y-%m-%d %H:%M} UTC"
    evidence = entry.get("evidence") or {}
    summary = evidence.get("summary") or evidence.get("gate")
    return f"{text}: {summary}" if summary else text


def challenger_state(challenger: dict[str, Any]) -> str:
    evidence = challenger.get("evidence") or {}
    experiment = challenger.get("experiment")
    where = f"in experiment {experiment}" if experiment else "waiting for an experiment"
    gate = evidence.get("gate")
    return f"{where}; offline gate: {gate}" if gate else where


@click.command("promote")
@click.argument("version")
def models_promote(version: str) -> None:
    """Make VERSION (or default-v1) the live ranker."""
    try:
        _registry(current_settings()).promote(version)
    except ShoprankError as exc:
        fail(exc.reason)
    click.echo(f"live ranker: {version}")


@click.command("rollback")
def models_rollback() -> None:
    """Go back to the ranker that was live before the last promotion."""
    try:
        previous = _registry(current_settings()).rollback()
    except ShoprankError as exc:
        fail(exc.reason)
        return
    click.echo(f"live ranker: {previous or 'default-v1'}")


@click.command("simulate")
@click.option("--url", default="http://127.0.0.1:9200", show_default=True)
@click.option("--index", default="demo", show_default=True)
@click.option("--shoppers", default=50, show_default=True, type=click.IntRange(1, 100_000))
@click.option(
    "--sessions",
    default=6,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="Sessions per shopper.",
)
@click.option(
    "--queries",
    default=2,
    show_default=True,
    type=click.IntRange(1, 100),
    help="Queries per session.",
)
@click.option(
    "--mode",
    default="full",
    show_default=True,
    type=click.Choice(MODES),
)
@click.option(
    "--holdout-out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write held-out sessions with true grades (JSONL) for `evaluate --sessions`.",
)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--page-size",
    default=10,
    show_default=True,
    type=click.IntRange(1, 100),
    help="Results per search page the shoppers see.",
)
def simulate_cmd(
    url: str,
    index: str,
    shoppers: int,
    sessions: int,
    queries: int,
    mode: str,
    holdout_out: Path | None,
    seed: int,
    page_size: int,
) -> None:
    """Send SYNTHETIC shopper traffic (searches, clicks, carts, purchases) to a running
    shoprank server through its real endpoint and events API."""
    from shoprank.simulate import run

    bar = Progress("simulating", unit="searches")
    marks: list[float] = []  # when the catalog was read, when the last search finished

    def progress(done: int, total: int, report: Any) -> None:
        marks[1 if marks else 0 :] = [bar.clock()]
        bar.update(done, total=total, note=f"{report.clicks:,} clicks, {report.carts:,} carts")

    with bar:
        try:
            report = run(
                url,
                index=index,
                shoppers=shoppers,
                sessions=sessions,
                queries_per_session=queries,
                mode=mode,
                holdout_out=holdout_out,
                seed=seed,
                progress=progress,
                size=page_size,
            )
        except (RuntimeError, OSError) as exc:
            fail(str(exc))
        parts: dict[str, float] = {}
        if len(marks) == 2:
            parts = {"read catalog": marks[0] - bar.started, "traffic": marks[1] - marks[0]}
            if holdout_out is not None:
                parts["hold-out"] = bar.clock() - marks[1]
        bar.finish(parts=parts, note=f"{report.clicks:,} clicks, {report.purchases:,} purchases")
    click.echo(json.dumps(report.as_dict()))


@click.command("evaluate")
@click.option("--index", default=None, help="Index to search (default SHOPRANK_PRODUCT_INDEX).")
@click.option(
    "--judgments",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="CSV/TSV query,product_id,grade.",
)
@click.option(
    "--sessions",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="JSONL of {user_id, query, grades} (e.g. simulate --holdout-out).",
)
@click.option("--logs", is_flag=True, help="Also judge each mode on the held-out logged windows.")
@click.option("--holdout", default=0.2, show_default=True, type=click.FloatRange(0.01, 1.0))
@click.option("--modes", default="lexical,vector,hybrid,full", show_default=True)
@click.option("-k", "k", default=10, show_default=True, type=click.IntRange(1, 1000))
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Save a PNG bar chart here.",
)
@click.option("--recommend", is_flag=True, help="Evaluate the recommendation strategies instead.")
@click.option(
    "--strategy",
    "strategies",
    multiple=True,
    help="With --recommend: for_you, trending, similar, bought_together (repeat; default all).",
)
@click.option(
    "--holdout-days",
    default=7.0,
    show_default=True,
    type=click.FloatRange(min=0.001),
    help="With --recommend: the test period, the last N days of the event log.",
)
@click.option("--json", "as_json", is_flag=True)
def evaluate_cmd(
    index: str | None,
    judgments: Path | None,
    sessions: Path | None,
    logs: bool,
    holdout: float,
    modes: str,
    k: int,
    plot_path: Path | None,
    recommend: bool,
    strategies: tuple[str, ...],
    holdout_days: float,
    as_json: bool,
) -> None:
    """nDCG@k, MRR and recall@k of each mode, side by side; with --recommend, hit-rate@k,
    nDCG@k, coverage and diversity of the recommendation strategies and their baselines on
    the held-out latest purchases and clicks of the event log."""
    from shoprank.evaluation import offline

    settings = current_settings()
    if recommend:
        from shoprank.cli_evaluate_recs import evaluate_recommend

        evaluate_recommend(
            settings,
            index=index,
            strategies=strategies,
            holdout_days=holdout_days,
            k=k,
            as_json=as_json,
        )
        return
    chosen = [m.strip() for m in modes.split(",") if m.strip()]
    bad = [m for m in chosen if m not in MODES]
    if bad:
        fail(f"unknown mode(s) {bad}; choose from {', '.join(MODES)}", 2)
    if not (judgments or sessions or logs):
        fail("give --judgments, --sessions and/or --logs", 2)
    results: dict[str, dict[str, dict[str, float]]] = {}
    try:
        if judgments or sessions:
            from shoprank.wiring import make_service

            service = make_service(settings)
            service.search_logger = None  # evaluation searches are not shopper traffic
            target = index or settings.product_index
            if judgments:
                cases = offline.cases_from_judgments(judgments)
                results["judgments"] = _judge(
                    service, target, cases, modes=chosen, k=k, label="judgments", quiet=as_json
                )
            if sessions:
                cases = offline.cases_from_sessions(sessions)
                results["sessions"] = _judge(
                    service, target, cases, modes=chosen, k=k, label="sessions", quiet=as_json
                )
        if logs:
            from shoprank.rerankers.ltr.propensity import propensities
            from shoprank.rerankers.ltr.reranker import load_scorer
            from shoprank.rerankers.ltr.train import evaluate_logged_modes

            bar = Progress("evaluating logs", unit="events", enabled=not as_json)
            with bar:
                with bar.phase("read"):
                    train, test = load_dataset(settings, bar).split(holdout)
                if not len(test):
                    fail("no logged searches with features and engagement to evaluate", 3)
                with bar.phase("score", announce=True):
                    per_mode = evaluate_logged_modes(
                        test,
                        load_scorer(_registry(settings)),
                        k=k,
                        propensity=propensities(train) if len(train) else None,
                    )
                bar.finish(note=f"{len(test):,} held-out searches")
            results["logs"] = {m: per_mode[m] for m in chosen if m in per_mode}
    except ShoprankError as exc:
        fail(exc.reason)
        return
    if as_json:
        click.echo(json.dumps(results, indent=2))
    else:
        for source, table in results.items():
            click.echo(f"\n{source}:\n{offline.table(table)}")
    if plot_path is not None:
        for source, table in results.items():
            target_path = (
                plot_path
                if len(results) == 1
                else plot_path.with_name(f"{plot_path.stem}-{source}{plot_path.suffix}")
            )
            offline.plot(table, target_path, title=f"shoprank offline evaluation ({source})")
            click.echo(f"plot → {target_path}", err=True)


def _judge(
    service: Any,
    index: str,
    cases: list[Any],
    *,
    modes: list[str],
    k: int,
    label: str,
    quiet: bool,
) -> dict[str, dict[str, float]]:
    """`offline.evaluate` with a bar over the judged queries and the time of each mode."""
    from shoprank.evaluation import offline

    bar = Progress(
        f"evaluating {label}", unit="queries", total=len(cases) * len(modes), enabled=not quiet
    )
    last = [0.0]

    def progress(done: int, total: int, mode: str) -> None:
        now = bar.clock()
        bar.phases[mode] = bar.phases.get(mode, 0.0) + now - last[0]
        last[0] = now
        bar.update(done, total=total, note=mode)

    with bar:
        last[0] = bar.started
        results: dict[str, dict[str, float]] = offline.evaluate(
            service, index, cases, modes=modes, k=k, progress=progress
        )
        bar.finish()
    return results


def register(main: click.Group, train: click.Group, models: click.Group) -> None:
    from shoprank.cli_evaluate_recs import simulate_recs_cmd

    train.add_command(train_ranker_cmd)
    models.add_command(models_list)
    models.add_command(models_promote)
    models.add_command(models_rollback)
    main.add_command(simulate_cmd)
    main.add_command(evaluate_cmd)
    main.add_command(simulate_recs_cmd)
