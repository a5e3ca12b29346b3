"""Index generations behind aliases, on local disk.

`aliases.json` maps alias → generation name and is replaced atomically (write + rename), so
a reader sees the old or the new target and a load that dies part-way leaves the alias on
the previous, complete generation. Generations that never reached `ready` are never
pointed at and are swept by the next load.

Each process keeps the generations it uses open (tantivy index, HNSW graphs in memory) and
lets go of one as soon as no alias points at it any more and it is not being built: the
store drops its reference when it sees the alias file change, and a search still running
on the old generation holds its own reference, finishes on it, and frees it when it ends.
A re-index every hour therefore leaves one generation per alias in a serving process.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from shoprank.errors import BadRequestError, IndexNotFoundError
from shoprank.plugin.bounds import check_alias_name
from shoprank.plugin.bounds import check_index_name as check_es_name

from .generation import Generation, read_json, write_json_atomic


def check_index_name(name: str) -> str:
    """A name for a new alias (`shoprank.plugin.bounds.check_alias_name`)."""
    return check_alias_name(name)


class EmbeddedStore:
    """All embedded indices of one data directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.indices_dir = root / "indices"
        self.indices_dir.mkdir(parents=True, exist_ok=True)
        self._aliases_path = root / "aliases.json"
        self._open: dict[str, Generation] = {}
        self._lock = threading.Lock()
        self._aliases_mtime: tuple[int, int] = (-1, -1)
        self._aliases: dict[str, str] = {}
        # The alias file version the open generations were last checked against.
        self._swept_mtime: tuple[int, int] = (-1, -1)

    # -- aliases ---------------------------------------------------------------------------

    def aliases(self) -> dict[str, str]:
        try:
            st = self._aliases_path.stat()
        except FileNotFoundError:
            return {}
        mtime = (st.st_mtime_ns, st.st_ino)  # replaced by rename: the inode changes too
        if mtime != self._aliases_mtime:
            self._aliases = dict(read_json(self._aliases_path))
            self._aliases_mtime = mtime
        return dict(self._aliases)

    def swap_alias(self, alias: str, generation: str) -> str | None:
        """Point `alias` at `generation` in one atomic step; returns the previous target."""
        check_index_name(alias)
        gen = self.generation(generation)
        if gen.status != "ready":
            raise BadRequestError(f"generation [{generation}] is not ready ({gen.status})")
        if (self.indices_dir / alias).exists():
            raise BadRequestError(f"an index named [{alias}] exists; an alias cannot shadow it")
        with self._lock:
            aliases = self.aliases()
            previous = aliases.get(alias)
            aliases[alias] = generation
            write_json_atomic(self._aliases_path, aliases)
            return previous

    # -- generations -----------------------------------------------------------------------

    def resolve(self, name: str) -> str:
        """The generation behind an alias or concrete index name."""
        check_es_name(name)  # before the name becomes a path
        aliases = self.aliases()
        if name in aliases:
            return aliases[name]
        try:
            if (self.indices_dir / name / "meta.json").exists():
                return name
        except OSError:  # a name no file can have (too long): no such index either
            pass
        raise IndexNotFoundError(name)

    def generation(self, name: str) -> Generation:
        try:
            target = self.resolve(name)
        except IndexNotFoundError:
            with self._lock:  # dropped from disk by another process: let go of it here too
                self._open.pop(name, None)
            raise
        with self._lock:
            if self._swept_mtime != self._aliases_mtime:
                self._release_unused_locked()
            gen = self._open.get(target)
            if gen is None:
                if not (self.indices_dir / target / "meta.json").exists():
                    raise IndexNotFoundError(name)
                gen = Generation(self.indices_dir / target)
                self._open[target] = gen
        return gen

    def open_generations(self) -> list[str]:
        """Names of the generations this process holds open, sorted."""
        with self._lock:
            return sorted(self._open)

    def _release_unused_locked(self) -> None:
        """Let go of open generations no alias points at, unless one is still being built
        (by this or another process) or holds writes not yet committed."""
        self._swept_mtime = self._aliases_mtime
        live = set(self._aliases.values())
        for name, gen in list(self._open.items()):
            if name in live or gen.has_uncommitted_writes:
                continue
            try:
                status = read_json(gen.dir / "meta.json").get("status")
            except (OSError, ValueError):
                status = None  # dropped from disk
            if status != "building":
                del self._open[name]

    def generations(self, alias: str | None = None) -> list[dict[str, Any]]:
        """Metadata of every generation (of one alias), oldest first."""
        out = []
        for meta_path in sorted(self.indices_dir.glob("*/meta.json")):
            meta = read_json(meta_path)
            if alias is None or meta.get("alias") == alias:
                out.append({k: v for k, v in meta.items() if k != "mapping"})
        return sorted(out, key=lambda m: m["name"])

    def create_generation(self, alias: str, mapping: dict[str, Any]) -> Generation:
        """A new empty generation `<alias>-NNNNNN`, status `building`."""
        name = self._next_name(alias)
        gen = Generation.create(self.indices_dir / name, mapping=mapping, alias=alias)
        with self._lock:
            self._open[name] = gen
        return gen

    def clone_generation(self, alias: str, source: str) -> Generation:
        """A new `building` generation holding exactly what `source` holds.

        tantivy segment files and saved HNSW files are never modified in place (writers
        add new files and replace metadata by rename), so the clone hard-links them and
        costs almost nothing; later writes to either generation do not affect the other.
        """
        src = self.indices_dir / self.resolve(source)
        name = self._next_name(alias)
        dst = self.indices_dir / name
        dst.mkdir(parents=True)
        try:
            (dst / "tantivy").mkdir()
            for path in (src / "tantivy").iterdir():
                if path.is_file() and not path.name.endswith(".lock"):
                    _link_or_copy(path, dst / "tantivy" / path.name)
            for path in src.glob("*.usearch"):
                _link_or_copy(path, dst / path.name)
            meta = read_json(src / "meta.json")
            meta.update(
                name=name,
                alias=alias,
                status="building",
                created=time.time(),
                revision=0,
                cloned_from=src.name,
            )
            write_json_atomic(dst / "meta.json", meta)
        except BaseException:
            shutil.rmtree(dst, ignore_errors=True)
            raise
        gen = Generation(dst)
        with self._lock:
            self._open[name] = gen
        return gen

    def _next_name(self, alias: str) -> str:
        check_index_name(alias)
        numbers = [
            int(p.name.rsplit("-", 1)[1])
            for p in self.indices_dir.glob(f"{alias}-*")
            if p.name.rsplit("-", 1)[1].isdigit()
        ]
        # Numbers never repeat, even after a crashed generation is swept, so a name always
        # means one build.
        seq_path = self.root / f".seq-{alias}"
        high = int(seq_path.read_text() or 0) if seq_path.exists() else 0
        number = max(max(numbers, default=0), high) + 1
        write_json_atomic(seq_path, number)  # never truncated by a full disk
        return f"{alias}-{number:06d}"

    def drop_generation(self, name: str) -> None:
        if name in self.aliases().values():
            raise BadRequestError(f"generation [{name}] is behind an alias; swap it first")
        with self._lock:
            self._open.pop(name, None)
        shutil.rmtree(self.indices_dir / name, ignore_errors=True)

    def prune(self, alias: str, *, keep: int) -> list[str]:
        """Drop unfinished generations and all but `keep` previous ready ones of `alias`."""
        live = self.aliases().get(alias)
        dropped = []
        older_ready = []
        for meta in self.generations(alias):
            if meta["name"] == live:
                continue
            if meta.get("status") != "ready":
                dropped.append(meta["name"])
            else:
                older_ready.append(meta["name"])
        dropped += older_ready[: max(0, len(older_ready) - keep)]
        for name in dropped:
            self.drop_generation(name)
        return dropped

    def rollback(self, alias: str) -> str:
        """Point `alias` back at the newest ready generation older than the live one."""
        live = self.resolve(alias)
        older = [
            m["name"]
            for m in self.generations(alias)
            if m.get("status") == "ready" and m["name"] < live
        ]
        if not older:
            raise BadRequestError(f"alias [{alias}] has no older ready generation to roll back to")
        target = str(older[-1])
        self.swap_alias(alias, target)
        return target


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # a filesystem without hard links
        shutil.copy2(src, dst)
