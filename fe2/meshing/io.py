"""Read RVE meshes (gmsh MSH) into DOLFINx, and generate-then-read in parallel."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dolfinx.mesh
from mpi4py import MPI
from pydantic import BaseModel

from fe2.meshing.gmsh_reader import read_gmsh_mesh

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RveMesh:
    """A DOLFINx RVE mesh with its phase markers.

    Attributes
    ----------
    mesh : dolfinx.mesh.Mesh
        Linear simplex mesh of [0, L]^dim; geometry has ``dim`` components.
    cell_tags : dolfinx.mesh.MeshTags
        Physical tag of every cell (phase id).
    names : dict[int, str]
        Physical tag -> physical name from the file (e.g. ``{1: "matrix", 2: "inclusion"}``).
    dim : int
        Geometric = topological dimension (2 or 3).
    """

    mesh: dolfinx.mesh.Mesh
    cell_tags: dolfinx.mesh.MeshTags
    names: dict[int, str]
    dim: int


def read_rve_mesh(
    path: str | Path, comm: MPI.Comm, *, rank: int = 0, partitioner: Callable | None = None
) -> RveMesh:
    """Read a gmsh RVE mesh on ``comm`` (collective); ``rank`` parses it and distributes it.

    :func:`fe2.meshing.gmsh_reader.read_gmsh_mesh` (file checks on ``rank`` in a silent gmsh
    session, errors raised on every rank, ``dolfinx.io.gmsh.model_to_mesh`` with the geometric
    dimension of the file), keeping the cells and the phase names.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file is not a gmsh mesh with cell physical groups of one cell type.
    """
    mesh = read_gmsh_mesh(path, comm, rank=rank, partitioner=partitioner)
    names = {tag: name for name, tag in mesh.subdomains.items()}
    log.debug("read %s: dim %d, phases %s", path, mesh.dim, names)
    return RveMesh(mesh=mesh.mesh, cell_tags=mesh.cell_tags, names=names, dim=mesh.dim)


def mesh_file_name(spec: BaseModel) -> str:
    """Deterministic file name ``<type>-<hash of parameters>.msh`` for a spec."""
    digest = hashlib.sha1(spec.model_dump_json().encode()).hexdigest()[:10]
    return f"{spec.type}-{digest}.msh"  # type: ignore[attr-defined]


def generate_on_rank(
    spec: BaseModel, comm: MPI.Comm, *, directory: str | Path, filename: str | None = None,
    rank: int = 0,
) -> Path:
    """Write the mesh of ``spec`` on ``rank`` into its ``directory``; the path on every rank.

    Collective; a generation error on ``rank`` is raised on every rank (RuntimeError).
    """
    path: Path | None = None
    error = ""
    if comm.rank == rank:
        try:
            target = Path(directory) / (filename or mesh_file_name(spec))
            path = spec.generate(target)  # type: ignore[attr-defined]
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.exception("mesh generation failed")
    path, error = comm.bcast((path, error), root=rank)
    if error:
        raise RuntimeError(f"mesh generation failed on rank {rank}: {error}")
    return path


def generate_rve_mesh(
    spec: BaseModel | Mapping[str, Any],
    comm: MPI.Comm,
    *,
    directory: str | Path,
    filename: str | None = None,
    rank: int = 0,
) -> RveMesh:
    """Generate the mesh of ``spec`` on ``rank`` and read it on all of ``comm`` (collective).

    ``spec`` is a spec model or a mapping with a ``type`` key. The file is written to
    ``directory / filename`` as given on ``rank`` (default name: :func:`mesh_file_name`);
    the other ranks wait, then all read it. A generation error is raised on every rank.
    """
    from fe2.meshing.specs import parse_mesh_spec

    if not isinstance(spec, BaseModel):
        spec = parse_mesh_spec(spec)
    path = generate_on_rank(spec, comm, directory=directory, filename=filename, rank=rank)
    return read_rve_mesh(path, comm, rank=rank)
