"""`shoprank experiments list|create|show|start|stop|delete`: online experiments on the data
directory itself (no server needed; the same operations as `/_shoprank/experiments`).

    shoprank experiments create --id ranker-v7 --challenger ranker=v7 --method interleave --start
    shoprank experiments show ranker-v7
"""

from __future__ import annotations

import json
import time
from typing import Any

import click

from shoprank.cli_common import current_settings, fail
from shoprank.errors import ShoprankError


def _fail(exc: ShoprankError) -> None:
    fail(exc.reason, 2 if exc.status == 400 else 1)


def parse_arm(option: str, values: tuple[str, ...]) -> dict[str, Any]:
    """An arm from `--challenger` values: a JSON object, or `key=value` pairs (several per
    value, separated by commas, or the option repeated). Values are strings, except
    integers for settings other than `ranker` (versions are names, even `7`)."""
    arm: dict[str, Any] = {}
    for value in values:
        text = value.strip()
        if text.startswith("{"):
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError as exc:
                raise click.BadParameter(
                    f"not valid JSON ({exc}): {text!r}", param_hint=option
                ) from None
            arm.update(parsed)  # JSON that starts with "{" is an object
            continue
        for pair in filter(None, (p.strip() for p in text.split(","))):
            key, sep, raw = pair.partition("=")
            key, raw = key.strip(), raw.strip()
            if not sep or not key or not raw:
                raise click.BadParameter(
                    f"{pair!r} is not key=value (e.g. ranker=v7, or a JSON object)",
                    param_hint=option,
                )
            arm[key] = int(raw) if key != "ranker" and raw.isdigit() else raw
    return arm


def _pct(x: float) -> str:
    return f"{100.0 * x:.1f}%"


def _rate(rate: dict[str, Any]) -> str:
    if not rate["n"]:
        return "-"
    return f"{_pct(rate['rate'])} [{_pct(rate['low'])}, {_pct(rate['high'])}]"


def _when(at: object) -> str:
    if not isinstance(at, int | float):
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(at)))


def _arm_text(config: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in config.items())


def describe(exp: dict[str, Any]) -> str:
    """A readable report of one experiment as `show` returns it."""
    evidence = exp["results"]["evidence"]
    decision = exp["results"]["decision"]
    lines = [
        f"experiment {exp['id']}: {exp['status']}, {exp['method']} on {exp['metric']}",
        f"  created {_when(exp['created_at'])}, started {_when(exp['started_at'])}, "
        f"ended {_when(exp['ended_at'])}",
        f"  A control     {_arm_text(exp['control'])}",
        f"  B challenger  {_arm_text(exp['challenger'])}",
        f"  design: mde {exp['mde']:g}, alpha {exp['alpha']:g}, power {exp['power']:g}, "
        f"split {exp['split']:g}, traffic {exp['traffic']:g}",
        "",
        f"{'arm':<14}{'searches':>9}  {'click':<24}{'add_to_cart':<24}{'purchase':<24}"
        f"{'zero results':<24}{'p95 ms':>7}",
    ]
    for arm, name in (("A", "control"), ("B", "challenger")):
        a = evidence["arms"][arm]
        p95 = a["latency_p95_ms"]
        lines.append(
            f"{arm + ' ' + name:<14}{a['searches']:>9}  {_rate(a['rates']['click']):<24}"
            f"{_rate(a['rates']['add_to_cart']):<24}{_rate(a['rates']['purchase']):<24}"
            f"{_rate(a['zero_result_rate']):<24}{'-' if p95 is None else f'{p95:.1f}':>7}"
        )
    lines.append("")
    if "preference" in evidence:
        p = evidence["preference"]
        lines.append(
            f"interleaving: challenger wins {p['wins_challenger']}, control wins "
            f"{p['wins_control']}, ties {p['ties']}; challenger share "
            f"{_rate(p['challenger_share'])}; sign test p = {p['p_value']:.3g} (valid at the "
            "horizon only)"
        )
    if "difference" in evidence:
        d = evidence["difference"]
        lines.append(
            f"difference on {evidence['metric']} (challenger - control): "
            f"{100 * d['diff']:+.2f} points [{100 * d['low']:+.2f}, {100 * d['high']:+.2f}]; "
            f"z-test p = {d['p_value']:.3g} (valid at the horizon only)"
        )
    seq = evidence["sequential"]
    verdict = "significant" if seq["significant"] else "not significant"
    lines.append(
        f"sequential test (valid under peeking): p = {seq['p_value']:.3g}, {verdict}, "
        f"leader {seq['leader']}"
    )
    unit = "decided queries" if exp["method"] == "interleave" else "searches"
    progress = (
        evidence["preference"]["wins_control"] + evidence["preference"]["wins_challenger"]
        if "preference" in evidence
        else evidence["searches"]
    )
    lines.append(f"horizon: {progress} of at most {evidence['horizon']} {unit}")
    if decision is None:
        lines.append("decision: none yet (start the experiment to collect searches)")
    else:
        kind = "preview" if exp["status"] == "running" else "recorded"
        lines.append(f"decision ({kind}): {decision['action']} - {decision.get('message', '')}")
    return "\n".join(lines)


def _summary(exp: dict[str, Any]) -> str:
    evidence = exp["results"]["evidence"]
    decision = exp["results"]["decision"]
    action = decision["action"] if decision else "-"
    return (
        f"{exp['id']:<24} {exp['status']:<11} {exp['method']:<10} {exp['metric']:<11} "
        f"{evidence['searches']:>8}  {evidence['sequential']['p_value']:<10.3g} {action:<9} "
        f"{_arm_text(exp['control'])} -> {_arm_text(exp['challenger'])}"
    )


