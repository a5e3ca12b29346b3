"""Every request the search-log sink sends (the index template, bulk writes of queries and
impressions, shipped events with counter updates) validated against the Elasticsearch and
OpenSearch API specifications, using the contract tier's validator (`specs.py`)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

specs = pytest.importorskip(
    "tests.contract.specs", reason="the contract tier's spec validator (tests/contract/specs.py)"
)

from shoprank.events.embedded import EmbeddedEventLog  # noqa: E402
from shoprank.events.model import Event  # noqa: E402
from shoprank.searchlog.sinks import ClusterSearchLogSink  # noqa: E402
from tests.unit.test_searchlog_cluster import CLIENTS, Sent, record  # noqa: E402


@pytest.mark.parametrize("engine", sorted(CLIENTS))
def test_search_log_requests_conform(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # The contract tier's session-wide validators (its conftest skips without the specs).
    validator = request.getfixturevalue("es_spec" if engine == "elasticsearch" else "os_spec")
    sent: Sent = []
    log = EmbeddedEventLog(tmp_path / "events")
    sink = ClusterSearchLogSink(CLIENTS[engine](sent), secret=lambda: "k", event_log=log)
    now = time.time()
    sink.write(record("q1", now))
    sink.flush()
    log.append([Event("click", now, "e1", user_id="u", query_id="q1", product_id="p2", position=1)])
    assert sink.ship_events() == 1
    assert len(sent) == 3
    for method, target, raw in sent:
        path, _, query = target.partition("?")
        params = dict(p.split("=", 1) for p in query.split("&") if p)
        text = (raw or b"").decode()
        body: Any = (
            [json.loads(line) for line in text.splitlines() if line.strip()]
            if path.endswith("_bulk")
            else json.loads(text)
        )
        assert validator.errors(method, path, params, body) == [], (method, path)
    # The validator is not vacuous: a malformed template is refused.
    assert validator.errors("PUT", "/_index_template/x", {}, {"index_patterns": 5})
