"""`terms` `include`/`exclude`: Lucene regular expressions (anchored: the whole term must
match) or lists of exact values, as ES reads them.

Lucene's syntax is translated to Python's: `. * + ? | ( ) [ ] {n,m}` mean the same, `\\x`
is the literal x, `"..."` a quoted literal, `@` any string, `#` the empty language; `^`
and `$` are ordinary characters. Complement `~`, intersection `&` and numeric ranges
`<n-m>` are 400s.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from shoprank.errors import BadRequestError, UnsupportedQueryError

Matcher = Callable[[Any], bool]


def lucene_regex(pattern: str, *, what: str) -> re.Pattern[str]:
    """Lucene's regex as a compiled Python pattern (use with `fullmatch`).

    Quantifiers stack in Lucene: `X+?` is `(X+)?` (Searchkit's facet search sends
    `([a-zA-Z]+ )+?[sS][aA][mM].*`), where Python would read a lazy `+`; each atom is
    tracked so that a second quantifier wraps the first."""
    # One list of atoms per open group; an atom is (text, quantified), `|` is (text, None).
    groups: list[list[tuple[str, bool | None]]] = [[]]
    i = 0
    while i < len(pattern):
        char = pattern[i]
        atoms = groups[-1]
        if char == "\\":
            if i + 1 >= len(pattern):
                raise BadRequestError(f"[{what}] regex {pattern!r} ends with a lone backslash")
            atoms.append((re.escape(pattern[i + 1]), False))
            i += 2
            continue
        if char == "[":
            text, i = _char_class(pattern, i, what=what)
            atoms.append((text, False))
            continue
        if char == '"':
            end = pattern.find('"', i + 1)
            if end < 0:
                raise BadRequestError(f"[{what}] regex {pattern!r} has an unclosed quote")
            atoms.append(("(?:" + re.escape(pattern[i + 1 : end]) + ")", False))
            i = end
        elif char == "(":
            groups.append([])
        elif char == ")":
            if len(groups) == 1:
                raise BadRequestError(f"[{what}] regex {pattern!r} has an unmatched )")
            inner = groups.pop()
            groups[-1].append(("(?:" + "".join(t for t, _ in inner) + ")", False))
        elif char == "|":
            atoms.append(("|", None))
        elif char in "*+?{":
            quantifier = char
            if char == "{":
                end = pattern.find("}", i)
                if end < 0:
                    raise BadRequestError(f"[{what}] regex {pattern!r} has an unclosed {{")
                quantifier = pattern[i : end + 1]
                i = end
            if not atoms or atoms[-1][1] is None:
                raise BadRequestError(
                    f"[{what}] regex {pattern!r}: [{quantifier}] follows nothing to repeat"
                )
            text, quantified = atoms[-1]
            atoms[-1] = ((f"(?:{text})" if quantified else text) + quantifier, True)
        elif char == "@":
            atoms.append(("(?:.*)", False))
        elif char == "#":
            atoms.append(("(?!)", False))
        elif char in "~&<":
            raise UnsupportedQueryError(
                f"[{what}] regex operator [{char}] is not supported by shoprank's embedded backend",
                construct=f"regex {char}",
            )
        elif char == ".":
            atoms.append((".", False))
        else:
            atoms.append((re.escape(char), False))
        i += 1
    if len(groups) != 1:
        raise BadRequestError(f"[{what}] regex {pattern!r} has an unclosed (")
    try:
        return re.compile("".join(t for t, _ in groups[0]), re.DOTALL)
    except re.error as exc:
        raise BadRequestError(f"[{what}] regex {pattern!r} is invalid: {exc}") from None


def _char_class(pattern: str, start: int, *, what: str) -> tuple[str, int]:
    """`[...]` from `start` as a Python class, and the index after it."""
    out = ["["]
    i = start + 1
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if char == "]":
            out.append("]")
            return "".join(out), i + 1
        if char == "[":
            out.append("\\[")
        else:
            out.append(char if char in "^-" else re.escape(char))
        i += 1
    raise BadRequestError(f"[{what}] regex {pattern!r} has an unclosed [")


def term_matcher(spec: Any, *, what: str) -> Matcher:
    """Whether a term key passes an `include` (or matches an `exclude`)."""
    if isinstance(spec, str):
        regex = lucene_regex(spec, what=what)
        return lambda key: regex.fullmatch(_text(key)) is not None
    if isinstance(spec, list):
        wanted = {_text(v) for v in spec}
        return lambda key: _text(key) in wanted
    if isinstance(spec, dict):
        raise UnsupportedQueryError(
            f"[{what}] partitions are not supported by shoprank's embedded backend; "
            "use a regex or a list of values",
            construct=f"{what}.partition",
        )
    raise BadRequestError(f"[{what}] must be a regex string or a list of values, got {spec!r}")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
