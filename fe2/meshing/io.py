"""Read RVE meshes (gmsh MSH) into DOLFINx, and generate-then-read in parallel."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import dolfinx.mesh
from mpi4py import MPI
from pydantic import BaseModel


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

    The reader of :func:`fe2.meshing.macro.read_macro_mesh` (file checks on ``rank`` in a
    silent gmsh session, errors raised on every rank, ``dolfinx.io.gmsh.model_to_mesh`` with
    the geometric dimension of the file), keeping the cells and the phase names.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file is not a gmsh mesh with cell physical groups of one cell type.
    """
    from fe2.meshing.macro import read_macro_mesh

    mesh = read_macro_mesh(path, comm, rank=rank, partitioner=partitioner)
    names = {tag: name for name, tag in mesh.subdomains.items()}
    log.debug("read %s: dim %d, phases %s", path, mesh.dim, names)
    return RveMesh(mesh=mesh.mesh, cell_tags=mesh.cell_tags, names=names, dim=mesh.dim)


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
