"""Online experiments in the real search pipeline: a real embedded index, a real
`SearchService` with its search logger writing the real behaviour log, an experiment in a
real `ExperimentStore`. What a shopper and an analyst notice: enrolled users see their
arm's ranking (sticky), interleaved pages mix both arms' hits and say which arm put each
hit there, searches the arms cannot tell apart stay out, and the tallies read back from
the log count what happened."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from shoprank.events.model import Event
from shoprank.events.service import EventService
from shoprank.experiments.logs import read_tallies
from shoprank.experiments.model import Experiment
from shoprank.experiments.store import ExperimentStore, RunningAssigners
from shoprank.plugin.backends.embedded.backend import EmbeddedBackend
from shoprank.plugin.search import SearchService
from shoprank.rerankers.protocol import Candidate, RerankContext
from shoprank.searchlog.logger import SearchLogger
from shoprank.settings import Settings
from tests.unit.test_diversity_search import INDEX, WordEncoder
from tests.unit.test_diversity_search import backend as backend  # noqa: F401 - fixture


class VersionedRanker:
    """A reranking stage whose order depends on the pinned ranker version, as the learned
    ranker's does: "reverse" reverses the window, anything else keeps it."""

    name = "ltr"

    def __init__(self) -> None:
        self.seen: list[str | None] = []

    def rerank(self, context: RerankContext, candidates: list[Candidate]) -> list[Candidate]:
        self.seen.append(context.ranker_version)
        context.info["model_version"] = context.ranker_version or "live"
        if context.ranker_version == "reverse":
            out = list(reversed(candidates))
            for n, cand in enumerate(out):
                cand.score = float(len(out) - n)
            return out
        return candidates


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def make(
    backend: EmbeddedBackend, tmp_path: Path, exp: Experiment | None
) -> tuple[SearchService, SearchLogger, VersionedRanker, ExperimentStore]:
    settings = Settings(data_dir=tmp_path, user_id_secret="s" * 32)
    store = ExperimentStore(tmp_path / "experiments")
    if exp is not None:
        store.create(exp)
        store.start(exp.id, now=1.0)
    logger = SearchLogger(settings)
    ranker = VersionedRanker()
    enc = WordEncoder()
    service = SearchService(
        backend=backend,
        settings=settings,
        encoder=lambda: enc,
        rerankers=[ranker],
        search_logger=logger,
        experiments=RunningAssigners(store, clock=Clock()),
    )
    return service, logger, ranker, store


def body(size: int = 6, start: int = 0, mode: str = "full", **extra: Any) -> dict[str, Any]:
    return {
        "query": {"match": {"title": "toner cartridge"}},
        "from": start,
        "size": size,
        "aggs": {"brands": {"terms": {"field": "brand"}}},
        "ext": {"shoprank": {"mode": mode, "explain": True}},
        **extra,
    }


def ids(response: dict[str, Any]) -> list[str]:
    return [h["_id"] for h in response["hits"]["hits"]]


def logged(tmp_path: Path, settings: Settings) -> list[Event]:
    return [e for _, e in EventService(settings).log.read()]


def ranker_experiment(method: str, **kw: Any) -> Experiment:
    return Experiment.new(
        f"rev-{method}",
        control={"ranker": "live"},
        challenger={"ranker": "reverse"},
        method=method,  # type: ignore[arg-type]
        now=0.0,
        **kw,
    )


def test_ab_users_see_their_arm_every_time(backend: EmbeddedBackend, tmp_path: Path) -> None:
    service, logger, ranker, _ = make(backend, tmp_path, ranker_experiment("ab"))
    plain, *_ = make(backend, tmp_path / "plain", None)
    control_order = ids(plain.search(INDEX, body(), user_id="anyone"))
    arms: dict[str, str] = {}
    for n in range(40):
        user = f"user-{n}"
        first = service.search(INDEX, body(), user_id=user)
        again = service.search(INDEX, body(), user_id=user)
        variant = first["_shoprank"]["experiment"]["variant"]
        assert again["_shoprank"]["experiment"]["variant"] == variant  # sticky
        arms[user] = variant
        expected = control_order if variant == "A" else ids(first)
        assert ids(first) == ids(again) == expected
        if variant == "B":
            assert ids(first) != control_order  # the challenger's ranking really served
        # Totals and facets answer the client's query in either arm.
        assert first["hits"]["total"] == plain.search(INDEX, body())["hits"]["total"]
    assert 8 <= sum(v == "B" for v in arms.values()) <= 32  # a 50/50 split, roughly
    assert set(ranker.seen) == {"live", "reverse"}
    logger.flush()
    store = ExperimentStore(tmp_path / "experiments")
    tallies = read_tallies(logged(tmp_path, service.settings), store.all())
    t = tallies["rev-ab"]
    n_b = sum(v == "B" for v in arms.values())
    assert t.arms["B"].searches == 2 * n_b
    assert t.arms["A"].searches == 2 * (40 - n_b)


