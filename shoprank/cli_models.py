"""`shoprank models ...`: export the serving-path encoders to ONNX (needs the [ml] extra)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Literal

import click

from shoprank.cli_common import current_settings, fail
from shoprank.errors import ShoprankError


@click.group()
def models() -> None:
    """Export encoders for onnxruntime (the query path and fast indexing run without torch)."""


def _fail(exc: ShoprankError) -> None:
    fail(exc.reason)


@models.command("export-text")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output folder (default SHOPRANK_ONNX_TEXT_MODEL or data_dir/models/text-onnx).",
)
@click.option("--quantize", type=click.Choice(["int8", "none"]), default="int8", show_default=True)
@click.option("--max-length", default=None, type=int, help="Default SHOPRANK_MAX_TEXT_TOKENS.")
def export_text(
    out: Path | None, quantize: Literal["int8", "none"], max_length: int | None
) -> None:
    """Export the packaged MiniLM text encoder to ONNX (int8 by default)."""
    from shoprank.indexing.encoders.export_text import export_text_onnx

    settings = current_settings()
    target = out or settings.onnx_text_dir
    try:
        path = export_text_onnx(
            target,
            model=settings.text_model,
            max_length=max_length or settings.max_text_tokens,
            quantize=quantize,
        )
    except ShoprankError as exc:
        _fail(exc)
        return
    manifest = json.loads((path / "manifest.json").read_text())
    click.echo(f"exported {manifest.get('model_id', 'text encoder')} → {path}")
    if target == settings.onnx_text_dir:
        click.echo(
            "SHOPRANK_ENCODER_BACKEND=auto now uses it for indexing; queries follow once an "
            "index is loaded with it (`shoprank models text-encoder` shows the choice)"
        )


@models.command("text-encoder")
def text_encoder_status() -> None:
    """Say which text encoder indexing and queries use, and why (exports nothing)."""
    from shoprank.indexing.encoders.auto_export import (
        EXPORT_SECONDS_ESTIMATE,
        is_exported,
        ml_available,
        read_record,
    )
    from shoprank.wiring import query_text_choice

    settings = current_settings()
    directory = settings.onnx_text_dir
    if settings.encoder_backend != "auto":
        click.echo(f"indexing and queries: {settings.encoder_backend} (SHOPRANK_ENCODER_BACKEND)")
        return
    if is_exported(directory):
        click.echo(f"indexing: onnx ({directory})")
    elif ml_available():
        click.echo(
            f"indexing: onnx, exported to {directory} on first use (~{EXPORT_SECONDS_ESTIMATE} s)"
        )
    else:
        click.echo("indexing: numpy (no ONNX export and no [ml] extra to make one)")
    record = read_record(directory)
    if record is not None:
        click.echo(f"last indexed with: {record['model_id']}")
    choice = query_text_choice(settings)
    click.echo(f"queries: {choice.backend} ({choice.reason})")


@models.command("export-clip-text")
@click.option("--model", default=None, help="CLIP model directory (default SHOPRANK_IMAGE_MODEL).")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output folder (default SHOPRANK_CLIP_TEXT_ONNX or data_dir/models/clip-text-onnx).",
)
def export_clip_text(model: str | None, out: Path | None) -> None:
    """Export CLIP's text tower to ONNX for the text→image search leg."""
    from shoprank.indexing.encoders.export_clip import export_clip_text_onnx

    settings = current_settings()
    source = model or settings.image_model
    if not source:
        click.echo("error: give --model or set SHOPRANK_IMAGE_MODEL", err=True)
        sys.exit(2)
    try:
        path = export_clip_text_onnx(source, out or settings.clip_text_dir)
    except ShoprankError as exc:
        _fail(exc)
        return
    click.echo(f"exported the CLIP text tower of {source} → {path}")


@models.command("tiny-clip")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", default=0, show_default=True, type=int)
def tiny_clip(out: Path, seed: int) -> None:
    """Build a tiny randomly initialised CLIP (for trying the image path without weights)."""
    from shoprank.testing.clip import make_tiny_clip

    click.echo(f"tiny CLIP → {make_tiny_clip(out, seed=seed)}")
