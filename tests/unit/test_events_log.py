"""The embedded event log: order, idempotency, crash repair, erasure, retention."""

from __future__ import annotations

import os
from pathlib import Path

from shoprank.events.embedded import EmbeddedEventLog, first_line_at
from shoprank.events.model import Event

T = 1_800_000_000.0


def ev(n: int, *, user: str = "u1", eid: str | None = None, t: float = T, **kw: object) -> Event:
    return Event(
        type="click",
        timestamp=t,
        event_id=eid or f"auto-{n}",
        idempotent=eid is not None,
        user_id=user,
        product_id=f"p{n}",
        **kw,  # type: ignore[arg-type]
    )


def test_append_then_read_in_order(tmp_path: Path) -> None:
    log = EmbeddedEventLog(tmp_path, segment_bytes=300)  # tiny segments: several files
    first = log.append([ev(i) for i in range(5)])
    second = log.append([ev(i) for i in range(5, 9)])
    assert first.offsets == [f"{i}-0" for i in range(5)]
    assert second.offsets[0] == "5-0"
    assert len(list((tmp_path / "segments").glob("*.jsonl"))) > 1
    assert [e.product_id for _, e in log.read()] == [f"p{i}" for i in range(9)]
    assert [o for o, _ in log.read("6-0")] == ["7-0", "8-0"]
    assert log.count() == 9


def test_duplicate_event_ids_are_skipped_across_instances(tmp_path: Path) -> None:
    EmbeddedEventLog(tmp_path).append([ev(1, eid="a"), ev(2, eid="b")])
    again = EmbeddedEventLog(tmp_path).append([ev(1, eid="a"), ev(3, eid="c"), ev(3, eid="c")])
    assert again.duplicates == [0, 2] and len(again.offsets) == 1
    assert EmbeddedEventLog(tmp_path).count() == 3


def test_consume_and_ack(tmp_path: Path) -> None:
    log = EmbeddedEventLog(tmp_path)
    log.append([ev(i) for i in range(3)])
    batch = log.consume("c", count=2)
    assert [o for o, _ in batch] == ["0-0", "1-0"]
    assert log.consume("c", count=2) == batch  # not acked: delivered again
    log.ack([o for o, _ in batch])
    assert [o for o, _ in log.consume("c")] == ["2-0"]


def test_a_torn_append_is_repaired_and_its_ids_indexed(tmp_path: Path) -> None:
    log = EmbeddedEventLog(tmp_path)
    log.append([ev(1, eid="a")])
    # A crash after writing the lines but before moving `head`: one full line, one torn.
    segment = next((tmp_path / "segments").glob("*.jsonl"))
    with open(segment, "ab") as fh:
        fh.write(
            b'{"o":1,"type":"click","timestamp":1.0,"event_id":"b","idempotent":true,'
            b'"user_id":"u1","product_id":"p2"}\n{"o":2,"ty'
        )
    assert [o for o, _ in log.read()] == ["0-0"]  # nothing past head is visible
    result = log.append([ev(2, eid="b"), ev(3, eid="c")])
    assert result.duplicates == [0]  # "b" was durable: the retry is not stored twice
    assert [e.event_id for _, e in log.read()] == ["a", "b", "c"]


def test_forget_erases_the_users_events_and_their_anonymous_sessions(tmp_path: Path) -> None:
    log = EmbeddedEventLog(tmp_path)
    log.append(
        [
            ev(1, user="u1", eid="x", session_id="s1"),
            ev(2, user=None, session_id="s1"),  # type: ignore[arg-type]
            ev(3, user="u2"),
        ]
    )
    result = log.forget("u1")
    assert result.events == 2 and result.sessions == {"s1"}
    assert [e.user_id for _, e in log.read()] == ["u2"]
    # the forgotten idempotency key is gone too: the same id may be sent again
    assert log.append([ev(1, user="u1", eid="x")]).offsets == ["3-0"]


def test_retention_drops_old_events(tmp_path: Path) -> None:
    log = EmbeddedEventLog(tmp_path)
    log.append([ev(1, t=T - 10 * 86_400, eid="old"), ev(2, t=T)])
    assert log.enforce_retention(T, retention_s=5 * 86_400) == 1
    assert [e.product_id for _, e in log.read()] == ["p2"]
    assert log.append([ev(1, eid="old")]).offsets  # its key expired with it


def test_reading_from_an_offset_finds_it_in_a_long_segment_with_gaps(tmp_path: Path) -> None:
    """A fold reads from its position by a binary search of the segment's line starts: every
    start position, before and after an erasure left gaps in the offsets, gives exactly the
    events at or after it (one segment of 400 events; lines of different lengths)."""
    log = EmbeddedEventLog(tmp_path)
    for i in range(40):
        log.append([ev(10 * i + j, user=f"user-{j % 3}" * (1 + j)) for j in range(10)])
    assert len(list((tmp_path / "segments").glob("*.jsonl"))) == 1
    for start in range(0, 401, 7):
        after = f"{start - 1}-0" if start else None
        assert [o for o, _ in log.read(after)] == [f"{n}-0" for n in range(start, 400)]
    log.forget("user-1" * 2)  # every j == 1 event of each batch goes: offsets 1, 11, 21, ...
    kept = [n for n in range(400) if n % 10 != 1]
    for start in range(0, 401, 5):
        after = f"{start - 1}-0" if start else None
        expected = [f"{n}-0" for n in kept if n >= start]
        assert [o for o, _ in log.read(after, limit=50)] == expected[:50]
    assert [o for o, _ in log.read("399-0")] == []
    # The search itself lands on the first line to read, not merely before it.
    segment = next((tmp_path / "segments").glob("*.jsonl"))
    data = segment.read_bytes()
    starts = [0, *(i + 1 for i, byte in enumerate(data[:-1]) if byte == ord("\n"))]
    offsets = [int(data[p + 5 : data.index(b",", p)]) for p in starts]
    fd = os.open(segment, os.O_RDONLY)
    try:
        for start in range(0, 402, 3):
            first = next((p for p, o in zip(starts, offsets, strict=True) if o >= start), len(data))
            assert first_line_at(fd, start) == first
    finally:
        os.close(fd)
