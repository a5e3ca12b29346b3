"""From an ES mapping to a tantivy schema, and from ES field paths to tantivy fields.

Mapped `text` fields are analysed (English stemming), `keyword` fields are exact and fast
(filters, aggregations), numbers are fast and indexed, `dense_vector` fields live in the
vector store, `date` fields are fast and indexed floats of epoch milliseconds (UTC; `_source`
keeps the original string; a value that is not a date is left unindexed, as ES's
`ignore_malformed`). Fields the mapping does not name go into one dynamic JSON field, `attrs`,
where strings behave as keywords and numbers as numbers (like ES dynamic mapping).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import tantivy

from shoprank.errors import BadRequestError
from shoprank.text import cjk_bigrams

from .dates import parse_date_ms

Kind = Literal["text", "keyword", "number", "boolean", "date", "vector", "dynamic", "stored"]
ENGLISH = "shoprank_english"
DYNAMIC_FIELD = "attrs"
KEYWORD_IGNORE_ABOVE = 256


def english_analyzer() -> tantivy.TextAnalyzer:
    """Lower-cased, accent-folded, English-stemmed tokens (ES's `english` analyzer, roughly).

    Chinese/Japanese/Korean runs reach it as overlapping bigrams (`cjk_bigrams`, applied to
    documents and queries alike), so "华为手机" is found by 华为手机 or 手机 (ES's `cjk`)."""
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(64))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.ascii_fold())
        .filter(tantivy.Filter.stemmer("english"))
        .build()
    )


@dataclass(frozen=True)
class FieldInfo:
    path: str
    kind: Kind
    tantivy: str
    dims: int = 0

    @property
    def is_dynamic(self) -> bool:
        return self.kind == "dynamic"


def _tantivy_name(path: str) -> str:
    return "f_" + path.replace(".", "__")


