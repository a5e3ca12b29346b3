"""User and session profiles folded from behaviour events, and product statistics.

`folding` holds the pure fold; `protocol` the `ProfileStore` interface (written by the
event service's fold) and `ProfileReader` (what ranking reads); `embedded` (SQLite in
`data_dir/profiles`) and `redis_store` implement the store.
"""

from shoprank.profiles.folding import FoldConfig, ProductLookup, fold_event, snapshot
from shoprank.profiles.protocol import ProfileReader, ProfileStore

__all__ = [
    "FoldConfig",
    "ProductLookup",
    "ProfileReader",
    "ProfileStore",
    "fold_event",
    "snapshot",
]
