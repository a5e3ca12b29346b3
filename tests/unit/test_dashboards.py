"""The Kibana / OpenSearch Dashboards saved objects: they parse, every reference resolves,
every field a visualisation uses is in the search-log mapping, and the dashboard has the
panels the issue asks for."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from shoprank.searchlog.dashboards import (
    TARGETS,
    TEMPLATE_FILE,
    saved_objects,
    template_json,
    to_ndjson,
)
from shoprank.searchlog.mapping import dynamic_prefixes, field_paths

ROOT = Path(__file__).resolve().parents[2]
FILES = {flavour: ROOT / rel for flavour, rel in TARGETS.items()}
KQL_FIELD = re.compile(r"([A-Za-z_][\w.]*)\s*:")
REQUIRED_PANELS = [
    "searches over time",
    "zero-result rate",
    "top queries without clicks",
    "intent category",
    "click-through rate by position",
    "rank shift",
    "latency percentiles by stage",
    "model version",
    "experiments: searches and clicks per variant",
]


def load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def fields_of_vega(node: Any) -> set[str]:
    """Fields named in the Elasticsearch request bodies inside a Vega spec."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "field" and isinstance(value, str) and "url" not in node:
                found.add(value)
            if key in ("term", "terms", "range", "exists") and isinstance(value, dict):
                # An aggregation names its `field`; a query is keyed by the field names.
                found |= {value["field"]} if "field" in value else set(value)
            found |= fields_of_vega(value)
    elif isinstance(node, list):
        for item in node:
            found |= fields_of_vega(item)
    return found


def used_fields(obj: dict[str, Any]) -> set[str]:
    """Every index field a saved object reads: aggregation fields, KQL fields, time field,
    and the fields of the raw queries in Vega specs."""
    attrs = obj["attributes"]
    fields: set[str] = set()
    if obj["type"] == "index-pattern":
        fields.add(attrs["timeFieldName"])
    if "visState" in attrs:
        vis = json.loads(attrs["visState"])
        for agg in vis.get("aggs", []):
            if "field" in agg.get("params", {}):
                fields.add(agg["params"]["field"])
        if vis["type"] == "vega":
            spec = json.loads(vis["params"]["spec"])
            for layer in spec.get("layer", [spec]):
                fields |= fields_of_vega(layer["data"]["url"]["body"])
                fields.add(layer["data"]["url"]["%timefield%"])
    meta = attrs.get("kibanaSavedObjectMeta", {}).get("searchSourceJSON")
    if meta:
        query = json.loads(meta).get("query", {}).get("query", "")
        fields |= set(KQL_FIELD.findall(query))
    return fields


def problems(objects: list[dict[str, Any]]) -> list[str]:
    mapped = field_paths()
    dynamic = tuple(dynamic_prefixes())
    ids = {(o["type"], o["id"]) for o in objects}
    out = []
    for obj in objects:
        for ref in obj.get("references", []):
            if (ref["type"], ref["id"]) not in ids:
                out.append(f"{obj['id']}: reference {ref} does not resolve")
        attrs = obj["attributes"]
        if "panelsJSON" in attrs:
            names = {r["name"] for r in obj["references"]}
            for panel in json.loads(attrs["panelsJSON"]):
                if panel["panelRefName"] not in names:
                    out.append(f"{obj['id']}: panel {panel['panelRefName']} has no reference")
        meta = attrs.get("kibanaSavedObjectMeta", {}).get("searchSourceJSON")
        if meta and "indexRefName" in json.loads(meta):
            ref_name = json.loads(meta)["indexRefName"]
            if ref_name not in {r["name"] for r in obj["references"]}:
                out.append(f"{obj['id']}: {ref_name} has no reference")
        for field in used_fields(obj):
            if field not in mapped and not field.startswith(dynamic):
                out.append(f"{obj['id']}: field {field} is not in the search-log mapping")
    return out


@pytest.mark.parametrize("flavour", sorted(FILES))
def test_saved_objects_parse_resolve_and_use_mapped_fields(flavour: str) -> None:
    objects = load(FILES[flavour])
    assert problems(objects) == []
    types = [o["type"] for o in objects]
    assert types.count("index-pattern") == 1 and types.count("dashboard") == 1
    view = next(o for o in objects if o["type"] == "index-pattern")
    assert view["attributes"]["title"] == "shoprank-searches-*"
    assert field_paths()[view["attributes"]["timeFieldName"]] == "date"
    dashboard = next(o for o in objects if o["type"] == "dashboard")
    by_id = {o["id"]: o for o in objects}
    titles = [by_id[r["id"]]["attributes"]["title"].lower() for r in dashboard["references"]]
    for wanted in REQUIRED_PANELS:
        assert any(wanted in t for t in titles), f"dashboard lacks a '{wanted}' panel"


def test_the_checker_catches_broken_objects() -> None:
    objects = saved_objects("kibana")
    broken = copy.deepcopy(objects)
    vis = next(o for o in broken if o["id"] == "shoprank-zero-result-rate")
    state = json.loads(vis["attributes"]["visState"])
    state["aggs"][0]["params"]["field"] = "zero_result"  # a typo
    vis["attributes"]["visState"] = json.dumps(state)
    broken[-1]["references"][0]["id"] = "missing-vis"
    found = problems(broken)
    assert any("field zero_result " in p for p in found)
    assert any("missing-vis" in p for p in found)
    ctr = next(o for o in objects if o["id"] == "shoprank-ctr-by-position")
    assert "event_attributes.rank_before" in used_fields(ctr)


@pytest.mark.parametrize("flavour", sorted(FILES))
def test_checked_in_files_are_current(flavour: str) -> None:
    expected = to_ndjson(saved_objects(flavour))  # type: ignore[arg-type]
    assert FILES[flavour].read_text() == expected, (
        "regenerate with: python -m shoprank.searchlog.dashboards"
    )


def test_checked_in_index_template_is_current() -> None:
    assert (ROOT / TEMPLATE_FILE).read_text() == template_json()
