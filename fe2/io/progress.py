"""A live status line under the log on a terminal (rank 0); batch jobs get plain log lines.

:class:`TerminalStatus` is the log handler of rank 0 when stdout is a TTY: each log line is
printed above the status line, which is redrawn after it. ``fe2 run`` sets the status at every
macro Newton iteration: a bar of the completed load steps, the time t being solved, the
iteration and residual, elapsed and estimated remaining time.
"""

from __future__ import annotations

import logging
import shutil
import time

CLEAR = "\r\x1b[K"  # carriage return + erase to the end of the line


class TerminalStatus(logging.StreamHandler):
    """Log handler for a terminal that keeps one live status line below the log lines."""

    def __init__(self, stream):
        super().__init__(stream)
        self.status = ""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream.write(CLEAR)
        super().emit(record)
        self._draw()

    def set_status(self, text: str) -> None:
        """Show ``text`` as the status line ('' removes it)."""
        self.status = text
        self._draw()

    def _draw(self) -> None:
        width = shutil.get_terminal_size((100, 24)).columns - 1
        self.stream.write(CLEAR + self.status[:width])
        self.stream.flush()


def terminal_status() -> TerminalStatus | None:
    """The live status handler of this process's log, if it has one."""
    return next((h for h in logging.getLogger().handlers if isinstance(h, TerminalStatus)), None)


def status_line(done: int, total: int, time: float, iteration: int, residual: float,
                elapsed: float, remaining: float | None) -> str:
    """``[#####-----] 5/10  t 0.55  Newton 2 |R| 1.2e-05  12 s, ETA 14 s``."""
    width = 20
    filled = round(width * done / total) if total else width
    eta = f", ETA {remaining:.0f} s" if remaining is not None else ""
    return (f"[{'#' * filled}{'-' * (width - filled)}] {done}/{total}  t {time:.4g}  "
            f"Newton {iteration} |R| {residual:.1e}  {elapsed:.0f} s{eta}")


class RunStatus:
    """Feeds the status line from a run's macro Newton iterations (``problem.monitor``)."""

    def __init__(self, handler: TerminalStatus, total: int, done: int, start: float):
        self.handler, self.total, self.done, self.start = handler, total, done, start
        self.first = done  # steps done before this process started (a restart)

    @classmethod
    def attach(cls, problem, total: int, done: int, start: float) -> RunStatus | None:
        """A status for ``problem`` when this process logs to a terminal (rank 0), else None."""
        handler = terminal_status() if problem.comm.rank == 0 else None
        if handler is None:
            return None
        status = cls(handler, total, done, start)
        problem.monitor = status.iteration
        return status

    def iteration(self, t: float, iteration: int, residual: float) -> None:
        elapsed = time.perf_counter() - self.start
        steps = self.done - self.first
        remaining = elapsed / steps * (self.total - self.done) if steps else None
        self.handler.set_status(status_line(self.done, self.total, t, iteration, residual, elapsed, remaining))

    def step_done(self, step: int) -> None:
        self.done = step

    def finish(self) -> None:
        self.handler.set_status("")
