"""One generation of an embedded index: a tantivy index plus one vector file per field.

Layout of `<data_dir>/embedded/indices/<name>/`:
    meta.json          mapping, status (building|ready), doc count, next key, revision
    tantivy/           the lexical index, filters, aggregations and `_source` (source of truth)
    <field>.usearch    HNSW graph of a dense_vector field

Writers bump `revision` in meta.json on each commit; readers compare it per request and
reload, so a serving process sees updates from a loader process without restarting.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import tantivy

from shoprank.errors import BadRequestError, ShoprankError

from .schema import ENGLISH, IndexSchema, english_analyzer
from .vectors import FloatArray, VectorField

# How long a write waits for tantivy's writer lock to be released (see `_get_writer`).
WRITER_LOCK_WAIT_S = 30.0
WRITER_LOCK_POLL_S = 0.25
MAX_KNOWN_IDS = 500_000  # key → id entries kept per generation (~50 MB at most)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that readers see either the old or the new file, never a torn one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(orjson.dumps(data, option=orjson.OPT_INDENT_2))
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a half-written file must not take space or linger
        raise


_NO_SPACE = ("no space left on device", "os error 28", "disk quota exceeded", "os error 122")


@contextmanager
def disk_errors(what: str) -> Iterator[None]:
    """Raise a full disk as `OSError(ENOSPC)`, whichever library hit it.

    tantivy and usearch report I/O failures as their own exception types with the OS
    message inside; callers (the loader) recognise one errno instead of message texts."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OSError(errno.ENOSPC, f"No space left on device ({what})") from exc
        raise
    except (ValueError, RuntimeError) as exc:
        if any(marker in str(exc).lower() for marker in _NO_SPACE):
            raise OSError(errno.ENOSPC, f"No space left on device ({what})") from exc
        raise


def read_json(path: Path) -> Any:
    return orjson.loads(path.read_bytes())


