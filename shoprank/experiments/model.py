"""What an online experiment is: two arms (configurations), how traffic is split between
them, the statistical design (minimum detectable effect, alpha, power) and the guards that
roll a challenger back whatever its clicks say.

Arm A is the **control** (what is live), arm B the **challenger**. An arm is a small
configuration dict the search pipeline applies on top of its settings, e.g.
`{"ranker": "v7"}` or `{"mode": "hybrid", "fusion": "rrf"}`.

    exp = Experiment.new("ranker-v7", control={"ranker": "v6"}, challenger={"ranker": "v7"},
                         method="interleave", now=clock())
    exp.to_dict()  # JSON-able, what the store writes and the API returns
"""

from __future__ import annotations

import math
import re
import secrets
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, cast, get_args

from shoprank.errors import BadRequestError, ShoprankError
from shoprank.types import FUSIONS, MODES

Method = Literal["ab", "interleave"]
Metric = Literal["click", "add_to_cart", "purchase"]
Status = Literal["draft", "running", "promoted", "rolled_back", "stopped"]
Arm = Literal["A", "B"]

METHODS: tuple[str, ...] = get_args(Method)
METRICS: tuple[str, ...] = get_args(Metric)
STATUSES: tuple[str, ...] = get_args(Status)
FINISHED: frozenset[str] = frozenset({"promoted", "rolled_back", "stopped"})
_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_CONFIG_VALUE = str | int | float | bool
# What an arm may set, and what each key takes. `ranker` is a registry version (or
# "live": whatever is live when the search runs); `mode` / `fusion` / `window` are the
# `ext.shoprank` options of the same names.
CONFIG_KEYS: dict[str, str] = {
    "ranker": 'a ranker version from `shoprank models list`, or "live"',
    "mode": "one of lexical, vector, hybrid, full",
    "fusion": "one of rrf, linear",
    "window": "an integer number of fused candidates, 1-1000",
}
MAX_WINDOW = 1000
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class ExperimentError(BadRequestError):
    """An experiment definition or a state change that cannot be accepted (400)."""

    es_type = "experiment_exception"


class ExperimentNotFoundError(ShoprankError):
    status = 404
    es_type = "resource_not_found_exception"

    def __init__(self, experiment_id: str) -> None:
        super().__init__(
            f"no experiment [{experiment_id}]; `shoprank experiments list` shows the ids",
            **{"resource.id": experiment_id, "resource.type": "experiment"},
        )


class ExperimentConflictError(ShoprankError):
    """Two writers or two running experiments that would fight over the same setting (409)."""

    status = 409
    es_type = "version_conflict_engine_exception"


@dataclass(frozen=True, slots=True)
class Guards:
    """Limits that roll a challenger back even while its clicks look fine.

    `max_zero_result_increase`: absolute rise in the share of searches with no hits
    (0.01 = one point). `max_latency_ratio`: challenger p95 latency over control p95.
    Neither is judged before `min_searches` searches per arm.
    """

    max_zero_result_increase: float = 0.01
    max_latency_ratio: float = 1.25
    min_searches: int = 200

    def validate(self) -> None:
        _numbers(
            "guards.",
            max_zero_result_increase=self.max_zero_result_increase,
            max_latency_ratio=self.max_latency_ratio,
            min_searches=self.min_searches,
        )
        if not 0.0 <= self.max_zero_result_increase < 1.0:
            raise ExperimentError(
                f"guards.max_zero_result_increase must be in [0, 1), got "
                f"{self.max_zero_result_increase!r}; 0.01 allows one point more zero-result "
                "searches"
            )
        if self.max_latency_ratio < 1.0:
            raise ExperimentError(
                f"guards.max_latency_ratio must be >= 1, got {self.max_latency_ratio!r}; "
                "1.25 allows a challenger 25 % slower at p95"
            )
        if self.min_searches < 1:
            raise ExperimentError(f"guards.min_searches must be >= 1, got {self.min_searches!r}")


