"""The serving path (HTTP app + hybrid search + query embedding) never imports torch."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def test_hybrid_search_does_not_import_torch(demo_data_dir: Path) -> None:
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from shoprank.settings import Settings
        from shoprank.wiring import make_service
        from shoprank.plugin.app import create_app
        service = make_service(Settings(data_dir=Path({str(demo_data_dir)!r})))
        create_app(service)
        body = {{"query": {{"match": {{"title": "espresso machine"}}}},
                "ext": {{"shoprank": {{"mode": "full", "explain": True}}}}}}
        result = service.search("demo", body)
        assert result["hits"]["hits"], result
        assert "retrieve:vector" in result["_shoprank"]["stages"], result["_shoprank"]
        heavy = [m for m in ("torch", "transformers", "sentence_transformers")
                 if m in sys.modules]
        assert not heavy, heavy
        print("ok")
    """)
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")


def test_onnxruntime_can_be_loaded_after_the_embedded_backend() -> None:
    # Regression: onnxruntime imported after usearch segfaulted the server on the first
    # query that needed an ONNX encoder.
    script = (
        "import shoprank.plugin.backends.embedded.backend\n"
        "import onnxruntime\n"
        "print('ok', onnxruntime.get_device())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, (out.returncode, out.stderr[-2000:])
    assert out.stdout.startswith("ok")
