"""Experiments on disk: one JSON file per experiment in `data_dir/experiments/`.

Every write goes to a temporary file that is fsynced and renamed over the old one, so a
reader (another worker process) sees the old version or the new, never half of one.
Read-modify-write changes (`start`, `record`, `stop`) hold an exclusive `flock` on
`experiments/.lock` and bump `revision`, so two processes deciding at once cannot lose a
decision.

    store = ExperimentStore(settings.data_dir / "experiments")
    store.create(Experiment.new("ranker-v7", control=…, challenger=…, now=t))
    store.start("ranker-v7", now=t)
    store.record("ranker-v7", decision)   # promote/rollback end it; continue is not stored
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from shoprank.experiments.assign import Assigner
from shoprank.experiments.decide import Decision
from shoprank.experiments.model import (
    Experiment,
    ExperimentConflictError,
    ExperimentError,
    ExperimentNotFoundError,
    Status,
    check_id,
)

log = logging.getLogger("shoprank.experiments")
_STATUS_AFTER: dict[str, Status] = {"promote": "promoted", "rollback": "rolled_back"}


class ExperimentStore:
    """The experiments of one data directory (safe across processes on one host)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def _path(self, experiment_id: str) -> Path:
        check_id(experiment_id)
        return self.directory / f"{experiment_id}.json"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / ".lock", "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def _write(self, exp: Experiment) -> None:
        path = self._path(exp.id)
        tmp = path.with_name(f".{exp.id}-{os.getpid()}-{secrets.token_hex(4)}.tmp")
        data = json.dumps(exp.to_dict(), indent=1, sort_keys=True).encode()
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def get(self, experiment_id: str) -> Experiment:
        try:
            raw = self._path(experiment_id).read_bytes()
        except FileNotFoundError:
            raise ExperimentNotFoundError(experiment_id) from None
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise ExperimentError(
                f"experiment [{experiment_id}] is stored unreadably ({exc}); delete it with "
                "`shoprank experiments delete` and create it again"
            ) from None
        return Experiment.from_dict(body)

    def all(self) -> list[Experiment]:
        """Every stored experiment, oldest first. A file that cannot be read is left out
        with a warning (`get` of its id says what is wrong with it): one damaged file must
        not hide the others, nor stop the running ones from serving."""
        if not self.directory.is_dir():
            return []
        found = []
        for path in self.directory.glob("*.json"):
            try:
                found.append(self.get(path.stem))
            except (ExperimentError, ExperimentNotFoundError) as exc:
                log.warning("experiment file %s left out: %s", path.name, exc)
        return sorted(found, key=lambda e: (e.created_at, e.id))

    def damaged(self) -> dict[str, str]:
        """The stored experiments that cannot be read, by id, with what is wrong (`all`
        leaves them out)."""
        out: dict[str, str] = {}
        if self.directory.is_dir():
            for path in sorted(self.directory.glob("*.json")):
                try:
                    self.get(path.stem)
                except (ExperimentError, ExperimentNotFoundError) as exc:
                    out[path.stem] = exc.reason
        return out

    def running(self) -> list[Experiment]:
        return [e for e in self.all() if e.status == "running"]

    def create(self, experiment: Experiment) -> Experiment:
        experiment.validate()
        if experiment.status != "draft":
            raise ExperimentError(
                f"new experiments start as drafts, got status {experiment.status!r}; "
                "create it, then start it"
            )
        with self._locked():
            if self._path(experiment.id).exists():
                raise ExperimentConflictError(
                    f"experiment [{experiment.id}] already exists; choose another id or "
                    "delete the old one"
                )
            self._write(experiment)
        return experiment

    def _update(self, experiment_id: str, change: Callable[[Experiment], Experiment]) -> Experiment:
        with self._locked():
            current = self.get(experiment_id)
            new = change(current)
            new = replace(new, revision=current.revision + 1)
            new.validate()
            self._write(new)
            return new

    def start(self, experiment_id: str, *, now: float) -> Experiment:
        """Move a draft to running; refused while a running experiment sets the same keys."""

        def change(exp: Experiment) -> Experiment:
            if exp.status != "draft":
                raise ExperimentError(
                    f"experiment [{exp.id}] is {exp.status}; only drafts can be started"
                )
            keys = set(exp.control) | set(exp.challenger)
            for other in self.running():
                clash = keys & (set(other.control) | set(other.challenger))
                if clash:
                    raise ExperimentConflictError(
                        f"experiment [{other.id}] is running on {sorted(clash)} already; "
                        "stop it first (two experiments on one setting would bias both)"
                    )
            return replace(exp, status="running", started_at=now)

        return self._update(experiment_id, change)

    def record(self, experiment_id: str, decision: Decision) -> Experiment:
        """Store a promote/rollback decision with its evidence and end the experiment.

        A `continue` decision is not stored (it is the state of every look in between)."""
        if decision.action == "continue":
            return self.get(experiment_id)

        def change(exp: Experiment) -> Experiment:
            if exp.status != "running":
                raise ExperimentConflictError(
                    f"experiment [{exp.id}] is {exp.status} already; decision "
                    f"{decision.action!r} was not recorded"
                )
            status = _STATUS_AFTER[decision.action]
            return exp.with_decision(decision.to_dict(), status=status, now=decision.at)

        return self._update(experiment_id, change)

    def stop(
        self, experiment_id: str, *, now: float, why: str = "stopped by an operator"
    ) -> Experiment:
        """End a draft or running experiment without a verdict (the control stays)."""

        def change(exp: Experiment) -> Experiment:
            if exp.finished:
                raise ExperimentError(f"experiment [{exp.id}] is {exp.status} already")
            note = {"action": "stop", "reason": "stopped", "message": why, "at": now}
            return exp.with_decision(note, status="stopped", now=now)

        return self._update(experiment_id, change)

    def delete(self, experiment_id: str, *, refuse_running: bool = False) -> None:
        """Forget an experiment; `refuse_running`: a running one is a conflict (checked
        under the lock, so a concurrent start cannot slip in between)."""
        with self._locked():
            path = self._path(experiment_id)
            if not path.exists():
                raise ExperimentNotFoundError(experiment_id)
            if refuse_running:
                try:
                    running = self.get(experiment_id).status == "running"
                except ExperimentError:
                    running = False  # unreadable: deleting it is the fix its error suggests
                if running:
                    raise ExperimentConflictError(
                        f"experiment [{experiment_id}] is running; stop it first "
                        f"(POST /_shoprank/experiments/{experiment_id}/_stop)"
                    )
            path.unlink()


