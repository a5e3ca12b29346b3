"""Which text encoder `SHOPRANK_ENCODER_BACKEND=auto` uses, and the one-time ONNX export.

Indexing and training (`choose_for_indexing`) use the int8 ONNX model; when it is not exported
yet and the `[ml]` extra is importable, it is exported once (`ensure_text_onnx`: a temporary
folder renamed into place, under a file lock so concurrent processes export once), else the
numpy encoder is used. The decision is recorded next to the model (`RECORD_FILE`), so the
query side (`choose_for_queries`, which never exports nor imports torch) embeds queries with
the same model id as the products. Every decision carries its reason, for the logs.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .onnx_text import MANIFEST_FILE, MODEL_FILE, TOKENIZER_FILE

__all__ = [
    "EXPORT_SECONDS_ESTIMATE",
    "RECORD_FILE",
    "Choice",
    "Exporter",
    "choose_for_indexing",
    "choose_for_queries",
    "ensure_text_onnx",
    "is_exported",
    "ml_available",
    "read_record",
    "write_record",
]

Backend = Literal["numpy", "onnx"]
Exporter = Callable[[Path], object]
# The notice's estimate: the measured one-time export on the 2-core development machine.
EXPORT_SECONDS_ESTIMATE = 40
# Beside the model folder: which encoder indexing used last, read by the query side.
RECORD_FILE = "text-encoder.json"
_ML_MODULES = ("torch", "transformers", "onnx", "onnxscript")
_log = logging.getLogger("shoprank.encoders")
_thread_lock = threading.Lock()


@dataclass(frozen=True)
class Choice:
    """An encoder decision: the backend, the ONNX folder when it is onnx, and why."""

    backend: Backend
    reason: str
    onnx_dir: Path | None = None


def ml_available() -> bool:
    """True when torch, transformers and onnx can be imported (checked without importing)."""
    for name in _ML_MODULES:
        try:
            if importlib.util.find_spec(name) is None:
                return False
        except (ImportError, ValueError):
            return False
    return True


def is_exported(model_dir: Path) -> bool:
    """True when `model_dir` holds a complete export (model, tokenizer and manifest)."""
    return all((model_dir / name).is_file() for name in (MODEL_FILE, TOKENIZER_FILE, MANIFEST_FILE))


def _stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


@contextlib.contextmanager
def _export_lock(target: Path) -> Iterator[None]:
    """Held by one thread of one process at a time: `flock` on a file beside `target`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target.parent / f".{target.name}.lock"
    with _thread_lock, open(lock_path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def ensure_text_onnx(
    target: Path,
    *,
    export: Exporter,
    notice: Callable[[str], None] = _stderr,
) -> Path:
    """`target` holding an exported model: exported now by `export(folder)` unless it is there.

    The export writes into a temporary folder beside `target` that is renamed into place, so
    `target` is either absent or complete; a lock makes a second process wait for the first
    one's export instead of exporting again. A non-empty, incomplete `target` is left alone
    (ConfigError): it is not ours to delete.
    """
    from shoprank.errors import ConfigError

    if is_exported(target):
        return target
    with _export_lock(target):
        if is_exported(target):  # another process exported it while we waited
            return target
        if target.exists() and any(target.iterdir()):
            raise ConfigError(
                f"{target} exists but is not a complete ONNX export (needs {MODEL_FILE}, "
                f"{TOKENIZER_FILE}, {MANIFEST_FILE}); remove it or run "
                "`shoprank models export-text` to recreate it"
            )
        notice(
            f"exporting the int8 ONNX text encoder once (~{EXPORT_SECONDS_ESTIMATE} s) to "
            f"{target}; SHOPRANK_ENCODER_BACKEND=numpy to skip"
        )
        started = time.perf_counter()
        scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            export(scratch)
            if not is_exported(scratch):
                raise ConfigError(f"the ONNX export into {scratch} wrote no complete model")
            scratch.chmod(0o755)  # mkdtemp makes it private
            with contextlib.suppress(FileNotFoundError):
                target.rmdir()  # an empty folder left by hand
            os.rename(scratch, target)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        elapsed = time.perf_counter() - started
        _log.info("exported the ONNX text encoder to %s in %.1f s", target, elapsed)
        return target


def read_record(model_dir: Path) -> dict[str, Any] | None:
    """The decision indexing recorded beside `model_dir`, or None (none yet, or unreadable)."""
    path = model_dir.parent / RECORD_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return raw if isinstance(raw, dict) and raw.get("backend") in ("numpy", "onnx") else None


def write_record(model_dir: Path, *, backend: Backend, model_id: str, max_length: int) -> None:
    """Record which encoder indexing uses (atomically), for `choose_for_queries`."""
    path = model_dir.parent / RECORD_FILE
    payload = {"backend": backend, "model_id": model_id, "max_length": max_length}
    if read_record(model_dir) == payload:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def choose_for_indexing(
    onnx_dir: Path,
    *,
    export: Exporter,
    ml: bool | None = None,
    notice: Callable[[str], None] = _stderr,
) -> Choice:
    """auto for indexing and training: the ONNX model, exported first where the extra allows.

    Falls back to numpy (with the reason) when the `[ml]` extra is missing or the export fails.
    """
    from shoprank.errors import ShoprankError

    if is_exported(onnx_dir):
        return Choice("onnx", f"ONNX text encoder exported at {onnx_dir}", onnx_dir)
    if not (ml_available() if ml is None else ml):
        return Choice(
            "numpy",
            "no exported ONNX text encoder and no [ml] extra (torch, transformers, onnx) to "
            "export one",
        )
    try:
        ensure_text_onnx(onnx_dir, export=export, notice=notice)
    except (ShoprankError, ImportError, OSError, RuntimeError) as exc:
        reason = f"exporting the ONNX text encoder to {onnx_dir} failed ({exc}); using numpy"
        notice(f"warning: {reason}")
        return Choice("numpy", reason)
    return Choice("onnx", f"ONNX text encoder exported now at {onnx_dir}", onnx_dir)


def choose_for_queries(onnx_dir: Path, *, onnx_model_id: Callable[[Path], str]) -> Choice:
    """auto for queries: the encoder indexing recorded, so query and product vectors match.

    Never exports and never imports torch. Without a record (nothing indexed since this
    mechanism) it is the ONNX model when exported, else numpy. `onnx_model_id(dir)` gives the
    id of an exported model (its weights fingerprint).
    """
    exported = is_exported(onnx_dir)
    record = read_record(onnx_dir)
    if record is None:
        if exported:
            return Choice("onnx", f"ONNX text encoder exported at {onnx_dir}", onnx_dir)
        return Choice("numpy", "no exported ONNX text encoder")
    recorded = str(record.get("model_id"))
    if record["backend"] == "numpy":
        extra = " (the exported ONNX model is not used until the index is reloaded)"
        return Choice("numpy", f"the index was embedded with {recorded}{extra if exported else ''}")
    if not exported:
        return Choice(
            "numpy",
            f"mismatch: the index was embedded with {recorded} but {onnx_dir} holds no export; "
            "queries use numpy (close, not identical vectors) — reload the index with "
            "`shoprank index load` or restore the export",
        )
    current = onnx_model_id(onnx_dir)
    if current != recorded:
        return Choice(
            "onnx",
            f"mismatch: the index was embedded with {recorded}, the exported model is now "
            f"{current} — reload the index with `shoprank index load`",
            onnx_dir,
        )
    return Choice("onnx", f"the index was embedded with {recorded}", onnx_dir)
