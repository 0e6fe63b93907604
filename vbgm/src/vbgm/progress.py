"""Progress of the long stages of the vbgm commands, one way for all of them.

On a terminal a stage is a tqdm bar that redraws at most `MIN_INTERVAL` apart (a few times per
second, whatever the update rate) and shows 100 % when the stage completes. When stderr is not a
terminal (a log file, a pipe, CI) redraws would fill the log with carriage-return frames, so a
stage writes one line when it ends instead: ``decode cup.mp4: 217 frames in 0.45 s``.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

MIN_INTERVAL = 0.25  # seconds between two redraws of a bar: at most 4 per second


def interactive(stream: IO[str] | None = None) -> bool:
    """Whether `stream` (default stderr) is a terminal, where redrawing bars make sense."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or not a real stream
        return False


class Stage:
    """One stage's progress: `update(n)` / `advance_to(done)`, then `close()` (or `with`).

    enabled=False makes it silent. Counts are clamped to `total` (never an overshoot such as
    "24616th of 24600"); a stage left normally ends at 100 %. On a terminal the stage is a
    throttled tqdm bar; elsewhere one line is written to `stream` when the stage ends.
    """

    def __init__(self, desc: str, total: float | None = None, unit: str = "it",
                 enabled: bool = True, stream: IO[str] | None = None, leave: bool = False
                 ) -> None:
        self.desc, self.total, self.unit = desc, total, unit
        self.enabled = enabled
        self.stream = sys.stderr if stream is None else stream
        self.n: float = 0
        self.start = time.perf_counter()
        self._closed = False
        self._bar: Any = None
        if enabled and interactive(self.stream):
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit, leave=leave, file=self.stream,
                             mininterval=MIN_INTERVAL, maxinterval=MIN_INTERVAL * 4,
                             dynamic_ncols=True)

    def update(self, n: float = 1) -> None:
        """Count `n` more units of work done."""
        self.advance_to(self.n + n)

    def advance_to(self, done: float) -> None:
        """Set the count of units done (clamped to the total; never goes back)."""
        if self.total is not None:
            done = min(done, self.total)
        if done <= self.n:
            return
        if self._bar is not None:
            self._bar.update(done - self.n)
        self.n = done

    def close(self, completed: bool = True) -> None:
        """End the stage: at 100 % when `completed` and the total is known; a line off a
        terminal (saying where it stopped when not completed)."""
        if self._closed:
            return
        self._closed = True
        if completed and self.total is not None:
            self.advance_to(self.total)
        if self._bar is not None:
            if completed:
                self._bar.refresh()  # the last frame drawn is 100 %, throttle or not
            self._bar.close()
        elif self.enabled:
            took = time.perf_counter() - self.start
            count = f"{self.n:g}" + ("" if completed or self.total is None
                                     else f" of {self.total:g}")
            state = "" if completed else " (stopped)"
            unit = self.unit if self.n == 1 else f"{self.unit}s"
            print(f"{self.desc}: {count} {unit} in {took:.2f} s{state}",
                  file=self.stream, flush=True)

    def __enter__(self) -> Stage:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self.close(completed=kind is None)


def stage(desc: str, total: float | None = None, unit: str = "it", enabled: bool = True,
          stream: IO[str] | None = None) -> Stage:
    """A `Stage` (the helper every command uses for its progress)."""
    return Stage(desc, total, unit, enabled, stream)
