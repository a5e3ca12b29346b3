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

    def promote(self, version: str, *, reason: str = "manual") -> None:
        """Make `version` (or `default-v1`, the cold-start scorer) the live model."""
        if version != DEFAULT_VERSION:
            self.meta(version)
        state = self.state()
        if state["live"] == version:
            return
        state["history"].append(
            {"from": state["live"], "to": version, "at": time.time(), "reason": reason}
        )
        state["live"] = version
        self._write(state)

    def rollback(self) -> str | None:
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
            state["history"].append(
                {"from": state["live"], "to": previous, "at": time.time(), "reason": "rollback"}
            )
            state["live"] = previous
            self._write(state)
            return str(previous) if previous else None
        raise BadRequestError("nothing left to roll back")
