"""Read RVE meshes (gmsh MSH) into DOLFINx, and generate-then-read in parallel."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import dolfinx.mesh
from dolfinx.io.gmsh import model_to_mesh
from mpi4py import MPI
from pydantic import BaseModel

from fe2.meshing.session import gmsh_session

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


def _check_file(path: Path) -> str:
    """Cheap checks before gmsh parses ``path``; return an error message or ''."""
    if not path.is_file():
        return f"mesh file not found: {path}"
    with path.open("rb") as fh:
        head = fh.read(64)
    if not head.lstrip().startswith(b"$MeshFormat"):
        return f"not a gmsh .msh file (no $MeshFormat header): {path}"
    return ""


def _open(gmsh: ModuleType, path: Path) -> tuple[int, str]:
    """Load ``path`` into the current gmsh model; return (cell dimension, error message)."""
    if error := _check_file(path):
        return -1, error
    try:
        gmsh.open(str(path))
    except Exception as exc:  # gmsh raises a bare Exception on parse errors
        return -1, f"could not read gmsh mesh {path}: {exc}"
    dim = gmsh.model.getDimension()
    if dim not in (2, 3):
        return -1, f"gmsh file {path} holds no 2D or 3D mesh (dimension {dim})"
    if not any(d == dim for d, _ in gmsh.model.getPhysicalGroups()):
        return -1, f"gmsh file {path} has no physical groups of dimension {dim} (cell tags)"
    return dim, ""


def read_rve_mesh(
    path: str | Path, comm: MPI.Comm, *, rank: int = 0, partitioner: Callable | None = None
) -> RveMesh:
    """Read a gmsh RVE mesh on ``comm`` (collective); ``rank`` parses it and distributes it.

    The geometric dimension is the cell dimension of the file (2D meshes get 2
    coordinates). This is ``dolfinx.io.gmsh.read_from_msh`` with ``gdim`` found from
    the file, run inside a silent :func:`~fe2.meshing.session.gmsh_session` so that the
    file is parsed once and gmsh is finalized even on errors. ``partitioner`` is passed
    to DOLFINx (default: its cell partitioner without ghosts).

    Raises
    ------
    FileNotFoundError
        If the file does not exist (on the reading rank).
    ValueError
        If the file is not a gmsh mesh with cell physical groups.
    """
    path = Path(path)
    if comm.rank != rank:
        dim, error = comm.bcast(None, root=rank)
        if error:
            _raise(error)
        data = model_to_mesh(None, comm, rank, gdim=dim, partitioner=partitioner)
    else:
        with ExitStack() as stack:
            try:
                gmsh = stack.enter_context(gmsh_session(model="read"))
                probe = _open(gmsh, path)
            except RuntimeError as exc:  # gmsh already initialized by the caller
                probe = (-1, f"cannot read {path}: {exc}")
            dim, error = comm.bcast(probe, root=rank)
            if error:
                _raise(error)
            data = model_to_mesh(gmsh.model, comm, rank, gdim=dim, partitioner=partitioner)
    if data.cell_tags is None:
        raise ValueError(f"gmsh file {path} has no cell tags")
    names = {int(g.tag): name for name, g in data.physical_groups.items() if g.dim == dim}
    log.debug("read %s: dim %d, phases %s", path, dim, names)
    return RveMesh(mesh=data.mesh, cell_tags=data.cell_tags, names=names, dim=dim)


def _raise(error: str) -> None:
    if error.startswith("mesh file not found"):
        raise FileNotFoundError(error)
    if error.startswith("cannot read"):
        raise RuntimeError(error)
    raise ValueError(error)


def mesh_file_name(spec: BaseModel) -> str:
    """Deterministic file name ``<type>-<hash of parameters>.msh`` for a spec."""
    digest = hashlib.sha1(spec.model_dump_json().encode()).hexdigest()[:10]
    return f"{spec.type}-{digest}.msh"  # type: ignore[attr-defined]


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
    comm.barrier()
    if error:
        raise RuntimeError(f"mesh generation failed on rank {rank}: {error}")
    return read_rve_mesh(path, comm, rank=rank)
