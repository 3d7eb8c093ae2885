r"""Geometric checks of a mesh before it is used: inverted, degenerate and tangled cells.

Shared by the mesh readers (gmsh files for macro meshes and RVEs:
:mod:`fe2.meshing.gmsh_reader`; other formats: :mod:`fe2.meshing.meshio_reader`), on the
reading rank, on the file's node coordinates and connectivity (numpy only).

* **Inverted or degenerate cells**: the Jacobian determinant of the cell map at every corner
  must have one sign within the cell (a quadrilateral or hexahedron whose corners disagree is
  folded) and a magnitude above ``1e-10 h^d`` (h the cell's longest edge). Cells of either
  orientation are accepted, as long as each is consistent.
* **Volumes that do not add up**: the cell volumes :math:`\sum_c |K_c|` must equal the volume
  enclosed by the boundary, :math:`V_\partial = \frac1d \sum_{f \in \partial} \int_f
  (x - x_0) \cdot n\,dS` (divergence theorem; n outward from the facet's cell, the boundary
  facets being those of one cell only), to a relative 1e-8. Cells that overlap (a tangled
  mesh, e.g. an interior node moved across an edge) make the sum larger.

Cell node orders are gmsh's: counter-clockwise quadrilaterals, hexahedra bottom then top face
(meshio's/VTK's order for these first-order cells is the same).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

DEGENERATE_TOL = 1e-10
VOLUME_RTOL = 1e-8

#: Facets (as node cycles) of each cell type, gmsh node order.
FACETS = {
    "triangle": [(0, 1), (1, 2), (2, 0)],
    "quadrilateral": [(0, 1), (1, 2), (2, 3), (3, 0)],
    "tetrahedron": [(0, 1, 2), (0, 1, 3), (0, 2, 3), (1, 2, 3)],
    "hexahedron": [(0, 3, 2, 1), (0, 1, 5, 4), (1, 2, 6, 5), (2, 3, 7, 6), (3, 0, 4, 7), (4, 5, 6, 7)],
}
#: Reference corners of the multilinear cells (gmsh order).
CORNERS = {
    "quadrilateral": np.array([(0, 0), (1, 0), (1, 1), (0, 1)], dtype=float),
    "hexahedron": np.array([(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0),
                            (0, 0, 1), (1, 0, 1), (1, 1, 1), (0, 1, 1)], dtype=float),
}
GAUSS = np.array([0.5 - 0.5 / math.sqrt(3.0), 0.5 + 0.5 / math.sqrt(3.0)])  # 2 points on [0, 1]


def _multilinear_jacobians(x: np.ndarray, corners: np.ndarray, points: np.ndarray) -> np.ndarray:
    """J = dx/dxi of multilinear cells at reference points: x (cells, nodes, d) -> (cells, p, d, d)."""
    d = corners.shape[1]
    # dN_a/dxi_i = prod_{j != i} (xi_j if corner_aj else 1 - xi_j) * (+1 if corner_ai else -1)
    dN = np.empty((len(points), len(corners), d))
    for i in range(d):
        sign = np.where(corners[:, i] > 0, 1.0, -1.0)
        factor = np.ones((len(points), len(corners)))
        for j in range(d):
            if j != i:
                factor *= np.where(corners[None, :, j] > 0, points[:, None, j], 1.0 - points[:, None, j])
        dN[:, :, i] = factor * sign
    return np.einsum("cak,pai->cpki", x, dN)


def cell_determinants(x: np.ndarray, cells: np.ndarray, cell_type: str) -> tuple[np.ndarray, np.ndarray]:
    """Jacobian determinants at the corners (cells, corners) and cell volumes (cells,).

    Simplices have one determinant per cell (d! |K|); multilinear cells one per corner, and
    their volume is the 2^d-point Gauss integral of |det J| (exact while det J keeps its sign).
    """
    nodes = x[cells]
    d = x.shape[1]
    if cell_type in ("triangle", "tetrahedron"):
        det = np.linalg.det(nodes[:, 1:] - nodes[:, :1])
        return det[:, None], np.abs(det) / math.factorial(d)
    corners = CORNERS[cell_type]
    at_corners = np.linalg.det(_multilinear_jacobians(nodes, corners, corners))
    gauss = np.array(list(itertools.product(GAUSS, repeat=d)))
    volume = np.abs(np.linalg.det(_multilinear_jacobians(nodes, corners, gauss))).sum(axis=1) / 2**d
    return at_corners, volume


def _facet_flux(x: np.ndarray, facet_nodes: np.ndarray) -> np.ndarray:
    """Integral of (x - 0) . n dS over each facet, n by the node cycle's orientation
    (right-hand rule): segments (f, 2), triangles (f, 3), bilinear quadrilaterals (f, 4)."""
    p = x[facet_nodes]
    if p.shape[1] == 2:  # segment a -> b in 2D: n |f| = (dy, -dx)
        edge = p[:, 1] - p[:, 0]
        return p[:, 0, 0] * edge[:, 1] - p[:, 0, 1] * edge[:, 0]
    if p.shape[1] == 3:
        area = 0.5 * np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
        return np.einsum("fi,fi->f", p[:, 0], area)
    total = np.zeros(len(p))
    for s, t in itertools.product(GAUSS, GAUSS):  # exact: the integrand is biquadratic
        w = np.array([(1 - s) * (1 - t), s * (1 - t), s * t, (1 - s) * t])
        ds = np.array([-(1 - t), 1 - t, t, -t])
        dt = np.array([-(1 - s), -s, s, 1 - s])
        point = np.einsum("a,fai->fi", w, p)
        normal = np.cross(np.einsum("a,fai->fi", ds, p), np.einsum("a,fai->fi", dt, p))
        total += 0.25 * np.einsum("fi,fi->f", point, normal)
    return total


def enclosed_volume(x: np.ndarray, cells: np.ndarray, cell_type: str) -> float:
    """Volume enclosed by the boundary facets (facets of one cell), by the divergence theorem."""
    d = x.shape[1]
    x = x - 0.5 * (x.min(axis=0) + x.max(axis=0))  # centred: less cancellation
    table = FACETS[cell_type]
    facets = np.concatenate([cells[:, list(f)] for f in table])  # (cells * facets, k)
    owner = np.tile(np.arange(len(cells)), len(table))
    keys = np.sort(facets, axis=1)
    _, index, counts = np.unique(keys, axis=0, return_index=True, return_counts=True)
    boundary = index[counts == 1]
    facets, owner = facets[boundary], owner[boundary]
    flux = _facet_flux(x, facets)
    # orient outward from the owning cell: the facet's normal points away from the cell centre
    centre = x[cells[owner]].mean(axis=1)
    facet_centre = x[facets].mean(axis=1)
    if d == 2:
        edge = x[facets[:, 1]] - x[facets[:, 0]]
        normal = np.stack([edge[:, 1], -edge[:, 0]], axis=1)
    else:
        normal = np.cross(x[facets[:, 1]] - x[facets[:, 0]], x[facets[:, -1]] - x[facets[:, 0]])
    outward = np.sign(np.einsum("fi,fi->f", normal, facet_centre - centre))
    return float(np.sum(outward * flux) / d)


def mesh_defects(x: np.ndarray, cells: np.ndarray, cell_type: str, *, ids: np.ndarray | None = None) -> str:
    """'' for a sound mesh, else one line saying what is wrong (inverted, degenerate or
    tangled cells). ``x`` (nodes, d) coordinates, ``cells`` (cells, k) node indices, ``ids``
    the cells' numbers for the message (default: their positions)."""
    if len(cells) == 0:
        return "the mesh has no cells"
    d = x.shape[1]
    det, volume = cell_determinants(x, cells, cell_type)
    nodes = x[cells]
    h = np.max(np.linalg.norm(nodes[:, :, None] - nodes[:, None, :], axis=-1), axis=(1, 2))
    small = np.abs(det).min(axis=1) <= DEGENERATE_TOL * h**d
    folded = (det.min(axis=1) < 0) & (det.max(axis=1) > 0)
    bad = np.flatnonzero(small | folded | ~np.isfinite(det).all(axis=1))
    if len(bad):
        first = int(bad[0] if ids is None else ids[bad[0]])
        return (f"{len(bad)} of {len(cells)} cells are inverted or degenerate (first: cell {first}, "
                f"nodes at {np.round(nodes[bad[0]], 6).tolist()})")
    total = float(volume.sum())
    enclosed = enclosed_volume(x, cells, cell_type)
    if abs(total - enclosed) > VOLUME_RTOL * total:
        return (f"the cell volumes add up to {total:.9g}, but the boundary encloses {enclosed:.9g}: "
                "cells overlap (a tangled mesh)")
    return ""
