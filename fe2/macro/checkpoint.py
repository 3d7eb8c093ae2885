"""Checkpoints of a macro study: all it needs to continue after a converged load step.

Layout, in ``OUTPUT/checkpoints/``::

    step-000004/          a complete checkpoint, written after load step 4
        meta.json         step, time, amplitudes, history rows, the study it belongs to
        rank-00000.pkl    one part per writing rank: for each cell it owned, by original
        ...               (input) cell index, the displacement at the cell dofs, the cell's
                          node coordinates, the committed states of its quadrature points
                          and their committed stresses and tangents
    .step-000005.tmp/     a checkpoint being written: never read

Atomic: every rank writes and fsyncs its part into the temporary directory; after all parts
exist, rank 0 writes meta.json and renames the directory to ``step-NNNNNN`` (an atomic
rename), and only then removes the older checkpoints. A ``step-*`` directory is therefore
complete, and a job killed at any moment leaves the previous checkpoint valid. A write that
fails (full or read-only file system) removes its temporary directory and raises
:class:`~fe2.errors.ResourceError` on every rank; the previous checkpoint stays valid.

The study a checkpoint belongs to (:func:`study_identity`) is the config without the sections a
restart may change, with every input file (meshes) replaced by the SHA-256 of its content: a
mesh file replaced at the same path is another study, a study directory moved elsewhere is
the same one.

Restore works on any number of ranks (N-to-M): every rank reads every part and keeps the
cells it holds now, matched by original cell index -- the same for any partition of the same
mesh file -- and checked against the saved node coordinates. A cell keeps its node order
under any partition, so its quadrature points, and the states stored for them, are the same.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
from mpi4py import MPI

import fe2
from fe2.errors import InputError, ResourceError, os_error_cause
from fe2.macro.problem import MacroProblem

log = logging.getLogger(__name__)

#: 3: pseudo-time (times, amplitudes) instead of load factors, committed stresses and tangents
#: in the parts, and input files identified by content (2 had either the one or the other;
#: 1: load factors, input files by absolute path).
FORMAT = 3
DIRECTORY = "checkpoints"


def _files(node, found: dict) -> dict:
    """Every Path value of a validated config (recursively), as str -> Path."""
    from pydantic import BaseModel

    if isinstance(node, Path):
        found[str(node)] = node
    elif isinstance(node, BaseModel):
        for name in type(node).model_fields:
            _files(getattr(node, name), found)
    elif isinstance(node, dict):
        for value in node.values():
            _files(value, found)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _files(value, found)
    return found


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def study_identity(config, comm: MPI.Comm) -> dict:
    """``config.study_identity()`` with each input file path replaced by
    ``{"sha256": ..., "name": ...}`` of its content (read on rank 0; collective)."""
    identity = config.study_identity()
    paths = _files(config, {})
    digests, error = {}, ""
    if comm.rank == 0:
        try:
            digests = {key: {"sha256": _sha256(path), "name": path.name} for key, path in paths.items()}
        except OSError as exc:
            error = f"cannot read {exc.filename}: {exc.strerror}"
    digests, error = comm.bcast((digests, error))
    if error:
        raise InputError(error)

    def replace(node):
        if isinstance(node, str) and node in digests:
            return digests[node]
        if isinstance(node, dict):
            return {k: replace(v) for k, v in node.items()}
        if isinstance(node, list):
            return [replace(v) for v in node]
        return node

    return replace(identity)


def checkpoint_root(output: Path) -> Path:
    return Path(output) / DIRECTORY


def latest_checkpoint(output: Path) -> Path | None:
    """The newest complete checkpoint in an output directory, or None."""
    root = checkpoint_root(output)
    if not root.is_dir():
        return None
    complete = sorted(p for p in root.glob("step-*") if p.is_dir() and (p / "meta.json").is_file())
    return complete[-1] if complete else None


def _cell_data(problem: MacroProblem) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For the local cells (owned, then ghosts): original cell indices (c,), displacement dofs
    (c, dofs per cell x block size) and node coordinates (c, nodes, gdim)."""
    mesh = problem.mesh
    imap = mesh.topology.index_map(mesh.topology.dim)
    cells = imap.size_local + imap.num_ghosts
    original = np.asarray(mesh.topology.original_cell_index[:cells], dtype=np.int64)
    bs = problem.V.dofmap.index_map_bs
    cell_dofs = problem.V.dofmap.list[:cells]
    dofs = (cell_dofs[:, :, None] * bs + np.arange(bs)).reshape(cells, cell_dofs.shape[1] * bs)
    nodes = mesh.geometry.x[mesh.geometry.dofmaps[0][:cells]][..., : mesh.geometry.dim]
    return original, dofs, nodes