class RunningAssigners:
    """The assigners of the running experiments, as a search worker needs them.

    Reloaded when the store directory changes (checked at most every `check_every_s`
    seconds of the injected clock, so a search pays a `stat` now and then, not a read), and
    every `reload_every_s` regardless, in case two changes fell within one mtime tick.
    """

    def __init__(
        self,
        store: ExperimentStore,
        *,
        clock: Callable[[], float],
        check_every_s: float = 1.0,
        reload_every_s: float = 30.0,
    ) -> None:
        self.store = store
        self.clock = clock
        self.check_every_s = check_every_s
        self.reload_every_s = reload_every_s
        self._checked = -float("inf")
        self._loaded = -float("inf")
        self._stamp: tuple[int, int] | None = None
        self._assigners: tuple[Assigner, ...] = ()

    def _dir_stamp(self) -> tuple[int, int] | None:
        try:
            st = self.store.directory.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_ino)

    def current(self) -> tuple[Assigner, ...]:
        now = self.clock()
        if now - self._checked >= self.check_every_s:
            self._checked = now
            stamp = self._dir_stamp()
            if stamp != self._stamp or now - self._loaded >= self.reload_every_s:
                self._stamp, self._loaded = stamp, now
                self._assigners = tuple(Assigner(e) for e in self.store.running())
        return self._assigners
