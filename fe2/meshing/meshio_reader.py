"""Reading macro meshes in the formats meshio reads (Abaqus, Medit, VTK, XDMF, ...) into DOLFINx.

The file is parsed on one rank with meshio; the cells of the highest dimension (one
first-order type: triangle, quad, tetra or hexahedron) make the mesh, and the named sets of
the file become the boundary and cell groups:

* **element sets** (``mesh.cell_sets``, e.g. Abaqus ``*ELSET``): a set of cells is a
  subdomain (cell tag), a set of facet elements (lines in 2D, triangles/quads in 3D) a
  boundary; both by the set's name;
* **node sets** (``mesh.point_sets``, e.g. Abaqus ``*NSET``): the boundary facets whose
  vertices are all in the set form the boundary of that name (sets may overlap);
* **integer cell data** (``gmsh:physical``, ``medit:ref``, ``cell_tags``, or another
  integer array): the tags of the cells, and of the facet elements, named by
  ``mesh.field_data`` where the file has names (``{name: [tag, dim]}``), else by the number
  (``"3"``).

Cells in no cell group get one more tag, named ``"domain"`` (all cells: tag 1, when the file
has no cell groups). Inverted, degenerate or tangled cells are refused
(:func:`fe2.meshing.checks.mesh_defects`, as for gmsh files). Errors found on the reading rank
are raised on every rank.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from mpi4py import MPI

from fe2.meshing.checks import mesh_defects
from fe2.meshing.macro_mesh import MacroMesh

log = logging.getLogger(__name__)

#: meshio cell type -> (topological dimension, DOLFINx cell type name); first order only.
CELLS = {"triangle": (2, "triangle"), "quad": (2, "quadrilateral"),
         "tetra": (3, "tetrahedron"), "hexahedron": (3, "hexahedron")}
FACETS = {2: ("line",), 3: ("triangle", "quad")}
#: Local vertices of the facets of each cell type (meshio/VTK vertex order).
FACET_VERTICES = {
    "triangle": [(0, 1), (1, 2), (2, 0)],
    "quad": [(0, 1), (1, 2), (2, 3), (3, 0)],
    "tetra": [(0, 1, 2), (0, 1, 3), (0, 2, 3), (1, 2, 3)],
    "hexahedron": [(0, 1, 2, 3), (4, 5, 6, 7), (0, 1, 5, 4), (1, 2, 6, 5), (2, 3, 7, 6), (3, 0, 4, 7)],
}
TAG_DATA = ("gmsh:physical", "medit:ref", "cell_tags")
#: First-order Abaqus element types meshio 5.3 does not know (plane strain, axisymmetric,
#: hybrid/incompatible variants); registered with its Abaqus reader before reading.
ABAQUS_TYPES = {
    **dict.fromkeys(("CPE3", "CPE3H", "CAX3", "CAX3H", "CPS3", "STRI3"), "triangle"),
    **dict.fromkeys(("CPE4", "CPE4H", "CPE4I", "CPE4IH", "CPE4R", "CPE4RH", "CPS4I", "CPS4R",
                     "CAX4", "CAX4H", "CAX4I", "CAX4R", "CAX4RH"), "quad"),
    **dict.fromkeys(("C3D4", "C3D4H"), "tetra"),
    **dict.fromkeys(("C3D8", "C3D8H", "C3D8I", "C3D8IH", "C3D8R", "C3D8RH"), "hexahedron"),
}
DIMENSION = {"vertex": 0, "line": 1, "line3": 1, "triangle": 2, "triangle6": 2, "quad": 2, "quad8": 2,
             "quad9": 2, "tetra": 3, "tetra10": 3, "hexahedron": 3, "hexahedron20": 3,
             "hexahedron27": 3, "wedge": 3, "pyramid": 3}


class _Parsed:
    """What the reading rank extracts: points, cells, groups (vertex rows per name)."""

    def __init__(self):
        self.dim = -1
        self.cell_type = ""
        self.points = np.empty((0, 3))
        self.cells = np.empty((0, 0), dtype=np.int64)
        self.cell_tags = np.empty(0, dtype=np.int32)
        self.subdomains: dict[str, int] = {}
        self.boundaries: dict[str, np.ndarray] = {}  # name -> facets (k, vertices per facet)


def _integer_data(mesh: Any) -> str | None:
    names = [n for n in TAG_DATA if n in mesh.cell_data]
    names += [n for n, blocks in mesh.cell_data.items()
              if n not in names and all(np.issubdtype(np.asarray(b).dtype, np.integer) for b in blocks)]
    return names[0] if names else None


def _boundary_facets(cell_type: str, cells: np.ndarray) -> np.ndarray:
    """Facets (as vertex rows) that belong to one cell only."""
    local = FACET_VERTICES[cell_type]
    facets = np.concatenate([cells[:, list(f)] for f in local])
    key = np.sort(facets, axis=1)
    _, index, counts = np.unique(key, axis=0, return_index=True, return_counts=True)
    return facets[np.sort(index[counts == 1])]


def _parse(path: Path) -> _Parsed:
    """Read and check ``path`` with meshio (raises ValueError with a one-line reason)."""
    import meshio
    from meshio.abaqus import _abaqus

    _abaqus.abaqus_to_meshio_type.update(ABAQUS_TYPES)
    try:
        mesh = meshio.read(path)
    except Exception as exc:  # meshio raises ReadError, KeyError, ValueError, ... on bad files
        raise ValueError(f"could not read {path} with meshio: {type(exc).__name__}: {exc}") from None
    parsed = _Parsed()
    dims = {DIMENSION.get(b.type, -1) for b in mesh.cells}
    dim = max(dims, default=-1)
    if dim not in (2, 3):
        raise ValueError(f"{path}: holds no 2D or 3D cells (cell types {[b.type for b in mesh.cells]})")
    top = [i for i, b in enumerate(mesh.cells) if DIMENSION.get(b.type) == dim]
    types = sorted({mesh.cells[i].type for i in top})
    if len(types) != 1 or types[0] not in CELLS:
        raise ValueError(f"{path}: cells of types {types}; DOLFINx needs one first-order cell type "
                         f"({', '.join(t for t, (d, _) in CELLS.items() if d == dim)})")
    parsed.dim, parsed.cell_type = dim, types[0]
    points = np.asarray(mesh.points, dtype=float)
    if points.shape[1] > dim:
        extent = np.abs(points).max(initial=0.0)
        if np.abs(points[:, dim:]).max(initial=0.0) > 1e-12 * max(extent, 1.0):
            raise ValueError(f"{path}: {dim}D cells whose points do not lie in the plane z = 0")
        points = points[:, :dim]
    parsed.points = points
    offsets = np.cumsum([0] + [len(mesh.cells[i].data) for i in top])
    parsed.cells = np.concatenate([np.asarray(mesh.cells[i].data, dtype=np.int64) for i in top])
    if defect := mesh_defects(points, parsed.cells, CELLS[parsed.cell_type][1]):
        raise ValueError(f"{path}: {defect}")
    facet_blocks = [i for i, b in enumerate(mesh.cells) if b.type in FACETS[dim]]
    groups: dict[str, np.ndarray] = {}

    def add_boundary(name: str, facets: np.ndarray) -> None:
        if name in groups:
            raise ValueError(f"{path}: the name {name!r} is given to two boundary sets")
        if len(facets):
            groups[name] = facets

    cell_tags = np.full(len(parsed.cells), -1, dtype=np.int32)  # -1: in no cell group
    subdomains: dict[str, int] = {}
    tags = _integer_data(mesh)
    if tags is not None:
        names = {int(v[0]): n for n, v in mesh.field_data.items() if len(v) == 2}
        dims = {int(v[0]): int(v[1]) for n, v in mesh.field_data.items() if len(v) == 2}
        for k, i in enumerate(top):
            cell_tags[offsets[k]: offsets[k + 1]] = np.asarray(mesh.cell_data[tags][i], dtype=np.int32)
        for tag in np.unique(cell_tags):
            name = names.get(int(tag)) if dims.get(int(tag)) == dim else None
            subdomains[name or str(int(tag))] = int(tag)
        for i in facet_blocks:
            values = np.asarray(mesh.cell_data[tags][i], dtype=np.int32)
            facets = np.asarray(mesh.cells[i].data, dtype=np.int64)
            for tag in np.unique(values):
                name = names.get(int(tag)) if dims.get(int(tag)) == dim - 1 else None
                add_boundary(name or str(int(tag)), facets[values == tag])
    for name, per_block in mesh.cell_sets.items():
        per_block = list(per_block) + [np.empty(0, dtype=int)] * (len(mesh.cells) - len(per_block))
        in_cells = [(k, np.asarray(per_block[i], dtype=np.int64)) for k, i in enumerate(top) if len(per_block[i])]
        if in_cells and tags is None:
            tag = len(subdomains) + 1
            subdomains[name] = tag
            for k, index in in_cells:
                unset = cell_tags[offsets[k] + index] < 0
                cell_tags[(offsets[k] + index)[unset]] = tag
        facets = [np.asarray(mesh.cells[i].data, dtype=np.int64)[np.asarray(per_block[i], dtype=np.int64)]
                  for i in facet_blocks if len(per_block[i])]
        if facets:
            add_boundary(name, np.concatenate(facets))
    if mesh.point_sets:
        boundary = _boundary_facets(parsed.cell_type, parsed.cells)
        for name, nodes in mesh.point_sets.items():
            inside = np.isin(boundary, np.asarray(nodes, dtype=np.int64)).all(axis=1)
            add_boundary(name, boundary[inside])
    if (cell_tags < 0).any():  # cells in no group: one more group
        tag = max(subdomains.values(), default=0) + 1
        cell_tags[cell_tags < 0] = tag
        subdomains["domain" if "domain" not in subdomains else "untagged"] = tag
    parsed.cell_tags, parsed.subdomains, parsed.boundaries = cell_tags, subdomains, groups
    return parsed


def read_meshio_mesh(
    path: str | Path, comm: MPI.Comm, *, rank: int = 0, partitioner: Callable | None = None
) -> MacroMesh:
    """Read a mesh file in a meshio format on ``comm`` (collective); ``rank`` parses it.

    Boundary names are those of the file's sets (module docstring), with facet tags 1..N in
    the order found. Raises ValueError (on every rank) for a file meshio cannot read or
    without one first-order cell type; FileNotFoundError if it does not exist.
    """
    import basix.ufl
    import dolfinx.mesh
    import ufl
    from dolfinx.io.gmsh import adjacencylist, cell_perm_array, distribute_entity_data

    path = Path(path)
    parsed, error = None, ""
    if comm.rank == rank:
        if not path.is_file():
            error = f"mesh file not found: {path}"
        else:
            try:
                parsed = _parse(path)
            except ValueError as exc:
                error = str(exc)
    header = comm.bcast((error, None if parsed is None else
                         (parsed.dim, parsed.cell_type, parsed.subdomains, list(parsed.boundaries))), root=rank)
    error, info = header
    if error:
        raise (FileNotFoundError if error.startswith("mesh file not found") else ValueError)(error)
    dim, cell_type, subdomains, names = info
    dolfinx_type = CELLS[cell_type][1]
    vertices = {"triangle": 3, "quadrilateral": 4, "tetrahedron": 4, "hexahedron": 8}[dolfinx_type]
    facet_vertices = len(FACET_VERTICES[cell_type][0])
    if comm.rank == rank:
        cells = parsed.cells[:, cell_perm_array(dolfinx.mesh.to_type(dolfinx_type), vertices)]
        x = parsed.points
    else:
        cells, x = np.empty((0, vertices), dtype=np.int64), np.empty((0, dim))
    domain = ufl.Mesh(basix.ufl.element("Lagrange", dolfinx_type, 1, shape=(dim,)))
    mesh = dolfinx.mesh.create_mesh(comm, cells, domain, np.ascontiguousarray(x), partitioner)

    def tags_of(entity_dim: int, rows: np.ndarray, values: np.ndarray) -> dolfinx.mesh.MeshTags:
        local, local_values = distribute_entity_data(mesh, entity_dim, rows, values.astype(np.int32))
        mesh.topology.create_connectivity(entity_dim, dim)
        adjacency = adjacencylist(local)
        return dolfinx.mesh.meshtags_from_entities(mesh, entity_dim, adjacency, local_values.astype(np.int32))

    def rows(values):
        return values if comm.rank == rank else np.empty((0, facet_vertices), dtype=np.int64)

    all_cells = parsed.cells if comm.rank == rank else np.empty((0, vertices), dtype=np.int64)
    cell_values = parsed.cell_tags if comm.rank == rank else np.empty(0, dtype=np.int32)
    cell_tags = tags_of(dim, all_cells, cell_values)
    facet_sets, first = {}, {}
    for tag, name in enumerate(names, start=1):
        group = rows(parsed.boundaries[name] if comm.rank == rank else None)
        facets = tags_of(dim - 1, group, np.full(len(group), tag, dtype=np.int32))
        facet_sets[name] = facets.indices.copy()
        for f in facets.indices:
            first.setdefault(int(f), tag)
    indices = np.array(sorted(first), dtype=np.int32)
    facet_tags = dolfinx.mesh.meshtags(mesh, dim - 1, indices, np.array([first[i] for i in indices], dtype=np.int32))
    boundaries = {name: tag for tag, name in enumerate(names, start=1)}
    log.debug("read %s with meshio: dim %d, %s cells, boundaries %s", path, dim, dolfinx_type, boundaries)
    return MacroMesh(mesh=mesh, cell_tags=cell_tags, facet_tags=facet_tags, boundaries=boundaries, dim=dim,
                     subdomains=subdomains, facet_sets=facet_sets)
