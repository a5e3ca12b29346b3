"""Online experiments in the search log and its saved objects: query documents carry the
experiment and variant, impressions and shoppers' events the arm that showed the product,
every such field is in the index template, and the experiment panels read only mapped
fields. Also the inspector's plot series (`replay`), which needs no server."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from shoprank.events.model import Event
from shoprank.experiments.logs import experiment_field, read_tallies
from shoprank.experiments.model import Arm, Experiment
from shoprank.experiments.tally import ArmRun
from shoprank.plugin.inspector_experiments import detail, replay
from shoprank.searchlog.dashboards import saved_objects
from shoprank.searchlog.documents import event_document, impression_documents, query_document
from shoprank.searchlog.mapping import MAPPINGS, dynamic_prefixes, field_paths, index_template
from shoprank.searchlog.record import SearchRecord, WindowItem
from tests.unit.test_dashboards import problems, used_fields

AB = Experiment.new("ranker-v7", control={"ranker": "live"}, challenger={"ranker": "v7"}, now=1.0)
IL = Experiment.new(
    "fusion-linear",
    control={"fusion": "rrf"},
    challenger={"fusion": "linear"},
    method="interleave",
    now=1.0,
)
TEAMS: dict[str, Arm] = {"p1": "A", "p2": "B"}


def record(experiment: dict[str, Any] | None) -> SearchRecord:
    return SearchRecord(
        index="products",
        query="usb charger",
        mode="full",
        query_id="q1",
        timestamp=1_700_000_000.0,
        window=[
            WindowItem("p1", rank_before=2, rank_after=1, score=0.9),
            WindowItem("p2", rank_before=1, rank_after=2, score=0.8),
            WindowItem("p9", rank_before=3, rank_after=3, score=0.1),
        ],
        total_hits=3,
        experiment=experiment,
    )


def ab_field(arm: Arm) -> dict[str, Any]:
    return experiment_field(AB, arm, {arm: ArmRun(False, 8.0)})


def il_field() -> dict[str, Any]:
    runs: dict[Arm, ArmRun] = {"A": ArmRun(False, 8.0), "B": ArmRun(True, 9.0)}
    return experiment_field(IL, "interleave", runs, TEAMS)


def arms(docs: list[dict[str, Any]]) -> dict[str, str | None]:
    return {
        d["event_attributes"]["object"]["object_id"]: d["event_attributes"].get("experiment_arm")
        for d in docs
    }


def test_ab_search_documents_name_the_experiment_and_the_served_arm() -> None:
    rec = record(ab_field("B"))
    doc = query_document(rec, client_id="c", session_id=None)
    assert doc["experiment"] == {"id": "ranker-v7", "method": "ab", "variant": "B"}
    impressions = impression_documents(rec, client_id="c", session_id=None)
    assert arms(impressions) == {"p1": "B", "p2": "B", "p9": "B"}
    assert all(d["experiment"]["variant"] == "B" for d in impressions)


def test_interleaved_page_credits_each_impression_to_its_team() -> None:
    rec = record(il_field())
    doc = query_document(rec, client_id="c", session_id=None)
    assert doc["experiment"] == {
        "id": "fusion-linear",
        "method": "interleave",
        "variant": "interleave",
    }
    # Runs and teams stay out of the query document (the teams are on the impressions).
    assert "teams" not in json.dumps(doc) and "runs" not in json.dumps(doc)
    impressions = impression_documents(rec, client_id="c", session_id=None)
    assert arms(impressions) == {"p1": "A", "p2": "B", "p9": None}  # p9: no arm chose it
    click = event_document(
        action="click",
        query_id="q1",
        timestamp=1.0,
        product_id="p2",
        position=2,
        client_id="c",
        session_id=None,
        experiment=il_field(),
    )
    assert click["event_attributes"]["experiment_arm"] == "B"
    assert click["experiment"]["id"] == "fusion-linear"


def test_searches_outside_experiments_carry_no_experiment_fields() -> None:
    rec = record(None)
    assert "experiment" not in query_document(rec, client_id="c", session_id=None)
    for doc in impression_documents(rec, client_id="c", session_id=None):
        assert "experiment" not in doc and "experiment_arm" not in doc["event_attributes"]
    plain = event_document(
        action="click",
        query_id="q1",
        timestamp=1.0,
        product_id="p2",
        position=2,
        client_id="c",
        session_id=None,
    )
    assert "experiment" not in plain and "experiment_arm" not in plain["event_attributes"]


def leaves(doc: dict[str, Any], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for key, value in doc.items():
        if isinstance(value, dict) and value:
            out |= leaves(value, f"{prefix}{key}.")
        else:
            out.add(prefix + key)
    return out


def test_experiment_fields_are_keywords_in_the_index_template() -> None:
    mapped = field_paths(index_template()["template"]["mappings"])
    for name in ("experiment.id", "experiment.method", "experiment.variant"):
        assert mapped[name] == "keyword"
    assert mapped["event_attributes.experiment_arm"] == "keyword"
    assert MAPPINGS["_meta"]["shoprank"]["template_version"] >= 2
    skip = (*dynamic_prefixes(), "timings_ms", "window")
    rec = record(il_field())
    docs = [query_document(rec, client_id="c", session_id="s")]
    docs += impression_documents(rec, client_id="c", session_id="s")
    docs.append(
        event_document(
            action="purchase",
            query_id="q1",
            timestamp=1.0,
            product_id="p1",
            position=1,
            client_id="c",
            session_id="s",
            experiment=il_field(),
        )
    )
    for doc in docs:
        for path in leaves(doc):
            assert path.startswith(skip) or path in mapped, f"{path} is written but not mapped"


@pytest.mark.parametrize("flavour", ["kibana", "opensearch-dashboards"])
def test_dashboard_has_the_experiment_panels_on_mapped_fields(flavour: str) -> None:
    objects = saved_objects(flavour)  # type: ignore[arg-type]
    assert problems(objects) == []
    by_id = {o["id"]: o for o in objects}
    variants = by_id["shoprank-experiment-variants"]
    arms_vis = by_id["shoprank-experiment-arms"]
    assert {"experiment.id", "experiment.variant", "clicks", "doc_type"} <= used_fields(variants)
    assert "event_attributes.experiment_arm" in used_fields(arms_vis)
    state = json.loads(variants["attributes"]["visState"])
    labels = [a["params"].get("customLabel") for a in state["aggs"]]
    assert "searches" in labels and "clicks" in labels
    dashboard = next(o for o in objects if o["type"] == "dashboard")
    referenced = {r["id"] for r in dashboard["references"]}
    assert {"shoprank-experiment-variants", "shoprank-experiment-arms"} <= referenced
    panels = json.loads(dashboard["attributes"]["panelsJSON"])
    assert len(panels) == len(referenced)
    # No two panels overlap on the dashboard grid.
    cells = [
        (x, y)
        for p in panels
        for x in range(p["gridData"]["x"], p["gridData"]["x"] + p["gridData"]["w"])
        for y in range(p["gridData"]["y"], p["gridData"]["y"] + p["gridData"]["h"])
    ]
    assert len(cells) == len(set(cells))


def ab_log(n: int) -> list[Event]:
    """`n` alternating A/B searches; A's are clicked every 4th, B's every 2nd."""
    events: list[Event] = []
    for i in range(n):
        arm: Arm = "A" if i % 2 == 0 else "B"
        qid = f"q{i}"
        events.append(
            Event(
                type="search",
                timestamp=float(i),
                event_id=qid,
                query_id=qid,
                user_id="u",
                experiment=ab_field(arm),
            )
        )
        if (i // 2) % (4 if arm == "A" else 2) == 0:
            events.append(
                Event("click", float(i) + 0.5, f"c{i}", user_id="u", query_id=qid, product_id="p1")
            )
    return events


def test_replay_caps_the_points_and_ends_at_the_tallies() -> None:
    events = ab_log(450)
    tallies, plot = replay(AB, events, max_points=200)
    expected = read_tallies(events, [AB])[AB.id]
    assert tallies.arms["A"].converted == expected.arms["A"].converted
    assert tallies.arms["B"].searches == expected.arms["B"].searches == 225
    for series in plot["series"]:
        points = series["points"]
        assert 100 < len(points) <= 200
        assert points[-1][0] == 450
        arm = tallies.arms[series["name"]]
        assert points[-1][1] == pytest.approx(arm.converted["click"] / arm.searches, abs=1e-6)
    final = {s["name"]: s["points"][-1][1] for s in plot["series"]}
    assert final["A"] == pytest.approx(0.25, abs=0.01) and final["B"] == pytest.approx(
        0.5, abs=0.01
    )


def test_replay_of_interleaving_plots_the_challengers_share() -> None:
    events: list[Event] = []
    for i in range(10):
        qid = f"q{i}"
        events.append(
            Event("search", float(i), qid, user_id="u", query_id=qid, experiment=il_field())
        )
        if i < 9:  # the last page has no click: a tie
            winner = "p2" if i % 3 else "p1"  # B wins 6 of 9 decided pages
            events.append(
                Event("click", i + 0.5, f"c{i}", user_id="u", query_id=qid, product_id=winner)
            )
    _, plot = replay(IL, events)
    assert plot["reference"] == 0.5
    (series,) = plot["series"]
    assert series["points"][-1][:2] == [10, pytest.approx(6 / 9, abs=1e-6)]
    assert detail(IL, events, now=5.0)["decision"] is None  # a draft decides nothing
    body = detail(replace(IL, status="running", started_at=2.0), events, now=5.0)
    assert body["evidence"]["preference"]["ties"] == 1
    assert body["progress"]["done"] == 9 and body["progress"]["unit"] == "decided queries"
    assert body["decision"]["recorded"] is False and "evidence" not in body["decision"]
    assert "salt" not in body["experiment"]
