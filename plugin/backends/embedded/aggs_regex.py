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
    out: list[str] = []
    i = 0
    in_class = False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            if i + 1 >= len(pattern):
                raise BadRequestError(f"[{what}] regex {pattern!r} ends with a lone backslash")
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if in_class:
            if char == "]":
                in_class = False
                out.append("]")
            elif char == "[":
                out.append("\\[")
            else:
                out.append(char if char in "^-" else re.escape(char))
            i += 1
            continue
        if char == "[":
            in_class = True
            out.append("[")
        elif char == '"':
            end = pattern.find('"', i + 1)
            if end < 0:
                raise BadRequestError(f"[{what}] regex {pattern!r} has an unclosed quote")
            out.append(re.escape(pattern[i + 1 : end]))
            i = end
        elif char == "@":
            out.append(".*")
        elif char == "#":
            out.append("(?!)")
        elif char in "~&<":
            raise UnsupportedQueryError(
                f"[{what}] regex operator [{char}] is not supported by shoprank's embedded "
                "backend",
                construct=f"regex {char}",
            )
        elif char in ".*+?|(){}":
            out.append(char)
        else:
            out.append(re.escape(char))
        i += 1
    if in_class:
        raise BadRequestError(f"[{what}] regex {pattern!r} has an unclosed [")
    try:
        return re.compile("".join(out), re.DOTALL)
    except re.error as exc:
        raise BadRequestError(f"[{what}] regex {pattern!r} is invalid: {exc}") from None


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