def _write_bytes(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_checkpoint(problem: MacroProblem, output: Path, meta: dict) -> Path | None:
    """Write the committed state after load step ``meta['step']`` (collective).

    Returns the checkpoint directory.

    Raises:
        ResourceError: it could not be written (on every rank); its temporary directory is
            removed and the previous checkpoint stays the valid one.
    """
    comm = problem.comm
    root = checkpoint_root(output)
    name = f"step-{meta['step']:06d}"
    final, tmp = root / name, root / f".{name}.tmp"
    original, dofs, nodes = _cell_data(problem)
    owned = problem.forms.num_cells
    part = {
        "cells": original[:owned],
        "u": problem.u.x.array[dofs[:owned]],
        "nodes": nodes[:owned],
        "states": problem.points.committed_states(),  # collective for balanced pools
        # the committed response: a restarted step starts from it as the uninterrupted one
        "stress": problem.forms.stress_qp.copy(),
        "tangent": problem.forms.tangent_qp.copy(),
    }
    error = ""
    if comm.rank == 0:
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        except OSError as exc:
            error = os_error_cause(exc)
    error = comm.bcast(error)
    if not error:
        try:
            _write_bytes(tmp / f"rank-{comm.rank:05d}.pkl", pickle.dumps(part, protocol=pickle.HIGHEST_PROTOCOL))
        except OSError as exc:
            error = f"rank {comm.rank}: {os_error_cause(exc)}"
        error = next((e for e in comm.allgather(error) if e), "")
    if not error and comm.rank == 0:
        try:
            body = {"format": FORMAT, "fe2_version": fe2.__version__, "ranks": comm.size, **meta}
            _write_bytes(tmp / "meta.json", json.dumps(body, indent=1).encode())
            if final.exists():  # the same step again (a restart redid it): replace
                shutil.rmtree(final)
            os.rename(tmp, final)
            _fsync_directory(root)
            for old in root.glob("step-*"):
                if old != final:
                    shutil.rmtree(old, ignore_errors=True)
        except OSError as exc:
            error = os_error_cause(exc)
    error = comm.bcast(error)
    if error:
        if comm.rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)
        comm.barrier()
        raise ResourceError(f"cannot write the checkpoint {final} ({error}); the previous one stays valid")
    return final


def read_meta(path: Path, comm: MPI.Comm) -> dict:
    """The meta data of a checkpoint, read on rank 0 (collective)."""
    meta, error = None, ""
    if comm.rank == 0:
        try:
            meta = json.loads((path / "meta.json").read_text())
        except (OSError, ValueError) as exc:
            error = f"{path}: unreadable checkpoint ({exc})"
    meta, error = comm.bcast((meta, error))
    if error:
        raise InputError(error)
    if meta.get("format") != FORMAT:
        raise InputError(f"{path}: checkpoint format {meta.get('format')}, this fe2 reads format {FORMAT}")
    return meta


def restore_checkpoint(problem: MacroProblem, path: Path, meta: dict) -> None:
    """Set the displacement and the committed point states from a checkpoint (collective).

    Raises:
        InputError: the checkpoint does not belong to this mesh and discretisation.
    """
    comm, forms = problem.comm, problem.forms
    original, dofs, nodes = _cell_data(problem)
    owned, nq = forms.num_cells, forms.num_qp
    found = np.zeros(len(original), dtype=bool)
    states: list = [None] * problem.num_points
    u = problem.u.x.array
    mismatch = ""
    extent = comm.allreduce(float(np.abs(problem.mesh.geometry.x).max()) if len(nodes) else 0.0, op=MPI.MAX)
    for rank in range(meta["ranks"]):
        file = path / f"rank-{rank:05d}.pkl"
        try:
            part = pickle.loads(file.read_bytes())
        except (OSError, pickle.UnpicklingError, EOFError) as exc:
            mismatch = f"{file}: unreadable ({exc})"
            break
        if part["u"].shape[1:] != dofs.shape[1:] or part["nodes"].shape[1:] != nodes.shape[1:]:
            mismatch = "the cells have another number of displacement dofs or nodes"
            break
        _, theirs, mine = np.intersect1d(part["cells"], original, assume_unique=True, return_indices=True)
        if not np.allclose(nodes[mine], part["nodes"][theirs], rtol=0, atol=1e-10 * max(extent, 1.0)):
            mismatch = "cells with the same index are at other coordinates (another mesh)"
            break
        u[dofs[mine]] = part["u"][theirs]
        found[mine] = True
        for cell, saved in zip(mine, theirs):
            if cell < owned:
                states[cell * nq : (cell + 1) * nq] = part["states"][saved * nq : (saved + 1) * nq]
                forms.stress_qp[cell] = part["stress"][saved]
                forms.tangent_qp[cell] = part["tangent"][saved]
    if not mismatch and not found.all():
        mismatch = f"{np.count_nonzero(~found)} cells of the mesh are not in it (another mesh)"
    mismatch = next((m for m in comm.allgather(mismatch) if m), "")
    if mismatch:
        raise InputError(f"checkpoint {path} does not match this study's mesh: {mismatch}")
    problem.u.x.scatter_forward()
    problem.points.restore_states(states)
    problem.set_committed(responses=True)


def check_compatible(meta: dict, study: dict, times: list[float], path: Path,
                     amplitudes: dict[str, list[list[float]]]) -> None:
    """A checkpoint continues a study only if everything but the restart-safe sections agrees,
    its completed times start the new list of times, and every amplitude it used is the same
    up to the restart time (amplitudes may change after it)."""
    from fe2.macro.loading import amplitude_from_table

    saved = meta["study"]
    differ = sorted(k for k in set(saved) | set(study) if saved.get(k) != study.get(k))
    if differ:
        raise InputError(
            f"checkpoint {path} belongs to another study: {', '.join(differ)} differ "
            f"(only steps, end_time, amplitudes, parallel, output, checkpoint and limits may change "
            f"on a restart; input files are compared by content)"
        )
    done = meta["completed_times"]
    if len(done) > len(times) or not np.allclose(done, times[: len(done)], rtol=1e-12, atol=0):
        raise InputError(
            f"steps: the checkpoint {path} has reached the times {done}, which do not start "
            f"this study's times {times}"
        )
    for name, table in meta["amplitudes"].items():
        before, now = amplitude_from_table(name, table), amplitude_from_table(name, amplitudes.get(name, table))
        if not before.agrees_until(now, meta["time"]):
            key = f"amplitudes.{name}" if name != "ramp" else "end_time"
            raise InputError(
                f"{key}: the amplitude {name!r} differs from the checkpoint's before its time "
                f"t = {meta['time']:g} (an amplitude may change only after the restart time)"
            )
