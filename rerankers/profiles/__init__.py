"""User and session profiles folded from behaviour events, and product statistics.

`folding` holds the pure fold; `protocol` the `ProfileStore` interface; `embedded`
(SQLite in `data_dir/profiles`) and `redis_store` implement it.
"""

from shoprank.rerankers.profiles.folding import FoldConfig, ProductLookup, fold_event, snapshot
from shoprank.rerankers.profiles.protocol import ProfileStore

__all__ = ["FoldConfig", "ProductLookup", "ProfileStore", "fold_event", "snapshot"]
