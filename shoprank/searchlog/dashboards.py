"""Saved objects for Kibana and OpenSearch Dashboards: a data view on the search log and a
"shoprank relevance" dashboard. `python -m shoprank.searchlog.dashboards` regenerates

    docker/kibana/shoprank.ndjson
    docker/opensearch-dashboards/shoprank.ndjson
    docker/search-log/index-template.json

Both are in the 7.10 saved-object format (aggregation-based and Vega visualisations), which
OpenSearch Dashboards reads natively and Kibana 8/9 migrates on import
(`POST /api/saved_objects/_import?overwrite=true`). Ratios such as click-through rate by
position are Vega charts over the raw aggregations, so they need no scripted fields. The
visualisation builders live in `visualisations`; this module lays out the dashboard.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Literal

from shoprank.searchlog.mapping import DEFAULT_PREFIX
from shoprank.searchlog.visualisations import (
    DATA_VIEW_ID,
    TABLE_PARAMS,
    agg,
    axes_params,
    ctr_layer,
    dumps,
    experiment_arms,
    experiment_variants,
    metric_params,
    model_ctr_spec,
    vega,
    visualization,
)

Flavour = Literal["kibana", "opensearch-dashboards"]
DASHBOARD_ID = "shoprank-relevance"
QUERIES = "doc_type : query"
IMPRESSIONS = "action_name : impression"


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
        visualization(
            "shoprank-searches-over-time",
            "Searches over time",
            "histogram",
            axes_params("histogram"),
            [
                agg("1", "count", "metric"),
                agg(
                    "2",
                    "date_histogram",
                    "segment",
                    field="timestamp",
                    interval="auto",
                    min_doc_count=1,
                    extended_bounds={},
                ),
                agg("3", "terms", "group", field="mode", size=5, order="desc", orderBy="1"),
            ],
            QUERIES,
        ),
        visualization(
            "shoprank-zero-result-rate",
            "Zero-result rate",
            "metric",
            metric_params(percentage=True),
            [agg("1", "avg", "metric", field="zero_results", customLabel="zero-result rate")],
            QUERIES,
        ),
        visualization(
            "shoprank-top-queries-without-clicks",
            "Top queries without clicks",
            "table",
            TABLE_PARAMS,
            [
                agg("1", "count", "metric", customLabel="searches"),
                agg(
                    "2",
                    "terms",
                    "bucket",
                    field="user_query",
                    size=25,
                    order="desc",
                    orderBy="1",
                    customLabel="query",
                ),
                agg("3", "avg", "metric", field="total_hits", customLabel="avg hits"),
            ],
            f"{QUERIES} and clicks : 0",
        ),
        visualization(
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
                agg("1", "count", "metric"),
                agg(
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
        vega(
            "shoprank-ctr-by-position",
            "Click-through rate by position: before vs. after reranking",
            {
                "layer": [
                    ctr_layer("after reranking", "event_attributes.position.ordinal", "after"),
                    ctr_layer("before reranking", "event_attributes.rank_before", "before"),
                ]
            },
            schema,
        ),
        visualization(
            "shoprank-rank-shift",
            "Average rank shift (positive = moved up by reranking)",
            "table",
            TABLE_PARAMS,
            [
                agg(
                    "1",
                    "avg",
                    "metric",
                    field="event_attributes.rank_shift",
                    customLabel="avg rank shift",
                ),
                agg(
                    "2",
                    "terms",
                    "bucket",
                    field="action_name",
                    size=10,
                    order="desc",
                    orderBy="_count",
                    customLabel="event",
                ),
                agg("3", "count", "metric", customLabel="events"),
            ],
            "doc_type : event",
        ),
        visualization(
            "shoprank-latency-by-stage",
            "Latency percentiles by stage (ms)",
            "table",
            TABLE_PARAMS,
            [
                agg(str(i), "percentiles", "metric", field=f"latency_ms.{stage}", percents=pct)
                for i, stage in enumerate(stages, start=1)
            ],
            QUERIES,
        ),
        visualization(
            "shoprank-model-versions",
            "Model version comparison: searches, zero results, latency",
            "table",
            TABLE_PARAMS,
            [
                agg("1", "count", "metric", customLabel="searches"),
                agg(
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
                agg("3", "avg", "metric", field="zero_results", customLabel="zero-result rate"),
                agg("4", "percentiles", "metric", field="latency_ms.total", percents=[50, 99]),
                agg("5", "avg", "metric", field="clicks", customLabel="clicks per search"),
            ],
            QUERIES,
        ),
        vega(
            "shoprank-model-ctr",
            "Model version comparison: click-through rate",
            model_ctr_spec(),
            schema,
        ),
        experiment_variants(QUERIES),
        experiment_arms(),
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
            "reranking, rank shifts, latency by stage, model versions and online experiments "
            "(shoprank search log).",
            "version": 1,
            "panelsJSON": dumps(panels),
            "optionsJSON": dumps({"hidePanelTitles": False, "useMargins": True}),
            "timeRestore": True,
            "timeFrom": "now-7d",
            "timeTo": "now",
            "refreshInterval": {"pause": True, "value": 0},
            "kibanaSavedObjectMeta": {
                "searchSourceJSON": dumps(
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
