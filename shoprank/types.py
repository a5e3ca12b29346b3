"""Domain types shared across the package, defined once."""

from __future__ import annotations

from typing import Literal, get_args

# How a search retrieves and ranks: `lexical` (BM25 as the backend runs it), `vector` (kNN
# over the query embedding), `hybrid` (both, fused), `full` (hybrid + query understanding
# and the learned, personalised ranker).
Mode = Literal["lexical", "vector", "hybrid", "full"]
MODES: tuple[Mode, ...] = get_args(Mode)

# How the hybrid legs are fused: reciprocal-rank fusion or a normalised linear combination.
Fusion = Literal["rrf", "linear"]
FUSIONS: tuple[Fusion, ...] = get_args(Fusion)
