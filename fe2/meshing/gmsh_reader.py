"""Reading gmsh ``.msh`` files into distributed DOLFINx meshes (macro specimens and RVEs).

The file is checked and parsed on one rank in a silent gmsh session; errors found there are
raised on every rank (FileNotFoundError, ValueError, RuntimeError), so that no rank waits in
a collective call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from mpi4py import MPI

from fe2.meshing.macro_mesh import MacroMesh

log = logging.getLogger(__name__)

# gmsh element types of first-order cells: 3-node triangle, 4-node quadrangle,
# 4-node tetrahedron, 8-node hexahedron
_CELL_TYPES = {2: {2: "triangle", 3: "quadrilateral"}, 3: {4: "tetrahedron", 5: "hexahedron"}}


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


def _raise(error: str) -> None:
    if error.startswith("mesh file not found"):
        raise FileNotFoundError(error)
    if error.startswith("cannot read"):
        raise RuntimeError(error)
    raise ValueError(error)


@dataclass(frozen=True)
class _Probe:
    """What the reading rank learns from the file before DOLFINx distributes it."""

    dim: int = -1
    error: str = ""
    boundaries: dict[str, int] | None = None
    subdomains: dict[str, int] | None = None


def _geometry_defect(gmsh: Any, dim: int, cell_type: int) -> str:
    """Inverted, degenerate or tangled cells of the loaded model ('' if none); see
    :mod:`fe2.meshing.checks`."""
    from fe2.meshing.checks import mesh_defects

    node_tags, coords, _ = gmsh.model.mesh.getNodes()
    order = np.argsort(node_tags)
    cell_tags, cell_nodes = gmsh.model.mesh.getElementsByType(cell_type)
    cells = order[np.searchsorted(node_tags, cell_nodes, sorter=order)].reshape(len(cell_tags), -1)
    x = np.asarray(coords, dtype=float).reshape(-1, 3)[:, :dim]
    return mesh_defects(x, cells, _CELL_TYPES[dim][cell_type], ids=np.asarray(cell_tags))


def _probe(gmsh: Any, path: Path) -> _Probe:
    """Open ``path`` in gmsh (RVE reader checks) and check it is a usable macro mesh."""
    dim, error = _open(gmsh, path)
    if error:
        return _Probe(error=error)
    types, _, _ = gmsh.model.mesh.getElements(dim)
    types = [int(t) for t in types]
    allowed = _CELL_TYPES[dim]
    if len(types) != 1:
        return _Probe(error=f"gmsh file {path} mixes cell types {types}; DOLFINx needs one "
                      f"first-order cell type ({', '.join(allowed.values())})")
    if types[0] not in allowed:
        return _Probe(error=f"gmsh file {path} has cells of gmsh type {types[0]}; only first-"
                      f"order {', '.join(allowed.values())} cells are supported")
    if defect := _geometry_defect(gmsh, dim, types[0]):
        return _Probe(error=f"gmsh file {path}: {defect}")
    groups: dict[int, dict[str, int]] = {dim: {}, dim - 1: {}}
    for d, tag in gmsh.model.getPhysicalGroups():
        if d not in groups:
            continue
        name = gmsh.model.getPhysicalName(d, tag) or str(tag)
        if name in groups[d]:
            return _Probe(error=f"gmsh file {path}: physical name {name!r} names the "
                          f"{d}D groups {groups[d][name]} and {tag}")
        groups[d][name] = int(tag)
    return _Probe(dim=dim, boundaries=groups[dim - 1], subdomains=groups[dim])


def read_gmsh_mesh(
    path: str | Path, comm: MPI.Comm, *, rank: int = 0, partitioner: Callable | None = None
) -> MacroMesh:
    """Read a gmsh mesh on ``comm`` (collective); ``rank`` parses and distributes it.

    File checks and a silent gmsh session on ``rank`` only, then
    ``dolfinx.io.gmsh.model_to_mesh`` with DOLFINx's default partitioner unless
    ``partitioner`` is given; the cell tags with their physical names, the facet tags with
    the boundary names. The geometric dimension is the cell dimension of the file. A mesh
    without boundary groups gets empty facet tags.

    Raises
    ------
    FileNotFoundError
        If the file does not exist (on the reading rank); raised on every rank.
    ValueError
        If the file is not a gmsh mesh with cell physical groups and one first-order
        cell type, or DOLFINx cannot build a mesh from it; raised on every rank.
    """
    import dolfinx.mesh
    from dolfinx.io.gmsh import model_to_mesh

    from fe2.meshing.session import gmsh_session

    path = Path(path)

    def build(model: Any, probe: _Probe):
        try:
            return model_to_mesh(model, comm, rank, gdim=probe.dim, partitioner=partitioner)
        except RuntimeError as exc:  # raised on every rank (model_to_mesh broadcasts)
            raise ValueError(f"cannot build a DOLFINx mesh from {path}: {exc}") from exc

    if comm.rank != rank:
        probe = comm.bcast(None, root=rank)
        if probe.error:
            _raise(probe.error)
        data = build(None, probe)
    else:
        try:
            with gmsh_session(model="read") as gmsh:
                probe = _probe(gmsh, path)
                comm.bcast(probe, root=rank)
                if probe.error:
                    _raise(probe.error)
                data = build(gmsh.model, probe)
        except RuntimeError as exc:  # gmsh already initialized by the caller
            if "already initialized" not in str(exc):
                raise
            probe = _Probe(error=f"cannot read {path}: {exc}")
            comm.bcast(probe, root=rank)
            _raise(probe.error)
    dim = probe.dim
    if data.cell_tags is None:
        raise ValueError(f"gmsh file {path} has no cell tags")
    facet_tags = data.facet_tags
    if facet_tags is None:
        empty = np.empty(0, dtype=np.int32)
        facet_tags = dolfinx.mesh.meshtags(data.mesh, dim - 1, empty, empty)
    boundaries = dict(probe.boundaries or {})
    log.debug("read %s: dim %d, boundaries %s", path, dim, boundaries)
    return MacroMesh(mesh=data.mesh, cell_tags=data.cell_tags, facet_tags=facet_tags,
                     boundaries=boundaries, dim=dim, subdomains=dict(probe.subdomains or {}))
