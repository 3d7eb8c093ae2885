"""The RVE domain: an axis-aligned box, found from the mesh geometry."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Box:
    """Axis-aligned box [lo, hi] in ``dim`` dimensions.

    Attributes:
        lo, hi: corner coordinates, shape (dim,).
        tol: absolute tolerance for "on a face" tests (1e-9 of the largest edge).
    """

    lo: np.ndarray
    hi: np.ndarray

    @classmethod
    def bounding(cls, points: np.ndarray) -> Box:
        """Bounding box of points (num_points, dim)."""
        return cls(lo=points.min(axis=0), hi=points.max(axis=0))

    @property
    def dim(self) -> int:
        return len(self.lo)

    @property
    def lengths(self) -> np.ndarray:
        return self.hi - self.lo

    @property
    def volume(self) -> float:
        return float(np.prod(self.lengths))

    @property
    def centre(self) -> np.ndarray:
        return 0.5 * (self.lo + self.hi)

    @property
    def tol(self) -> float:
        return 1e-9 * float(self.lengths.max())

    def on_lo(self, x: np.ndarray) -> np.ndarray:
        """Boolean (num_points, dim): point lies on the face x_i = lo_i."""
        return np.abs(x - self.lo) < self.tol

    def on_hi(self, x: np.ndarray) -> np.ndarray:
        """Boolean (num_points, dim): point lies on the face x_i = hi_i."""
        return np.abs(x - self.hi) < self.tol

    def on_boundary(self, x: np.ndarray) -> np.ndarray:
        """Boolean (num_points,): point lies on the boundary of the box."""
        return (self.on_lo(x) | self.on_hi(x)).any(axis=1)
