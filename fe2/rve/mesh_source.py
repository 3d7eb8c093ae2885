"""The RVE mesh of a study: read or generated (once, on rank 0), on every rank or shared out
over the ranks of a group; phase tags checked."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from mpi4py import MPI

from fe2.errors import InputError, collectively
from fe2.meshing.io import RveMesh, read_rve_mesh

if TYPE_CHECKING:
    from fe2.config.rve import MeshSource

log = logging.getLogger(__name__)


def load_rve_mesh(source: MeshSource, comm: MPI.Comm, *, key: str = "mesh",
                  group: MPI.Comm = MPI.COMM_SELF, content: bytes | None = None) -> tuple[RveMesh, bytes | None]:
    """The RVE mesh on every rank, on ``group`` (collective on ``comm``): ``MPI.COMM_SELF``
    (a whole copy per rank), or a sub-communicator of ``comm`` over which DOLFINx distributes
    it (the group's first rank reads the file).

    A generated mesh is made once, on rank 0, and its file content broadcast (ranks may not
    share a file system). Returns the mesh and, if generated, the .msh file content (pass it
    back as ``content`` to read the same generated mesh again without generating it).
    """
    errors = (InputError,)

    def read(path: Path) -> RveMesh:
        try:
            return read_rve_mesh(path, group)
        except (ValueError, OSError) as exc:
            raise InputError(f"{key}.file: {exc}") from None

    def generate(path: Path) -> bytes | None:
        if comm.rank != 0:
            return None
        try:
            return source.generate.generate(path).read_bytes()
        except (ValueError, OSError, RuntimeError) as exc:
            raise InputError(f"{key}.generate: mesh generation failed: {exc}") from None

    if source.file is not None:
        return collectively(comm, lambda: read(source.file), errors=errors), None
    with tempfile.TemporaryDirectory(prefix="fe2-") as tmp:
        path = Path(tmp) / "rve.msh"
        if comm.rank == 0:
            log.info("generating the RVE mesh (%s)", source.generate.type)
        if content is None:
            content = comm.bcast(collectively(comm, lambda: generate(path), errors=errors))
            if comm.rank != 0:
                path.write_bytes(content)
        else:
            path.write_bytes(content)
        return collectively(comm, lambda: read(path), errors=errors), content


def check_phase_tags(phases: dict, rve_mesh: RveMesh, *, key: str = "phases") -> None:
    """Every phase tag is a cell tag of the mesh and every cell tag has a phase."""
    present = sorted(set(np.unique(rve_mesh.cell_tags.values).tolist()))
    for name, phase in phases.items():
        if phase.tag not in present:
            raise InputError(
                f"{key}.{name}.tag: tag {phase.tag} is not a cell tag of the mesh "
                f"(the mesh has {present})"
            )
    tags = {phase.tag for phase in phases.values()}
    unassigned = [t for t in present if t not in tags]
    if unassigned:
        names = [rve_mesh.names.get(t, "?") for t in unassigned]
        raise InputError(
            f"{key}: the mesh cell tags {unassigned} ({', '.join(names)}) belong to no phase"
        )
