"""The proxy allowlist: which requests shoprank may forward unchanged to a cluster.

Entries are `METHOD[,METHOD] /path` with `*` for one path segment. Only read-only requests
may be listed: GET/HEAD, and POST to the read APIs below. Kept free of web-framework imports
so that settings validation stays light.
"""

from __future__ import annotations

from dataclasses import dataclass

READ_METHODS = {"GET", "HEAD"}
# POST is read-only only on these APIs (the last path segment).
READ_POST_APIS = {
    "_search",
    "_msearch",
    "_count",
    "_field_caps",
    "_mget",
    "_explain",
    "_termvectors",
    "_mtermvectors",
    "_analyze",
}


@dataclass(frozen=True)
class Rule:
    methods: frozenset[str]
    segments: tuple[str, ...]

    def matches(self, method: str, path: str) -> bool:
        parts = tuple(p for p in path.split("/") if p)
        if method not in self.methods or len(parts) != len(self.segments):
            return False
        return all(s == "*" or s == p for s, p in zip(self.segments, parts, strict=True))


def parse_rule(entry: str) -> Rule:
    """`GET,POST /*/_field_caps` → a rule; raises ValueError for a write or a malformed one."""
    methods_part, _, path = entry.strip().partition(" ")
    path = path.strip()
    methods = frozenset(m.strip().upper() for m in methods_part.split(",") if m.strip())
    if not methods or not path.startswith("/"):
        raise ValueError(f"proxy allowlist entry {entry!r} must look like 'GET /_cluster/health'")
    segments = tuple(p for p in path.split("/") if p)
    for method in methods:
        if method in READ_METHODS:
            continue
        if method == "POST" and segments and segments[-1] in READ_POST_APIS:
            continue
        raise ValueError(
            f"proxy allowlist entry {entry!r} is not read-only: only GET/HEAD, and POST to "
            f"{', '.join(sorted(READ_POST_APIS))}, may be forwarded"
        )
    return Rule(methods, segments)


def check_allowlist(entries: list[str]) -> list[str]:
    for entry in entries:
        parse_rule(entry)
    return entries


class Allowlist:
    def __init__(self, entries: list[str]) -> None:
        self.rules = [parse_rule(e) for e in entries]

    def allows(self, method: str, path: str) -> bool:
        method = method.upper()
        return any(rule.matches(method, path) for rule in self.rules)
