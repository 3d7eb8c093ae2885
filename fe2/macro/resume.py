"""Continuing a `fe2 run` in its output directory: which checkpoint to resume (read only), and
what to clear or write once every check has passed.

Nothing here writes before :func:`start_writing`: a restart refused (another study, another
mesh) or one with no step left leaves every file as it was.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from mpi4py import MPI

from fe2.config.run import RunConfig
from fe2.errors import ResourceError, collectively, os_error_message
from fe2.macro.checkpoint import check_compatible, checkpoint_root, latest_checkpoint, read_meta, restore_checkpoint
from fe2.macro.problem import MacroProblem
from fe2.rve.summary import RVE_MESH_FILE

log = logging.getLogger(__name__)


def checkpoint_to_resume(config: RunConfig, problem: MacroProblem, output: Path, restart: bool,
                          identity: dict) -> dict | None:
    """With ``restart``, check the newest complete checkpoint in ``output`` against the study,
    restore it and return its meta data; else None. Reads only (collective)."""
    comm = problem.comm
    if not restart:
        return None
    path = comm.bcast(latest_checkpoint(output) if comm.rank == 0 else None)
    if path is None:
        if comm.rank == 0:
            log.info("restart: no checkpoint in %s; starting from the beginning", output)
        return None
    meta = read_meta(path, comm)
    check_compatible(meta, identity, config.times, path, config.amplitude_tables())
    restore_checkpoint(problem, path, meta)
    if comm.rank == 0:
        log.info("restart: continuing after step %d (t = %.6g) from %s, written by %d rank(s)",
                 meta["step"], meta["time"], path, meta["ranks"])
    return meta


def start_writing(output: Path, comm: MPI.Comm, *, fresh: bool, mesh_file: bytes | None,
                  rve_mesh_file: bytes | None = None) -> None:
    """All checks passed: clear what an earlier run left (a fresh start) and write the
    generated macro mesh (``macro.msh``) and RVE mesh (``rve.msh``) (collective; file system
    errors -> ResourceError on every rank)."""
    meshes = {"macro.msh": mesh_file, RVE_MESH_FILE: rve_mesh_file}

    def write() -> None:
        if comm.rank != 0:
            return
        try:
            output.mkdir(parents=True, exist_ok=True)
            if fresh:
                shutil.rmtree(checkpoint_root(output), ignore_errors=True)
                for name in ("summary.json", "history.csv"):  # of an earlier run (--overwrite)
                    (output / name).unlink(missing_ok=True)
                shutil.rmtree(output / "quadrature_fields", ignore_errors=True)  # written only if asked for
                (output / "quadrature_fields.xdmf").unlink(missing_ok=True)
                for stale in [*output.glob("*_from_step_*"), *output.glob(".*.tmp")]:
                    shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
            for name, content in meshes.items():
                if content is not None and (fresh or not (output / name).is_file()):
                    tmp = output / f".{name}.tmp"
                    tmp.write_bytes(content)
                    os.replace(tmp, output / name)
        except OSError as exc:
            for name in meshes:
                (output / f".{name}.tmp").unlink(missing_ok=True)
            raise ResourceError(f"cannot write to {output}: {os_error_message(exc)}") from None

    collectively(comm, write, errors=(ResourceError,))


def existing_summary(output: Path, comm: MPI.Comm, fallback: dict) -> dict:
    """The summary.json of the finished run (rank 0's, broadcast), or ``fallback``."""
    summary = None
    if comm.rank == 0:
        try:
            summary = json.loads((output / "summary.json").read_text())
        except (OSError, ValueError):
            summary = None
    summary = comm.bcast(summary)
    return {**fallback, **(summary or {}), "nothing_to_do": True}