class Generation:
    """A concrete index (`products-000003`) that aliases point at."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.name = directory.name
        self.meta: dict[str, Any] = read_json(directory / "meta.json")
        self.schema = IndexSchema(self.meta["mapping"])
        self._index = self._open_tantivy()
        self.vectors = {
            f.path: VectorField(directory / f"{f.path}.usearch", dims=f.dims)
            for f in self.schema.vector_fields
        }
        self._meta_mtime = self._stat_meta()
        self._lock = threading.Lock()
        self._writer: tantivy.IndexWriter | None = None
        self._sleep = time.sleep  # waits for a busy writer lock (injectable)
        # id → key of documents written but not yet committed (invisible to searchers).
        self._pending: dict[str, int] = {}
        # key → id of documents hits have named: a key is never given to another document
        # (`next_key` only grows), so an entry stays true; ints and strings only, so the
        # cyclic collector untracks the dict and never walks it.
        self._ids: dict[int, str] = {}

    @classmethod
    def create(cls, directory: Path, *, mapping: dict[str, Any], alias: str | None) -> Generation:
        directory.mkdir(parents=True, exist_ok=False)
        meta = {
            "name": directory.name,
            "alias": alias,
            "mapping": mapping,
            "status": "building",
            "created": time.time(),
            "doc_count": 0,
            "next_key": 1,
            "revision": 0,
        }
        try:
            (directory / "tantivy").mkdir()
            with disk_errors(f"creating [{directory.name}]"):
                write_json_atomic(directory / "meta.json", meta)
                return cls(directory)
        except BaseException:
            # Without its meta.json no sweep would ever find the folder again.
            shutil.rmtree(directory, ignore_errors=True)
            raise

    def _open_tantivy(self) -> tantivy.Index:
        path = str(self.dir / "tantivy")
        if tantivy.Index.exists(path):
            index = tantivy.Index.open(path)
        else:
            index = tantivy.Index(self.schema.tantivy_schema, path=path)
        index.register_tokenizer(ENGLISH, english_analyzer())
        return index

    def _stat_meta(self) -> tuple[int, int]:
        # meta.json is replaced by rename on every commit, so its inode changes even when
        # the filesystem's timestamps are too coarse to tell two commits apart.
        try:
            st = (self.dir / "meta.json").stat()
        except FileNotFoundError:
            return (0, 0)
        return (st.st_mtime_ns, st.st_ino)

    @property
    def tantivy_index(self) -> tantivy.Index:
        return self._index

    @property
    def status(self) -> str:
        return str(self.meta.get("status", "building"))

    @property
    def has_uncommitted_writes(self) -> bool:
        """Documents written or deleted here and not yet committed (lost if let go of)."""
        return self._writer is not None or bool(self._pending)

    def refresh_if_changed(self) -> None:
        """Pick up commits made by another process since the last look."""
        mtime = self._stat_meta()
        if mtime == self._meta_mtime or mtime == (0, 0):
            # (0, 0): the generation was dropped from disk; whoever still holds it (a
            # search that began before the swap) finishes on what is already open.
            return
        with self._lock:
            if mtime == self._meta_mtime:
                return
            meta = read_json(self.dir / "meta.json")
            if meta.get("revision") != self.meta.get("revision"):
                self._index.reload()
                for path, field in list(self.vectors.items()):
                    self.vectors[path] = VectorField(field.path, dims=field.dims)
            self.meta = meta
            self._meta_mtime = mtime

    def searcher(self) -> tantivy.Searcher:
        self.refresh_if_changed()
        return self._index.searcher()

    # -- writing ---------------------------------------------------------------------------

    def _get_writer(self) -> tantivy.IndexWriter:
        """tantivy's writer of this generation. Its lock can still be held for a moment by
        a writer process that was just killed (a crashed worker, on whose chunks a resumed
        job goes on): a busy lock is waited for up to `WRITER_LOCK_WAIT_S` before the
        write fails."""
        if self._writer is None:
            waited = 0.0
            while True:
                try:
                    self._writer = self._index.writer(heap_size=128_000_000, num_threads=1)
                    break
                except ValueError as exc:
                    if "LockBusy" not in str(exc) or waited >= WRITER_LOCK_WAIT_S:
                        raise ShoprankError(
                            f"index [{self.name}] is being written by another process "
                            f"({exc}); wait for that load to finish"
                        ) from exc
                    self._sleep(WRITER_LOCK_POLL_S)
                    waited += WRITER_LOCK_POLL_S
        return self._writer

    def ids_at(self, searcher: tantivy.Searcher, addresses: list[Any]) -> list[str]:
        """The `_id` of each document address: from the document key's fast field and the
        key → id map, reading a stored document only for a key not seen before (a hit's
        stored document costs ~10 µs; a search's two legs name ~200)."""
        keys = searcher.fast_field_values("_key", addresses)
        known = self._ids
        out: list[str] = []
        for addr, key in zip(addresses, keys, strict=True):
            pid = known.get(int(key)) if key is not None else None
            if pid is None:
                pid = str(searcher.doc(addr).get_first("_id"))
                if key is not None:
                    if len(known) >= MAX_KNOWN_IDS:
                        known.clear()
                    known[int(key)] = pid
            out.append(pid)
        return out

    def _keys_of(self, ids: list[str]) -> dict[str, int]:
        if not ids:
            return {}
        self._index.reload()
        searcher = self._index.searcher()
        query = tantivy.Query.term_set_query(self.schema.tantivy_schema, "_id", ids)
        result = searcher.search(query, limit=max(len(ids), 1) * 2)
        addresses = [addr for _, addr in result.hits]
        keys = searcher.fast_field_values("_key", addresses)
        found: dict[str, int] = {}
        for addr, key in zip(addresses, keys, strict=True):
            if key is not None:
                found[str(searcher.doc(addr)["_id"][0])] = int(key)
        return found

    def upsert(
        self,
        docs: list[dict[str, Any]],
        vectors: dict[str, FloatArray] | None = None,
        *,
        partial_vectors: dict[str, tuple[Any, FloatArray]] | None = None,
    ) -> int:
        """Add or replace documents by `_id`.

        `vectors[field]` rows align with `docs`; `partial_vectors[field] = (rows, matrix)`
        gives vectors for some documents only (e.g. those whose image loaded). Within one
        call the last document of an id wins.
        """
        per_doc: list[dict[str, FloatArray]] = [{} for _ in docs]
        for field, matrix in (vectors or {}).items():
            self._check_vector_field(field)
            if len(matrix) != len(docs):
                raise BadRequestError(f"{len(matrix)} vectors for {len(docs)} documents")
            for row in range(len(docs)):
                per_doc[row][field] = matrix[row]
        for field, (rows, matrix) in (partial_vectors or {}).items():
            self._check_vector_field(field)
            for j, row in enumerate(rows):
                per_doc[int(row)][field] = matrix[j]
        last_row = {str(d["_id"]): row for row, d in enumerate(docs)}
        if len(last_row) != len(docs):
            keep = sorted(last_row.values())
            docs = [docs[i] for i in keep]
            per_doc = [per_doc[i] for i in keep]
        writer = self._get_writer()
        ids = [str(d["_id"]) for d in docs]
        old = self._old_keys(ids)
        start = int(self.meta["next_key"])
        keys = np.arange(start, start + len(docs), dtype=np.uint64)
        with disk_errors(f"writing documents to [{self.name}]"):
            for pid in ids:
                writer.delete_documents_by_term("_id", pid)
            for doc, key, vecs in zip(docs, keys, per_doc, strict=True):
                source = {k: v for k, v in doc.items() if k != "_id"}
                raw = {f: np.asarray(v, dtype=np.float32).tobytes() for f, v in vecs.items()}
                writer.add_document(
                    self.schema.document(
                        doc, key=int(key), source=orjson.dumps(source), vectors=raw
                    )
                )
        for field, store in self.vectors.items():
            store.remove(old)
            rows = [i for i, vecs in enumerate(per_doc) if field in vecs]
            if rows:
                matrix = np.vstack([per_doc[i][field] for i in rows]).astype(np.float32)
                store.add(keys[rows], matrix)
        self._pending.update({pid: int(key) for pid, key in zip(ids, keys, strict=True)})
        self.meta["next_key"] = start + len(docs)
        return len(docs)

    def _check_vector_field(self, field: str) -> None:
        if field not in self.vectors:
            raise BadRequestError(f"[{field}] is not a dense_vector field of [{self.name}]")

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold this generation's cross-process write lock, with state fresh from disk."""
        with open(self.dir / ".write.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                self.refresh_if_changed()
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _old_keys(self, ids: list[str]) -> list[int]:
        """Keys currently held by these ids, committed or pending."""
        keys = self._keys_of(ids) if self.meta["doc_count"] else {}
        keys.update({pid: self._pending[pid] for pid in ids if pid in self._pending})
        return list(keys.values())

    def delete(self, ids: list[str]) -> int:
        """Delete documents by `_id`; returns how many existed."""
        writer = self._get_writer()
        ids = [str(i) for i in ids]
        committed = self._keys_of(ids) if self.meta["doc_count"] else {}
        existing = set(committed) | {pid for pid in ids if pid in self._pending}
        old = self._old_keys(ids)
        for pid in ids:
            writer.delete_documents_by_term("_id", pid)
            self._pending.pop(pid, None)
        for store in self.vectors.values():
            store.remove(old)
        return len(existing)

    def commit(self, *, status: str | None = None) -> int:
        """Make writes durable and visible; returns the document count."""
        with disk_errors(f"committing [{self.name}]"):
            if self._writer is not None:
                self._writer.commit()
                self._writer.wait_merging_threads()
                self._writer = None
            for store in self.vectors.values():
                store.save()
            self._pending.clear()
            self._index.reload()
            meta = {**self.meta, "doc_count": self._index.searcher().num_docs}
            meta["revision"] = int(meta["revision"]) + 1
            if status:
                meta["status"] = status
            write_json_atomic(self.dir / "meta.json", meta)
        self.meta = meta
        self._meta_mtime = self._stat_meta()
        return int(self.meta["doc_count"])

    def rebuild_vectors(self) -> int:
        """Rebuild every HNSW file from the vectors stored in tantivy (the source of truth)."""
        self._index.reload()
        searcher = self._index.searcher()
        result = searcher.search(tantivy.Query.all_query(), limit=max(searcher.num_docs, 1))
        addresses = [addr for _, addr in result.hits]
        keys = searcher.fast_field_values("_key", addresses)
        for path, store in self.vectors.items():
            fresh = VectorField(store.path.with_suffix(".rebuild"), dims=store.dims)
            tname = self.schema.fields[path].tantivy
            got_keys, rows = [], []
            for addr, key in zip(addresses, keys, strict=True):
                raw = searcher.doc(addr).get_first(tname)
                if raw and key is not None:
                    got_keys.append(int(key))
                    rows.append(np.frombuffer(raw, dtype=np.float32))
            if rows:
                fresh.add(np.asarray(got_keys, dtype=np.uint64), np.vstack(rows))
            fresh.path = store.path
            fresh.save()
            self.vectors[path] = fresh
        return len(addresses)

    def abandon(self) -> None:
        """Drop uncommitted writes, in tantivy and in the in-memory vector indexes."""
        writer, self._writer = self._writer, None
        if writer is not None:
            # A writer that an I/O error (a full disk) killed cannot roll back; dropping it
            # discards its writes all the same, and the caller's error is the one to see.
            with contextlib.suppress(Exception):
                writer.rollback()
        self._pending.clear()
        self.meta = read_json(self.dir / "meta.json")
        for path, field in list(self.vectors.items()):
            self.vectors[path] = VectorField(field.path, dims=field.dims)
