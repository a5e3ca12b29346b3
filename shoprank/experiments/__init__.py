"""Online experiments between two search configurations: sticky A/B assignment, team-draft
interleaving, statistics that survive peeking, and the promote / rollback decision.

    model       Experiment (arms, method, design, guards, status) and its errors
    store       ExperimentStore (JSON files in data_dir/experiments) and RunningAssigners
    assign      Assigner: unit pseudonym -> arm, deterministic and sticky
    interleave  team_draft, credit
    tally       SearchRecord / EventRecord -> Tallies per arm
    stats       Wilson intervals, differences, exact binomial and sign tests, sample sizes
    sequential  mSPRT tests valid under continuous peeking
    decide      decide(experiment, tallies) -> promote | rollback | continue
    simulate    offline click-model simulation that validates all of the above (numpy)

Nothing here reads settings or touches the disk at import.
"""

from __future__ import annotations

from shoprank.experiments.assign import Assigner, Assignment
from shoprank.experiments.decide import Decision, decide, evidence
from shoprank.experiments.interleave import Credit, Interleaving, credit, seed, team_draft
from shoprank.experiments.model import (
    Experiment,
    ExperimentConflictError,
    ExperimentError,
    ExperimentNotFoundError,
    Guards,
)
from shoprank.experiments.store import ExperimentStore, RunningAssigners
from shoprank.experiments.tally import ArmRun, EventRecord, SearchRecord, Tallies, tally

__all__ = [
    "ArmRun",
    "Assigner",
    "Assignment",
    "Credit",
    "Decision",
    "EventRecord",
    "Experiment",
    "ExperimentConflictError",
    "ExperimentError",
    "ExperimentNotFoundError",
    "ExperimentStore",
    "Guards",
    "Interleaving",
    "RunningAssigners",
    "SearchRecord",
    "Tallies",
    "credit",
    "decide",
    "evidence",
    "seed",
    "tally",
    "team_draft",
]
