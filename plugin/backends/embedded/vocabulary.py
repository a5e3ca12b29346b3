"""Per-generation word statistics of one field, for the `term`, `phrase` and `completion`
suggesters, read once from `_source` and cached.

The index's own term dictionary holds stems ("cartridg"), which would make poor
corrections, so the vocabulary keeps the words as written (lower-cased, accent-folded):
document frequencies, token counts and adjacent-word counts (the phrase suggester's
language model), and the field's values sorted for prefix lookups (completion). Built
lazily on the first suggest request for a (generation, revision, field); a few are kept.
"""

from __future__ import annotations

import bisect
import re
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any

import tantivy

from shoprank import heap
from shoprank.errors import BadRequestError

from .generation import Generation
from .schema import IndexSchema
from .tokens import WORD, plain, words
from .values import source_of

_KEEP = 16  # (generation, revision, field) entries: 4 spelling fields of 4 indexes
MAX_ENTRIES = 2_000_000  # completion inputs kept per field (a memory bound)
_SEPARATORS = re.compile(r"[\W_]+")
_lock = threading.Lock()
Entry = tuple[str, str, str, float]
_cache: OrderedDict[tuple[str, Any, str], Vocabulary] = OrderedDict()
_building: dict[tuple[str, Any, str], threading.Lock] = {}


def completion_form(text: str) -> str:
    """What completion compares: lower-cased, accent-folded, separators as one space."""
    return _SEPARATORS.sub(" ", plain(text)).lstrip()


@dataclass
class Vocabulary:
    docs: int = 0
    df: Counter[str] = field(default_factory=Counter)
    tf: Counter[str] = field(default_factory=Counter)
    bigrams: Counter[tuple[str, str]] = field(default_factory=Counter)
    tokens: int = 0
    by_initial: dict[tuple[str, int], list[str]] = field(default_factory=dict)
    # completion inputs: (completion form, value as written, _id, weight), sorted
    entries: list[Entry] = field(default_factory=list)

    def add(self, values: list[tuple[str, float]], doc_id: str) -> None:
        self.docs += 1
        seen: set[str] = set()
        tf, bigrams = self.tf, self.bigrams
        for value, weight in values:
            if value.isascii():
                found = WORD.findall(value.lower())
            else:
                found = [plain(word) for _, _, word in words(value)]
            self.tokens += len(found)
            seen.update(found)
            tf.update(found)
            bigrams.update(zip(found, found[1:], strict=False))
            if len(self.entries) < MAX_ENTRIES and value.strip():
                self.entries.append((completion_form(value), value, doc_id, weight))
        self.df.update(seen)

    def finish(self) -> None:
        self.entries.sort()
        for w in self.df:
            self.by_initial.setdefault((w[:1], len(w)), []).append(w)

    def candidates(self, prefix: str, length: int, edits: int) -> list[str]:
        """Words that start with `prefix` and are within `edits` of `length` characters."""
        out: list[str] = []
        for size in range(max(1, length - edits), length + edits + 1):
            if prefix:
                pool = self.by_initial.get((prefix[:1], size), [])
                out += [w for w in pool if w.startswith(prefix)] if len(prefix) > 1 else pool
            else:
                out += [w for (_, n), ws in self.by_initial.items() if n == size for w in ws]
        return out

    def with_prefix(self, prefix: str) -> list[Entry]:
        """Completion inputs whose completion form starts with `prefix`, in order."""
        lo = bisect.bisect_left(self.entries, (prefix,))
        hi = bisect.bisect_left(self.entries, (prefix + "\U0010ffff",))
        return self.entries[lo:hi]


def _inputs(source: dict[str, Any], path: str) -> list[tuple[str, float]]:
    """(text, weight) of a field's values: strings, or ES completion inputs
    (`{"input": [...], "weight": 3}`, alone or in a list)."""
    node: Any = source
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    out: list[tuple[str, float]] = []
    for item in node if isinstance(node, list) else [node]:
        if isinstance(item, dict):
            raw_weight = item.get("weight", 1)
            weight = float(raw_weight) if isinstance(raw_weight, int | float) else 1.0
            inputs = item.get("input")
            for text in inputs if isinstance(inputs, list) else [inputs]:
                if isinstance(text, str):
                    out.append((text, weight))
        elif isinstance(item, str | int | float) and not isinstance(item, bool):
            out.append((str(item), 1.0))
    return out


def vocabulary(gen: Generation, searcher: tantivy.Searcher, path: str) -> Vocabulary:
    """The vocabulary of `_source` field `path` on this generation's current revision."""
    key = (str(gen.dir), gen.meta.get("revision"), path)
    with _lock:
        found = _cache.get(key)
        if found is not None:
            _cache.move_to_end(key)
            return found
        building = _building.setdefault(key, threading.Lock())
    # One build per key: searches that arrive during it wait for it instead of each
    # reading every document again.
    with building:
        with _lock:
            found = _cache.get(key)
        if found is not None:
            return found
        try:
            return _build(key, searcher, path)
        finally:
            with _lock:
                _building.pop(key, None)


def _build(key: tuple[str, Any, str], searcher: tantivy.Searcher, path: str) -> Vocabulary:
    vocab = Vocabulary()
    result = searcher.search(tantivy.Query.all_query(), limit=max(searcher.num_docs, 1))
    for _, addr in result.hits:
        doc = searcher.doc(addr)
        vocab.add(_inputs(source_of(doc), path), str(doc.get_first("_id")))
    vocab.finish()
    with _lock:
        _cache[key] = vocab
        while len(_cache) > _KEEP:
            _cache.popitem(last=False)
    # Built once per generation and kept: out of the full collections' way, as the
    # server's models are after warm-up.
    heap.settle()
    return vocab


def _mapping_type(schema: IndexSchema, path: str) -> Any:
    props = schema.mapping.get("properties", {})
    if path in props:
        return props[path].get("type")
    parent, _, sub = path.rpartition(".")
    return props.get(parent, {}).get("fields", {}).get(sub, {}).get("type")


def suggest_field(schema: IndexSchema, name: Any, what: str) -> str:
    """The `_source` path a suggester reads for its `field`.

    A `text`/`keyword` field, or for `completion` a field the mapping declares as
    `completion`; a sub-field is read from its parent's value (`title.suggest` → `title`),
    also when the mapping does not declare it."""
    if not isinstance(name, str) or not name:
        raise BadRequestError(f"[{what}] requires a [field]")
    info = schema.fields.get(name)
    if info is None and "." in name:
        parent = name.rsplit(".", 1)[0]
        if parent in schema.fields:
            info = schema.fields[parent]
            name = parent
    completion = (
        what == "completion"
        and info is not None
        and _mapping_type(schema, info.path) == "completion"
    )
    if info is None or (info.kind not in ("text", "keyword") and not completion):
        kinds = ("text", "keyword", "stored") if what == "completion" else ("text", "keyword")
        fields = sorted(
            p
            for p, f in schema.fields.items()
            if f.kind in kinds and (f.kind != "stored" or _mapping_type(schema, p) == "completion")
        )
        raise BadRequestError(
            f"[{what}] field [{name}] is not a text, keyword"
            f"{' or completion' if what == 'completion' else ''} field of this index; "
            f"use one of {fields}"
        )
    # A mapped sub-field (`brand.text`) is indexed from its parent's value.
    if "." in name and name.rsplit(".", 1)[0] in schema.fields:
        name = name.rsplit(".", 1)[0]
    return str(name)