def test_interleaved_page_mixes_both_rankings_and_credits_clicks(
    backend: EmbeddedBackend, tmp_path: Path
) -> None:
    service, logger, _, store = make(backend, tmp_path, ranker_experiment("interleave"))
    plain, *_ = make(backend, tmp_path / "plain", None)
    control = ids(plain.search(INDEX, body(size=20)))
    challenger = list(reversed(control))
    response = service.search(INDEX, body(), user_id="shopper")
    field = response["_shoprank"]["experiment"]
    assert field["variant"] == "interleave" and field["method"] == "interleave"
    page = ids(response)
    assert len(page) == 6 and len(set(page)) == 6
    teams = field["teams"]
    assert set(teams) == set(page)
    assert set(teams.values()) == {"A", "B"}  # both rankers contributed
    # Each arm's picks appear in that arm's own order (team draft takes its best unshown).
    for arm, ranking in (("A", control), ("B", challenger)):
        picked = [p for p in page if teams[p] == arm]
        assert picked == sorted(picked, key=ranking.index)
    assert control[0] in page and challenger[0] in page  # both arms' best made the page
    assert response["aggregations"] == plain.search(INDEX, body())["aggregations"]
    assert set(field["runs"]) == {"A", "B"}

    # Two clicks on challenger picks: the page is a win for B in the tally.
    query_id = response["_shoprank"]["query_id"]
    logger.flush()
    b_picks = [p for p in page if teams[p] == "B"][:2]
    events = EventService(service.settings)
    events.ingest(
        [
            Event.from_record(
                {
                    "type": "click",
                    "timestamp": time.time(),
                    "event_id": f"c{i}",
                    "user_id": "shopper",
                    "product_id": pid,
                    "query_id": query_id,
                }
            )
            for i, pid in enumerate(b_picks)
        ]
    )
    t = read_tallies(logged(tmp_path, service.settings), store.all())["rev-interleave"]
    assert (t.wins_a, t.wins_b, t.ties) == (0, 1, 0)
    assert t.arms["B"].converted["click"] == 1 and t.arms["A"].converted["click"] == 0


def test_interleaved_second_page_continues_the_merged_ranking(
    backend: EmbeddedBackend, tmp_path: Path
) -> None:
    service, *_ = make(backend, tmp_path, ranker_experiment("interleave"))
    first = service.search(INDEX, body(size=4, start=0), user_id="u1")
    second = service.search(INDEX, body(size=4, start=4), user_id="u1")
    assert len(ids(second)) == 4
    # Not the same merge (another query id, other coins), but never a hit twice on a page
    # and the second page's hits come from the arms' own rankings.
    assert len(set(ids(second))) == 4
    assert set(second["_shoprank"]["experiment"]["teams"]) == set(ids(second))
    assert first["hits"]["total"] == second["hits"]["total"]


def test_searches_the_arms_cannot_tell_apart_stay_out(
    backend: EmbeddedBackend, tmp_path: Path
) -> None:
    service, logger, ranker, _ = make(backend, tmp_path, ranker_experiment("interleave"))
    # A ranker experiment does not touch hybrid searches, sorted pages or anonymous ones.
    for b, user in (
        (body(mode="hybrid"), "u1"),
        (body(sort=[{"price": "asc"}]), "u1"),
        (body(), None),
    ):
        response = service.search(INDEX, b, user_id=user)
        assert "experiment" not in response.get("_shoprank", {})
    assert "reverse" not in ranker.seen
    # The inspector's quiet service is never enrolled either.
    quiet = service.without_log()
    assert "experiment" not in quiet.search(INDEX, body(), user_id="u1").get("_shoprank", {})


