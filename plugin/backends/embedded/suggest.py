"""ES `suggest` on the embedded backend: `completion` (autocomplete), `term` and `phrase`
(did-you-mean), answered in Elasticsearch's response shape.

Fields: a suggester's `field` names a mapped `text`/`keyword` field; a sub-field name the
mapping does not declare (`title.suggest`, `title.completion`) reads its parent, so a
frontend configured for a completion sub-field works against the plain product mapping.
Words come from the field's `_source` values (`vocabulary`), as written, not stemmed.
"""

from __future__ import annotations

from typing import Any

import tantivy

from shoprank.errors import BadRequestError, UnsupportedQueryError
from shoprank.plugin.shapes import filter_source

from .generation import Generation
from .suggest_phrase import phrase_suggest
from .suggest_term import TermOptions, corrections, term_options
from .tokens import edit_distance, fuzziness_of, plain, words
from .values import source_of
from .vocabulary import Vocabulary, completion_form, suggest_field, vocabulary

SUGGESTERS = ("completion", "term", "phrase")
COMPLETION_KEYS = {"field", "size", "skip_duplicates", "fuzzy", "contexts", "analyzer"}
FUZZY_KEYS = {"fuzziness", "transpositions", "min_length", "prefix_length", "unicode_aware"}


def _int(value: Any, what: str, minimum: int = 0) -> int:
    if isinstance(value, bool):
        raise BadRequestError(f"[{what}] must be an integer, got {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise BadRequestError(f"[{what}] must be an integer, got {value!r}") from None
    if number < minimum:
        raise BadRequestError(f"[{what}] must be >= {minimum}, got {number}")
    return number


def suggest_response(
    gen: Generation, searcher: tantivy.Searcher, body: dict[str, Any]
) -> dict[str, Any]:
    """The `suggest` section of the response for `body["suggest"]`."""
    spec = body["suggest"]
    if not isinstance(spec, dict):
        raise BadRequestError("[suggest] must be an object")
    global_text = spec.get("text")
    out: dict[str, Any] = {}
    for name, entry in spec.items():
        if name == "text":
            continue
        if not isinstance(entry, dict):
            raise BadRequestError(f"suggestion [{name}] must be an object")
        kinds = [k for k in entry if k in SUGGESTERS]
        others = sorted(set(entry) - set(SUGGESTERS) - {"text", "prefix", "regex"})
        if others:
            raise UnsupportedQueryError(
                f"suggestion [{name}] option(s) {others} are not supported; a suggestion "
                f"holds [text] (or [prefix]) and one of {list(SUGGESTERS)}",
                construct=f"suggest.{others[0]}",
            )
        if len(kinds) != 1:
            raise BadRequestError(
                f"suggestion [{name}] must name exactly one suggester of {list(SUGGESTERS)}"
            )
        if "regex" in entry:
            raise UnsupportedQueryError(
                f"suggestion [{name}]: [regex] completion is not supported; use [prefix]",
                construct="suggest.regex",
            )
        kind = kinds[0]
        options = entry[kind]
        if not isinstance(options, dict):
            raise BadRequestError(f"suggestion [{name}] [{kind}] must be an object")
        text = entry.get("prefix", entry.get("text", global_text))
        if text is None or isinstance(text, dict | list):
            raise BadRequestError(f"suggestion [{name}] requires [text] (or [prefix])")
        text = str(text)
        if kind == "completion":
            out[name] = [_completion(gen, searcher, text, options, body.get("_source"))]
        elif kind == "term":
            out[name] = _term(gen, searcher, text, options)
        else:
            path = suggest_field(gen.schema, options.get("field"), "phrase")
            vocab = vocabulary(gen, searcher, path)
            out[name] = [phrase_suggest(vocab, text, options, path, gen.schema)]
    return out


# -- term ----------------------------------------------------------------------------------


def _term(
    gen: Generation, searcher: tantivy.Searcher, text: str, options: dict[str, Any]
) -> list[dict[str, Any]]:
    opts: TermOptions = term_options(options, "term")
    path = suggest_field(gen.schema, options.get("field"), "term")
    vocab = vocabulary(gen, searcher, path)
    entries = []
    for start, end, word in words(text):
        token = plain(word)
        found = corrections(vocab, token, opts)
        entries.append(
            {
                "text": token,
                "offset": start,
                "length": end - start,
                "options": [
                    {"text": cand, "score": round(score, 8), "freq": freq}
                    for cand, score, freq in found
                ],
            }
        )
    return entries


# -- completion ----------------------------------------------------------------------------


def _fuzzy_spec(value: Any) -> dict[str, Any] | None:
    if value is None or value is False:
        return None
    if value is True:
        return {}
    if not isinstance(value, dict):
        raise BadRequestError("[completion] [fuzzy] must be an object or true")
    unknown = sorted(set(value) - FUZZY_KEYS)
    if unknown:
        raise UnsupportedQueryError(
            f"[completion] [fuzzy] option(s) {unknown} are not supported",
            construct=f"suggest.completion.fuzzy.{unknown[0]}",
        )
    if value.get("transpositions", True) is not True:
        raise UnsupportedQueryError(
            "[completion] [fuzzy] transpositions: false is not supported (a transposition "
            "always counts as one edit)",
            construct="suggest.completion.fuzzy.transpositions",
        )
    return value


def _completion(
    gen: Generation,
    searcher: tantivy.Searcher,
    prefix: str,
    options: dict[str, Any],
    source_spec: Any,
) -> dict[str, Any]:
    unknown = sorted(set(options) - COMPLETION_KEYS)
    if unknown:
        raise UnsupportedQueryError(
            f"[completion] option(s) {unknown} are not supported",
            construct=f"suggest.completion.{unknown[0]}",
        )
    if "contexts" in options:
        raise UnsupportedQueryError(
            "[completion] [contexts] are not supported: the embedded backend has no context "
            "mappings; filter the hits of a prefix query instead",
            construct="suggest.completion.contexts",
        )
    if "analyzer" in options:
        raise UnsupportedQueryError(
            "[completion] [analyzer] is not supported (inputs are lower-cased and "
            "accent-folded, separators kept)",
            construct="suggest.completion.analyzer",
        )
    path = suggest_field(gen.schema, options.get("field"), "completion")
    size = _int(options.get("size", 5), "completion.size", 1)
    skip = options.get("skip_duplicates", False)
    if not isinstance(skip, bool):
        raise BadRequestError("[completion] [skip_duplicates] must be true or false")
    fuzzy = _fuzzy_spec(options.get("fuzzy"))
    vocab = vocabulary(gen, searcher, path)
    form = completion_form(prefix)
    ranked = _complete(vocab, form, fuzzy)
    picked: list[tuple[str, str, float]] = []
    texts: set[str] = set()
    docs: set[str] = set()
    for value, doc_id, weight in ranked:
        # One option per document (its best input), as ES's completion suggester answers.
        if (skip and value in texts) or doc_id in docs:
            continue
        texts.add(value)
        docs.add(doc_id)
        picked.append((value, doc_id, weight))
        if len(picked) >= size:
            break
    sources = _sources(gen, searcher, [d for _, d, _ in picked])
    opts_out = []
    for value, doc_id, weight in picked:
        option: dict[str, Any] = {
            "text": value,
            "_index": gen.name,
            "_id": doc_id,
            "_score": weight,
        }
        src = filter_source(sources.get(doc_id, {}), source_spec)
        if src is not None:
            option["_source"] = src
        opts_out.append(option)
    return {"text": prefix, "offset": 0, "length": len(prefix), "options": opts_out}


def _complete(
    vocab: Vocabulary, form: str, fuzzy: dict[str, Any] | None
) -> list[tuple[str, str, float]]:
    """(value, _id, weight) of the inputs completing `form`: exact prefixes by weight, then
    fuzzy ones by edits and weight; ties alphabetical."""
    exact = sorted(vocab.with_prefix(form), key=lambda e: (-e[3], e[0], e[1], e[2]))
    out = [(value, doc_id, weight) for _, value, doc_id, weight in exact]
    if fuzzy is None:
        return out
    min_length = _int(fuzzy.get("min_length", 3), "fuzzy.min_length")
    keep = _int(fuzzy.get("prefix_length", 1), "fuzzy.prefix_length")
    if len(form) < min_length:
        return out
    edits = fuzziness_of(fuzzy.get("fuzziness", "AUTO"), len(form), what="completion.fuzzy")
    if edits == 0:
        return out
    memo: dict[str, int] = {}
    fuzzed: list[tuple[int, float, str, str, str]] = []
    for entry_form, value, doc_id, weight in vocab.with_prefix(form[:keep]):
        head = entry_form[: len(form) + edits]
        distance = memo.get(head)
        if distance is None:
            distance = edit_distance(form, head, edits, prefix=True)
            memo[head] = distance
        if 0 < distance <= edits:
            fuzzed.append((distance, -weight, entry_form, value, doc_id))
    fuzzed.sort()
    return out + [(v, d, -w) for _, w, _, v, d in fuzzed]


def _sources(
    gen: Generation, searcher: tantivy.Searcher, ids: list[str]
) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    query = tantivy.Query.term_set_query(gen.schema.tantivy_schema, "_id", ids)
    out = {}
    for _, addr in searcher.search(query, limit=len(ids) * 2).hits:
        doc = searcher.doc(addr)
        out[str(doc.get_first("_id"))] = source_of(doc)
    return out
