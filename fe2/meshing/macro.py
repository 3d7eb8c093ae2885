"""Macro meshes for the FE² macro problem: read a file, or generate a specimen and read it.

* :func:`read_macro_mesh`: gmsh ``.msh`` (:mod:`fe2.meshing.gmsh_reader`) or any format
  meshio reads with named sets -- Abaqus ``.inp``, Medit ``.mesh``, VTK ``.vtu``/``.vtk``,
  XDMF ``.xdmf``, ... (:mod:`fe2.meshing.meshio_reader`) -- into a distributed
  :class:`~fe2.meshing.macro_mesh.MacroMesh` with cell tags and named boundaries;
* :func:`generate_macro_mesh`: a specimen of :mod:`fe2.meshing.macro_specs`, generated with
  gmsh on one rank (:mod:`fe2.meshing.macro_gmsh`) and read on all.

The specs are re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from fe2.meshing.macro_mesh import MacroMesh
from fe2.meshing.macro_specs import (
    DOMAIN_NAME,
    DOMAIN_TAG,
    MACRO_MESH_SPECS,
    BoxSpec,
    LShapeSpec,
    MacroMeshSpec,
    NotchedBarSpec,
    PlateWithHoleSpec,
    RectangleSpec,
    parse_macro_mesh_spec,
)

if TYPE_CHECKING:
    from mpi4py import MPI

__all__ = [
    "DOMAIN_NAME",
    "DOMAIN_TAG",
    "MACRO_MESH_SPECS",
    "BoxSpec",
    "LShapeSpec",
    "MacroMesh",
    "MacroMeshSpec",
    "NotchedBarSpec",
    "PlateWithHoleSpec",
    "RectangleSpec",
    "generate_macro_mesh",
    "parse_macro_mesh_spec",
    "read_macro_mesh",
]

def read_macro_mesh(
    path: str | Path, comm: MPI.Comm, *, rank: int = 0, partitioner: Callable | None = None
) -> MacroMesh:
    """Read a macro mesh file on ``comm`` (collective); ``rank`` parses and distributes it.

    ``.msh``: the gmsh reader (physical groups and names); any other suffix: meshio (named
    element sets, node sets, or integer cell data). DOLFINx's default partitioner unless
    ``partitioner`` is given.

    Raises:
        FileNotFoundError: the file does not exist (raised on every rank).
        ValueError: the file is not a usable mesh (one first-order cell type), on every rank.
    """
    if Path(path).suffix.lower() == ".msh":
        from fe2.meshing.gmsh_reader import read_gmsh_mesh

        return read_gmsh_mesh(path, comm, rank=rank, partitioner=partitioner)
    from fe2.meshing.meshio_reader import read_meshio_mesh

    return read_meshio_mesh(path, comm, rank=rank, partitioner=partitioner)


def generate_macro_mesh(
    spec: BaseModel | Mapping[str, Any],
    comm: MPI.Comm,
    *,
    directory: str | Path,
    filename: str | None = None,
    rank: int = 0,
) -> MacroMesh:
    """Generate the macro mesh of ``spec`` on ``rank`` and read it on all of ``comm``.

    Collective. ``spec`` is a macro spec model or a mapping with a ``type`` key. The file
    is written to ``directory / filename`` as given on ``rank`` (default name
    ``<type>-<hash>.msh``, see :func:`fe2.meshing.io.mesh_file_name`); the other ranks
    wait, then all read it. A generation error is raised on every rank (RuntimeError).
    """
    from fe2.meshing.io import generate_on_rank

    if not isinstance(spec, BaseModel):
        spec = parse_macro_mesh_spec(spec)
    path = generate_on_rank(spec, comm, directory=directory, filename=filename, rank=rank)
    return read_macro_mesh(path, comm, rank=rank)
