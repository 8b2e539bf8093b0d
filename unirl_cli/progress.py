"""Plain progress lines for long work whose output is not a terminal (nohup, batch jobs, CI logs).

On a terminal the commands draw rich live views; written to a file those show nothing for minutes. A
`PlainProgress` prints one line at a steady pace instead: `what done/total (pct) elapsed ETA key metrics`.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO


def format_seconds(seconds: float) -> str:
    """`75` -> `1m15s`, `3700` -> `1h01m`; `?` for an unknown (NaN or infinite) time."""
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return "?"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class PlainProgress:
    """Prints `label done/total ...` on the first update, then at most every `every_seconds`, and at the end."""

    def __init__(self, label: str, total: int, every_seconds: float = 30.0, start: int = 0,
                 stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.label, self.total, self.start, self.every_seconds = label, total, start, every_seconds
        self.stream = stream or sys.stderr
        self.clock = clock
        self.started = clock()
        self.last_printed: float | None = None

    def update(self, done: int, metrics: dict | None = None) -> None:
        """Record progress `done` (absolute); print a line when the pace allows it or the work is finished."""
        now = self.clock()
        due = self.last_printed is None or now - self.last_printed >= self.every_seconds or done >= self.total
        if not due or self.every_seconds <= 0:
            return
        self.last_printed = now
        elapsed = now - self.started
        finished = done - self.start
        eta = elapsed / finished * (self.total - done) if finished > 0 else float("nan")
        percent = 100.0 * done / self.total if self.total else 100.0
        shown = "".join(f" {key} {value:.4g}" for key, value in (metrics or {}).items())
        print(f"{self.label} {done}/{self.total} ({percent:.0f}%) elapsed {format_seconds(elapsed)} "
              f"ETA {format_seconds(eta)}{shown}", file=self.stream, flush=True)


def counting_reporter(every_seconds: float = 30.0, stream: TextIO | None = None):
    """A `(description, total) -> advance(n)` reporter (the evaluation pipeline's) printing plain lines."""
    def open_bar(description: str, total: int):
        line, count = PlainProgress(description, total, every_seconds, stream=stream), [0]

        def advance(n: int) -> None:
            count[0] += n
            line.update(count[0])

        return advance

    return open_bar
