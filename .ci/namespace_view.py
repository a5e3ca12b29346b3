"""Lay the source folders out as the installed `shoprank` namespace, for mypy.

setuptools maps `plugin/` to `shoprank.plugin` (and so on) with `package-dir`; an editable
install resolves that with an import hook mypy cannot follow, so first-party imports would
be unresolved. This builds a folder of symlinks with the installed layout, read from
pyproject.toml, so mypy checks the real package with every import resolved.

    python .ci/namespace_view.py build/typecheck && mypy -p shoprank
"""

from __future__ import annotations

import shutil
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build(target: Path) -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package_dir: dict[str, str] = config["tool"]["setuptools"]["package-dir"]
    if target.exists():
        shutil.rmtree(target)
    # `shoprank` itself is a real folder holding links to its own files; each mapped
    # subpackage (`shoprank.plugin` -> plugin/) is one link to its source folder, so files
    # added later are seen without rebuilding the view.
    root = target / "shoprank"
    root.mkdir(parents=True)
    for child in (ROOT / package_dir["shoprank"]).iterdir():
        if child.name != "__pycache__":
            (root / child.name).symlink_to(child)
    for name, folder in package_dir.items():
        if name != "shoprank":
            target.joinpath(*name.split(".")).symlink_to(ROOT / folder)


if __name__ == "__main__":
    build(Path(sys.argv[1] if len(sys.argv) > 1 else "build/typecheck").resolve())
