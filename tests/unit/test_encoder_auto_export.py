"""`SHOPRANK_ENCODER_BACKEND=auto`: the one-time ONNX export on first indexing use (atomic,
once across threads and processes, with a notice), the numpy fallback, and the query side
choosing the encoder the index was embedded with."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from shoprank.errors import ConfigError, ShoprankError
from shoprank.indexing.encoders import DEFAULT_MODEL, NumpyBertEncoder, resolve_model_dir
from shoprank.indexing.encoders.auto_export import (
    RECORD_FILE,
    choose_for_indexing,
    choose_for_queries,
    ensure_text_onnx,
    read_record,
    write_record,
)
from shoprank.indexing.encoders.onnx_text import FORMAT
from shoprank.settings import Settings
from shoprank.wiring import query_text_encoder, text_encoder

FAKE_ID = "all-MiniLM-L6-v2-onnx-int8@0123456789ab"


def _model_available() -> bool:
    try:
        resolve_model_dir(DEFAULT_MODEL)
    except ConfigError:
        return False
    return True


needs_model = pytest.mark.skipif(not _model_available(), reason="packaged MiniLM not installed")


def write_fake_export(folder: Path, model_id: str = FAKE_ID) -> None:
    """The three files of an export (not a loadable model: the choice only reads files)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(b"not a real graph")
    (folder / "tokenizer.json").write_text("{}")
    manifest = {
        "format": FORMAT,
        "name": model_id.split("@")[0],
        "model_id": model_id,
        "dims": 384,
        "max_positions": 512,
        "pad_id": 0,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))


class FakeExporter:
    """Counts exports; checks the target never holds a half-written model."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.calls = 0

    def __call__(self, folder: Path) -> None:
        self.calls += 1
        assert folder != self.target
        assert not self.target.exists(), "the target must appear only once complete"
        write_fake_export(folder)


def test_first_indexing_use_exports_once_with_a_notice(tmp_path: Path) -> None:
    target = tmp_path / "models" / "text-onnx"
    exporter, notices = FakeExporter(target), []
    first = choose_for_indexing(target, export=exporter, ml=True, notice=notices.append)
    assert (first.backend, first.onnx_dir) == ("onnx", target)
    assert len(notices) == 1
    assert "exporting the int8 ONNX text encoder once" in notices[0]
    assert str(target) in notices[0] and "SHOPRANK_ENCODER_BACKEND=numpy" in notices[0]
    again = choose_for_indexing(target, export=exporter, ml=True, notice=notices.append)
    assert again.backend == "onnx"
    assert exporter.calls == 1 and len(notices) == 1
    assert sorted(p.name for p in target.parent.iterdir()) == [".text-onnx.lock", "text-onnx"]


def test_without_the_ml_extra_it_is_numpy_and_exports_nothing(tmp_path: Path) -> None:
    target = tmp_path / "text-onnx"
    exporter, notices = FakeExporter(target), []
    choice = choose_for_indexing(target, export=exporter, ml=False, notice=notices.append)
    assert choice.backend == "numpy" and "[ml] extra" in choice.reason
    assert exporter.calls == 0 and notices == [] and not target.exists()


def test_a_failed_export_leaves_nothing_behind_and_falls_back(tmp_path: Path) -> None:
    target = tmp_path / "text-onnx"

    def broken(folder: Path) -> None:
        (folder / "model.onnx").write_bytes(b"half")
        raise RuntimeError("exporter crashed")

    notices: list[str] = []
    choice = choose_for_indexing(target, export=broken, ml=True, notice=notices.append)
    assert choice.backend == "numpy"
    assert "exporter crashed" in choice.reason and "using numpy" in choice.reason
    assert notices[-1].startswith("warning:")
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir()] == [".text-onnx.lock"]  # no temp folder


def test_an_incomplete_folder_is_not_ours_to_replace(tmp_path: Path) -> None:
    target = tmp_path / "text-onnx"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(ShoprankError, match="not a complete ONNX export"):
        ensure_text_onnx(target, export=FakeExporter(target), notice=lambda _: None)
    assert (target / "notes.txt").read_text() == "mine"


def test_a_second_process_waits_for_the_first_export(tmp_path: Path) -> None:
    """The child starts while this process exports; it must reuse the export, not redo it."""
    target = tmp_path / "text-onnx"
    child_script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from shoprank.indexing.encoders.auto_export import ensure_text_onnx, is_exported
        target = Path({str(target)!r})
        print("exported before" if is_exported(target) else "waiting", flush=True)
        def export(folder):
            print("child exported", flush=True)
        ensure_text_onnx(target, export=export, notice=lambda _: None)
        print("done", flush=True)
        """
    )
    outputs: list[str] = []
    readers: list[threading.Thread] = []

    def export(folder: Path) -> None:
        child = subprocess.Popen(
            [sys.executable, "-c", child_script], stdout=subprocess.PIPE, text=True
        )
        assert child.stdout is not None
        outputs.append(child.stdout.readline().strip())  # the child saw no model yet
        _wait_until_blocked_on_a_lock(child.pid)
        write_fake_export(folder)
        reader = threading.Thread(target=lambda: outputs.append(child.communicate()[0]))
        reader.start()
        readers.append(reader)

    ensure_text_onnx(target, export=export, notice=lambda _: None)
    readers[0].join()  # the child finishes once this process has released the lock
    assert outputs[0] == "waiting"
    assert "child exported" not in outputs[1] and "done" in outputs[1]


