"""Search-log sinks: where `SearchLogger` hands every `SearchRecord`, on its background thread.

A sink buffers in `write(record)` and writes a batch in `flush()`; the logger flushes when
its queue runs empty (so a quiet server writes each search at once and a busy one writes
large batches) or when a sink's buffer is full. Neither sink ever raises into a search:
failures are counted and logged by the logger.

- `EmbeddedSearchLogSink`: the local `SearchLogStore` (the inspector's recent searches).
- `ClusterSearchLogSink`: bulk-writes query documents and impression events to daily
  `shoprank-searches-*` indices on Elasticsearch or OpenSearch (official clients), puts the
  index template first, and ships the shoppers' click / cart / purchase events from the
  behaviour log (incrementally, from a stored offset) with their rank before reranking.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shoprank.events.privacy import pseudonymise
from shoprank.events.protocol import EventLog
from shoprank.searchlog.documents import event_document, impression_documents, query_document
from shoprank.searchlog.mapping import DEFAULT_PREFIX, TEMPLATE_NAME, index_template
from shoprank.searchlog.record import SearchRecord
from shoprank.searchlog.store import JOINED_EVENTS, SearchLogStore

log = logging.getLogger("shoprank.searchlog")


class _Pseudonyms:
    """Raw user / session id → keyed hash, the secret resolved on first use."""

    def __init__(self, secret: Callable[[], str]) -> None:
        self._secret_fn = secret
        self._secret: str | None = None

    def __call__(self, raw: str | None) -> str | None:
        if not raw:
            return None
        if self._secret is None:
            self._secret = self._secret_fn()
        return pseudonymise(raw, self._secret)


class EmbeddedSearchLogSink:
    """Writes query documents to the embedded `SearchLogStore` in batches."""

    def __init__(
        self, store: SearchLogStore, *, secret: Callable[[], str], batch_size: int = 500
    ) -> None:
        self.store = store
        self.batch_size = batch_size
        self._ids = _Pseudonyms(secret)
        self._buffer: list[tuple[float, dict[str, Any]]] = []
        self.written = 0

    def write(self, record: SearchRecord) -> None:
        doc = query_document(
            record, client_id=self._ids(record.user_id), session_id=self._ids(record.session_id)
        )
        self._buffer.append((record.timestamp, doc))
        if len(self._buffer) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        batch, self._buffer = self._buffer, []
        self.written += self.store.write_many(batch)


class BulkError(RuntimeError):
    """Some documents of a bulk request were refused by the cluster."""


def daily_index(prefix: str, ts: float) -> str:
    return f"{prefix}-{datetime.fromtimestamp(ts, tz=UTC):%Y.%m.%d}"


class ClusterSearchLogSink:
    """Bulk-writes the search log to `<prefix>-YYYY.MM.DD` through an official client.

    `client` is an `elasticsearch.Elasticsearch` or `opensearchpy.OpenSearch` (both take
    `bulk(body=...)` and `indices.put_index_template(name=..., body=...)`). Query documents
    use the query id as `_id`, so a retried batch does not duplicate them; shipped events
    bump the query's `clicks` / `carts` / `purchases` counters (for "queries without clicks").
    """

    def __init__(
        self,
        client: Any,
        *,
        secret: Callable[[], str],
        prefix: str = DEFAULT_PREFIX,
        batch_size: int = 500,
        event_log: EventLog | None = None,
        offset_path: Path | None = None,
        ship_every_s: float = 5.0,
        remember: int = 20_000,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.batch_size = batch_size
        self.event_log = event_log
        self.offset_path = offset_path
        self.ship_every_s = ship_every_s
        self._ids = _Pseudonyms(secret)
        self._ops: list[dict[str, Any]] = []
        self._docs = 0
        self._template_ready = False
        self._last_ship = 0.0
        self._lock = threading.Lock()
        # Recent searches: query id → (index name, product id → rank before reranking).
        # query id → (daily index, rank before per product, the search's experiment)
        self._recent: OrderedDict[str, tuple[str, dict[str, int], dict[str, Any] | None]] = (
            OrderedDict()
        )
        self._remember = remember
        self._offset: str | None = None  # the shipped-events offset without `offset_path`
        self.written = 0
        self.errors = 0

    # -- searches ------------------------------------------------------------------------

    def write(self, record: SearchRecord) -> None:
        client_id = self._ids(record.user_id)
        session_id = self._ids(record.session_id)
        index = daily_index(self.prefix, record.timestamp)
        query = query_document(record, client_id=client_id, session_id=session_id)
        query.update({"clicks": 0, "carts": 0, "purchases": 0})
        with self._lock:
            self._ops += [{"index": {"_index": index, "_id": record.query_id}}, query]
            for doc in impression_documents(record, client_id=client_id, session_id=session_id):
                self._ops += [{"index": {"_index": index}}, doc]
            self._docs += 1 + len(record.window)
            if record.query_id:
                self._recent[record.query_id] = (
                    index,
                    {w.product_id: w.rank_before for w in record.window},
                    record.experiment,
                )
                if len(self._recent) > self._remember:
                    self._recent.popitem(last=False)
            full = self._docs >= self.batch_size
        if full:
            self.flush()

    def flush(self) -> None:
        """Send the buffered documents (and, at most every `ship_every_s`, new events)."""
        if self.event_log is not None and time.monotonic() - self._last_ship >= self.ship_every_s:
            self._last_ship = time.monotonic()
            self.ship_events()
        with self._lock:
            ops, self._ops, self._docs = self._ops, [], 0
        self._bulk(ops)

    def ensure_template(self) -> None:
        if self._template_ready:
            return
        self.client.indices.put_index_template(name=TEMPLATE_NAME, body=index_template(self.prefix))
        self._template_ready = True

    def _bulk(self, ops: list[dict[str, Any]]) -> None:
        if not ops:
            return
        self.ensure_template()
        response = self.client.bulk(body=ops)
        # opensearch-py answers a dict; elasticsearch-py an `ObjectApiResponse` around it.
        body = response if isinstance(response, dict) else response.body
        items = body.get("items", [])
        failed = [
            item
            for item in items
            for action in item.values()
            if isinstance(action, dict) and action.get("status", 200) >= 300
        ]
        self.written += len(items) - len(failed)
        if failed:
            self.errors += len(failed)
            first = next(iter(failed[0].values()))
            raise BulkError(
                f"{len(failed)} of {len(items)} search-log documents refused, first: "
                f"{first.get('error')}"
            )

    # -- behaviour events ----------------------------------------------------------------

    def _read_offset(self) -> str | None:
        if self.offset_path is None:
            return self._offset
        try:
            return self.offset_path.read_text().strip() or None
        except FileNotFoundError:
            return None

    def _write_offset(self, offset: str) -> None:
        self._offset = offset
        if self.offset_path is not None:
            self.offset_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.offset_path.with_suffix(".tmp")
            tmp.write_text(offset)
            tmp.replace(self.offset_path)

    def ship_events(self, *, limit: int = 10_000) -> int:
        """Write the behaviour log's new click / cart / purchase / view events that name a
        query id as UBI events; returns how many. The offset moves only after the bulk
        request succeeded, so a failure means a retry, never a gap."""
        if self.event_log is None:
            return 0
        after = self._read_offset()
        ops: list[dict[str, Any]] = []
        last = after
        shipped = 0
        counters = {"click": "clicks", "add_to_cart": "carts", "purchase": "purchases"}
        for offset, event in self.event_log.read(after, limit=limit):
            last = offset
            if event.type not in JOINED_EVENTS or not event.query_id:
                continue
            known = self._recent.get(event.query_id)
            rank_before = known[1].get(event.product_id or "") if known else None
            # Events carry pseudonyms already (the log never holds raw ids).
            doc = event_document(
                action=event.type,
                query_id=event.query_id,
                timestamp=event.timestamp,
                product_id=event.product_id,
                position=event.position,
                client_id=event.user_id or event.session_id,
                session_id=event.session_id,
                rank_before=rank_before,
                quantity=event.quantity,
                price=event.price,
                experiment=known[2] if known else None,
            )
            # Event offsets are unique: a re-shipped batch overwrites, never duplicates.
            ops += [
                {"index": {"_index": daily_index(self.prefix, event.timestamp), "_id": offset}},
                doc,
            ]
            if known and event.type in counters:
                field = counters[event.type]
                ops += [
                    {"update": {"_index": known[0], "_id": event.query_id, "retry_on_conflict": 3}},
                    {
                        "script": {
                            "lang": "painless",
                            "source": f"ctx._source.{field} = "
                            f"(ctx._source.{field} == null ? 0 : ctx._source.{field}) + 1",
                        }
                    },
                ]
            shipped += 1
        if last == after or last is None:
            return 0
        try:
            self._bulk(ops)
        except BulkError as exc:
            # Counter updates of queries not yet searchable are expected to miss sometimes.
            log.warning("search-log events partly refused: %s", exc)
        self._write_offset(last)
        return shipped
