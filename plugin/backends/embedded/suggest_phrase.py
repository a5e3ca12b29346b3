"""The `phrase` suggester: the best corrected phrases of a text, scored by a small language
model of the field's values.

Each word keeps itself or takes one of its `direct_generator` candidates (the `term`
suggester's, mode `always`); a phrase's score is a noisy-channel product: the channel
(`real_word_error_likelihood` for a word kept, the candidate's distance score times the
rest for a correction) times a stupid-backoff bigram model over word counts. At most
`max_errors` words change; options must beat the text itself by `confidence`.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from shoprank.errors import BadRequestError, UnsupportedQueryError

from .schema import IndexSchema
from .suggest_term import TermOptions, corrections, term_options
from .tokens import plain, words
from .vocabulary import Vocabulary, suggest_field

PHRASE_KEYS = {
    "field",
    "size",
    "max_errors",
    "confidence",
    "real_word_error_likelihood",
    "separator",
    "gram_size",
    "highlight",
    "direct_generator",
    "collate",
    "smoothing",
    "analyzer",
    "shard_size",
    "token_limit",
    "force_unigrams",
}
GENERATOR_KEYS = {"field"} | {
    "size",
    "suggest_mode",
    "max_edits",
    "prefix_length",
    "min_word_length",
    "accuracy",
    "min_doc_freq",
    "max_term_freq",
    "max_inspections",
    "string_distance",
    "pre_filter",
    "post_filter",
}
MAX_COMBINATIONS = 5_000
BACKOFF = 0.4


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool):
        raise BadRequestError(f"[phrase] [{what}] must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise BadRequestError(f"[phrase] [{what}] must be a number, got {value!r}") from None


def _refuse(key: str, why: str) -> None:
    raise UnsupportedQueryError(
        f"[phrase] option [{key}] is not supported by shoprank's embedded backend: {why}",
        construct=f"suggest.phrase.{key}",
    )


def _generators(spec: dict[str, Any], path: str, schema: IndexSchema) -> list[TermOptions]:
    raw = spec.get("direct_generator")
    if raw is None:
        return [term_options({}, "phrase.direct_generator", mode="always")]
    if not isinstance(raw, list) or not raw:
        raise BadRequestError("[phrase] [direct_generator] must be a non-empty list")
    out = []
    for gen in raw:
        if not isinstance(gen, dict):
            raise BadRequestError("[phrase] [direct_generator] entries must be objects")
        unknown = sorted(set(gen) - GENERATOR_KEYS)
        if unknown:
            raise UnsupportedQueryError(
                f"[phrase] [direct_generator] option(s) {unknown} are not supported",
                construct=f"suggest.phrase.direct_generator.{unknown[0]}",
            )
        if suggest_field(schema, gen.get("field", path), "direct_generator") != path:
            _refuse("direct_generator.field", "a generator must read the phrase's own field")
        rest = {k: v for k, v in gen.items() if k != "field"}
        out.append(term_options(rest, "phrase.direct_generator", mode="missing"))
    return out


class _Model:
    """Stupid backoff over the field's word and adjacent-word counts."""

    def __init__(self, vocab: Vocabulary, discount: float) -> None:
        self.vocab = vocab
        self.discount = discount
        self.total = max(vocab.tokens, 1)
        self.size = max(len(vocab.tf), 1)

    def unigram(self, w: str) -> float:
        return (self.vocab.tf.get(w, 0) + 1) / (self.total + self.size)

    def logp(self, words_: list[str]) -> float:
        score = 0.0
        for i, w in enumerate(words_):
            if i == 0:
                score += math.log(self.unigram(w))
                continue
            pair = self.vocab.bigrams.get((words_[i - 1], w), 0)
            before = self.vocab.tf.get(words_[i - 1], 0)
            if pair and before:
                score += math.log(pair / before)
            else:
                score += math.log(self.discount * self.unigram(w))
        return score


