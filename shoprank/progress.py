"""Progress of the long command-line jobs (index load, train, simulate, evaluate).

On a terminal a job shows a live bar with its rate and ETA; anywhere else (a log file, CI)
it prints one plain line every `every_pct` percent or every `every_s` seconds, whichever
comes first, so a log shows the job is alive without filling up. Every job ends with one
summary line: how many items, how fast, and where the time went.

    with Progress("loading icecat", unit="products") as progress:
        for chunk in chunks:
            ...
            progress.advance(len(chunk))
        progress.finish(parts={"embed": 40.2, "write": 6.1})

Everything goes to stderr (stdout stays for the command's result); `enabled=False` (e.g.
under `--json`) keeps the job silent. The clock is injectable, for tests.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TextIO

Clock = Callable[[], float]

__all__ = ["Clock", "Progress", "duration", "rate"]


def duration(seconds: float) -> str:
    """12.3s, 4m05s, 1h02m: short enough for a progress line."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(round(seconds))
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def rate(count: float, seconds: float) -> str:
    """Items per second, rounded for reading: 1,234 / 56 / 3.4 / 0.25."""
    per_s = count / seconds if seconds > 0 else 0.0
    if per_s >= 100:
        return f"{per_s:,.0f}"
    if per_s >= 1:
        return f"{per_s:.1f}"
    return f"{per_s:.2f}"


