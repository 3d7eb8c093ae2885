"""SIGTERM and SIGINT: stop a run at its next safe point, on every rank.

What Slurm sends at the time limit (SIGTERM, before SIGKILL) and Ctrl-C (SIGINT; MPICH's
``mpiexec`` forwards both to every rank) set a flag; the run looks at it at its safe points
(every macro Newton iteration and after every load step), where the ranks agree on it with
one ``allreduce`` -- so all stop at the same point, none is left in a collective call. A
second SIGINT stops at once (KeyboardInterrupt).

Commands without safe points (`fe2 homogenize`, ...) turn either signal into a
KeyboardInterrupt, reported by the command line as one line with the exit code of an
interruption.
"""

from __future__ import annotations

import signal
from contextlib import contextmanager

from mpi4py import MPI

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
    """The stop flag set by the signal handlers of :meth:`handling`."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def _handle(self, signum: int, frame) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.signal = signum

    @contextmanager
    def handling(self):
        """Install the handlers (main thread only; elsewhere a no-op) and restore the old ones."""
        try:
            old = {s: signal.signal(s, self._handle) for s in SIGNALS}
        except ValueError:  # not the main thread
            yield self
            return
        try:
            yield self
        finally:
            _restore(old)

    def agreed(self, comm: MPI.Comm) -> str:
        """The name of the signal if any rank got one, else '' (collective)."""
        signum = comm.allreduce(self.signal or 0, op=MPI.MAX)
        return signal.Signals(signum).name if signum else ""


def _restore(old: dict) -> None:
    """Put back handlers saved from ``signal.signal`` (None: one installed outside Python,
    which cannot be put back; the default action is)."""
    for signum, handler in old.items():
        signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def _interrupt(signum: int, frame) -> None:
    raise KeyboardInterrupt


@contextmanager
def interrupt_on_signals():
    """SIGTERM and SIGINT raise KeyboardInterrupt (commands without safe points)."""
    try:
        old = {s: signal.signal(s, _interrupt) for s in SIGNALS}
    except ValueError:
        yield
        return
    try:
        yield
    finally:
        _restore(old)
