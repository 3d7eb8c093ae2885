"""Periodic node matching on a box: every node on a face x_i = hi_i has a partner on x_i = lo_i.

Pure numpy; used to build the periodic prolongation of :mod:`fe2.rve.boundary_conditions`.
"""

from __future__ import annotations

import numpy as np

from fe2.rve.box import Box
from fe2.rve.model import RveInputError


class MeshNotPeriodicError(RveInputError):
    """Boundary nodes on opposite faces of the RVE do not match."""


class _PointIndex:
    """Exact-match lookup of points (num_points, dim) up to an absolute tolerance."""

    def __init__(self, points: np.ndarray, tol: float):
        self.points, self.tol = points, tol
        keys = np.rint(points / tol).astype(np.int64)
        self._index = {tuple(k): i for i, k in enumerate(keys)}
        dim = points.shape[1]
        self._offsets = np.array(np.meshgrid(*[[-1, 0, 1]] * dim)).reshape(dim, -1).T

    def find(self, x: np.ndarray) -> int:
        """Index of the stored point within tol of x, or -1."""
        key = np.rint(x / self.tol).astype(np.int64)
        for offset in self._offsets:
            i = self._index.get(tuple(key + offset))
            if i is not None and np.all(np.abs(self.points[i] - x) <= 2 * self.tol):
                return i
        return -1


def periodic_masters(x: np.ndarray, box: Box) -> np.ndarray:
    """Master node of every node under periodicity of the box.

    A node with coordinates on faces hi_i is mapped to the node obtained by moving it to lo_i
    for all those i at once (so edge and corner nodes map straight to the one node of their
    class on the lo faces); other nodes are their own master.

    Args:
        x: node coordinates, shape (num_nodes, dim).
        box: the RVE box.

    Returns:
        master: shape (num_nodes,), master[i] == i for masters.

    Raises:
        MeshNotPeriodicError: a face's nodes have no exact partners on the opposite face.
    """
    on_lo, on_hi = box.on_lo(x), box.on_hi(x)
    boundary = np.flatnonzero((on_lo | on_hi).any(axis=1))
    index = _PointIndex(x[boundary] - box.lo, 10 * box.tol)
    names = "xyz"

    # Each pair of opposite faces must be in one-to-one correspondence.
    for axis in range(box.dim):
        n_lo, n_hi = np.count_nonzero(on_lo[:, axis]), np.count_nonzero(on_hi[:, axis])
        if n_lo != n_hi:
            raise MeshNotPeriodicError(
                f"the RVE mesh is not periodic: {n_lo} nodes on face {names[axis]} = "
                f"{box.lo[axis]:g} but {n_hi} on the opposite face {names[axis]} = "
                f"{box.hi[axis]:g}"
            )

    master = np.arange(len(x))
    shift = on_hi * box.lengths
    for i in np.flatnonzero(on_hi.any(axis=1)):
        image = x[i] - shift[i]
        j = index.find(image - box.lo)
        if j < 0:
            raise MeshNotPeriodicError(
                f"the RVE mesh is not periodic: node {np.array2string(x[i], precision=6)} "
                f"has no partner at {np.array2string(image, precision=6)} on the opposite face"
            )
        master[i] = boundary[j]
    return master
