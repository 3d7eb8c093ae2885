"""OCC geometry, periodicity, sizing and output for RVE meshes.

All functions act on the current model of an active gmsh session
(see :func:`fe2.meshing.session.gmsh_session`). The RVE is the box [0, L]^d.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import gmsh
import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

Phases = dict[int, list[int]]
"""Physical tag -> list of gmsh entity tags of dimension d."""


def _tol(size: float) -> float:
    """Geometric matching tolerance [length]; OCC pads bounding boxes by 1e-7."""
    return 1e-6 * size + 1e-6


def add_box(*, dim: int, size: float) -> int:
    """Add the square/cube [0, size]^dim; return its OCC tag."""
    occ = gmsh.model.occ
    if dim == 2:
        return occ.addRectangle(0.0, 0.0, 0.0, size, size)
    return occ.addBox(0.0, 0.0, 0.0, size, size, size)


def add_balls(centres: npt.ArrayLike, *, radius: float, dim: int) -> list[int]:
    """Add one disk (2D) or sphere (3D) of ``radius`` per centre row; return OCC tags."""
    occ = gmsh.model.occ
    tags = []
    for c in np.atleast_2d(np.asarray(centres, dtype=float)):
        if dim == 2:
            tags.append(occ.addDisk(c[0], c[1], 0.0, radius, radius))
        else:
            tags.append(occ.addSphere(c[0], c[1], c[2], radius))
    return tags


def build_matrix_inclusions(*, dim: int, size: float, balls: Sequence[int]) -> Phases:
    """Fragment the box with the inclusion balls and drop everything outside the box.

    Pieces of the box that also come from a ball are inclusion (tag 2), the other
    pieces of the box are matrix (tag 1); pieces only from balls lie outside and are
    removed. Returns ``{1: matrix_tags, 2: inclusion_tags}``.
    """
    occ = gmsh.model.occ
    box = add_box(dim=dim, size=size)
    _, out_map = occ.fragment([(dim, box)], [(dim, b) for b in balls])
    box_parts = {t for d, t in out_map[0] if d == dim}
    ball_parts = {t for m in out_map[1:] for d, t in m if d == dim}
    outside = sorted(ball_parts - box_parts)
    if outside:
        occ.remove([(dim, t) for t in outside], recursive=True)
    occ.synchronize()
    phases = {1: sorted(box_parts - ball_parts), 2: sorted(box_parts & ball_parts)}
    _check_volume(dim=dim, size=size, phases=phases)
    return phases


def build_layers(*, size: float, interfaces: Sequence[float]) -> Phases:
    """Layers [x_i, x_{i+1}] x [0, L] with x_0 = 0, x_N = L; layer i gets tag i+1."""
    occ = gmsh.model.occ
    xs = [0.0, *interfaces, size]
    rects = [occ.addRectangle(a, 0.0, 0.0, b - a, size) for a, b in zip(xs[:-1], xs[1:])]
    if len(rects) > 1:
        _, out_map = occ.fragment([(2, rects[0])], [(2, r) for r in rects[1:]])
        parts = [[t for d, t in m if d == 2] for m in out_map]
    else:
        parts = [[rects[0]]]
    occ.synchronize()
    phases = {i + 1: sorted(p) for i, p in enumerate(parts)}
    _check_volume(dim=2, size=size, phases=phases)
    return phases


def _check_volume(*, dim: int, size: float, phases: Phases) -> None:
    """The pieces must tile the box exactly (up to OCC accuracy)."""
    total = sum(gmsh.model.occ.getMass(dim, t) for tags in phases.values() for t in tags)
    if abs(total - size**dim) > 1e-5 * size**dim:  # OCC integrates curved volumes approximately
        raise RuntimeError(f"OCC pieces cover volume {total!r}, expected {size**dim!r}")
    for tag, tags in phases.items():
        if not tags:
            raise RuntimeError(f"phase {tag} has no geometric entity")
        vol = sum(gmsh.model.occ.getMass(dim, t) for t in tags)
        log.debug("phase %d: %d entities, geometric volume fraction %.12g",
                  tag, len(tags), vol / size**dim)


def _entities_on_plane(*, dim: int, axis: int, value: float, size: float) -> list[int]:
    """Tags of (dim-1)-entities whose bounding box lies in the plane x_axis = value."""
    eps = _tol(size)
    lo = [-eps, -eps, -eps]
    hi = [size + eps, size + eps, size + eps if dim == 3 else eps]
    lo[axis], hi[axis] = value - eps, value + eps
    return [t for _, t in gmsh.model.getEntitiesInBoundingBox(*lo, *hi, dim=dim - 1)]


def _signature(dim: int, tag: int) -> np.ndarray:
    """Bounding box and centre of mass of an entity, for matching translated copies."""
    bbox = gmsh.model.getBoundingBox(dim, tag)
    com = gmsh.model.occ.getCenterOfMass(dim, tag)
    return np.array([*bbox, *com])


def set_periodic(*, dim: int, size: float) -> None:
    """Make the mesh periodic: faces x_k = L are slaves of x_k = 0 for every axis k.

    The boundary pieces on both sides are matched by their bounding boxes and centres
    of mass translated by L e_k; the affine map is the translation x -> x + L e_k.
    """
    tol = 10 * _tol(size)
    for axis in range(dim):
        shift = np.zeros(3)
        shift[axis] = size
        masters = _entities_on_plane(dim=dim, axis=axis, value=0.0, size=size)
        slaves = _entities_on_plane(dim=dim, axis=axis, value=size, size=size)
        if len(masters) != len(slaves):
            raise RuntimeError(
                f"axis {axis}: {len(masters)} boundary pieces on x=0 but {len(slaves)} on x=L"
            )
        master_sig = {m: _signature(dim - 1, m) + np.tile(shift, 3) for m in masters}
        matched: list[int] = []
        for s in slaves:
            sig = _signature(dim - 1, s)
            errors = {m: float(np.max(np.abs(sig - ms))) for m, ms in master_sig.items()}
            best = min(errors, key=errors.get, default=None)
            if best is None or errors[best] > tol:
                raise RuntimeError(f"axis {axis}: no periodic counterpart for boundary entity {s}")
            matched.append(best)
            del master_sig[best]
        affine = np.eye(4)
        affine[:3, 3] = shift
        gmsh.model.mesh.setPeriodic(dim - 1, slaves, matched, affine.ravel().tolist())
        log.debug("axis %d: %d periodic boundary pairs", axis, len(slaves))


def set_mesh_size(
    *, dim: int, mesh_size: float, inclusion_mesh_size: float | None = None,
    inclusions: Sequence[int] = (),
) -> None:
    """Prescribe the characteristic length h at all points (h_inc on inclusion boundaries).

    Sizes are interpolated along curves and into surfaces/volumes from the points.
    """
    gmsh.model.mesh.setSize(gmsh.model.getEntities(0), mesh_size)
    h_max = mesh_size
    if inclusion_mesh_size is not None and inclusions:
        points = gmsh.model.getBoundary(
            [(dim, t) for t in inclusions], combined=False, oriented=False, recursive=True
        )
        gmsh.model.mesh.setSize(points, inclusion_mesh_size)
        h_max = max(h_max, inclusion_mesh_size)
    gmsh.option.setNumber("Mesh.MeshSizeMax", h_max)
    gmsh.option.setNumber("Mesh.MeshSizeMin", 0.0)


def refine_spots(
    points: npt.ArrayLike, *, sizes: npt.ArrayLike, radii: npt.ArrayLike, mesh_size: float,
    size: float, dim: int,
) -> int:
    """Element length ``sizes[k]`` within ``radii[k]`` of ``points[k]`` (k spots), graded back
    to ``mesh_size`` over a distance mesh_size: one gmsh Ball field per spot and per periodic
    image near the cell, their minimum as the background mesh size. Returns the number of
    fields; none is added without spots (the mesh is then as without this step)."""
    points = np.atleast_2d(np.asarray(points, dtype=float))
    field = gmsh.model.mesh.field
    balls = []
    for point, h_spot, reach in zip(points, np.ravel(sizes), np.ravel(radii)):
        for shift in itertools.product((-size, 0.0, size), repeat=dim):
            centre = point + np.array(shift)
            margin = reach + mesh_size
            if np.any(centre < -margin) or np.any(centre > size + margin):
                continue
            tag = field.add("Ball")
            field.setNumber(tag, "Radius", float(reach))
            field.setNumber(tag, "Thickness", mesh_size)
            field.setNumber(tag, "VIn", float(h_spot))
            field.setNumber(tag, "VOut", mesh_size)
            for axis, name in enumerate("XYZ"[:dim]):
                field.setNumber(tag, f"{name}Center", float(centre[axis]))
            balls.append(tag)
    if balls:
        smallest = field.add("Min")
        field.setNumbers(smallest, "FieldsList", balls)
        field.setAsBackgroundMesh(smallest)
    return len(balls)


def mesh_and_tag(*, dim: int, phases: Phases, names: Mapping[int, str]) -> tuple[int, int]:
    """Add one physical group per phase, mesh with linear simplices; return (nodes, cells)."""
    for tag, entities in phases.items():
        gmsh.model.addPhysicalGroup(dim, entities, tag=tag, name=names[tag])
    gmsh.option.setNumber("Mesh.ElementOrder", 1)
    gmsh.option.setNumber("Mesh.Algorithm", 6)  # Frontal-Delaunay (2D)
    gmsh.option.setNumber("Mesh.Algorithm3D", 1)  # Delaunay (serial, deterministic)
    # the default optimizer leaves rare slivers (SICN ~ 1e-2) next to the periodic faces
    gmsh.option.setNumber("Mesh.OptimizeNetgen", 1 if dim == 3 else 0)
    single_threaded_meshing()
    gmsh.model.mesh.generate(dim)
    simplex = 2 if dim == 2 else 4  # gmsh types: 3-node triangle, 4-node tetrahedron
    return renumbered_counts(dim, simplex)


def single_threaded_meshing() -> None:
    """One meshing thread per dimension: the same input always gives the same mesh."""
    for d in (1, 2, 3):
        gmsh.option.setNumber(f"Mesh.MaxNumThreads{d}D", 1)


def renumbered_counts(dim: int, cell_type: int) -> tuple[int, int]:
    """Renumber the generated mesh; (nodes, cells); its cells must all be of ``cell_type``."""
    gmsh.model.mesh.renumberNodes()
    gmsh.model.mesh.renumberElements()
    node_tags, _, _ = gmsh.model.mesh.getNodes()
    types, cells, _ = gmsh.model.mesh.getElements(dim)
    if list(types) != [cell_type]:
        raise RuntimeError(f"unexpected gmsh element types {list(types)} (wanted [{cell_type}])")
    return len(node_tags), len(cells[0])


def write_msh(path: Path, *, binary: bool = False) -> None:
    """Write MSH 4.1 atomically (temporary file in the same directory, then rename)."""
    gmsh.option.setNumber("Mesh.MshFileVersion", 4.1)
    gmsh.option.setNumber("Mesh.Binary", 1 if binary else 0)
    gmsh.option.setNumber("Mesh.SaveAll", 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.msh")
    try:
        gmsh.write(str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
