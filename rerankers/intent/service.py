"""Query understanding inside the search pipeline: predict, then plan the rewrite.

The search pipeline calls `plan()` before retrieval in `full` mode and gets a
`RewritePlan` (the intent, the rewritten body, the actions and the relaxation steps); it
runs the plan itself, relaxing step by step while the result has fewer than
`SHOPRANK_INTENT_MIN_RESULTS` hits.
The model is loaded lazily once per process and reloaded when `shoprank train intent`
writes a new one; with no model, attribute and price extraction still run against the
index's own values (read with aggregations, cached per generation).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from shoprank.errors import BadRequestError, IndexNotFoundError, ShoprankError
from shoprank.metrics import degrade
from shoprank.settings import Settings

from .model import IntentArtefacts, Vocabulary, load_artefacts
from .predictor import IntentPredictor, Understanding
from .rewriter import RewriteConfig, RewritePlan, plan_rewrite, rewrite
from .spelling import Spelling, SpellingConfig, brand_words, correct, correct_body

if TYPE_CHECKING:
    from shoprank.plugin.backends.protocol import SearchBackend

log = logging.getLogger("shoprank.intent")
Embed = Callable[[str], list[float]]
T = TypeVar("T")
CATEGORY_FIELD = "category"
MAX_VALUES = 5000
# How long, and for how many words, a generation's settled spelling words are kept.
SETTLED_TTL_S = 60.0
MAX_SETTLED = 100_000


def intent_dir(settings: Settings) -> Path:
    return settings.data_dir / "models" / "intent"


def rewrite_config(settings: Settings) -> RewriteConfig:
    return RewriteConfig(
        category_filter_threshold=settings.intent_category_filter_threshold,
        attribute_filter_threshold=settings.intent_attribute_filter_threshold,
        boost=settings.intent_boost,
        sku_fields=tuple(settings.intent_sku_fields),
    )


def spelling_config(settings: Settings, backend: str) -> SpellingConfig | None:
    """What spelling correction checks words against; None: off.

    On the embedded backend the default text fields (their words as written). A cluster's
    `term` suggester reads a field's analysed terms — stems, with the usual English
    analyser — so on Elasticsearch / OpenSearch it runs only on the fields
    `SHOPRANK_SPELLING_FIELDS` names (an unstemmed sub-field)."""
    if not settings.spelling:
        return None
    if settings.spelling_fields:
        return SpellingConfig(fields=tuple(settings.spelling_fields))
    if backend != "embedded":
        return None
    fields = [f.split("^", 1)[0].strip() for f in settings.default_text_fields.split(",")]
    return SpellingConfig(fields=tuple(f for f in fields if f))


def hit_count(response: dict[str, Any]) -> int:
    hits = response.get("hits", {})
    total = hits.get("total")
    if isinstance(total, dict):
        return int(total.get("value", 0))
    if isinstance(total, int):
        return total
    return len(hits.get("hits", []))


def catalog_vocabulary(backend: SearchBackend, index: str, fields: list[str]) -> Vocabulary:
    """Attribute values and price bands of the live index, from terms/stats aggregations."""
    attributes: dict[str, list[str]] = {}
    for name in fields:
        body = {"size": 0, "aggs": {"v": {"terms": {"field": name, "size": MAX_VALUES}}}}
        try:
            buckets = backend.search(index, body)["aggregations"]["v"]["buckets"]
        except (ShoprankError, KeyError):
            continue
        values = [str(b["key"]) for b in buckets if isinstance(b.get("key"), str)]
        if values:
            attributes[name] = values
    bands: dict[str, dict[str, float]] = {}
    body = {
        "size": 0,
        "aggs": {
            "all": {"stats": {"field": "price"}},
            "cat": {
                "terms": {"field": CATEGORY_FIELD, "size": MAX_VALUES},
                "aggs": {"p": {"stats": {"field": "price"}}},
            },
        },
    }
    try:
        aggs = backend.search(index, body)["aggregations"]
        # Without the price distribution, "cheap" is below 75 % of the mean, "premium" above
        # 125 % (a trained model stores real percentiles instead).
        for name, stats in [("*", aggs["all"])] + [
            (str(b["key"]), b["p"]) for b in aggs["cat"]["buckets"]
        ]:
            if stats.get("count", 0) >= 3 and stats.get("avg") is not None:
                avg = float(stats["avg"])
                bands[name] = {"low": round(avg * 0.75, 2), "high": round(avg * 1.25, 2)}
    except (ShoprankError, KeyError, TypeError):
        pass
    return Vocabulary(attributes=attributes, price_bands=bands, source="index")


class DeadlineRunner(Protocol):
    """Runs an optional stage until a deadline (`shoprank.plugin.stages.StageRunner`)."""

    def call(
        self, stage: str, fn: Callable[[], T], *, deadline: float | None, notes: list[str]
    ) -> T | None: ...


class QueryUnderstanding:
    """Per-process owner of the intent model; cheap to build, thread-safe to share."""

    def __init__(self, *, backend: SearchBackend, settings: Settings) -> None:
        self.backend = backend
        self.settings = settings
        self.config = rewrite_config(settings)
        self.spelling = spelling_config(settings, backend.name)
        # Brand words per intent vocabulary (kept with it: an object's id is reused once
        # it is freed); the spelling fields each generation maps, once one was missing.
        self._brands: dict[int, tuple[Vocabulary, frozenset[str]]] = {}
        self._spell_fields: dict[str, tuple[str, ...]] = {}
        self._lock = threading.Lock()
        self._model: tuple[float, IntentArtefacts | None, IntentPredictor | None] | None = None
        self._by_generation: dict[str, IntentPredictor] = {}
        self._load_error: str | None = None
        # Generations whose spelling vocabulary the backend has read (True) or is reading
        # in the background (False). Only after `warm_up` (a serving process): before it,
        # a search reads what it needs itself, as a one-off process wants.
        self._spell_warm: dict[str, bool] = {}
        self._spell_threads: list[threading.Thread] = []
        self._settled_words: dict[str, tuple[float, set[str]]] = {}
        self._background = False

    # -- models ------------------------------------------------------------------------------

    def _trained(self) -> tuple[IntentArtefacts | None, IntentPredictor | None]:
        meta = intent_dir(self.settings) / "metadata.json"
        try:
            stamp = meta.stat().st_mtime
        except OSError:
            stamp = -1.0
        cached = self._model
        if cached is not None and cached[0] == stamp:
            return cached[1], cached[2]
        with self._lock:
            self._load_error = None
            try:
                artefacts = load_artefacts(intent_dir(self.settings)) if stamp >= 0 else None
            except ShoprankError as exc:
                # A broken model degrades to the catalog path (remembered until it changes).
                artefacts, self._load_error = None, exc.reason
            predictor = None
            if artefacts is not None:
                predictor = IntentPredictor(
                    artefacts.vocab,
                    artefacts.head,
                    types=artefacts.types,
                    model_version=str(artefacts.metadata.get("model_version")),
                )
            self._model = (stamp, artefacts, predictor)
        return artefacts, predictor

    def warm_up(self) -> None:
        """Load the trained model now (a broken one is remembered and reported per search),
        and have the backend read the spelling vocabulary of every index it serves.

        From then on a generation first seen later (an alias swap) has its vocabulary read
        in the background while its searches run without spelling (noted): reading the
        vocabulary of a large catalog takes seconds (Home Depot's 54,667 titles: ~3 s),
        which the searches used to wait for, each one until the intent stage's deadline."""
        self._trained()
        if self.spelling is not None:
            for alias in self._aliases():
                try:
                    generation = self.backend.resolve(alias)
                except ShoprankError:  # no such index (yet): its first search reads it
                    continue
                self._warm_spelling(alias, generation)
        self._background = True

    def _aliases(self) -> list[str]:
        """The shop's product index, and every alias a backend that keeps generations has."""
        from shoprank.plugin.backends.protocol import GenerationStore

        names = {self.settings.product_index}
        if isinstance(self.backend, GenerationStore):
            with contextlib.suppress(ShoprankError):  # the product index alone, then
                names |= {str(g["alias"]) for g in self.backend.generations() if g.get("alias")}
        return sorted(names)

    def _warm_spelling(self, index: str, generation: str) -> None:
        """Read what spelling `index` (now `generation`) needs: one suggest request."""
        try:
            self._correct(index, "warm", frozenset())
        except Exception:  # noqa: BLE001 - a search reports the failure with its own query
            log.warning("spelling vocabulary of [%s] unavailable", index, exc_info=True)
        finally:
            with self._lock:
                if len(self._spell_warm) > 64:
                    self._spell_warm.clear()
                self._spell_warm[generation] = True

    def wait_for_spelling(self) -> None:
        """Block until the vocabularies being read in the background are read."""
        with self._lock:
            threads = list(self._spell_threads)
        for thread in threads:
            thread.join()

    def _spelling_ready(self, index: str, notes: list[str]) -> bool:
        """Whether spelling may run now; after warm-up, a generation not read yet starts
        being read in the background and its searches meanwhile go unchecked."""
        if not self._background:
            return True
        generation = self.backend.resolve(index)
        if self._spell_warm.get(generation):
            return True
        with self._lock:
            start = generation not in self._spell_warm
            if start:
                self._spell_warm[generation] = False
        if start:
            thread = threading.Thread(
                target=self._warm_spelling,
                args=(index, generation),
                name="shoprank-spelling-warm",
                daemon=True,
            )
            with self._lock:
                self._spell_threads = [t for t in self._spell_threads if t.is_alive()]
                self._spell_threads.append(thread)
            thread.start()
        degrade(notes, "spelling", "vocabulary loading")
        return False

    def predictor(self, index: str, notes: list[str]) -> IntentPredictor:
        """The trained model when it was trained for this index, else the index's values."""
        artefacts, predictor = self._trained()
        if artefacts is not None and predictor is not None:
            trained_for = artefacts.metadata.get("index")
            if trained_for in (None, index) or self._same_alias(trained_for, index):
                return predictor
            notes.append(f"intent: model was trained for index [{trained_for}], not [{index}]")
        elif self._load_error is not None:
            degrade(notes, "intent", "model unreadable")
            notes.append(f"intent: {self._load_error}")
        else:
            degrade(notes, "intent", "model missing")
        generation = self.backend.resolve(index)
        found = self._by_generation.get(generation)
        if found is None:
            vocab = catalog_vocabulary(self.backend, generation, self.settings.intent_attributes)
            found = IntentPredictor(vocab)
            with self._lock:
                if len(self._by_generation) > 32:
                    self._by_generation.clear()
                self._by_generation[generation] = found
        return found

    def _same_alias(self, trained_for: Any, index: str) -> bool:
        try:
            return bool(self.backend.resolve(str(trained_for)) == self.backend.resolve(index))
        except ShoprankError:
            return False

    def metadata(self) -> dict[str, Any] | None:
        artefacts, _ = self._trained()
        return dict(artefacts.metadata) if artefacts is not None else None

    # -- per query ---------------------------------------------------------------------------

    def spell(self, index: str, text: str, body: dict[str, Any], notes: list[str]) -> Spelling:
        """`text` with its misspelled words corrected against the index's vocabulary (as
        typed when spelling is off, when the backend cannot suggest, or when the body has
        no full-text query the corrections could go into: noted)."""
        if self.spelling is None:
            return Spelling(text, text)
        predictor = self.predictor(index, [])
        vocab = predictor.vocab
        cached = self._brands.get(id(vocab))
        if cached is None or cached[0] is not vocab:  # an id is reused once freed
            cached = (vocab, brand_words(vocab.attributes.get("brand", [])))
            with self._lock:
                if len(self._brands) > 32:
                    self._brands.clear()
                self._brands[id(vocab)] = cached
        try:
            if not self._spelling_ready(index, notes):
                return Spelling(text, text)
            spelled = self._correct(index, text, cached[1])
        except IndexNotFoundError:
            raise
        except ShoprankError as exc:
            notes.append(f"spelling: not checked ({exc.reason})")
            return Spelling(text, text)
        except Exception as exc:  # noqa: BLE001 - spelling is optional, intent goes on
            notes.append(f"spelling: not checked ({type(exc).__name__})")
            return Spelling(text, text)
        if spelled.changed and correct_body(body, spelled) == body:
            # The words are in a query the corrections do not rewrite (query_string, …):
            # the search runs as typed, so nothing is announced or embedded corrected.
            notes.append("spelling: the query's syntax is searched as typed")
            return Spelling(text, text)
        return spelled

    def _correct(self, index: str, text: str, brands: frozenset[str]) -> Spelling:
        """`correct` on the spelling fields this index maps: a field it lacks makes the
        suggest request a 400, after which each field is tried alone once per generation
        and only those that answer are used from then on."""
        assert self.spelling is not None
        generation = self.backend.resolve(index)
        fields = self._spell_fields.get(generation)
        config = self.spelling if fields is None else replace(self.spelling, fields=fields)
        if not config.fields:
            return Spelling(text, text)
        try:
            return correct(
                self.backend, index, text, config, brands=brands, settled=self._settled(generation)
            )
        except BadRequestError:
            if fields is not None:
                raise
        usable = tuple(f for f in config.fields if self._suggests(index, f))
        with self._lock:
            if len(self._spell_fields) > 32:
                self._spell_fields.clear()
            self._spell_fields[generation] = usable
        if not usable:
            return Spelling(text, text)
        return correct(
            self.backend,
            index,
            text,
            replace(config, fields=usable),
            brands=brands,
            settled=self._settled(generation),
        )

    def _settled(self, generation: str) -> set[str]:
        """The words of `generation` found to need no correction (`spelling.correct`),
        forgotten after `SETTLED_TTL_S`, so words that incremental updates bring to the
        index (or take away) count within that time, and at most `MAX_SETTLED` kept."""
        now = time.monotonic()
        with self._lock:
            found = self._settled_words.get(generation)
            if found is None or now - found[0] > SETTLED_TTL_S or len(found[1]) > MAX_SETTLED:
                if len(self._settled_words) > 8:
                    self._settled_words.clear()
                found = (now, set())
                self._settled_words[generation] = found
        return found[1]

    def _suggests(self, index: str, name: str) -> bool:
        probe = {"size": 0, "suggest": {"text": "probe", "p": {"term": {"field": name}}}}
        try:
            self.backend.search(index, probe)
        except BadRequestError:
            return False
        return True

    def understand(
        self, index: str, text: str, *, embed: Embed | None, notes: list[str]
    ) -> Understanding:
        predictor = self.predictor(index, notes)
        embedding: list[float] | None = None
        if predictor.wants_embedding and embed is not None:
            try:
                embedding = embed(text)
            except ShoprankError as exc:
                notes.append(f"intent: no query embedding ({exc.reason}); words only")
        return predictor.predict(text, embedding=embedding)

    def plan(
        self,
        index: str,
        text: str,
        body: dict[str, Any],
        *,
        embed: Embed | None,
        notes: list[str],
        degraded: list[str],
        timings: dict[str, float],
        runner: DeadlineRunner | None = None,
        deadline: float | None = None,
    ) -> RewritePlan | None:
        """Predict the intent of `text` and plan the rewrite of `body` (left unchanged).

        None when nothing is to be rewritten: the prediction failed or came late (recorded
        in `degraded`). With a `runner` (`shoprank.plugin.stages.StageRunner`) the
        prediction is bound by `deadline`: a late prediction means no rewrite."""
        t0 = time.perf_counter()
        embed_ms = 0.0

        def timed(words: str) -> list[float]:
            # The embedding is shared with the vector leg: it counts as embed_ms, not intent.
            nonlocal embed_ms
            start = time.perf_counter()
            try:
                assert embed is not None
                return embed(words)
            finally:
                embed_ms += (time.perf_counter() - start) * 1000

        found: list[str] = []
        spelled = Spelling(text, text)

        def predict() -> Understanding | Exception:
            nonlocal spelled
            try:
                spelled = self.spell(index, text, body, found)
                return self.understand(
                    index,
                    spelled.corrected,
                    embed=timed if embed is not None else None,
                    notes=found,
                )
            except ShoprankError as exc:
                return exc  # raised or reported on the search's thread below
            except Exception as exc:  # noqa: BLE001 - query understanding is optional
                return RuntimeError(f"prediction failed ({type(exc).__name__})")

        if runner is not None:
            understanding = runner.call("intent", predict, deadline=deadline, notes=degraded)
            if understanding is None:  # late: degraded and counted by the runner
                return None
        else:
            understanding = predict()
        notes.extend(found)
        if isinstance(understanding, IndexNotFoundError):
            raise understanding  # the search itself answers 404
        if isinstance(understanding, ShoprankError):
            degrade(degraded, "intent", understanding.reason)
            return None
        if isinstance(understanding, Exception):
            degrade(degraded, "intent", str(understanding))
            return None
        try:
            planned = plan_rewrite(correct_body(body, spelled), understanding, self.config)
        except Exception as exc:  # noqa: BLE001 - a rewrite bug must not fail the search
            degrade(degraded, "intent", f"rewrite failed ({type(exc).__name__})")
            return None
        if spelled.changed:
            # The correction comes first: every later action worked on the corrected words.
            planned = replace(planned, actions=(spelled.action(), *planned.actions))
        timings["embed_ms"] = timings.get("embed_ms", 0.0) + embed_ms
        timings["intent_ms"] = (time.perf_counter() - t0) * 1000 - embed_ms
        return planned

    def explain(self, index: str, text: str, *, embed: Embed | None) -> dict[str, Any]:
        """The prediction as JSON, with the rewrite it implies for a plain text search."""
        notes: list[str] = []
        understanding = self.understand(index, text, embed=embed, notes=notes)
        fields = [f.strip() for f in self.settings.default_text_fields.split(",") if f.strip()]
        body = {"query": {"multi_match": {"query": text, "fields": fields}}}
        rewritten, actions = rewrite(copy.deepcopy(body), understanding, self.config)
        return {
            "index": index,
            "intent": understanding.intent.to_dict(),
            "rewrite": actions,
            "rewritten_query": rewritten["query"],
            "model": self.metadata(),
            "notes": notes,
        }
