"""Saved objects for Kibana and OpenSearch Dashboards: a data view on the search log and a
"shoprank relevance" dashboard. `python -m shoprank.searchlog.dashboards` regenerates

    docker/kibana/shoprank.ndjson
    docker/opensearch-dashboards/shoprank.ndjson
    docker/search-log/index-template.json

Both are in the 7.10 saved-object format (aggregation-based and Vega visualisations), which
OpenSearch Dashboards reads natively and Kibana 8/9 migrates on import
(`POST /api/saved_objects/_import?overwrite=true`). Ratios such as click-through rate by
position are Vega charts over the raw aggregations, so they need no scripted fields.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Literal

from shoprank.searchlog.mapping import DEFAULT_PREFIX

Flavour = Literal["kibana", "opensearch-dashboards"]
DATA_VIEW_ID = "shoprank-searches"
DASHBOARD_ID = "shoprank-relevance"
INDEX_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"
QUERIES = "doc_type : query"
IMPRESSIONS = "action_name : impression"


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _agg(agg_id: str, agg_type: str, schema: str, **params: Any) -> dict[str, Any]:
    return {"id": agg_id, "enabled": True, "type": agg_type, "schema": schema, "params": params}


def _axes_params(chart: str) -> dict[str, Any]:
    """The params of a line / histogram chart (what the 7.10 editor saves)."""
    return {
        "type": chart,
        "grid": {"categoryLines": False},
        "categoryAxes": [
            {
                "id": "CategoryAxis-1",
                "type": "category",
                "position": "bottom",
                "show": True,
                "scale": {"type": "linear"},
                "labels": {"show": True, "filter": True, "truncate": 100},
                "title": {},
            }
        ],
        "valueAxes": [
            {
                "id": "ValueAxis-1",
                "name": "LeftAxis-1",
                "type": "value",
                "position": "left",
                "show": True,
                "scale": {"type": "linear", "mode": "normal"},
                "labels": {"show": True, "rotate": 0, "filter": False, "truncate": 100},
                "title": {"text": "Searches"},
            }
        ],
        "seriesParams": [
            {
                "show": True,
                "type": chart,
                "mode": "normal",
                "data": {"label": "Searches", "id": "1"},
                "valueAxis": "ValueAxis-1",
                "drawLinesBetweenPoints": True,
                "lineWidth": 2,
                "showCircles": True,
            }
        ],
        "addTooltip": True,
        "addLegend": True,
        "legendPosition": "right",
        "times": [],
        "addTimeMarker": False,
    }


TABLE_PARAMS = {
    "perPage": 10,
    "showPartialRows": False,
    "showMetricsAtAllLevels": False,
    "sort": {"columnIndex": None, "direction": None},
    "showTotal": False,
    "totalFunc": "sum",
    "percentageCol": "",
}


def _metric_params(percentage: bool) -> dict[str, Any]:
    return {
        "addTooltip": True,
        "addLegend": False,
        "type": "metric",
        "metric": {
            "percentageMode": percentage,
            "useRanges": False,
            "colorSchema": "Green to Red",
            "metricColorMode": "None",
            "colorsRange": [{"from": 0, "to": 1}],
            "labels": {"show": True},
            "invertColors": False,
            "style": {"bgFill": "#000", "bgColor": False, "labelColor": False, "subText": ""},
        },
    }


def _visualization(
    vis_id: str, title: str, vis_type: str, params: dict[str, Any], aggs: list[Any], query: str
) -> dict[str, Any]:
    search = {
        "query": {"query": query, "language": "kuery"},
        "filter": [],
        "indexRefName": INDEX_REF,
    }
    return {
        "id": vis_id,
        "type": "visualization",
        "attributes": {
            "title": title,
            "description": "",
            "version": 1,
            "uiStateJSON": "{}",
            "visState": _dumps({"title": title, "type": vis_type, "params": params, "aggs": aggs}),
            "kibanaSavedObjectMeta": {"searchSourceJSON": _dumps(search)},
        },
        "references": [{"name": INDEX_REF, "type": "index-pattern", "id": DATA_VIEW_ID}],
        "migrationVersion": {"visualization": "7.10.0"},
    }


def _ctr_layer(label: str, field: str, agg_name: str) -> dict[str, Any]:
    """One Vega-Lite layer: clicks / impressions per value of `field`."""
    return {
        "data": {
            "url": {
                "%context%": True,
                "%timefield%": "timestamp",
                "index": f"{DEFAULT_PREFIX}-*",
                "body": {
                    "size": 0,
                    "aggs": {
                        agg_name: {
                            "terms": {"field": field, "size": 20, "order": {"_key": "asc"}},
                            "aggs": {
                                "impressions": {"filter": {"term": {"action_name": "impression"}}},
                                "clicks": {"filter": {"term": {"action_name": "click"}}},
                            },
                        }
                    },
                },
            },
            "format": {"property": f"aggregations.{agg_name}.buckets"},
        },
        "transform": [
            {"filter": "datum.impressions.doc_count > 0"},
            {"calculate": "datum.clicks.doc_count / datum.impressions.doc_count", "as": "ctr"},
            {"calculate": f"'{label}'", "as": "ranking"},
        ],
        "mark": {"type": "line", "point": True},
        "encoding": {
            "x": {"field": "key", "type": "ordinal", "title": "position"},
            "y": {"field": "ctr", "type": "quantitative", "title": "click-through rate"},
            "color": {"field": "ranking", "type": "nominal", "title": None},
            "tooltip": [
                {"field": "ranking", "type": "nominal"},
                {"field": "key", "type": "ordinal", "title": "position"},
                {"field": "ctr", "type": "quantitative", "format": ".2%"},
                {"field": "impressions.doc_count", "type": "quantitative", "title": "impressions"},
                {"field": "clicks.doc_count", "type": "quantitative", "title": "clicks"},
            ],
        },
    }


def _vega(vis_id: str, title: str, spec: dict[str, Any], schema: str) -> dict[str, Any]:
    spec = {"$schema": schema, "title": title, **spec}
    search = {"query": {"query": "", "language": "kuery"}, "filter": []}
    return {
        "id": vis_id,
        "type": "visualization",
        "attributes": {
            "title": title,
            "description": "",
            "version": 1,
            "uiStateJSON": "{}",
            "visState": _dumps(
                {
                    "title": title,
                    "type": "vega",
                    "params": {"spec": json.dumps(spec, indent=2)},
                    "aggs": [],
                }
            ),
            "kibanaSavedObjectMeta": {"searchSourceJSON": _dumps(search)},
        },
        "references": [],
        "migrationVersion": {"visualization": "7.10.0"},
    }


def _model_ctr_spec() -> dict[str, Any]:
    return {
        "data": {
            "url": {
                "%context%": True,
                "%timefield%": "timestamp",
                "index": f"{DEFAULT_PREFIX}-*",
                "body": {
                    "size": 0,
                    "aggs": {
                        "models": {
                            "terms": {"field": "model_version", "size": 10, "missing": "none"},
                            "aggs": {
                                "impressions": {"filter": {"term": {"action_name": "impression"}}},
                                "clicks": {"filter": {"term": {"action_name": "click"}}},
                                "purchases": {"filter": {"term": {"action_name": "purchase"}}},
                            },
                        }
                    },
                },
            },
            "format": {"property": "aggregations.models.buckets"},
        },
        "transform": [
            {"filter": "datum.impressions.doc_count > 0"},
            {"calculate": "datum.clicks.doc_count / datum.impressions.doc_count", "as": "ctr"},
        ],
        "mark": "bar",
        "encoding": {
            "x": {"field": "key", "type": "nominal", "title": "model version"},
            "y": {"field": "ctr", "type": "quantitative", "title": "click-through rate"},
            "tooltip": [
                {"field": "key", "type": "nominal", "title": "model"},
                {"field": "ctr", "type": "quantitative", "format": ".2%"},
                {"field": "purchases.doc_count", "type": "quantitative", "title": "purchases"},
            ],
        },
    }


def saved_objects(flavour: Flavour) -> list[dict[str, Any]]:
    """The data view, the visualisations and the dashboard, in import order."""
    schema = (
        "https://vega.github.io/schema/vega-lite/v5.json"
        if flavour == "kibana"
        else "https://vega.github.io/schema/vega-lite/v4.json"
    )
    data_view: dict[str, Any] = {
        "id": DATA_VIEW_ID,
        "type": "index-pattern",
        "attributes": {"title": f"{DEFAULT_PREFIX}-*", "timeFieldName": "timestamp"},
        "references": [],
        "migrationVersion": {"index-pattern": "7.6.0"},
    }
    if flavour == "kibana":
        data_view["attributes"]["name"] = "shoprank search log"
    pct = [50, 95, 99]
    stages = ("intent", "retrieval", "features", "rerank", "total")
    visualisations = [
        _visualization(
            "shoprank-searches-over-time",
            "Searches over time",
            "histogram",
            _axes_params("histogram"),
            [
                _agg("1", "count", "metric"),
                _agg(
                    "2",
                    "date_histogram",
                    "segment",
                    field="timestamp",
                    interval="auto",
                    min_doc_count=1,
                    extended_bounds={},
                ),
                _agg("3", "terms", "group", field="mode", size=5, order="desc", orderBy="1"),
            ],
            QUERIES,
        ),
        _visualization(
            "shoprank-zero-result-rate",
            "Zero-result rate",
            "metric",
            _metric_params(percentage=True),
            [_agg("1", "avg", "metric", field="zero_results", customLabel="zero-result rate")],
            QUERIES,
        ),
        _visualization(
            "shoprank-top-queries-without-clicks",
            "Top queries without clicks",
            "table",
            TABLE_PARAMS,
            [
                _agg("1", "count", "metric", customLabel="searches"),
                _agg(
                    "2",
                    "terms",
                    "bucket",
                    field="user_query",
                    size=25,
                    order="desc",
                    orderBy="1",
                    customLabel="query",
                ),
                _agg("3", "avg", "metric", field="total_hits", customLabel="avg hits"),
            ],
            f"{QUERIES} and clicks : 0",
        ),
        _visualization(
            "shoprank-intent-categories",
            "Intent category distribution",
            "pie",
            {
                "type": "pie",
                "addTooltip": True,
                "addLegend": True,
                "legendPosition": "right",
                "isDonut": True,
                "labels": {"show": False, "values": True, "last_level": True, "truncate": 100},
            },
            [
                _agg("1", "count", "metric"),
                _agg(
                    "2",
                    "terms",
                    "segment",
                    field="intent.category",
                    size=15,
                    order="desc",
                    orderBy="1",
                    missingBucket=True,
                    missingBucketLabel="no intent",
                ),
            ],
            QUERIES,
        ),
        _vega(
            "shoprank-ctr-by-position",
            "Click-through rate by position: before vs. after reranking",
            {
                "layer": [
                    _ctr_layer("after reranking", "event_attributes.position.ordinal", "after"),
                    _ctr_layer("before reranking", "event_attributes.rank_before", "before"),
                ]
            },
            schema,
        ),
        _visualization(
            "shoprank-rank-shift",
            "Average rank shift (positive = moved up by reranking)",
            "table",
            TABLE_PARAMS,
            [
                _agg(
                    "1",
                    "avg",
                    "metric",
                    field="event_attributes.rank_shift",
                    customLabel="avg rank shift",
                ),
                _agg(
                    "2",
                    "terms",
                    "bucket",
                    field="action_name",
                    size=10,
                    order="desc",
                    orderBy="_count",
                    customLabel="event",
                ),
                _agg("3", "count", "metric", customLabel="events"),
            ],
            "doc_type : event",
        ),
        _visualization(
            "shoprank-latency-by-stage",
            "Latency percentiles by stage (ms)",
            "table",
            TABLE_PARAMS,
            [
                _agg(str(i), "percentiles", "metric", field=f"latency_ms.{stage}", percents=pct)
                for i, stage in enumerate(stages, start=1)
            ],
            QUERIES,
        ),
        _visualization(
            "shoprank-model-versions",
            "Model version comparison: searches, zero results, latency",
            "table",
            TABLE_PARAMS,
            [
                _agg("1", "count", "metric", customLabel="searches"),
                _agg(
                    "2",
                    "terms",
                    "bucket",
                    field="model_version",
                    size=10,
                    order="desc",
                    orderBy="1",
                    missingBucket=True,
                    missingBucketLabel="no model",
                    customLabel="model version",
                ),
                _agg("3", "avg", "metric", field="zero_results", customLabel="zero-result rate"),
                _agg("4", "percentiles", "metric", field="latency_ms.total", percents=[50, 99]),
                _agg("5", "avg", "metric", field="clicks", customLabel="clicks per search"),
            ],
            QUERIES,
        ),
        _vega(
            "shoprank-model-ctr",
            "Model version comparison: click-through rate",
            _model_ctr_spec(),
            schema,
        ),
    ]
    layout = [(0, 0, 32, 12), (32, 0, 16, 12)] + [
        ((i % 2) * 24, 12 + (i // 2) * 15, 24, 15) for i in range(len(visualisations) - 2)
    ]
    panels = []
    references = []
    for i, (vis, (x, y, w, h)) in enumerate(zip(visualisations, layout, strict=True)):
        panel_id = str(i + 1)
        panels.append(
            {
                "panelIndex": panel_id,
                "gridData": {"x": x, "y": y, "w": w, "h": h, "i": panel_id},
                "version": "7.10.0",
                "embeddableConfig": {},
                "panelRefName": f"panel_{i}",
            }
        )
        references.append({"name": f"panel_{i}", "type": "visualization", "id": vis["id"]})
    dashboard = {
        "id": DASHBOARD_ID,
        "type": "dashboard",
        "attributes": {
            "title": "shoprank relevance",
            "description": "Search volume, zero results, clicks by position before and after "
            "reranking, rank shifts, latency by stage and model versions (shoprank search log).",
            "version": 1,
            "panelsJSON": _dumps(panels),
            "optionsJSON": _dumps({"hidePanelTitles": False, "useMargins": True}),
            "timeRestore": True,
            "timeFrom": "now-7d",
            "timeTo": "now",
            "refreshInterval": {"pause": True, "value": 0},
            "kibanaSavedObjectMeta": {
                "searchSourceJSON": _dumps(
                    {"query": {"query": "", "language": "kuery"}, "filter": []}
                )
            },
        },
        "references": references,
        "migrationVersion": {"dashboard": "7.9.3"},
    }
    return [data_view, *visualisations, dashboard]


def to_ndjson(objects: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(obj, sort_keys=True) + "\n" for obj in objects)


TARGETS: dict[Flavour, str] = {
    "kibana": "docker/kibana/shoprank.ndjson",
    "opensearch-dashboards": "docker/opensearch-dashboards/shoprank.ndjson",
}


TEMPLATE_FILE = "docker/search-log/index-template.json"


def template_json() -> str:
    """The index template as a file, for `PUT _index_template/shoprank-searches` by hand
    (the cluster sink also puts it itself before its first write)."""
    from shoprank.searchlog.mapping import index_template

    return json.dumps(index_template(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    root = Path(argv[0] if argv else ".")
    outputs = {rel: to_ndjson(saved_objects(flavour)) for flavour, rel in TARGETS.items()}
    outputs[TEMPLATE_FILE] = template_json()
    for rel, text in outputs.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
