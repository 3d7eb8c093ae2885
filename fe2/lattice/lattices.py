"""Bravais lattices: primitive vectors, bond (neighbour) vectors within a radius, shells.

A lattice of one atom per primitive cell, scaled by its lattice constant a (length units).
Rows of :attr:`Lattice.primitive` are the primitive vectors a_i in units of a:

==============  ===  ===========================================  ==================  =====
name            dim  primitive vectors (units of a)               nearest neighbours  Omega0
==============  ===  ===========================================  ==================  =====
``chain``       1    (1)                                          2 at a              a
``square``      2    (1, 0), (0, 1)                               4 at a              a^2
``triangular``  2    (1, 0), (1/2, sqrt3/2)                       6 at a              sqrt3/2 a^2
``sc``          3    (1,0,0), (0,1,0), (0,0,1)                    6 at a              a^3
``bcc``         3    (-1,1,1)/2, (1,-1,1)/2, (1,1,-1)/2           8 at sqrt3/2 a      a^3/2
``fcc``         3    (0,1,1)/2, (1,0,1)/2, (1,1,0)/2              12 at a/sqrt2       a^3/4
==============  ===  ===========================================  ==================  =====

For the cubic lattices a is the edge of the conventional cube; for the others, the
nearest-neighbour distance. Omega0 is the volume (area, length) per atom.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
import numpy as np

_S3 = math.sqrt(3.0)
PRIMITIVE = {
    "chain": [[1.0]],
    "square": [[1.0, 0.0], [0.0, 1.0]],
    "triangular": [[1.0, 0.0], [0.5, _S3 / 2]],
    "sc": [[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]],
    "bcc": [[-0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.5, 0.5, -0.5]],
    "fcc": [[0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]],
}
LATTICES = tuple(PRIMITIVE)


@dataclass(frozen=True)
class Lattice:
    """A Bravais lattice ``name`` (see the module table) with lattice constant ``a`` (> 0)."""

    name: str
    a: float = 1.0

    def __post_init__(self):
        if self.name not in PRIMITIVE:
            raise ValueError(f"unknown lattice {self.name!r}; expected one of {list(PRIMITIVE)}")
        if not (math.isfinite(self.a) and self.a > 0):
            raise ValueError(f"lattice constant must be a finite number > 0, got {self.a}")

    @property
    def dim(self) -> int:
        return len(PRIMITIVE[self.name])

    @property
    def primitive(self) -> np.ndarray:
        """Primitive vectors in units of a, rows, (d, d)."""
        return np.array(PRIMITIVE[self.name], dtype=float)

    @property
    def vectors(self) -> np.ndarray:
        """Primitive vectors a_i (rows), length units, (d, d)."""
        return self.a * self.primitive

    @property
    def reciprocal(self) -> np.ndarray:
        """Reciprocal vectors b_i (rows) with a_i . b_j = 2 pi delta_ij, (d, d)."""
        return 2.0 * np.pi * np.linalg.inv(self.vectors).T

    @property
    def atomic_volume(self) -> float:
        """Omega0: volume (2D: area, 1D: length) per atom."""
        return abs(float(np.linalg.det(self.vectors)))

    @property
    def nearest_distance(self) -> float:
        return float(np.linalg.norm(self.bonds(1.5 * self.a)[0]))

    def bonds(self, radius: float) -> np.ndarray:
        """All lattice vectors R with 0 < |R| <= radius (1 + 1e-12), (B, d), by length.

        Both R and -R are included; the order (by length, then lexicographic) is fixed.
        """
        vectors = self.vectors
        inverse = np.linalg.inv(vectors)  # n = R @ inverse
        bound = np.floor(radius * np.linalg.norm(inverse, axis=0)).astype(int) + 1
        axes = [np.arange(-b, b + 1) for b in bound]
        n = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, self.dim)
        R = n @ vectors
        length = np.linalg.norm(R, axis=1)
        keep = (length > 0) & (length <= radius * (1 + 1e-12))
        R, length = R[keep], length[keep]
        order = np.lexsort((*R.T[::-1], np.round(length / self.a, 10)))
        return R[order]

    def shells(self, radius: float) -> list[tuple[float, int]]:
        """Neighbour shells within ``radius``: (distance, number of neighbours), by distance."""
        length = np.round(np.linalg.norm(self.bonds(radius), axis=1) / self.a, 9)
        values, counts = np.unique(length, return_counts=True)
        return [(float(v) * self.a, int(c)) for v, c in zip(values, counts)]
