"""`shoprank train …`: build the models the serving path loads (intent, ranker).

Each subcommand lives beside the code it trains and registers itself here.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from shoprank.errors import ShoprankError
from shoprank.progress import Clock, Progress

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from shoprank.settings import Settings

ENCODE_STEP = 256  # texts per progress step (a multiple of the encoder's batch of 128)


@click.group()
def train() -> None:
    """Train the query-intent model or the learned ranker from the catalog and the logs."""


@train.command("intent")
@click.option("--index", "index_name", default=None, help="Train from this index's products.")
@click.option(
    "--catalog",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Train from a catalog file instead (JSONL/CSV, optionally .gz).",
)
@click.option("--fields", default=None, help="Column roles of --catalog, as for `index load`.")
@click.option("--price-multiplier", default=1.0, type=float, show_default=True)
@click.option("--holdout", default=0.2, type=float, show_default=True, help="Share held out.")
@click.option("--epochs", default=25, type=int, show_default=True)
@click.option("--limit", default=None, type=int, help="Only the first N products.")
@click.option("--no-clicks", is_flag=True, help="Ignore query → click pairs of the event log.")
@click.option("--json", "as_json", is_flag=True, help="Print the model metadata as JSON.")
def intent(
    index_name: str | None,
    catalog: Path | None,
    fields: str | None,
    price_multiplier: float,
    holdout: float,
    epochs: int,
    limit: int | None,
    no_clicks: bool,
    as_json: bool,
) -> None:
    """Train the query-intent model (categories, attribute vocabulary, price bands)."""
    from shoprank.settings import get_settings

    settings = get_settings()
    if index_name is None and catalog is None:
        index_name = settings.product_index
    if not 0.0 <= holdout < 1.0:
        click.echo(f"error: --holdout must be in [0, 1), got {holdout}", err=True)
        sys.exit(2)
    try:
        meta = train_intent_with_progress(
            settings,
            index=index_name if catalog is None else None,
            catalog=catalog,
            fields=fields,
            price_multiplier=price_multiplier,
            holdout=holdout,
            epochs=epochs,
            limit=limit,
            use_clicks=not no_clicks,
            label=f"training intent for [{index_name if catalog is None else catalog.name}]",
            enabled=not as_json,
        )
    except ShoprankError as exc:
        click.echo(f"error: {exc.reason}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(meta, indent=2, ensure_ascii=False))
        return
    if meta.get("kind") == "product_types":
        click.echo(
            f"trained {meta['model_version']}: no categories in the index, so "
            f"{meta['product_types']} product types were induced from the text vectors of "
            f"{meta['train_examples']} products (largest: {', '.join(meta['largest_types'][:5])})"
        )
    else:
        click.echo(
            f"trained {meta['model_version']}: {meta['categories']} categories, "
            f"{meta['train_examples']} examples ({meta['click_pairs']} click pairs)"
        )
    for source, acc in meta["accuracy"].items():
        click.echo(
            f"  held-out {source}: top-1 {acc['top1']:.3f}  top-3 {acc['top3']:.3f}  (n={acc['n']})"
        )


def train_intent_with_progress(
    settings: Settings,
    *,
    index: str | None,
    catalog: Path | None = None,
    fields: str | None = None,
    price_multiplier: float = 1.0,
    holdout: float = 0.2,
    epochs: int = 25,
    limit: int | None = None,
    use_clicks: bool = True,
    label: str = "training intent",
    enabled: bool = True,
    clock: Clock = time.monotonic,
) -> dict[str, Any]:
    """`train_intent` with a progress bar over the texts it embeds (the slow part) and a
    summary of where the time went; `shoprank index load` trains through this too."""
    import numpy as np

    from shoprank.rerankers.intent.training import train_intent
    from shoprank.wiring import text_encoder

    # The encoder loads on the first call: a catalog without categories fails before.
    encoders: list[Any] = []
    calls: list[tuple[float, float]] = []  # (start, end) of each real encode call
    threads = _FitThreads()

    with Progress(label, unit="texts", enabled=enabled, clock=clock) as progress:

        def encode(texts: Sequence[str]) -> npt.NDArray[np.float32]:
            # The serving encoder, as train_intent would call it, but each distinct text
            # once (a third of the word windows repeat) and in steps the bar can show,
            # shortest first (little padding); the one-text dimension probe is not progress.
            start = clock()
            if not encoders:
                encoders.append(text_encoder(settings))
            encoder = encoders[0]
            texts = list(texts)
            counted = texts != ["probe"]
            unique = sorted(set(texts), key=len)
            if counted:
                if calls:  # the second call embeds the held-out texts
                    progress.stage("held-out check")
                progress.add_total(len(unique))
            vectors: dict[str, npt.NDArray[np.float32]] = {}
            for i in range(0, len(unique), ENCODE_STEP):
                batch = unique[i : i + ENCODE_STEP]
                out = np.asarray(encoder.encode(batch, batch_size=128), dtype=np.float32)
                vectors.update(zip(batch, out, strict=True))
                if counted:
                    progress.advance(len(batch))
            if counted:
                calls.append((start, clock()))
                if len(calls) == 1:  # the head is fitted next
                    threads.limit()
                    progress.stage("fitting the model")
            if not texts:
                return np.zeros((0, encoder.dims), dtype=np.float32)
            return np.stack([vectors[t] for t in texts])

        began = clock()
        try:
            meta = train_intent(
                settings,
                index=index,
                catalog=catalog,
                fields=fields,
                price_multiplier=price_multiplier,
                holdout=holdout,
                epochs=epochs,
                limit=limit,
                use_clicks=use_clicks,
                encode=encode,
                encoder_name=lambda: f"{type(encoders[0]).__name__}:{settings.text_model}",
            )
        finally:
            threads.restore()
        ended = clock()
        progress.finish(parts=_intent_phases(began, ended, calls))
    return meta


class _FitThreads:
    """Fit the small intent head on one torch thread: on a busy 2-core machine two threads
    made the fit 2-3x slower (they wait on each other), one is as fast on an idle one.
    Set once the texts are embedded (torch is about to be used), restored afterwards."""

    def __init__(self) -> None:
        self.before: int | None = None

    def limit(self) -> None:
        if self.before is not None:
            return
        try:
            import torch
        except ImportError:  # train_intent says how to install it
            return
        self.before = torch.get_num_threads()
        torch.set_num_threads(1)

    def restore(self) -> None:
        if self.before is not None:
            import torch

            torch.set_num_threads(self.before)
            self.before = None


def _intent_phases(
    began: float, ended: float, calls: list[tuple[float, float]]
) -> dict[str, float]:
    """Where training went, from when the texts were embedded: products are read before
    the first call, the head is fitted between the training and the held-out call."""
    if not calls:
        return {"total": ended - began}
    embed = sum(end - start for start, end in calls)
    fit_end = calls[1][0] if len(calls) > 1 else ended
    phases = {
        "read": calls[0][0] - began,
        "embed": embed,
        "fit": fit_end - calls[0][1],
    }
    phases["check+write"] = max(ended - began - sum(phases.values()), 0.0)
    return phases


def train_intent_after_load(
    settings: Settings, alias: str, report: dict[str, Any], *, train: bool, quiet: bool
) -> dict[str, Any]:
    """Train the intent model for `alias` after its load (skipped when no product changed
    and the model is already this index's); a failure is a note, never a failed load."""
    if not train:
        return {"trained": False, "reason": "--no-train-intent"}
    previous = _intent_metadata(settings)
    trained_for = previous.get("index") if previous else None
    unchanged = int(report.get("unchanged", 0)) == int(report["documents"])
    if trained_for == alias and unchanged and not report.get("removed"):
        if not quiet:
            click.echo(f"intent model for [{alias}] is up to date (no product changed)")
        return {"trained": False, "reason": "unchanged", "index": alias}
    try:
        meta = train_intent_with_progress(
            settings, index=alias, label=f"training intent for [{alias}]", enabled=not quiet
        )
    except (ShoprankError, ImportError) as exc:
        reason = exc.reason if isinstance(exc, ShoprankError) else str(exc)
        if not quiet:
            click.echo(
                f"note: intent model not trained: {reason} (`full` mode still reads brands, "
                f"colours and prices from the index; skip this step with --no-train-intent)",
                err=True,
            )
        return {"trained": False, "reason": reason}
    if not quiet:
        held_out = (meta.get("accuracy") or {}).get("all")
        click.echo(
            f"intent model trained for [{alias}]: "
            + (
                f"{meta['product_types']} product types induced from {meta['train_examples']} "
                f"products (the index has no categories) in {meta['train_seconds']}s"
                if meta.get("kind") == "product_types"
                else f"{meta['categories']} categories from "
                f"{meta['train_examples']} examples in {meta['train_seconds']}s"
            )
            + (f", held-out top-1 {held_out['top1']:.3f}" if held_out else "")
            + (
                f"; it replaces the one trained for [{trained_for}] (one intent model per data dir)"
                if trained_for not in (None, alias)
                else ""
            )
        )
    return {
        "trained": True,
        "index": meta["index"],
        "model_version": meta["model_version"],
        "seconds": meta["train_seconds"],
    }


def _intent_metadata(settings: Settings) -> dict[str, Any] | None:
    from shoprank.rerankers.intent.service import intent_dir

    try:
        meta = json.loads((intent_dir(settings) / "metadata.json").read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None
