"""Contract tier: every body shoprank sends to Elasticsearch / OpenSearch, captured through the
official clients' transport layer (no network) and validated against the engines' published
API specifications in ../shared/specs. Skips with a message where that folder is missing."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shoprank.indexing.encoders.protocol import TextEncoder
from shoprank.plugin.backends.elasticsearch import ElasticsearchBackend
from shoprank.plugin.backends.opensearch import OpenSearchBackend
from shoprank.plugin.search import SearchService
from shoprank.settings import Settings
from shoprank.testing.recording import (
    Recorded,
    ScriptedCluster,
    recording_elasticsearch,
    recording_opensearch,
)
from tests.unit.test_cluster_backends import ManualClock

from .specs import ES_SPEC, OS_SPEC, SpecValidator

# As in the unit and integration tiers: the numpy MiniLM unless a test picks the encoder.
os.environ.setdefault("SHOPRANK_ENCODER_BACKEND", "numpy")

ENGINES = ("elasticsearch", "opensearch")


def _require(path: Path) -> None:
    if not path.exists():
        pytest.skip(
            f"the API specifications are missing ({path}); contract tests need ../shared/specs"
        )


@pytest.fixture(scope="session")
def es_spec() -> SpecValidator:
    _require(ES_SPEC)
    return SpecValidator.elasticsearch()


@pytest.fixture(scope="session")
def os_spec() -> SpecValidator:
    _require(OS_SPEC)
    return SpecValidator.opensearch()


@dataclass
class Engine:
    """One engine under contract: its backend on the recording transport, its spec, and the
    backend's clock, which only moves when a test advances it (the requests a test expects
    never depend on how long the previous ones took)."""

    name: str
    backend: ElasticsearchBackend | OpenSearchBackend
    cluster: ScriptedCluster
    spec: SpecValidator
    clock: ManualClock

    def conforming(self) -> list[Recorded]:
        """Every request recorded since the last call, each checked against the spec."""
        requests = list(self.cluster.requests)
        self.cluster.reset()
        problems = []
        for req in requests:
            try:
                errors = self.spec.errors(req.method, req.path, req.params, req.body)
            except LookupError as exc:
                errors = [str(exc)]
            problems += [f"{req.method} {req.path}: {e}" for e in errors]
        assert not problems, "\n".join(problems)
        return requests


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    clock = ManualClock()
    if request.param == "elasticsearch":
        spec = request.getfixturevalue("es_spec")
        client = recording_elasticsearch()
        backend: Any = ElasticsearchBackend(client, clock=clock)
    else:
        spec = request.getfixturevalue("os_spec")
        client = recording_opensearch()
        backend = OpenSearchBackend(client, clock=clock)
    yield Engine(request.param, backend, client.scripted, spec, clock)


class Memo:
    """The real encoder, remembering each text's vector across the session (it is slow)."""

    def __init__(self, encoder: TextEncoder) -> None:
        self.encoder = encoder
        self.dims = encoder.dims
        self.max_length = encoder.max_length
        self.seen: dict[str, Any] = {}

    @property
    def model_id(self) -> str:
        return self.encoder.model_id

    def warm_up(self) -> None:
        self.encoder.warm_up()

    def encode(self, texts: Sequence[str]) -> Any:
        missing = [t for t in texts if t not in self.seen]
        if missing:
            self.seen.update(zip(missing, self.encoder.encode(missing), strict=True))
        return np.vstack([self.seen[t] for t in texts])


@pytest.fixture(scope="session")
def minilm(tmp_path_factory: pytest.TempPathFactory) -> TextEncoder:
    """The real (numpy) MiniLM query encoder, so kNN legs carry real 384-dim vectors."""
    from shoprank.wiring import text_encoder

    settings = Settings(data_dir=tmp_path_factory.mktemp("enc"), encoder_backend="numpy")
    return Memo(text_encoder(settings))  # type: ignore[return-value]


def service_for(engine: Engine, encoder: TextEncoder, tmp_path: Path) -> SearchService:
    settings = Settings(data_dir=tmp_path, backend=engine.name)  # type: ignore[arg-type]
    return SearchService(backend=engine.backend, settings=settings, encoder=lambda: encoder)
