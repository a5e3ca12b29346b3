"""Access control: which routes need which API-key scope, and what client bodies may not carry.

Scopes are ordered, `read` < `write` < `admin`: a key allows its own scope and every lower
one. Keys come from `SHOPRANK_API_KEYS` (`{"key": "scope"}`) and are compared in constant
time. With no key configured, protected routes answer loopback clients only.

    route                                          scope
    GET  /, /_shoprank/health, /_shoprank/ready    none
    search, msearch, count, get doc (GET/POST)     none when SHOPRANK_PUBLIC_SEARCH, else read
    POST /_shoprank/recommend                      as search
    GET  /_shoprank/metrics, openapi, docs         read
    POST /_shoprank/events, /_shoprank/products    write
    GET  /_shoprank/users/{id}/profile             admin (personal data)
    DELETE /_shoprank/users/{id}                   admin
    /_shoprank/experiments[/...] (GET included)    admin (results are business data)
    anything else under /_shoprank/                read for GET/HEAD, admin otherwise
    any other path                                 search scope for GET/HEAD, admin otherwise
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Literal

from shoprank.errors import AuthenticationError, BadRequestError, ForbiddenError
from shoprank.settings import Settings

Scope = Literal["read", "write", "admin"]
RANK: dict[str, int] = {"read": 1, "write": 2, "admin": 3}
PUBLIC = "public"
SEARCH = "search"

# Path segments that run scripts or rewrite data on the cluster: never served or forwarded.
SCRIPT_PATHS = re.compile(
    r"/(_scripts|_update_by_query|_delete_by_query|_reindex|_render|_search/template"
    r"|_msearch/template|_ingest|_script_context|_script_language)(/|$)"
)
# Body keys that carry scripts (ES query DSL, aggregations, sort, fields).
SCRIPT_KEYS = frozenset(
    {
        "script",
        "_script",
        "script_score",
        "script_fields",
        "runtime_mappings",
        "scripted_metric",
        "bucket_script",
        "bucket_selector",
        "stored_script",
    }
)
# Queries whose keys are field names (a field may be called `script`).
FIELD_KEYED = frozenset(
    {
        "match",
        "match_phrase",
        "match_phrase_prefix",
        "match_bool_prefix",
        "term",
        "terms",
        "range",
        "prefix",
        "wildcard",
        "regexp",
        "fuzzy",
        "sort",
    }
)

_SEARCH_ROUTE = re.compile(
    r"^/(?:[^/_][^/]*/)?(_search|_msearch|_count)/?$|^/[^/_][^/]*/_doc/[^/]+$"
)


@dataclass(frozen=True)
class RouteClass:
    """What a request is, for access control, limits and metrics."""

    name: str  # low-cardinality label: search, msearch, count, doc, events, …
    scope: str  # PUBLIC, SEARCH or a Scope


def classify(method: str, path: str) -> RouteClass:
    """The route class of a request (see the module docstring for the table)."""
    method = method.upper()
    read_only = method in ("GET", "HEAD")
    if path in ("/", ""):
        return RouteClass("root", PUBLIC if read_only else "admin")
    if path.startswith("/_shoprank/"):
        rest = path[len("/_shoprank/") :].rstrip("/")
        if rest in ("health", "ready") and read_only:
            return RouteClass(rest, PUBLIC)
        if rest == "metrics" and read_only:
            return RouteClass("metrics", "read")
        if rest in ("openapi.json", "docs", "docs/oauth2-redirect") and read_only:
            return RouteClass("openapi", "read")
        if rest == "events" and method == "POST":
            return RouteClass("events", "write")
        if rest == "products" and method == "POST":
            return RouteClass("products", "write")
        if rest == "recommend" and method == "POST":
            return RouteClass("recommend", SEARCH)
        if rest == "experiments" or rest.startswith("experiments/"):
            return RouteClass("experiments", "admin")
        if rest.startswith("users/"):
            if method == "DELETE":
                return RouteClass("forget_user", "admin")
            return RouteClass("profile", "admin")
        return RouteClass("shoprank_other", "read" if read_only else "admin")
    if SCRIPT_PATHS.search(path):
        return RouteClass("scripts", "admin")
    match = _SEARCH_ROUTE.match(path)
    if match and method in ("GET", "POST", "HEAD"):
        kind = match.group(1) or "doc"
        return RouteClass(kind.lstrip("_"), SEARCH)
    return RouteClass("other", SEARCH if read_only else "admin")


@dataclass(frozen=True)
class Identity:
    """Who is calling: a configured key (by a short fingerprint, never the key) or nobody."""

    scope: Scope | None
    key_id: str | None  # sha256 prefix of the key, for rate limiting and logs
    presented: bool  # an Authorization header was sent


def _fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def authenticate(header: str | None, settings: Settings) -> Identity:
    """Match `Authorization: ApiKey <key>` against the configured keys in constant time.

    Accepts the key itself or, as the ES clients send it, base64 of `id:key` whose decoded
    text equals a configured key. Every configured key is compared, so timing does not tell
    which one (or how much of one) matched."""
    if not header:
        return Identity(None, None, False)
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "apikey" or not token:
        return Identity(None, None, True)
    candidates = [token]
    try:
        decoded = base64.b64decode(token, validate=True).decode()
        candidates.append(decoded)
    except (ValueError, UnicodeDecodeError):
        pass
    found: Scope | None = None
    found_key: str | None = None
    for key, scope in settings.api_keys.items():
        for candidate in candidates:
            if hmac.compare_digest(candidate.encode(), key.encode()):
                found, found_key = scope, key
    if found is None or found_key is None:
        return Identity(None, None, True)
    return Identity(found, _fingerprint(found_key), True)


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return host == "localhost"


def authorize(
    route: RouteClass, identity: Identity, settings: Settings, *, client_host: str | None = None
) -> None:
    """Raise 401 (no or unknown key) or 403 (scope too low) when `route` is not allowed.

    With no key configured, searches stay as configured and every protected route (events,
    products, profiles, metrics, administration) answers only clients on the loopback
    interface: a server exposed without keys never opens its write paths to the network."""
    needed = route.scope
    if not settings.api_keys:
        if needed in (PUBLIC, SEARCH) or is_loopback(client_host):
            return
        raise ForbiddenError(
            f"action [{route.name}] is only allowed from loopback while no API keys are "
            "configured; set SHOPRANK_API_KEYS and send `Authorization: ApiKey <key>`"
        )
    if needed == PUBLIC:
        return
    if needed == SEARCH:
        if settings.public_search:
            return
        needed = "read"
    if identity.scope is None:
        reason = (
            "unable to authenticate with the provided API key"
            if identity.presented
            else "missing authentication credentials for REST request"
        )
        raise AuthenticationError(
            f"{reason} [{route.name}]: send `Authorization: ApiKey <key>` with a key of "
            f"scope [{needed}] or higher"
        )
    if RANK[identity.scope] < RANK[needed]:
        raise ForbiddenError(
            f"action [{route.name}] is unauthorized for API key [{identity.key_id}] of scope "
            f"[{identity.scope}]: it needs scope [{needed}]"
        )


def refuse_scripts(body: Any, settings: Settings) -> None:
    """A 400 when a client body carries a script (unless `SHOPRANK_ALLOW_SCRIPTS`)."""
    if settings.allow_scripts:
        return
    found = _find_script(body, field_keyed=False)
    if found is not None:
        raise BadRequestError(
            f"[{found}] is not allowed: shoprank does not run or forward scripts from client "
            "requests (set SHOPRANK_ALLOW_SCRIPTS=true to allow them)",
            es_type="illegal_argument_exception",
        )


def _find_script(node: Any, *, field_keyed: bool) -> str | None:
    stack: list[tuple[Any, bool]] = [(node, field_keyed)]
    while stack:
        current, keyed = stack.pop()
        if isinstance(current, list):
            stack.extend((item, keyed) for item in current)
        elif isinstance(current, dict):
            for key, value in current.items():
                if key in SCRIPT_KEYS and (not keyed or key == "_script"):
                    return str(key)
                # Under a field-keyed query the keys are field names; below them, DSL again.
                stack.append((value, (not keyed) and key in FIELD_KEYED))
    return None