def test_mode_experiment_serves_each_arm_its_mode(backend: EmbeddedBackend, tmp_path: Path) -> None:
    exp = Experiment.new(
        "modes", control={"mode": "lexical"}, challenger={"mode": "hybrid"}, now=0.0
    )
    service, *_ = make(backend, tmp_path, exp)
    applied = {}
    for n in range(30):
        response = service.search(INDEX, body(mode="full"), user_id=f"m{n}")
        variant = response["_shoprank"]["experiment"]["variant"]
        applied.setdefault(variant, set()).add(response["_shoprank"]["mode_applied"])
    assert applied == {"A": {"lexical"}, "B": {"hybrid"}}


def test_a_stopped_experiment_stops_taking_searches(
    backend: EmbeddedBackend, tmp_path: Path
) -> None:
    service, _, _, store = make(backend, tmp_path, ranker_experiment("interleave"))
    assert "experiment" in service.search(INDEX, body(), user_id="u")["_shoprank"]
    store.stop("rev-interleave", now=2.0)
    assert service.arms is not None
    clock = service.arms.running.clock
    assert isinstance(clock, Clock)
    clock.now += 60.0  # the next check of the directory (the injected clock moves on)
    assert "experiment" not in service.search(INDEX, body(), user_id="u")["_shoprank"]


def test_unknown_pinned_ranker_version_degrades_not_fails(tmp_path: Path) -> None:
    from shoprank.rerankers.ltr.reranker import LearnedRanker
    from tests.unit.test_ranker_serving import FACTS, Source, window

    ranker = LearnedRanker(model_dir=tmp_path, source=Source(FACTS), timeout_ms=600_000)  # type: ignore[arg-type]
    context = RerankContext(
        index="demo", query_text="x", user_id="u", body={}, ranker_version="v-missing"
    )
    out = ranker.rerank(context, window())
    assert [c.id for c in out] == ["p1", "p2", "p3", "p4", "p5"]
    assert context.info["degraded"] == ["rerank: error: BadRequestError"]
    pinned = RerankContext(
        index="demo", query_text="x", user_id="u", body={}, ranker_version="default-v1"
    )
    ranker.rerank(pinned, window())
    assert pinned.info["model_version"] == "default-v1"


@pytest.mark.parametrize(
    ("config", "word"),
    [({"rankr": "v2"}, "rankr"), ({"mode": "fast"}, "mode"), ({"window": 0}, "window")],
)
def test_arm_settings_are_checked(config: dict[str, Any], word: str) -> None:
    from shoprank.experiments.model import ExperimentError

    with pytest.raises(ExperimentError, match=word):
        Experiment.new("bad", control={"ranker": "live"}, challenger=config, now=0.0)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_searches", "10"),
        ("traffic", "x"),
        ("mde", float("nan")),
        ("guards", {"min_searches": "5"}),
        ("guards", {"max_latency_ratio": float("nan")}),
    ],
)
def test_stored_fields_of_the_wrong_type_are_a_clear_400(field: str, value: Any) -> None:
    from shoprank.experiments.model import ExperimentError

    body = Experiment.new(
        "typed", control={"ranker": "live"}, challenger={"ranker": "v2"}, now=0.0
    ).to_dict()
    body[field] = value
    with pytest.raises(ExperimentError, match=field if field != "guards" else "guards"):
        Experiment.from_dict(body)


def test_a_damaged_experiment_file_does_not_hide_the_others(tmp_path: Path) -> None:
    store = ExperimentStore(tmp_path)
    store.create(ranker_experiment("ab"))
    store.start("rev-ab", now=1.0)
    (tmp_path / "broken.json").write_text("{not json")
    assert [e.id for e in store.running()] == ["rev-ab"]
    from shoprank.experiments.model import ExperimentConflictError

    with pytest.raises(ExperimentConflictError, match="stop it first"):
        store.delete("rev-ab", refuse_running=True)
    store.delete("broken", refuse_running=True)
    assert not (tmp_path / "broken.json").exists()
