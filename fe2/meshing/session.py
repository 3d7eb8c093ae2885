"""A clean, deterministic gmsh session as a context manager."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

import gmsh

log = logging.getLogger(__name__)


@contextmanager
def gmsh_session(*, verbose: bool = False, model: str = "rve") -> Iterator[ModuleType]:
    """Initialize gmsh, add an empty model, and finalize on exit (also on errors).

    The session is single-threaded (``General.NumThreads = 1``, OCC parallelism off)
    so that the same input always yields the same mesh. Without ``verbose`` gmsh
    prints nothing; its messages are forwarded to this module's logger at DEBUG level.

    gmsh's initialisation replaces the process's SIGTERM and SIGINT handlers; the Python
    handlers (e.g. a run's stop request, :mod:`fe2.stop`) are put back.

    Raises
    ------
    RuntimeError
        If gmsh is already initialized: nested sessions would finalize the outer one.
    """
    if gmsh.isInitialized():
        raise RuntimeError("gmsh is already initialized; finalize it before starting a session")
    main = threading.current_thread() is threading.main_thread()
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)} if main else {}
    gmsh.initialize(readConfigFiles=False, interruptible=False)
    for signum, handler in handlers.items():
        if handler is not None:
            signal.signal(signum, handler)
    try:
        gmsh.option.setNumber("General.Terminal", 1 if verbose else 0)
        gmsh.option.setNumber("General.NumThreads", 1)
        gmsh.option.setNumber("Geometry.OCCParallel", 0)
        gmsh.logger.start()
        gmsh.model.add(model)
        yield gmsh
    finally:
        try:
            for message in gmsh.logger.get():
                log.debug("gmsh: %s", message)
            gmsh.logger.stop()
        finally:
            gmsh.finalize()
