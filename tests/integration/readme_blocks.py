"""The README's command blocks as `test_readme_blocks.py` runs them.

Every ```bash and ```python block carries a directive on the line before it:

    <!-- readme-test: run -->            run it; it must exit 0 (and match its `# {...}` sample)
    <!-- readme-test: server 9200 -->    it keeps running and listens on 9200: started in the
                                         background, waited for, stopped at the end (or when a
                                         later block serves the same port, as Ctrl-C would)
    <!-- readme-test: background -->     it keeps running without a port (a Celery worker)
    <!-- readme-test: skip — REASON -->  not run; REASON is one of `SKIP_REASONS`

This module only reads and checks text (no processes), so its rules are unit-tested on small
made-up READMEs beside the real one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

DIRECTIVE = re.compile(r"^\s*<!--\s*readme-test:\s*(.*?)\s*-->\s*$")
# Only what cannot run on a plain machine with the checkout: a cluster, Docker, Kibana, or
# the test suite itself (`make test` inside a test).
SKIP_REASONS = (
    "needs an Elasticsearch or OpenSearch cluster",
    "needs docker compose",
    "needs Kibana or OpenSearch Dashboards",
    "runs the test suite itself",
)
LANGUAGES = {"bash": "bash", "sh": "bash", "shell": "bash", "python": "python"}
# `shoprank` is not on PATH after `make`: blocks say `.venv/bin/shoprank`.
BARE_SHOPRANK = re.compile(r"(?:^|[;&|(]\s*|\$\(\s*)(?:\w+=\S*\s+)*shoprank(?:\s|$)")

Kind = Literal["run", "server", "background", "skip"]


@dataclass(frozen=True)
class Block:
    """One command block of the README."""

    line: int  # 1-based line of the opening fence
    language: str  # "bash" or "python"
    kind: Kind
    text: str
    section: str
    port: int | None = None
    reason: str | None = None

    @property
    def where(self) -> str:
        return f"README.md:{self.line} ({self.section})"


def _directive(raw: str, language: str) -> tuple[Kind, int | None, str | None] | str:
    """(kind, port, reason) of a directive's text, or the problem with it."""
    if raw == "run":
        return ("run", None, None)
    if raw == "background" and language == "bash":
        return ("background", None, None)
    server = re.fullmatch(r"server\s+(\d{2,5})", raw)
    if server and language == "bash":
        return ("server", int(server.group(1)), None)
    skip = re.fullmatch(r"skip\s*(?:—|--|-|:)\s*(.+)", raw)
    if skip:
        reason = skip.group(1).strip()
        if reason not in SKIP_REASONS:
            return (
                f"skip reason {reason!r} is not one of {list(SKIP_REASONS)}: run the block "
                "(the test can start servers, Redis and workers) or name one of those"
            )
        return ("skip", None, reason)
    return (
        f"unknown directive {raw!r} for a {language} block; use `run`, "
        + ("`server PORT`, `background` or " if language == "bash" else "or ")
        + "`skip — REASON`"
    )


def parse(markdown: str) -> tuple[list[Block], list[str]]:
    """The command blocks of `markdown` and the problems found: a block without a
    directive, an unknown directive or skip reason, a directive with no block after it,
    a bare `shoprank` command."""
    lines = markdown.splitlines()
    blocks: list[Block] = []
    problems: list[str] = []
    section = ""
    pending: tuple[int, str] | None = None  # a directive waiting for its block
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#") and not line.startswith("#!"):
            section = line.lstrip("#").strip()
        found = DIRECTIVE.match(line)
        if found:
            if pending is not None:
                problems.append(f"README.md:{pending[0] + 1}: a directive with no block after it")
            pending = (i, found.group(1))
            i += 1
            continue
        if not line.startswith("```"):
            if line.strip() and pending is not None:
                problems.append(f"README.md:{pending[0] + 1}: a directive with no block after it")
                pending = None
            i += 1
            continue
        language = LANGUAGES.get(line[3:].strip().lower())
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), len(lines))
        text = "\n".join(lines[i + 1 : end])
        if language is None:
            if pending is not None:
                problems.append(
                    f"README.md:{pending[0] + 1}: a directive before a non-command block"
                )
        elif pending is None:
            problems.append(
                f"README.md:{i + 1} ({section}): a ```{line[3:].strip()} block without a "
                "`<!-- readme-test: ... -->` directive on the line before it "
                "(run, server PORT, background or skip — REASON)"
            )
        else:
            parsed = _directive(pending[1], language)
            if isinstance(parsed, str):
                problems.append(f"README.md:{pending[0] + 1}: {parsed}")
            else:
                kind, port, reason = parsed
                blocks.append(Block(i + 1, language, kind, text, section, port, reason))
        if language == "bash":
            problems += [
                f"README.md:{i + 2 + n}: `{command.strip()}` — `shoprank` is not on PATH "
                "after `make`; write `.venv/bin/shoprank`"
                for n, command in enumerate(text.splitlines())
                if BARE_SHOPRANK.search(code(command).strip())
            ]
        pending = None
        i = end + 1
    if pending is not None:
        problems.append(f"README.md:{pending[0] + 1}: a directive with no block after it")
    return blocks, problems