def _print(result: dict[str, Any], as_json: bool, text: str) -> None:
    click.echo(json.dumps(result, indent=2, default=str) if as_json else text)


@click.group()
def experiments() -> None:
    """Online experiments: A/B or interleaving between two configurations (ranker version,
    mode, fusion, window), decided by the scheduler with the evidence recorded."""


@experiments.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
def list_command(as_json: bool) -> None:
    """Every experiment with its status, searches so far and decision."""
    from shoprank.plugin.routes.experiments import listing

    try:
        result = listing(current_settings())
    except ShoprankError as exc:
        _fail(exc)
        return
    found = result["experiments"]
    header = (
        f"{'id':<24} {'status':<11} {'method':<10} {'metric':<11} {'searches':>8}  "
        f"{'p':<10} {'decision':<9} control -> challenger"
    )
    text = "\n".join([header, *map(_summary, found)]) if found else "no experiments"
    for name, reason in (result.get("unreadable") or {}).items():
        text += f"\nunreadable: {name}: {reason}"
    _print(result, as_json, text)


@experiments.command("create")
@click.option("--id", "experiment_id", required=True, help="A name: lowercase, digits, . _ -")
@click.option(
    "--control",
    multiple=True,
    help="Arm A as JSON or key=value (default ranker=live when the challenger sets a ranker).",
)
@click.option(
    "--challenger", multiple=True, required=True, help="Arm B, e.g. ranker=v7 or mode=hybrid."
)
@click.option("--method", type=click.Choice(["ab", "interleave"]), default="ab", show_default=True)
@click.option(
    "--metric",
    type=click.Choice(["click", "add_to_cart", "purchase"]),
    default="click",
    show_default=True,
)
@click.option("--split", type=float, default=None, help="Share of units on B (A/B; 0.5).")
@click.option("--traffic", type=float, default=None, help="Share of units enrolled (1.0).")
@click.option("--mde", type=float, default=None, help="Minimum detectable effect (0.02).")
@click.option("--alpha", type=float, default=None, help="False-positive rate (0.05).")
@click.option("--power", type=float, default=None, help="Power at the mde (0.8).")
@click.option(
    "--max-searches", type=int, default=None, help="Horizon (0: from mde, alpha and power)."
)
@click.option("--guards", default=None, help="JSON, e.g. '{\"max_latency_ratio\": 1.5}'.")
@click.option("--start", "start_it", is_flag=True, help="Start it at once.")
@click.option("--json", "as_json", is_flag=True)
def create_command(
    experiment_id: str,
    control: tuple[str, ...],
    challenger: tuple[str, ...],
    method: str,
    metric: str,
    split: float | None,
    traffic: float | None,
    mde: float | None,
    alpha: float | None,
    power: float | None,
    max_searches: int | None,
    guards: str | None,
    start_it: bool,
    as_json: bool,
) -> None:
    """Create an experiment (a draft unless --start)."""
    from shoprank.plugin.routes.experiments import create

    arm_b = parse_arm("--challenger", challenger)
    arm_a = parse_arm("--control", control)
    if not arm_a:
        if set(arm_b) != {"ranker"}:
            raise click.UsageError(
                "--control is required unless the challenger sets only a ranker "
                "(then the control is ranker=live)"
            )
        arm_a = {"ranker": "live"}
    body: dict[str, Any] = {
        "id": experiment_id,
        "control": arm_a,
        "challenger": arm_b,
        "method": method,
        "metric": metric,
    }
    for key, value in (
        ("split", split),
        ("traffic", traffic),
        ("mde", mde),
        ("alpha", alpha),
        ("power", power),
        ("max_searches", max_searches),
    ):
        if value is not None:
            body[key] = value
    if guards:
        try:
            body["guards"] = json.loads(guards)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"not valid JSON ({exc})", param_hint="--guards") from None
    if start_it:
        body["start"] = True
    try:
        exp = create(current_settings(), body)
    except ShoprankError as exc:
        _fail(exc)
        return
    _print(exp, as_json, f"{exp['status']} experiment {exp['id']} ({exp['method']})")


@experiments.command("show")
@click.argument("experiment_id")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
def show_command(experiment_id: str, as_json: bool) -> None:
    """One experiment: per-arm rates with 95 % intervals, the test, horizon and decision."""
    from shoprank.plugin.routes.experiments import show

    try:
        exp = show(current_settings(), experiment_id)
    except ShoprankError as exc:
        _fail(exc)
        return
    if as_json:
        _print(exp, True, "")
        return
    click.echo(describe(exp))


@experiments.command("start")
@click.argument("experiment_id")
def start_command(experiment_id: str) -> None:
    """Start a draft: searches are assigned to it from now on."""
    from shoprank.plugin.routes.experiments import start

    try:
        exp = start(current_settings(), experiment_id)
    except ShoprankError as exc:
        _fail(exc)
        return
    click.echo(f"started experiment {exp['id']}")


@experiments.command("stop")
@click.argument("experiment_id")
@click.option("--reason", default=None, help="Recorded with the experiment.")
def stop_command(experiment_id: str, reason: str | None) -> None:
    """End an experiment without a verdict (the control stays)."""
    from shoprank.plugin.routes.experiments import stop

    try:
        exp = stop(current_settings(), experiment_id, reason=reason)
    except ShoprankError as exc:
        _fail(exc)
        return
    click.echo(f"stopped experiment {exp['id']}")


@experiments.command("delete")
@click.argument("experiment_id")
def delete_command(experiment_id: str) -> None:
    """Forget a draft or finished experiment (stop a running one first)."""
    from shoprank.plugin.routes.experiments import delete

    try:
        delete(current_settings(), experiment_id)
    except ShoprankError as exc:
        _fail(exc)
        return
    click.echo(f"deleted experiment {experiment_id}")