class IndexSchema:
    """The fields of one index generation, built from its ES mapping."""

    def __init__(self, mapping: dict[str, Any]) -> None:
        self.mapping = mapping
        self.fields: dict[str, FieldInfo] = {}
        for name, spec in mapping.get("properties", {}).items():
            self._add(name, spec)
            for sub, subspec in spec.get("fields", {}).items():
                self._add(f"{name}.{sub}", subspec)
        self.tantivy_schema = self._build()

    def _add(self, path: str, spec: dict[str, Any]) -> None:
        es_type = spec.get("type", "object")
        kind: Kind
        if es_type == "text":
            kind = "text"
        elif es_type == "keyword":
            kind = "keyword" if spec.get("index", True) else "stored"
        elif es_type in ("float", "double", "half_float", "scaled_float", "long", "integer"):
            kind = "number"
        elif es_type == "boolean":
            kind = "boolean"
        elif es_type in ("date", "date_nanos"):
            kind = "date"
        elif es_type == "dense_vector":
            kind = "vector"
        elif es_type == "completion":  # read from `_source` by the completion suggester
            kind = "stored"
        else:
            raise BadRequestError(f"mapping type [{es_type}] of field [{path}] is not supported")
        self.fields[path] = FieldInfo(path, kind, _tantivy_name(path), int(spec.get("dims", 0)))

    def _build(self) -> tantivy.Schema:
        sb = tantivy.SchemaBuilder()
        sb.add_text_field("_id", stored=True, fast=True, tokenizer_name="raw")
        sb.add_unsigned_field("_key", stored=False, indexed=True, fast=True)
        sb.add_bytes_field("_source", stored=True)
        sb.add_text_field("_field_names", stored=False, tokenizer_name="raw")
        sb.add_json_field(DYNAMIC_FIELD, stored=False, fast=True, tokenizer_name="raw")
        for info in self.fields.values():
            if info.kind == "text":
                sb.add_text_field(info.tantivy, stored=False, tokenizer_name=ENGLISH)
            elif info.kind == "keyword":
                sb.add_text_field(info.tantivy, stored=False, fast=True, tokenizer_name="raw")
            elif info.kind in ("number", "date"):
                sb.add_float_field(info.tantivy, stored=False, indexed=True, fast=True)
            elif info.kind == "boolean":
                sb.add_boolean_field(info.tantivy, stored=False, indexed=True, fast=True)
            elif info.kind == "vector":
                sb.add_bytes_field(info.tantivy, stored=True)
        return sb.build()

    @property
    def vector_fields(self) -> list[FieldInfo]:
        return [f for f in self.fields.values() if f.kind == "vector"]

    def field(self, path: str) -> FieldInfo:
        """The field behind an ES path; unmapped paths are dynamic attributes."""
        if path in self.fields:
            return self.fields[path]
        if not path or path.startswith("_"):
            raise BadRequestError(f"field [{path}] cannot be queried")
        return FieldInfo(path, "dynamic", f"{DYNAMIC_FIELD}.{path}")

    def document(
        self,
        doc: dict[str, Any],
        *,
        key: int,
        source: bytes,
        vectors: dict[str, bytes] | None = None,
    ) -> tantivy.Document:
        """The tantivy document for one product; vectors are also stored (as f32 bytes)."""
        tdoc = tantivy.Document()
        tdoc.add_text("_id", str(doc["_id"]))
        tdoc.add_unsigned("_key", key)
        tdoc.add_bytes("_source", source)
        for path, raw in (vectors or {}).items():
            tdoc.add_bytes(self.fields[path].tantivy, raw)
            tdoc.add_text("_field_names", path)
        dynamic: dict[str, Any] = {}
        for name, value in doc.items():
            if name == "_id" or value is None or value == [] or value == "":
                continue
            for path in _paths(name, value):
                tdoc.add_text("_field_names", path)
            root = self.fields.get(name)
            if root is None:
                cleaned = _dynamic_value(value)
                if cleaned is not None:
                    dynamic[name] = cleaned
                continue
            paths = [name] + [p for p in self.fields if p.startswith(name + ".")]
            for path in paths:
                self._add_value(tdoc, self.fields[path], value)
                if path != name:
                    tdoc.add_text("_field_names", path)
        if dynamic:
            tdoc.add_json(DYNAMIC_FIELD, dynamic)
        return tdoc

    @staticmethod
    def _add_value(tdoc: tantivy.Document, info: FieldInfo, value: Any) -> None:
        values = value if isinstance(value, list) else [value]
        for v in values:
            if v is None or isinstance(v, dict):
                continue
            if info.kind == "text":
                tdoc.add_text(info.tantivy, cjk_bigrams(str(v)))
            elif info.kind == "keyword":
                text = str(v)
                if len(text) <= KEYWORD_IGNORE_ABOVE:
                    tdoc.add_text(info.tantivy, text)
            elif info.kind == "number":
                try:
                    tdoc.add_float(info.tantivy, float(v))
                except (TypeError, ValueError):
                    continue
            elif info.kind == "date":
                try:
                    tdoc.add_float(info.tantivy, parse_date_ms(v, what=info.path))
                except BadRequestError:
                    continue
            elif info.kind == "boolean" and isinstance(v, bool):
                tdoc.add_boolean(info.tantivy, v)


def _dynamic_value(value: Any) -> Any:
    """What of an unmapped value is indexed: scalars, lists of scalars, nested objects."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return value if len(value) <= KEYWORD_IGNORE_ABOVE else None
    if isinstance(value, list):
        items = [_dynamic_value(v) for v in value if not isinstance(v, list | dict)]
        items = [v for v in items if v is not None]
        return items or None
    if isinstance(value, dict):
        nested = {k: _dynamic_value(v) for k, v in value.items()}
        nested = {k: v for k, v in nested.items() if v is not None}
        return nested or None
    return None


def _paths(name: str, value: Any) -> list[str]:
    """`name` and, for objects, every nested path (what `exists` can ask about)."""
    out = [name]
    if isinstance(value, dict):
        for k, v in value.items():
            if v is not None:
                out += _paths(f"{name}.{k}", v)
    return out
