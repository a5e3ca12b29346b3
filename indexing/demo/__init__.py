"""Seeded, self-contained demo catalog for ``shoprank demo``.

The catalog is generated from the tables below with ``random.Random(seed)`` only, so the
same ``(n, seed)`` always yields byte-identical output and no external data is needed.
Products have realistic titles (brand, model line, key spec, leaf noun, colour), varied
descriptions, per-category price bands, skewed popularity and category attributes.
"""

from __future__ import annotations

from .generate import REFERENCE_DATE, generate_demo_catalog, write_demo_catalog
from .tree import CATEGORY_PATHS

__all__ = [
    "CATEGORY_PATHS",
    "REFERENCE_DATE",
    "generate_demo_catalog",
    "write_demo_catalog",
]
