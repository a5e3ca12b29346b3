"""Versioned ranker models: `data_dir/models/ranker/<version>/` plus `registry.json`
(which version is live and the promotion history, for rollback).

The serving path reads `registry.json` to find the live model; `shoprank models
list|promote|rollback` and `shoprank train ranker` write it (atomically, by rename).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from shoprank.errors import BadRequestError
from shoprank.rerankers.ltr.scorers import DEFAULT_VERSION

KEEP_REJECTED = 20


class ModelRegistry:
    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def file(self) -> Path:
        return self.root / "registry.json"

    def state(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.file.read_text())
        except FileNotFoundError:
            data = {}
        data.setdefault("live", None)
        data.setdefault("history", [])
        return data

    def _write(self, state: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.file.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(state, indent=2))
        os.replace(tmp, self.file)

    def live(self) -> str | None:
        live = self.state()["live"]
        return str(live) if live else None

    def path(self, version: str) -> Path:
        return self.root / version

    def meta(self, version: str) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads((self.path(version) / "meta.json").read_text())
        except FileNotFoundError:
            known = ", ".join(m["version"] for m in self.versions()) or "none"
            raise BadRequestError(f"no ranker model {version!r}; known versions: {known}") from None
        return data

    def versions(self) -> list[dict[str, Any]]:
        """Every stored model's metadata, oldest first."""
        out = []
        if self.root.exists():
            for meta in sorted(self.root.glob("*/meta.json")):
                try:
                    out.append(json.loads(meta.read_text()))
                except ValueError:
                    continue
        return sorted(out, key=lambda m: (m.get("created", 0), m.get("version", "")))

    def challenger(self) -> dict[str, Any] | None:
        """The candidate waiting for an online experiment: {version, evidence, at}."""
        found = self.state().get("challenger")
        return dict(found) if isinstance(found, dict) else None

    def set_challenger(
        self, version: str, evidence: dict[str, Any], *, experiment: str | None = None
    ) -> None:
        """Record `version` (an offline-gated candidate) as the challenger of the live model,
        with the online experiment that tries it; it does not serve until the experiment or
        a person promotes it."""
        self.meta(version)
        state = self.state()
        entry: dict[str, Any] = {"version": version, "evidence": evidence, "at": time.time()}
        if experiment:
            entry["experiment"] = experiment
        state["challenger"] = entry
        self._write(state)

    def clear_challenger(self) -> None:
        state = self.state()
        if state.pop("challenger", None) is not None:
            self._write(state)

    def reject(self, version: str, *, reason: str, evidence: dict[str, Any] | None = None) -> None:
        """Record that an experiment rolled `version` back (kept under `rejected` with its
        evidence, the newest last); its candidacy as challenger, if any, ends."""
        state = self.state()
        if (state.get("challenger") or {}).get("version") == version:
            state.pop("challenger")
        entry: dict[str, Any] = {"version": version, "at": time.time(), "reason": reason}
        if evidence:
            entry["evidence"] = evidence
        state["rejected"] = [*state.get("rejected", []), entry][-KEEP_REJECTED:]
        self._write(state)

    def rejected(self) -> list[dict[str, Any]]:
        """Challengers an experiment rolled back, oldest first, with their evidence."""
        found = self.state().get("rejected")
        return [dict(r) for r in found] if isinstance(found, list) else []

    def promote(
        self, version: str, *, reason: str = "manual", evidence: dict[str, Any] | None = None
    ) -> None:
        """Make `version` (or `default-v1`, the cold-start scorer) the live model; the
        history keeps `reason` and `evidence` (why it went live). Promoting the challenger
        ends its candidacy."""
        if version != DEFAULT_VERSION:
            self.meta(version)
        state = self.state()
        if (state.get("challenger") or {}).get("version") == version:
            state.pop("challenger")
        if state["live"] == version:
            self._write(state)
            return
        entry: dict[str, Any] = {
            "from": state["live"],
            "to": version,
            "at": time.time(),
            "reason": reason,
        }
        if evidence:
            entry["evidence"] = evidence
        state["history"].append(entry)
        state["live"] = version
        self._write(state)

    def why_live(self) -> dict[str, Any] | None:
        """The history entry that made the live model live (None: never promoted)."""
        state = self.state()
        for entry in reversed(state["history"]):
            if entry.get("to") == state["live"]:
                return dict(entry)
        return None

    def rollback(self, *, evidence: dict[str, Any] | None = None) -> str | None:
        """Go back to the model that was live before the last promotion."""
        state = self.state()
        promotions = [h for h in state["history"] if h.get("reason") != "rollback"]
        if not promotions:
            raise BadRequestError("nothing to roll back: no model was ever promoted")
        # Undo the most recent promotion not yet undone: walk history backwards.
        undone = 0
        for entry in reversed(state["history"]):
            if entry.get("reason") == "rollback":
                undone += 1
                continue
            if undone:
                undone -= 1
                continue
            previous = entry["from"]
            entry = {"from": state["live"], "to": previous, "at": time.time(), "reason": "rollback"}
            if evidence:
                entry["evidence"] = evidence
            state["history"].append(entry)
            state["live"] = previous
            self._write(state)
            return str(previous) if previous else None
        raise BadRequestError("nothing left to roll back")
