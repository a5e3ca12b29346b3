"""Validate recorded requests against the engines' published API specifications.

Both specifications describe request bodies in JSON Schema, but leave objects open (no
`additionalProperties: false`), so a misspelt key would pass. Real clusters reject unknown
keys, so the loader *closes* every object schema the way the server behaves: an object with
declared `properties` gets `unevaluatedProperties: false`. Schemas used as `allOf` bases
(`QueryBase` under `MatchQuery`, …) stay open themselves; the composite that extends them is
closed instead, and `unevaluatedProperties` sees through the composition (JSON Schema 2020-12).
`$ref`s are resolved across files with the `referencing` registry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urljoin

import jsonschema
import orjson
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPECS = Path(__file__).resolve().parents[2].parent / "shared" / "specs"
ES_SPEC = SPECS / "elasticsearch-serverless-openapi.json"
OS_SPEC = SPECS / "opensearch" / "spec"
HTTP_METHODS = ("get", "put", "post", "delete", "head", "patch")
# Keywords whose value is a schema / a list of schemas / a map of schemas.
_ONE = ("additionalProperties", "items", "not", "if", "then", "else", "contains", "propertyNames")
_MAP = ("properties", "patternProperties", "$defs", "definitions")
# Query parameters every API accepts (common options of both specifications).
COMMON_PARAMS = {"pretty", "human", "error_trace", "filter_path", "source"}
# The Elasticsearch OpenAPI output drops the TypeScript `@shortcut_property` forms
# (`{"match": {"title": "shoe"}}` for `{"match": {"title": {"query": "shoe"}}}`), which the
# server accepts; bodies are expanded to the long form before validation against it.
ES_SHORTCUTS = {
    "match": "query",
    "match_phrase": "query",
    "match_phrase_prefix": "query",
    "match_bool_prefix": "query",
    "term": "value",
    "prefix": "value",
    "wildcard": "value",
    "regexp": "value",
    "fuzzy": "value",
}
# NDJSON APIs: the schema of each line (`{index}` is the header/action, `{body}` the rest).
NDJSON_LINES = {
    "elasticsearch": {
        "_msearch": (
            "#/components/schemas/_global.msearch.MultisearchHeader",
            "#/components/schemas/_global.search._types.SearchRequestBody",
        ),
        "_bulk": ("#/components/schemas/_global.bulk.OperationContainer", None),
    },
    "opensearch": {
        "_msearch": (
            "schemas/_core.msearch.yaml#/components/schemas/MultisearchHeader",
            "schemas/_core.msearch.yaml#/components/schemas/MultisearchBody",
        ),
        "_bulk": ("schemas/_core.bulk.yaml#/components/schemas/OperationContainer", None),
    },
}


def expand_shortcuts(node: Any) -> Any:
    """`{"match": {"f": "x"}}` → `{"match": {"f": {"query": "x"}}}`, `"_source": ["f"]` →
    `{"includes": ["f"]}`, `{"price": "asc"}` → `{"price": {"order": "asc"}}`, everywhere."""
    if isinstance(node, list):
        return [expand_shortcuts(v) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "_source" and isinstance(value, list | str):
            out[key] = {"includes": value if isinstance(value, list) else [value]}
            continue
        if key == "sort":
            items = value if isinstance(value, list) else [value]
            out[key] = [
                {f: {"order": o} if isinstance(o, str) else o for f, o in item.items()}
                if isinstance(item, dict)
                else item
                for item in items
            ]
            continue
        prop = ES_SHORTCUTS.get(key)
        if prop and isinstance(value, dict) and len(value) == 1:
            ((field, inner),) = value.items()
            if isinstance(inner, str | int | float | bool):
                out[key] = {field: {prop: inner}}
                continue
        out[key] = expand_shortcuts(value)
    return out


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


class _Closer:
    """Adds `unevaluatedProperties: false` where the server would refuse unknown keys."""

    def __init__(self, docs: dict[str, Any]) -> None:
        self.docs = docs
        self.bases: set[tuple[str, str]] = set()

    def run(self) -> None:
        # Both specifications write untagged unions (TypeScript `A | B`) as `oneOf`; a body
        # that fits two members (`{"lte": 4}` is an untyped and a number range) is valid to
        # the server, so unions are read as `anyOf`.
        for doc in self.docs.values():
            _any_of(doc)
        # Bases are found transitively (a base's own composition parts are bases too).
        while True:
            before = len(self.bases)
            for uri, doc in self.docs.items():
                for pointer, schema in self._roots(doc):
                    self._walk(uri, pointer, schema, collect=True, inline=False)
            if len(self.bases) == before:
                break
        for uri, doc in self.docs.items():
            for pointer, schema in self._roots(doc):
                self._walk(uri, pointer, schema, collect=False, inline=False)

    @staticmethod
    def _roots(doc: Any) -> list[tuple[str, Any]]:
        roots: list[tuple[str, Any]] = []
        comps = doc.get("components", {}) if isinstance(doc, dict) else {}
        for name, schema in (comps.get("schemas") or {}).items():
            roots.append((f"/components/schemas/{_escape(name)}", schema))
        for name, body in (comps.get("requestBodies") or {}).items():
            for ctype, content in (body.get("content") or {}).items():
                if "schema" in content:
                    ptr = f"/components/requestBodies/{_escape(name)}/content/{_escape(ctype)}"
                    roots.append((f"{ptr}/schema", content["schema"]))
        for path, item in (doc.get("paths") or {}).items() if isinstance(doc, dict) else []:
            for method, op in item.items():
                body = op.get("requestBody") if isinstance(op, dict) else None
                for ctype, content in ((body or {}).get("content") or {}).items():
                    if "schema" in content:
                        ptr = (
                            f"/paths/{_escape(path)}/{method}/requestBody/content/{_escape(ctype)}"
                        )
                        roots.append((f"{ptr}/schema", content["schema"]))
        return roots

    def _walk(self, uri: str, pointer: str, schema: Any, *, collect: bool, inline: bool) -> None:
        """`inline`: this schema is one part of a composition whose siblings add properties,
        so it must stay open (its composite is closed instead)."""
        if not isinstance(schema, dict):
            return
        inline = inline or (uri, pointer) in self.bases
        has_props = isinstance(schema.get("properties"), dict)
        all_of = schema.get("allOf")
        composite = isinstance(all_of, list) and len(all_of) > 1
        if collect and inline and "$ref" in schema:
            target, fragment = urldefrag(urljoin(uri, schema["$ref"]))
            self.bases.add((target, fragment))
        if not collect and inline and isinstance(schema.get("maxProperties"), int):
            # `exactly one of these keys` in a part means the variant keys only; siblings
            # add more (`{"terms": {...}, "aggregations": {...}}`).
            del schema["maxProperties"]
        if not collect and not inline:
            open_keys = {"additionalProperties", "patternProperties", "unevaluatedProperties"}
            open_part = composite and any(_is_open_object(part) for part in all_of)
            if (has_props or composite) and not open_part and not (open_keys & set(schema)):
                schema["unevaluatedProperties"] = False
        parts_inline = inline or composite or has_props
        for key in ("allOf", "anyOf", "oneOf"):
            if isinstance(schema.get(key), list):
                for i, sub in enumerate(schema[key]):
                    self._walk(
                        uri, f"{pointer}/{key}/{i}", sub, collect=collect, inline=parts_inline
                    )
        for key in _ONE:
            if isinstance(schema.get(key), dict):
                self._walk(uri, f"{pointer}/{key}", schema[key], collect=collect, inline=False)
        if isinstance(schema.get("prefixItems"), list):
            for i, sub in enumerate(schema["prefixItems"]):
                self._walk(uri, f"{pointer}/prefixItems/{i}", sub, collect=collect, inline=False)
        for key in _MAP:
            if isinstance(schema.get(key), dict):
                for name, sub in schema[key].items():
                    self._walk(
                        uri, f"{pointer}/{key}/{_escape(name)}", sub, collect=collect, inline=False
                    )


def _discriminate(docs: dict[str, Any], registry: Registry[Any]) -> None:
    """Read unions tagged by a required `type` key (mapping property types, processors…) as
    tagged: each member becomes `if type == T then member else false`. It accepts exactly
    what the plain union accepts, but a member whose tag does not match is dismissed at once
    instead of being validated through its whole subtree, which for nested mappings made
    validation exponential in the nesting depth."""
    resolver = registry.resolver()

    def tag(uri: str, node: Any, depth: int = 0) -> str | None:
        if depth > 10 or not isinstance(node, dict):
            return None
        if "$ref" in node:
            target, fragment = urldefrag(urljoin(uri, node["$ref"]))
            try:
                resolved = resolver.lookup(f"{target}#{fragment}").contents
            except Exception:  # noqa: BLE001 - an unresolvable member stays untagged
                return None
            return tag(target, resolved, depth + 1)
        prop = (node.get("properties") or {}).get("type")
        if isinstance(prop, dict) and "type" in (node.get("required") or []):
            if isinstance(prop.get("const"), str):
                return str(prop["const"])
            enum = prop.get("enum")
            if isinstance(enum, list) and len(enum) == 1 and isinstance(enum[0], str):
                return enum[0]
        for part in node.get("allOf") or []:
            found = tag(uri, part, depth + 1)
            if found is not None:
                return found
        return None

    def walk(uri: str, node: Any) -> None:
        if isinstance(node, dict):
            members = node.get("anyOf")
            if isinstance(members, list) and len(members) >= 3:
                for i, member in enumerate(members):
                    name = tag(uri, member)
                    if name is not None:
                        members[i] = {
                            "if": {"properties": {"type": {"const": name}}, "required": ["type"]},
                            "then": member,
                            "else": False,
                        }
            for value in node.values():
                walk(uri, value)
        elif isinstance(node, list):
            for value in node:
                walk(uri, value)

    for uri, doc in docs.items():
        walk(uri, doc)


def _is_open_object(schema: Any) -> bool:
    """`{"type": "object"}` with no declared keys: any key goes (a field-name map)."""
    return (
        isinstance(schema, dict)
        and schema.get("type") == "object"
        and not any(k in schema for k in ("properties", "allOf", "anyOf", "oneOf", "$ref"))
        and schema.get("additionalProperties", True) is not False
    )


def _any_of(node: Any) -> None:
    if isinstance(node, dict):
        if isinstance(node.get("oneOf"), list) and "anyOf" not in node:
            node["anyOf"] = node.pop("oneOf")
        for value in node.values():
            _any_of(value)
    elif isinstance(node, list):
        for value in node:
            _any_of(value)


@dataclass
class Operation:
    template: str
    method: str
    uri: str
    pointer: str
    op: dict[str, Any]


# Where the Elasticsearch OpenAPI output lost a TypeScript index signature: a sort entry is
# `{"<field>": FieldSort}` besides the named `_score` / `_doc` / … keys, and `FieldSort`
# itself is missing from the document; it is written here from the ES sort reference.
_FIELD_SORT = {
    "type": "object",
    "properties": {
        "order": {"$ref": "#/components/schemas/_types.SortOrder"},
        "mode": {"$ref": "#/components/schemas/_types.SortMode"},
        "missing": {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]},
        "nested": {"$ref": "#/components/schemas/_types.NestedSortValue"},
        "numeric_type": {"type": "string", "enum": ["long", "double", "date", "date_nanos"]},
        "unmapped_type": {"type": "string"},
        "format": {"type": "string"},
    },
}
ES_PATCHES = {"_types.SortOptions": {"additionalProperties": _FIELD_SORT}}


class SpecValidator:
    """One engine's specification: find the operation of a request, validate its body."""

    def __init__(self, name: str, docs: dict[str, Any]) -> None:
        self.name = name
        self.docs = docs
        if name == "elasticsearch":
            schemas = next(iter(docs.values()))["components"]["schemas"]
            for schema_name, patch in ES_PATCHES.items():
                schemas[schema_name].update(patch)
        _Closer(docs).run()
        self.registry: Registry[Any] = Registry().with_resources(
            (uri, Resource.from_contents(doc, default_specification=DRAFT202012))
            for uri, doc in docs.items()
        )
        _discriminate(docs, self.registry)
        self._routes: list[tuple[int, re.Pattern[str], str, str]] = []
        for uri, doc in docs.items():
            for template in (doc.get("paths") or {}) if isinstance(doc, dict) else {}:
                literal = sum(1 for s in template.split("/") if s and not s.startswith("{"))
                regex = re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$")
                self._routes.append((literal, regex, template, uri))
        self._routes.sort(key=lambda r: -r[0])
        self._validators: dict[str, jsonschema.protocols.Validator] = {}

    @classmethod
    def elasticsearch(cls) -> SpecValidator:
        return cls("elasticsearch", {ES_SPEC.as_uri(): orjson.loads(ES_SPEC.read_bytes())})

    @classmethod
    def opensearch(cls) -> SpecValidator:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        docs = {
            path.as_uri(): yaml.load(path.read_text(), Loader=loader)
            for path in sorted(OS_SPEC.rglob("*.yaml"))
        }
        return cls("opensearch", docs)

    def operation(self, method: str, path: str) -> Operation:
        method = method.lower()
        for _, regex, template, uri in self._routes:
            if regex.match(path):
                item = self.docs[uri]["paths"][template]
                if method in item:
                    ptr = f"/paths/{_escape(template)}/{method}"
                    return Operation(template, method, uri, ptr, item[method])
        raise LookupError(f"{self.name}: no operation {method.upper()} {path} in the specification")

    def _deref(self, uri: str, node: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
        """Follow a `$ref` (one hop at a time) to (uri, pointer, node)."""
        pointer = ""
        while "$ref" in node:
            target, fragment = urldefrag(urljoin(uri, node["$ref"]))
            uri, pointer = target, fragment
            node = self.registry.resolver().lookup(f"{target}#{fragment}").contents
        return uri, pointer, node

    def parameters(self, op: Operation) -> set[str]:
        names = set(COMMON_PARAMS)
        for param in op.op.get("parameters", []):
            _, _, resolved = self._deref(op.uri, param)
            if resolved.get("in") == "query":
                names.add(str(resolved["name"]))
        return names

    def body_schema_ref(self, op: Operation) -> str | None:
        if "requestBody" not in op.op:
            return None
        uri, pointer, body = self._deref(op.uri, op.op["requestBody"])
        if not pointer:
            pointer = f"{op.pointer}/requestBody"
        content = body.get("content", {})
        ctype = next(iter(content))
        return f"{uri}#{pointer}/content/{_escape(ctype)}/schema"

    def errors(self, method: str, path: str, params: dict[str, str], body: Any) -> list[str]:
        """Every way the request breaks the specification (empty when it conforms)."""
        op = self.operation(method, path)
        problems = [
            f"query parameter [{p}] is not a parameter of {op.method.upper()} {op.template}"
            for p in sorted(set(params) - self.parameters(op))
        ]
        if body is None:
            return problems
        if self.name == "elasticsearch":
            body = expand_shortcuts(body)
        ref = self.body_schema_ref(op)
        if ref is None:
            return [*problems, f"{op.method.upper()} {op.template} takes no body"]
        validator = self._validators.get(ref)
        if validator is None:
            validator = jsonschema.Draft202012Validator({"$ref": ref}, registry=self.registry)
            self._validators[ref] = validator
        for error in sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path)):
            where = "/".join(str(p) for p in error.absolute_path) or "(body)"
            problems.append(f"{where}: {error.message[:300]}")
        api = op.template.rsplit("/", 1)[-1]
        if api in NDJSON_LINES[self.name] and isinstance(body, list):
            problems += self._ndjson_errors(api, body)
        return problems

    def _ndjson_errors(self, api: str, lines: list[Any]) -> list[str]:
        """Line by line: the specifications' array schemas accept any object as a line
        (a bulk source line is free-form), so headers/actions are checked on their own."""
        head_ref, body_ref = NDJSON_LINES[self.name][api]
        base = next(iter(self.docs)) if self.name == "elasticsearch" else OS_SPEC.as_uri() + "/"
        problems: list[str] = []
        i = 0
        while i < len(lines):
            head = lines[i]
            problems += [f"line {i}: {e}" for e in self._errors_at(urljoin(base, head_ref), head)]
            has_body = api == "_msearch" or not (isinstance(head, dict) and "delete" in head)
            if has_body and i + 1 < len(lines):
                body = lines[i + 1]
                if not isinstance(body, dict):
                    problems.append(f"line {i + 1}: not a JSON object")
                elif body_ref is not None:
                    problems += [
                        f"line {i + 1}: {e}" for e in self._errors_at(urljoin(base, body_ref), body)
                    ]
            i += 2 if has_body else 1
        return problems

    def _errors_at(self, ref: str, instance: Any) -> list[str]:
        validator = self._validators.get(ref)
        if validator is None:
            validator = jsonschema.Draft202012Validator({"$ref": ref}, registry=self.registry)
            self._validators[ref] = validator
        out = []
        for error in validator.iter_errors(instance):
            where = "/".join(str(p) for p in error.absolute_path) or "(line)"
            out.append(f"{where}: {error.message[:300]}")
        return out