class Progress:
    """One job's progress: a rich bar on a terminal, periodic lines elsewhere, a summary.

    `update(done)` sets the count, `advance(n)` adds to it, `phase(name)` times a part of
    the job (reported in the summary), `finish()` prints the summary line.
    """

    def __init__(
        self,
        label: str,
        *,
        total: int | None = None,
        initial: int = 0,
        unit: str = "items",
        enabled: bool = True,
        stream: TextIO | None = None,
        tty: bool | None = None,
        clock: Clock = time.monotonic,
        every_s: float = 10.0,
        every_pct: float = 10.0,
    ) -> None:
        self.label = label
        self.unit = unit
        self.total = total
        self.done = initial
        self.note = ""
        self.enabled = enabled
        self.stream: TextIO = stream if stream is not None else sys.stderr
        self.tty = self._is_tty() if tty is None else tty
        self.clock = clock
        self.every_s = every_s
        self.every_pct = every_pct
        self.phases: dict[str, float] = {}
        self.started = clock()
        self._initial = initial
        self._last_line_at = self.started
        self._last_step = self._step()
        self._last_done = initial
        self._finished = False
        self._bar: Any = None
        self._task: Any = None

    def _is_tty(self) -> bool:
        try:
            return self.stream.isatty()
        except (AttributeError, ValueError):  # a closed or minimal stream
            return False

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> Progress:
        self.started = self._last_line_at = self.clock()
        if self.enabled and self.tty:
            self._start_bar()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop_bar()

    def _start_bar(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.progress import Progress as RichProgress

        console = Console(file=self.stream, force_terminal=True)
        self._bar = RichProgress(
            # Labels hold index names in brackets ("[icecat]"): plain text, not markup.
            TextColumn("{task.description}", style="bold", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}", style="cyan", markup=False),
            TextColumn("{task.fields[note]}", style="yellow", markup=False),
            TimeElapsedColumn(),
            TextColumn("{task.fields[eta]}", style="cyan", markup=False),
            console=console,
            get_time=self.clock,
        )
        self._bar.start()
        self._task = self._bar.add_task(self.label, total=self.total, rate="", note="", eta="")

    def _stop_bar(self) -> None:
        if self._bar is not None:
            self._refresh_bar()
            self._bar.stop()
            self._bar = None

    # -- counting ----------------------------------------------------------------------------

    def update(self, done: int, *, total: int | None = None, note: str | None = None) -> None:
        """Set the count (and the total and the note shown beside it, when given)."""
        self.done = done
        if total is not None:
            self.total = total
        if note is not None:
            self.note = note
        if not self.enabled:
            return
        if self._bar is not None:
            self._refresh_bar()
        else:
            self._maybe_line()

    def advance(self, n: int = 1, *, note: str | None = None) -> None:
        self.update(self.done + n, note=note)

    def add_total(self, n: int) -> None:
        """Grow the total (work discovered as the job goes)."""
        self.total = (self.total or 0) + n
        self._last_step = self._step()  # percent lines go on from where the new total puts it
        if self._bar is not None:
            self._refresh_bar()

    def stage(self, name: str) -> None:
        """Say what the job does now, when no count moves (e.g. fitting a model): the note
        beside the bar on a terminal, one line on a log."""
        self.note = name
        if not self.enabled:
            return
        if self._bar is not None:
            self._refresh_bar()
        else:
            self._print(f"{self.label}: {name}…")

    @contextlib.contextmanager
    def phase(self, name: str, *, announce: bool = False) -> Iterator[None]:
        """Time a part of the job; with `announce`, say on a log that it started (for
        long parts that report no count, e.g. fitting a model)."""
        if announce and self.enabled and self._bar is None:
            self._print(f"{self.label}: {name}…")
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, description=f"{self.label} · {name}")
        start = self.clock()
        try:
            yield
        finally:
            self.phases[name] = self.phases.get(name, 0.0) + self.clock() - start
            if self._bar is not None and self._task is not None:
                self._bar.update(self._task, description=self.label)

    # -- reading -----------------------------------------------------------------------------

    @property
    def elapsed(self) -> float:
        return max(self.clock() - self.started, 0.0)

    def _counted(self) -> int:
        """Items done in this run (a resumed job's earlier work does not count for speed)."""
        return self.done - self._initial

    def eta(self) -> float | None:
        counted, elapsed = self._counted(), self.elapsed
        if self.total is None or counted <= 0 or elapsed <= 0:
            return None
        return max(self.total - self.done, 0) * elapsed / counted

    def line(self) -> str:
        """The current state as one plain line (what a log shows)."""
        parts = []
        if self.total:
            pct = 100.0 * self.done / self.total
            parts.append(f"{self.done:,}/{self.total:,} {self.unit} ({pct:.0f}%)")
        else:
            parts.append(f"{self.done:,} {self.unit}")
        parts.append(f"{rate(self._counted(), self.elapsed)} {self.unit}/s")
        eta = self.eta()
        if eta is not None:
            parts.append(f"ETA {duration(eta)}")
        else:
            parts.append(f"{duration(self.elapsed)} elapsed")
        if self.note:
            parts.append(self.note)
        return f"{self.label}: " + " · ".join(parts)

    def summary(self, *, parts: Mapping[str, float] | None = None, note: str = "") -> str:
        """`label: N unit in 12.3s (456 unit/s); part 1.2s, part 3.4s[; note]`."""
        elapsed = self.elapsed
        timed = {**self.phases, **(parts or {})}
        text = (
            f"{self.label}: {self.done:,} {self.unit} in {duration(elapsed)} "
            f"({rate(self._counted(), elapsed)} {self.unit}/s)"
        )
        if timed:
            text += "; " + ", ".join(f"{name} {duration(s)}" for name, s in timed.items())
        return text + (f"; {note}" if note else "")

    def finish(
        self, *, parts: Mapping[str, float] | None = None, note: str = "", echo: bool = True
    ) -> str:
        """Stop the bar and print (unless `echo=False`) and return the summary line."""
        self._stop_bar()
        self._finished = True
        text = self.summary(parts=parts, note=note)
        if echo and self.enabled:
            self._print(text)
        return text

    # -- output ------------------------------------------------------------------------------

    def _refresh_bar(self) -> None:
        self._bar.update(
            self._task,
            completed=self.done,
            total=self.total,
            rate=f"{rate(self._counted(), self.elapsed)} {self.unit}/s",
            note=self.note,
            eta=f"ETA {duration(eta)}" if (eta := self.eta()) is not None else "",
        )

    def _maybe_line(self) -> None:
        if self.done == self._last_done or self._finished:
            return
        now = self.clock()
        step = self._step()
        if self.total is not None and self.done >= self.total:
            return  # the summary line says it
        if step > self._last_step or now - self._last_line_at >= self.every_s:
            self._print(self.line())
            self._last_line_at = now
            self._last_step = step
            self._last_done = self.done

    def _step(self) -> int:
        """How many `every_pct` steps of the total are done (0 with no total)."""
        if not self.total:
            return 0
        return math.floor(100.0 * self.done / self.total / self.every_pct)

    def _print(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()