def code(line: str) -> str:
    """A shell line without its trailing comment (a `#` after a space, outside quotes)."""
    quote = ""
    for n, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (n == 0 or line[n - 1].isspace()):
            return line[:n]
    return line


def sample(text: str) -> str | None:
    """The `# {...}` (or `# [...]`) output sample of a block: comment lines from the first
    that opens a bracket until the brackets balance."""
    lines = text.splitlines()
    for n, line in enumerate(lines):
        if not re.match(r"^\s*#\s*[{\[]", line):
            continue
        parts: list[str] = []
        for follow in lines[n:]:
            if not follow.lstrip().startswith("#"):
                break
            parts.append(follow.lstrip()[1:])
            joined = "\n".join(parts)
            if _balanced(joined):
                return joined.strip()
        return "\n".join(parts).strip()
    return None


def _balanced(text: str) -> bool:
    depth, quoted, escaped = 0, False, False
    for char in text:
        if quoted:
            escaped = char == "\\" and not escaped
            if char == '"' and not escaped:
                quoted = False
            continue
        if char == '"':
            quoted = True
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
    return depth <= 0


class _Opaque:
    """A sample value the check does not compare (`...`, a number, a nested value)."""

    def __repr__(self) -> str:
        return "..."


OPAQUE: Any = _Opaque()


def top_level(sample_text: str) -> dict[str, Any]:
    """The top-level keys of a JSON-ish sample (one with `...` in it) and, for each, its
    value when it is a literal worth comparing (a string that is not a `<placeholder>`, a
    boolean, null), else `OPAQUE`."""
    keys: dict[str, Any] = {}
    depth, n, text = 0, 0, sample_text
    while n < len(text):
        char = text[n]
        if char == '"':
            close = n + 1
            while close < len(text) and (text[close] != '"' or text[close - 1] == "\\"):
                close += 1
            if depth == 1:
                rest = text[close + 1 :].lstrip()
                if rest.startswith(":"):
                    keys[json.loads(text[n : close + 1])] = _literal(rest[1:].lstrip())
            n = close + 1
            continue
        if char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
        n += 1
    return keys


def _literal(value: str) -> Any:
    for word, parsed in (("true", True), ("false", False), ("null", None)):
        if re.match(rf"{word}\b", value):
            return parsed
    string = re.match(r'"((?:[^"\\]|\\.)*)"\s*[,}]', value)
    if string and not re.fullmatch(r"<[^>]*>", string.group(1)):
        return json.loads(f'"{string.group(1)}"')
    return OPAQUE


def output_json(stdout: str) -> Any:
    """The JSON document a block printed last (the whole output, else its last line)."""
    text = stdout.strip()
    for candidate in (text, text.splitlines()[-1] if text else ""):
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    raise ValueError("no JSON document in the output")


def contradictions(sample_text: str, stdout: str) -> list[str]:
    """How the block's output contradicts its sample: not JSON, a top-level key missing,
    a literal string or boolean that differs."""
    try:
        got = output_json(stdout)
    except ValueError:
        return [f"the output is not the JSON its sample shows: {stdout[-500:]!r}"]
    if not isinstance(got, dict):
        return [f"the output is not a JSON object: {stdout[-500:]!r}"]
    problems = []
    for key, want in top_level(sample_text).items():
        if key not in got:
            problems.append(f"key {key!r} of the sample is missing (got {sorted(got)})")
        elif want is not OPAQUE and got[key] != want:
            problems.append(f"{key!r} is {got[key]!r}, the sample says {want!r}")
    return problems


def with_ports(text: str, ports: dict[int, int]) -> str:
    """The block with each README port (`localhost:9200`, `--port 9200`) on the free port
    the test serves it on."""
    for readme_port, port in ports.items():
        text = re.sub(rf"(?<=[:= ]){readme_port}(?!\d)", str(port), text)
    return text


def with_redis(text: str, url: str) -> str:
    """The block with the Redis URL it exports pointing at the test's redis-server."""
    return re.sub(r"(?<=SHOPRANK_REDIS_URL=)\S+", url, text)
