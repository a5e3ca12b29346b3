"""Building blocks of the saved objects in `dashboards`: aggregation-based visualisations
in the 7.10 saved-object format and the Vega charts for the ratios (CTR by position,
by model version), all over the search-log data view."""

from __future__ import annotations

import json
from typing import Any

from shoprank.searchlog.mapping import DEFAULT_PREFIX

DATA_VIEW_ID = "shoprank-searches"
INDEX_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def agg(agg_id: str, agg_type: str, schema: str, **params: Any) -> dict[str, Any]:
    return {"id": agg_id, "enabled": True, "type": agg_type, "schema": schema, "params": params}


def axes_params(chart: str) -> dict[str, Any]:
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


def metric_params(percentage: bool) -> dict[str, Any]:
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


def visualization(
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
            "visState": dumps({"title": title, "type": vis_type, "params": params, "aggs": aggs}),
            "kibanaSavedObjectMeta": {"searchSourceJSON": dumps(search)},
        },
        "references": [{"name": INDEX_REF, "type": "index-pattern", "id": DATA_VIEW_ID}],
        "migrationVersion": {"visualization": "7.10.0"},
    }


def ctr_layer(label: str, field: str, agg_name: str) -> dict[str, Any]:
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


def vega(vis_id: str, title: str, spec: dict[str, Any], schema: str) -> dict[str, Any]:
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
            "visState": dumps(
                {
                    "title": title,
                    "type": "vega",
                    "params": {"spec": json.dumps(spec, indent=2)},
                    "aggs": [],
                }
            ),
            "kibanaSavedObjectMeta": {"searchSourceJSON": dumps(search)},
        },
        "references": [],
        "migrationVersion": {"visualization": "7.10.0"},
    }


def model_ctr_spec() -> dict[str, Any]:
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


def _experiment_bucket() -> dict[str, Any]:
    """The experiments' rows of both experiment tables, busiest first."""
    return agg(
        "2",
        "terms",
        "bucket",
        field="experiment.id",
        size=10,
        order="desc",
        orderBy="1",
        customLabel="experiment",
    )


def experiment_variants(queries: str) -> dict[str, Any]:
    """Searches and clicks per experiment and variant, over the query documents (`queries`:
    their KQL filter). Interleaved pages are one variant ("interleave"): their clicks per
    arm are in `experiment_arms`."""
    return visualization(
        "shoprank-experiment-variants",
        "Experiments: searches and clicks per variant",
        "table",
        TABLE_PARAMS,
        [
            agg("1", "count", "metric", customLabel="searches"),
            _experiment_bucket(),
            agg(
                "3",
                "terms",
                "bucket",
                field="experiment.variant",
                size=5,
                order="asc",
                orderBy="_key",
                customLabel="variant",
            ),
            agg("4", "sum", "metric", field="clicks", customLabel="clicks"),
            agg("5", "avg", "metric", field="clicks", customLabel="clicks per search"),
            agg("6", "sum", "metric", field="purchases", customLabel="purchases"),
            agg("7", "avg", "metric", field="zero_results", customLabel="zero-result rate"),
        ],
        f"{queries} and experiment.id : *",
    )


def experiment_arms() -> dict[str, Any]:
    """Impressions and shoppers' events per experiment and contributing arm (the arm that
    put the product on the page: on interleaved pages, the team-draft credit)."""
    return visualization(
        "shoprank-experiment-arms",
        "Experiments: impressions and clicks per contributing arm",
        "table",
        TABLE_PARAMS,
        [
            agg("1", "count", "metric", customLabel="events"),
            _experiment_bucket(),
            agg(
                "3",
                "terms",
                "bucket",
                field="event_attributes.experiment_arm",
                size=2,
                order="asc",
                orderBy="_key",
                customLabel="arm",
            ),
            agg(
                "4",
                "terms",
                "bucket",
                field="action_name",
                size=5,
                order="desc",
                orderBy="1",
                customLabel="event",
            ),
        ],
        "doc_type : event and event_attributes.experiment_arm : *",
    )
