"""Error classes for user-facing failures, and collective raising under MPI.

A user error (bad config, bad mesh, failed solve) found on any rank is raised on every rank
with the same message, so no rank is left waiting in a collective call.

Exit codes of the command line (one per class): 0 done; 1 the computation failed
(:class:`ComputationError`) or an internal error (a bug: one line, the traceback in a log
file); 2 invalid input, nothing written (:class:`InputError`); 3 interrupted by SIGTERM or
SIGINT at a safe point, resumable with ``--restart`` (:class:`Interrupted`); 4 the environment
failed the run: a file could not be written or read (read-only or full file system, a path
that is a file), the previous checkpoint stays valid (:class:`ResourceError`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Fe2Error(Exception):
    """Base of the errors the CLI reports as one line (never a traceback)."""

    exit_code = 1


class InputError(Fe2Error, ValueError):
    """Invalid input (config, mesh, phases): exit code 2, nothing written."""

    exit_code = 2


class ComputationError(Fe2Error, RuntimeError):
    """A computation failed (solver divergence, singular system): exit code 1."""

    exit_code = 1


class Interrupted(Fe2Error):
    """SIGTERM or SIGINT stopped the run at a safe point (outputs consistent): exit code 3."""

    exit_code = 3


class ResourceError(Fe2Error, OSError):
    """The environment failed the run (a file system error naming the path): exit code 4."""

    exit_code = 4


def os_error_cause(exc: BaseException) -> str:
    """The cause of an OSError in a few words ("No space left on device"), also for h5py's
    long multi-line messages; the first line of anything else."""
    import os

    errno = getattr(exc, "errno", None)
    if isinstance(errno, int) and errno > 0:
        return os.strerror(errno)
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]


def os_error_message(exc: OSError, path=None) -> str:
    """One line naming the path and the cause of an OSError (no traceback)."""
    where = path if path is not None else (getattr(exc, "filename", None) or "")
    cause = os_error_cause(exc)
    return f"{where}: {cause}" if where else cause


def collectively(comm, func: Callable[[], T], *, errors: tuple[type[BaseException], ...]) -> T:
    """Run ``func`` on every rank; if it raises one of ``errors`` on any rank, raise on all.

    The error of the lowest failing rank is re-raised with its message, as the same
    :class:`Fe2Error` class if it was one, else as :class:`ComputationError`. Collective on
    ``comm``.
    """
    result, failure = None, None
    try:
        result = func()
    except errors as exc:
        kind = type(exc) if isinstance(exc, Fe2Error) else ComputationError
        failure = (kind.__module__, kind.__qualname__, str(exc))
    failures = comm.allgather(failure)
    for found in failures:
        if found is not None:
            module, name, message = found
            kind = _CLASSES.get((module, name), ComputationError)
            raise kind(message)
    return result


def _subclasses(cls: type) -> list[type]:
    return [cls] + [s for sub in cls.__subclasses__() for s in _subclasses(sub)]


class _Registry(dict):
    """(module, qualified name) -> Fe2Error subclass, looked up when an error crosses ranks."""

    def get(self, key, default=None):
        for cls in _subclasses(Fe2Error):
            self.setdefault((cls.__module__, cls.__qualname__), cls)
        return super().get(key, default)


_CLASSES = _Registry()
