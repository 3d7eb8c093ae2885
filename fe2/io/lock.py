"""A lock on an output directory while a run uses it: ``DIR/.fe2.lock``.

The lock file (JSON) names the host, the process id, the Slurm job id (if any) and the start
time of the run holding it; rank 0 creates it exclusively (``O_CREAT | O_EXCL``). A second run
or a ``--restart`` on a locked directory stops with an input error (exit code 2) naming the
holder. A lock is stale, and taken over with a warning, when its process is gone: the same
host and no such process, or the same Slurm job (a requeued job, possibly on another node),
or a lock file that is empty or unreadable (the holder died while writing it).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from pathlib import Path

from mpi4py import MPI

from fe2.errors import InputError, ResourceError, collectively, os_error_cause

log = logging.getLogger(__name__)

LOCK_NAME = ".fe2.lock"


def _alive(pid: int) -> bool:
    """Whether a process of this host with that id runs (and is not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


class OutputLock:
    """The lock of ``directory`` for this run (collective on ``comm``; rank 0 acts)."""

    def __init__(self, directory: Path, comm: MPI.Comm):
        self.directory, self.comm = Path(directory), comm
        self.path = self.directory / LOCK_NAME
        self.token = uuid.uuid4().hex
        self.created_directory = False
        self.held = False

    def _record(self) -> dict:
        return {
            "host": socket.gethostname(), "pid": os.getpid(), "token": self.token,
            "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        }

    def _stale(self, holder: dict | None) -> bool:
        if holder is None:
            return True
        job = os.environ.get("SLURM_JOB_ID")
        if job and holder.get("slurm_job_id") == job and holder.get("pid") != os.getpid():
            return True  # this job, requeued: its earlier run is gone
        return holder.get("host") == socket.gethostname() and not _alive(int(holder.get("pid", -1)))

    def _read(self) -> dict | None:
        try:
            holder = json.loads(self.path.read_text())
            return holder if isinstance(holder, dict) else None
        except (OSError, ValueError):
            return None

    def _acquire_here(self) -> None:
        directory = self.directory
        if directory.exists() and not directory.is_dir():
            raise InputError(f"--output {directory}: exists and is not a directory")
        try:
            if not directory.exists():
                directory.mkdir(parents=True)
                self.created_directory = True
            record = json.dumps(self._record())
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._read()
                if not self._stale(holder):
                    raise InputError(
                        f"{directory} is in use by another fe2 run (process {holder.get('pid')} on "
                        f"{holder.get('host')}, since {holder.get('started')}); wait for it to end, or "
                        f"delete {self.path} if that run is no longer running"
                    ) from None
                log.warning("taking over the stale lock %s (%s)", self.path,
                            "unreadable" if holder is None else f"process {holder.get('pid')} on {holder.get('host')} is gone")
                tmp = self.path.with_name(f"{LOCK_NAME}.{self.token}.tmp")
                tmp.write_text(record)
                os.replace(tmp, self.path)
            else:
                with os.fdopen(fd, "w") as fh:
                    fh.write(record)
            if (self._read() or {}).get("token") != self.token:  # another run took it meanwhile
                raise InputError(f"{directory} is in use by another fe2 run that started just now")
        except OSError as exc:
            raise ResourceError(f"cannot use the output directory {directory}: {os_error_cause(exc)}") from None

    def acquire(self) -> None:
        """Take the lock (collective). Raises InputError if another run holds it, ResourceError
        if the directory cannot be created or written."""
        collectively(self.comm, lambda: self._acquire_here() if self.comm.rank == 0 else None,
                     errors=(InputError, ResourceError))
        self.held = True

    def release(self, *, remove_empty_directory: bool = False) -> None:
        """Remove the lock if this run holds it (rank 0); optionally the directory this run
        created, if nothing else is in it (a run refused before writing anything). Collective:
        every rank returns after the removal."""
        if self.held and self.comm.rank == 0:
            try:
                if (self._read() or {}).get("token") == self.token:
                    self.path.unlink()
                if remove_empty_directory and self.created_directory and not any(self.directory.iterdir()):
                    self.directory.rmdir()
            except OSError as exc:
                log.warning("could not remove the lock %s: %s", self.path, exc)
        self.held = False
        self.comm.barrier()
