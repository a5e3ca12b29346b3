"""Rules of the house the code review would otherwise enforce by eye: modules stay small
enough to read, and capabilities are declared by protocols rather than discovered by
probing attribute names."""

from __future__ import annotations

import ast

from tests.unit.test_import_graph import ROOT, package_modules

MAX_LINES = 500
# Data tables: long because they list data, not because they mix concerns.
DATA_TABLES = {"indexing/demo/tree.py"}

# `getattr`/`hasattr` with a literal name is a capability probe. The few left look at
# third-party objects whose shape depends on the installed library version, or at a
# thread-local slot; each is listed with the attribute it reads.
ALLOWED_PROBES = {
    ("indexing/cache.py", "conn"),  # thread-local connection slot
    ("shoprank/searchlog/store.py", "conn"),
    ("shoprank/profiles/embedded.py", "conn"),
    # sentence-transformers renamed get_sentence_embedding_dimension
    ("indexing/encoders/torch_text.py", "get_embedding_dimension"),
    # transformers: the PIL image processor exists in newer releases only
    ("indexing/encoders/clip_model.py", "CLIPImageProcessorPil"),
    ("indexing/encoders/export_clip.py", "backend_tokenizer"),  # fast vs slow tokenizers
    ("indexing/encoders/export_text.py", "embeddings"),  # a BERT-shaped checkpoint?
    ("indexing/encoders/export_text.py", "encoder"),
}


def test_no_package_module_is_over_the_size_limit() -> None:
    too_long = {}
    for path in package_modules().values():
        rel = str(path.relative_to(ROOT))
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES and rel not in DATA_TABLES:
            too_long[rel] = lines
    assert not too_long, f"modules over {MAX_LINES} lines (split them): {too_long}"


def _probes(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        if node.func.id not in ("getattr", "hasattr") or len(node.args) < 2:
            continue
        name = node.args[1]
        if isinstance(name, ast.Constant) and isinstance(name.value, str):
            found.append((node.lineno, name.value))
    return found


def test_no_capability_probing_by_attribute_name() -> None:
    probes = []
    for path in package_modules().values():
        rel = str(path.relative_to(ROOT))
        tree = ast.parse(path.read_text(encoding="utf-8"), rel)
        probes += [
            f"{rel}:{line} ({attr!r})"
            for line, attr in _probes(tree)
            if (rel, attr) not in ALLOWED_PROBES
        ]
    assert not probes, (
        "getattr/hasattr probes (declare the capability in a Protocol and use isinstance, "
        f"or call the method the protocol declares): {probes}"
    )


def test_the_probe_scan_finds_a_probe() -> None:
    tree = ast.parse("if hasattr(backend, 'msearch'):\n    f = getattr(backend, 'forward', None)")
    assert _probes(tree) == [(1, "msearch"), (2, "forward")]