@dataclass(frozen=True, slots=True)
class Experiment:
    """One experiment's definition and lifecycle state (immutable; change with `replace`).

    `split` is the share of enrolled units that see the challenger (A/B only);
    `traffic` the share of units enrolled at all. `mde` is the smallest absolute
    difference worth detecting: in the metric's rate for A/B, in the share of decided
    queries the challenger wins for interleaving (0.05 = 55 % vs 45 %).
    `max_searches` caps the experiment (0 = twice the fixed-horizon size from mde/alpha/power).
    """

    id: str
    control: dict[str, _CONFIG_VALUE]
    challenger: dict[str, _CONFIG_VALUE]
    method: Method = "ab"
    metric: Metric = "click"
    split: float = 0.5
    traffic: float = 1.0
    mde: float = 0.02
    alpha: float = 0.05
    power: float = 0.8
    max_searches: int = 0
    guards: Guards = field(default_factory=Guards)
    status: Status = "draft"
    salt: str = ""
    created_at: float = 0.0
    started_at: float | None = None
    ended_at: float | None = None
    revision: int = 0
    decisions: tuple[dict[str, Any], ...] = ()

    @classmethod
    def new(
        cls,
        experiment_id: str,
        *,
        control: dict[str, _CONFIG_VALUE],
        challenger: dict[str, _CONFIG_VALUE],
        now: float,
        **options: Any,
    ) -> Experiment:
        """A validated draft with a fresh random salt (so its assignment is its own)."""
        guards = options.pop("guards", None)
        if isinstance(guards, dict):
            guards = _guards_from_dict(guards)
        exp = cls(
            id=experiment_id,
            control=dict(control),
            challenger=dict(challenger),
            guards=guards if isinstance(guards, Guards) else Guards(),
            salt=options.pop("salt", None) or secrets.token_hex(16),
            created_at=now,
            **options,
        )
        exp.validate()
        return exp

    def validate(self) -> None:
        """Raise `ExperimentError` naming the first field that is wrong and how to fix it."""
        check_id(self.id)
        for name, config in (("control", self.control), ("challenger", self.challenger)):
            if not isinstance(config, dict) or not config:
                raise ExperimentError(
                    f"{name} must be a non-empty configuration dict such as "
                    f'{{"ranker": "v7"}}, got {config!r}'
                )
            for key, value in config.items():
                check_config(name, key, value)
        if self.control == self.challenger:
            raise ExperimentError(
                f"control and challenger are the same configuration {self.control!r}; an "
                "experiment compares two different ones"
            )
        _one_of("method", self.method, METHODS)
        _one_of("metric", self.metric, METRICS)
        _one_of("status", self.status, STATUSES)
        _numbers(
            "",
            split=self.split,
            traffic=self.traffic,
            mde=self.mde,
            alpha=self.alpha,
            power=self.power,
            max_searches=self.max_searches,
        )
        if not isinstance(self.max_searches, int):
            raise ExperimentError(f"max_searches must be an integer, got {self.max_searches!r}")
        _open_unit("split", self.split)
        if not 0.0 < self.traffic <= 1.0:
            raise ExperimentError(f"traffic must be in (0, 1], got {self.traffic!r}")
        _open_unit("mde", self.mde)
        _open_unit("alpha", self.alpha)
        _open_unit("power", self.power)
        if self.alpha >= 0.5 or self.power <= 0.5:
            raise ExperimentError(
                f"alpha {self.alpha!r} and power {self.power!r} give a useless test; "
                "use alpha <= 0.1 and power >= 0.8 as usual"
            )
        if self.max_searches < 0:
            raise ExperimentError(f"max_searches must be >= 0, got {self.max_searches!r}")
        if not self.salt:
            raise ExperimentError("salt is empty; create experiments with Experiment.new")
        self.guards.validate()

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def config(self, arm: Arm) -> dict[str, _CONFIG_VALUE]:
        return self.control if arm == "A" else self.challenger

    def with_decision(self, decision: dict[str, Any], *, status: Status, now: float) -> Experiment:
        """This experiment with `decision` appended to its record and its status moved on."""
        ended = now if status in FINISHED else self.ended_at
        return replace(self, status=status, ended_at=ended, decisions=(*self.decisions, decision))

    def to_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body["decisions"] = list(self.decisions)
        return body

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> Experiment:
        """Parse a stored or posted body; unknown fields are an error, not ignored."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(body) - known)
        if unknown:
            raise ExperimentError(
                f"unknown experiment field(s) {unknown}; known fields: {sorted(known)}"
            )
        data = dict(body)
        if isinstance(data.get("guards"), dict):
            data["guards"] = _guards_from_dict(data["guards"])
        data["decisions"] = tuple(data.get("decisions") or ())
        try:
            exp = cls(**data)
        except TypeError as exc:
            raise ExperimentError(f"experiment body is incomplete: {exc}") from None
        exp.validate()
        return exp


def _numbers(prefix: str, **values: object) -> None:
    """Refuse a value that is not a finite number (a stored file edited by hand, a bool)."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ExperimentError(f"{prefix}{name} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ExperimentError(f"{prefix}{name} must be finite, got {value!r}")


def check_config(name: str, key: object, value: object) -> None:
    """Refuse an arm setting shoprank cannot apply to a search, naming what it takes."""
    if not isinstance(key, str) or key not in CONFIG_KEYS:
        known = ", ".join(f"{k} ({v})" for k, v in CONFIG_KEYS.items())
        raise ExperimentError(f"{name}[{key!r}] is not an arm setting; known settings: {known}")
    ok = False
    if key == "ranker":
        ok = isinstance(value, str) and _VERSION.match(value) is not None
    elif key == "mode":
        ok = value in MODES
    elif key == "fusion":
        ok = value in FUSIONS
    elif key == "window":
        ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_WINDOW
    if not ok:
        raise ExperimentError(f"{name}[{key!r}] = {value!r}: {key} takes {CONFIG_KEYS[key]}")


def check_id(experiment_id: str) -> None:
    """Refuse an id that is not a safe file name and URL segment."""
    if not isinstance(experiment_id, str) or not _ID.match(experiment_id):
        raise ExperimentError(
            f"experiment id [{experiment_id}] must be 1-64 lowercase letters, digits, '.', "
            "'_' or '-', starting with a letter or digit"
        )


def _guards_from_dict(body: dict[str, Any]) -> Guards:
    known = set(Guards.__dataclass_fields__)
    unknown = sorted(set(body) - known)
    if unknown:
        raise ExperimentError(f"unknown guard(s) {unknown}; known guards: {sorted(known)}")
    return Guards(**body)


def _one_of(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ExperimentError(f"{name} must be one of {list(allowed)}, got {value!r}")


def _open_unit(name: str, value: float) -> None:
    if not isinstance(value, int | float) or not 0.0 < float(value) < 1.0:
        raise ExperimentError(f"{name} must be strictly between 0 and 1, got {value!r}")


def arm_of(value: str) -> Arm:
    """Parse a logged arm name."""
    if value not in ("A", "B"):
        raise ExperimentError(f"arm must be 'A' (control) or 'B' (challenger), got {value!r}")
    return cast(Arm, value)
