"""Sticky, deterministic assignment of units (pseudonymised users or sessions) to arms.

A unit's position in [0, 1) is the keyed BLAKE2b hash of `experiment id + unit id` under
the experiment's salt, read as a 64-bit fraction: the same unit lands in the same arm on
every search and in every process (no state to share), positions are uniform, and
positions under two experiments are independent (different key, different message).

    assigner = Assigner(experiment)
    assigner.arm("3f2a…")          # "A", "B", or None when the unit is not enrolled

Units below `traffic` are enrolled; an enrolled unit sees the challenger ("B") when its
position within the enrolled band falls below `split`. Interleaving experiments enrol
units the same way; which ranker picks first on a page comes from `interleave.seed`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from shoprank.experiments.model import Arm, Experiment, ExperimentError, Method

_SCALE = float(1 << 64)


def position(experiment_id: str, salt: str, unit_id: str) -> float:
    """The unit's uniform position in [0, 1) for this experiment (the hash, as a fraction)."""
    digest = hashlib.blake2b(
        f"{experiment_id}\x1f{unit_id}".encode(), key=salt.encode()[:64], digest_size=8
    ).digest()
    return int.from_bytes(digest, "big") / _SCALE


def arm_at(pos: float, *, split: float, traffic: float = 1.0) -> Arm | None:
    """The arm of a unit at position `pos`, or None when it falls outside the enrolled band."""
    if pos >= traffic:
        return None
    return "B" if pos / traffic < split else "A"


@dataclass(frozen=True, slots=True)
class Assignment:
    """What one search runs under: logged with the search (search log and UBI fields)."""

    experiment_id: str
    method: Method
    arm: Arm | None  # A/B: the unit's arm; interleave: None (both arms on one page)

    def to_log(self) -> dict[str, str]:
        """The fields the search log records (`experiment`, `variant`)."""
        return {
            "experiment": self.experiment_id,
            "variant": self.arm if self.arm is not None else "interleave",
        }


class Assigner:
    """Assignment for one running experiment, with its keyed hash prepared once.

    `assign(unit_id)` costs one BLAKE2b of a short message (~1 µs); build one Assigner
    per running experiment when the experiment set changes, not per search.
    """

    __slots__ = ("_hasher", "_prefix", "experiment", "experiment_id", "method", "split", "traffic")

    def __init__(self, experiment: Experiment) -> None:
        if experiment.status != "running":
            raise ExperimentError(
                f"experiment [{experiment.id}] is {experiment.status}; only running "
                "experiments assign traffic (start it first)"
            )
        self.experiment = experiment
        self.experiment_id = experiment.id
        self.method: Method = experiment.method
        self.split = experiment.split
        self.traffic = experiment.traffic
        self._hasher = hashlib.blake2b(key=experiment.salt.encode()[:64], digest_size=8)
        self._prefix = f"{experiment.id}\x1f"

    def position(self, unit_id: str) -> float:
        h = self._hasher.copy()
        h.update((self._prefix + unit_id).encode())
        return int.from_bytes(h.digest(), "big") / _SCALE

    def arm(self, unit_id: str) -> Arm | None:
        return arm_at(self.position(unit_id), split=self.split, traffic=self.traffic)

    def assign(self, unit_id: str | None) -> Assignment | None:
        """The assignment of one search by its unit, None when not enrolled.

        A/B needs a unit (a user or session pseudonym): without one the search stays on the
        control and out of the experiment, since stickiness could not be promised.
        """
        if not unit_id:
            return None
        pos = self.position(unit_id)
        if pos >= self.traffic:
            return None
        if self.method == "interleave":
            return Assignment(self.experiment_id, "interleave", None)
        arm: Arm = "B" if pos / self.traffic < self.split else "A"
        return Assignment(self.experiment_id, "ab", arm)
