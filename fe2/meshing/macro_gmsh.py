"""Generating the macro specimens of :mod:`fe2.meshing.macro_specs` with gmsh/OCC.

The spec builds its OCC geometry and names each boundary entity; this module does the rest:
checks the area/volume, adds one physical group per boundary name (facet tags 1..N in the
order of ``spec.boundary_names``) and the cell group (tag 1, ``"domain"``), sets the sizes
(structured transfinite grids, or a size with an optional Distance/Threshold refinement),
meshes (simplices, or quadrilaterals/hexahedra) and writes MSH 4.1.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

DOMAIN_TAG = 1
"""Physical tag of the (single) cell group of a generated macro mesh."""

DOMAIN_NAME = "domain"
"""Physical name of the cell group of a generated macro mesh."""


def generate_specimen(spec: Any, path: str | Path, *, binary: bool = False, verbose: bool = False) -> Path:
    """Build the specimen with gmsh/OCC and write it as MSH 4.1 to ``path``.

    ``path`` must end in ``.msh``; parent directories are created; the file is
    replaced atomically. Returns the path.
    """
    path = Path(path)
    if path.suffix != ".msh":
        raise ValueError(f"mesh file name must end in '.msh': {path}")
    from fe2.meshing import geometry as geo
    from fe2.meshing.session import gmsh_session

    with gmsh_session(verbose=verbose, model=spec.type):  # type: ignore[attr-defined]
        domain = spec._build_geometry()
        _check_geometry(spec, domain)
        facets = _tag_boundaries(spec, domain)
        _set_sizes(spec, facets)
        if spec.recombine:
            nodes, cells = _mesh_recombined(dim=spec.dim, domain=domain)
        else:
            nodes, cells = geo.mesh_and_tag(
                dim=spec.dim, phases={DOMAIN_TAG: domain}, names={DOMAIN_TAG: DOMAIN_NAME}
            )
        geo.write_msh(path, binary=binary)
    log.debug("wrote %s: %d nodes, %d cells", path, nodes, cells)
    return path


def _check_geometry(spec: Any, domain: list[int]) -> None:
    import gmsh

    volume = sum(gmsh.model.occ.getMass(spec.dim, t) for t in domain)
    exact = spec.exact_volume()
    if abs(volume - exact) > 1e-6 * exact:
        raise RuntimeError(f"OCC geometry has volume {volume!r}, expected {exact!r}")


def _tag_boundaries(spec: Any, domain: list[int]) -> dict[str, list[int]]:
    """Classify the boundary entities by name and add one physical group per name."""
    import gmsh

    boundary = gmsh.model.getBoundary(
        [(spec.dim, t) for t in domain], combined=True, oriented=False, recursive=False
    )
    tol = 1e-6 * spec._extent() + 1e-9
    facets: dict[str, list[int]] = {name: [] for name in spec.boundary_names}
    for d, tag in boundary:
        bbox = np.array(gmsh.model.getBoundingBox(d, tag))
        name = spec._facet_name(bbox[:3], bbox[3:], tol)
        if name is None:
            raise RuntimeError(f"boundary entity ({d}, {tag}) with bounding box {bbox} "
                               "matches no boundary name")
        facets[name].append(abs(tag))
    for i, name in enumerate(spec.boundary_names):
        if not facets[name]:
            raise RuntimeError(f"boundary {name!r} has no geometric entity")
        gmsh.model.addPhysicalGroup(spec.dim - 1, sorted(facets[name]), tag=i + 1, name=name)
    return facets


def _set_sizes(spec: Any, facets: dict[str, list[int]]) -> None:
    """Transfinite constraints (structured) or point sizes plus a refinement field."""
    import gmsh

    from fe2.meshing import geometry as geo

    if (cells := spec.structured_cells()) is not None:
        _set_transfinite(dim=spec.dim, cells=cells, recombine=spec.recombine)
        return
    mesh_size: float = spec.mesh_size  # type: ignore[attr-defined]
    geo.set_mesh_size(dim=spec.dim, mesh_size=mesh_size)
    if (refinement := spec._local_refinement(facets)) is None:
        return
    entity_dim, tags, h_local, distance = refinement
    field = gmsh.model.mesh.field
    dist = field.add("Distance")
    field.setNumbers(dist, "PointsList" if entity_dim == 0 else "CurvesList", tags)
    field.setNumber(dist, "Sampling", 200)
    threshold = field.add("Threshold")
    field.setNumber(threshold, "InField", dist)
    field.setNumber(threshold, "SizeMin", h_local)
    field.setNumber(threshold, "SizeMax", mesh_size)
    field.setNumber(threshold, "DistMin", 0.0)
    field.setNumber(threshold, "DistMax", distance)
    field.setAsBackgroundMesh(threshold)


def _set_transfinite(*, dim: int, cells: tuple[int, ...], recombine: bool) -> None:
    """Structured grid with ``cells[k]`` divisions along axis k on the whole (box) model.

    Every curve is parallel to an axis; transfinite surfaces (and volume) then give
    cells_x * cells_y quadrilaterals (or twice as many triangles) in 2D and
    cells_x * cells_y * cells_z hexahedra (or six times as many tetrahedra) in 3D.
    """
    import gmsh

    mesh = gmsh.model.mesh
    for _, curve in gmsh.model.getEntities(1):
        bbox = np.array(gmsh.model.getBoundingBox(1, curve))
        axis = int(np.argmax(bbox[3:] - bbox[:3]))
        mesh.setTransfiniteCurve(curve, cells[axis] + 1)
    for _, surface in gmsh.model.getEntities(2):
        mesh.setTransfiniteSurface(surface)
        if recombine:
            mesh.setRecombine(2, surface)
    if dim == 3:
        for _, volume in gmsh.model.getEntities(3):
            mesh.setTransfiniteVolume(volume)


def _mesh_recombined(*, dim: int, domain: list[int]) -> tuple[int, int]:
    """Add the cell group, mesh with quadrilaterals (2D) or hexahedra (3D); (nodes, cells).

    2D unstructured: Frontal-Delaunay triangles recombined by the Blossom algorithm. When
    Blossom leaves triangles, the surface is meshed again at twice the element size and
    every cell is subdivided into quadrilaterals (``Mesh.SubdivisionAlgorithm 1``), which
    is all-quad by construction. 3D hexahedra come from recombined transfinite grids only.
    """
    import gmsh

    from fe2.meshing.geometry import renumbered_counts, single_threaded_meshing

    gmsh.model.addPhysicalGroup(dim, domain, tag=DOMAIN_TAG, name=DOMAIN_NAME)
    gmsh.option.setNumber("Mesh.ElementOrder", 1)
    gmsh.option.setNumber("Mesh.Algorithm", 6)  # Frontal-Delaunay (2D)
    gmsh.option.setNumber("Mesh.RecombineAll", 1 if dim == 2 else 0)
    gmsh.option.setNumber("Mesh.RecombinationAlgorithm", 1)  # Blossom
    single_threaded_meshing()
    wanted = 3 if dim == 2 else 5  # gmsh types: 4-node quadrangle, 8-node hexahedron
    gmsh.model.mesh.generate(dim)
    types, _, _ = gmsh.model.mesh.getElements(dim)
    if dim == 2 and list(types) != [wanted]:
        log.debug("Blossom left triangles: remeshing at 2h and subdividing into quadrilaterals")
        gmsh.model.mesh.clear()
        gmsh.option.setNumber("Mesh.MeshSizeFactor", 2.0)
        gmsh.option.setNumber("Mesh.SubdivisionAlgorithm", 1)
        gmsh.model.mesh.generate(dim)
    return renumbered_counts(dim, wanted)
