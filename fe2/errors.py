"""Error classes for user-facing failures, and collective raising under MPI.

A user error (bad config, bad mesh, failed solve) found on any rank is raised on every rank
with the same message, so no rank is left waiting in a collective call.
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


def collectively(comm, func: Callable[[], T], *, errors: tuple[type[BaseException], ...]) -> T:
    """Run ``func`` on every rank; if it raises one of ``errors`` on any rank, raise on all.

    The error of the lowest failing rank is re-raised (as :class:`InputError` if it was an
    input error, else :class:`ComputationError`) with its message. Collective on ``comm``.
    """
    result, failure = None, None
    try:
        result = func()
    except errors as exc:
        failure = (isinstance(exc, InputError), str(exc))
    failures = comm.allgather(failure)
    for found in failures:
        if found is not None:
            is_input, message = found
            raise (InputError if is_input else ComputationError)(message)
    return result
