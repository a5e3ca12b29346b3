"""Keep long-lived data out of the cyclic garbage collector's full collections.

A serving process holds large structures for its whole life (models, the index's
vocabularies, caches). Each full collection walks every tracked object, so with a large
catalog loaded one search in a few hundred paid a pause of tens of milliseconds (Home Depot,
54,667 products, in-process `full` searches: p99 76–101 ms; 41–44 ms with the heap frozen
after warm-up). `settle()` collects once and moves everything alive now into the permanent
generation (`gc.freeze`), which full collections skip; objects freed later by reference
counting are still freed.
"""

from __future__ import annotations

import gc


def settle() -> None:
    """Collect now, then freeze what survived (call after loading long-lived data)."""
    gc.collect()
    gc.freeze()