def _wait_until_blocked_on_a_lock(pid: int) -> None:
    """Until /proc/locks lists `pid` waiting for a lock (`->`); a condition, not a clock: the
    bound only keeps a broken lock from hanging the run."""
    for _ in range(20_000):
        for line in Path("/proc/locks").read_text().splitlines():
            fields = line.split()
            if "->" in fields and str(pid) in fields:
                return
        time.sleep(0.001)
    pytest.fail(f"process {pid} never waited for the export lock")


# --------------------------------------------------------------------------------------------
# The query side


def _record(tmp_path: Path, backend: str, model_id: str) -> Path:
    target = tmp_path / "text-onnx"
    write_record(target, backend=backend, model_id=model_id, max_length=128)  # type: ignore[arg-type]
    return target


def _manifest_id(folder: Path) -> str:
    return str(json.loads((folder / "manifest.json").read_text())["model_id"])


def test_queries_follow_an_index_embedded_with_numpy_even_after_an_export(tmp_path: Path) -> None:
    target = _record(tmp_path, "numpy", "all-MiniLM-L6-v2@53aa51172d14")
    write_fake_export(target)
    choice = choose_for_queries(target, onnx_model_id=_manifest_id)
    assert choice.backend == "numpy"
    assert "all-MiniLM-L6-v2@53aa51172d14" in choice.reason and "reloaded" in choice.reason


def test_queries_use_the_onnx_model_the_index_was_embedded_with(tmp_path: Path) -> None:
    target = _record(tmp_path, "onnx", FAKE_ID)
    write_fake_export(target)
    choice = choose_for_queries(target, onnx_model_id=_manifest_id)
    assert (choice.backend, choice.onnx_dir) == ("onnx", target)
    assert not choice.reason.startswith("mismatch")


def test_a_lost_or_changed_export_is_named_as_a_mismatch(tmp_path: Path) -> None:
    target = _record(tmp_path, "onnx", FAKE_ID)
    lost = choose_for_queries(target, onnx_model_id=_manifest_id)
    assert lost.backend == "numpy"
    assert lost.reason.startswith("mismatch") and FAKE_ID in lost.reason
    assert "shoprank index load" in lost.reason
    write_fake_export(target, model_id="all-MiniLM-L6-v2-onnx-int8@ffffffffffff")
    changed = choose_for_queries(target, onnx_model_id=_manifest_id)
    assert changed.backend == "onnx"
    assert changed.reason.startswith("mismatch") and "ffffffffffff" in changed.reason


def test_without_a_record_queries_use_whatever_is_exported(tmp_path: Path) -> None:
    target = tmp_path / "text-onnx"
    assert choose_for_queries(target, onnx_model_id=_manifest_id).backend == "numpy"
    write_fake_export(target)
    assert choose_for_queries(target, onnx_model_id=_manifest_id).backend == "onnx"
    (tmp_path / RECORD_FILE).write_text("{not json")
    assert read_record(target) is None


@needs_model
def test_wiring_embeds_queries_with_the_indexing_model_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An index built with numpy keeps numpy queries after the ONNX model appears."""
    indexing = text_encoder(Settings(data_dir=tmp_path, encoder_backend="numpy"))
    assert isinstance(indexing, NumpyBertEncoder)
    write_fake_export(tmp_path / "models" / "text-onnx")
    with caplog.at_level("INFO", logger="shoprank.encoders"):
        queries = query_text_encoder(Settings(data_dir=tmp_path, encoder_backend="auto"))
    assert queries.model_id == indexing.model_id
    logged = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("text encoder for queries: numpy") for m in logged), logged


# --------------------------------------------------------------------------------------------
# The real export (about 40 s on two cores)


@pytest.mark.ml
@pytest.mark.slow
@needs_model
def test_auto_exports_on_first_indexing_use_and_serving_never_imports_torch(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch", reason="exporting needs the [ml] extra")
    pytest.importorskip("onnxruntime", reason="the ONNX encoder needs onnxruntime")
    settings = Settings(data_dir=tmp_path, encoder_backend="auto")
    indexing = text_encoder(settings)
    notice = [line for line in capfd.readouterr().err.splitlines() if "exporting" in line]
    assert len(notice) == 1 and str(tmp_path / "models" / "text-onnx") in notice[0]
    assert indexing.model_id.startswith("all-MiniLM-L6-v2-onnx-int8@")
    assert text_encoder(settings).model_id == indexing.model_id
    assert "exporting" not in capfd.readouterr().err  # once
    script = textwrap.dedent(
        f"""
        import sys
        from shoprank.settings import Settings
        from shoprank.wiring import query_text_encoder
        encoder = query_text_encoder(Settings(data_dir={str(tmp_path)!r}, encoder_backend="auto"))
        vector = encoder.encode(["wireless mouse"])[0]
        print(encoder.model_id, round(float((vector ** 2).sum()), 3))
        print("torch" in sys.modules, "transformers" in sys.modules)
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    model_line, imports_line = run.stdout.strip().splitlines()
    assert model_line == f"{indexing.model_id} 1.0"
    assert imports_line == "False False"


@needs_model
def test_an_explicit_query_backend_unlike_the_index_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_record(
        tmp_path / "models" / "text-onnx", backend="onnx", model_id=FAKE_ID, max_length=128
    )
    with caplog.at_level("INFO", logger="shoprank.encoders"):
        encoder = query_text_encoder(Settings(data_dir=tmp_path, encoder_backend="numpy"))
    assert isinstance(encoder, NumpyBertEncoder)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("mismatch" in m and FAKE_ID in m for m in warnings), warnings