def phrase_suggest(
    vocab: Vocabulary, text: str, spec: dict[str, Any], path: str, schema: IndexSchema
) -> dict[str, Any]:
    """One `phrase` suggestion entry (`text`, `offset`, `length`, `options`)."""
    unknown = sorted(set(spec) - PHRASE_KEYS)
    if unknown:
        raise UnsupportedQueryError(
            f"[phrase] option(s) {unknown} are not supported",
            construct=f"suggest.phrase.{unknown[0]}",
        )
    if "collate" in spec:
        _refuse("collate", "candidate phrases are not re-checked with a query")
    if "analyzer" in spec:
        _refuse("analyzer", "the text is split like the field's values")
    discount = BACKOFF
    smoothing = spec.get("smoothing")
    if smoothing is not None:
        if not isinstance(smoothing, dict) or set(smoothing) != {"stupid_backoff"}:
            _refuse("smoothing", "only stupid_backoff is implemented")
        inner = smoothing["stupid_backoff"] or {}
        discount = _number(inner.get("discount", BACKOFF), "smoothing.discount")
    size = int(_number(spec.get("size", 5), "size"))
    rwel = _number(spec.get("real_word_error_likelihood", 0.95), "real_word_error_likelihood")
    confidence = _number(spec.get("confidence", 1.0), "confidence")
    separator = str(spec.get("separator", " "))
    highlight = spec.get("highlight")
    if highlight is not None and (
        not isinstance(highlight, dict) or set(highlight) - {"pre_tag", "post_tag"}
    ):
        raise BadRequestError("[phrase] [highlight] takes [pre_tag] and [post_tag]")
    generators = _generators(spec, path, schema)
    tokens = [plain(w) for _, _, w in words(text)]
    max_errors = _number(spec.get("max_errors", 1.0), "max_errors")
    limit = int(max_errors) if max_errors >= 1 else max(1, int(max_errors * len(tokens)))
    entry: dict[str, Any] = {"text": text, "offset": 0, "length": len(text), "options": []}
    if not tokens:
        return entry

    # Per word: (candidate, channel probability) — the word itself first.
    choices: list[list[tuple[str, float]]] = []
    for word in tokens:
        known = vocab.df.get(word, 0) > 0
        own = rwel if known else 1.0 - rwel
        options: dict[str, float] = {}
        for opts in generators:
            for cand, score, _ in corrections(vocab, word, opts):
                options[cand] = max(options.get(cand, 0.0), (1.0 - rwel) * score)
        choices.append([(word, own)] + sorted(options.items(), key=lambda c: -c[1]))

    model = _Model(vocab, discount)
    base = sum(math.log(own) for (_, own), *_ in choices) + model.logp(tokens)
    scored: dict[tuple[str, ...], float] = {}
    tried = 0
    for errors in range(1, limit + 1):
        for positions in itertools.combinations(range(len(tokens)), errors):
            pools = [choices[p][1:] for p in positions]
            for picks in itertools.product(*pools):
                tried += 1
                if tried > MAX_COMBINATIONS:
                    break
                phrase = list(tokens)
                channel = base - model.logp(tokens)
                for p, (cand, prob) in zip(positions, picks, strict=True):
                    phrase[p] = cand
                    channel += math.log(prob) - math.log(choices[p][0][1])
                scored[tuple(phrase)] = channel + model.logp(phrase)
    threshold = base + math.log(confidence) if confidence > 0 else -math.inf
    best = sorted(
        ((s, p) for p, s in scored.items() if s > threshold), key=lambda x: (-x[0], x[1])
    )[:size]
    for score, picked in best:
        option: dict[str, Any] = {"text": separator.join(picked), "score": math.exp(score)}
        if highlight is not None:
            pre, post = str(highlight.get("pre_tag", "")), str(highlight.get("post_tag", ""))
            option["highlighted"] = separator.join(
                f"{pre}{w}{post}" if w != tokens[i] else w for i, w in enumerate(picked)
            )
        entry["options"].append(option)
    return entry
