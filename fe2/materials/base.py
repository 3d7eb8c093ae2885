"""The protocol every phase law follows: a batched update at quadrature points.

Arrays are flat over points: ``m`` = number of quadrature points handed to the law,
``n`` = number of strain components of the physics (Mandel 3/6 for small-strain elasticity,
F row-major 4/9 for finite strain, gradient 2/3 for conduction).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass
class Update:
    """Result of a constitutive update at m points.

    Attributes:
        stress: (m, n) stress (Mandel Cauchy, first Piola-Kirchhoff row-major, or flux).
        tangent: (m, n, n) consistent (algorithmic) tangent d stress / d strain.
        state: history variables after the update, name -> (m, ...) (new arrays).
        ok: (m,) False where the update is not admissible (e.g. det F <= 0, NaN).
    """

    stress: np.ndarray
    tangent: np.ndarray
    state: dict[str, np.ndarray]
    ok: np.ndarray


class Material(Protocol):
    """A phase law. ``physics`` names the field problem it belongs to."""

    physics: str
    #: True if stress = tangent @ strain with a constant tangent (no history).
    is_linear: bool

    def initial_state(self, dim: int, m: int) -> dict[str, np.ndarray]:
        """History variables of m virgin points, name -> (m, ...) arrays (may be empty)."""
        ...

    def update(self, strain: np.ndarray, state: dict[str, np.ndarray], dim: int) -> Update:
        """Stress and consistent tangent for strain (m, n) from the committed ``state``.

        Must not modify ``state``; returns the trial history in :attr:`Update.state`.
        """
        ...

    def point_fields(self, state: dict[str, np.ndarray], dim: int) -> dict[str, np.ndarray]:
        """Scalar outputs of m committed points, name -> (m,) (e.g. the equivalent plastic
        strain, stability checks); {} for none. Called once per committed state, not per
        Newton iteration."""
        ...


def check_elastic_constants(E: float, nu: float) -> None:
    """E > 0 and -1 < nu < 0.5 (ValueError otherwise)."""
    if not E > 0:
        raise ValueError(f"E must be > 0, got {E}")
    if not -1.0 < nu < 0.5:
        raise ValueError(f"nu must be in (-1, 0.5), got {nu}")


def linear_update(C: np.ndarray, strain: np.ndarray) -> Update:
    """Update of a law with constant tangent C (n, n): stress = C strain."""
    m = strain.shape[0]
    return Update(
        stress=strain @ C.T,
        tangent=np.broadcast_to(C, (m, *C.shape)),
        state={},
        ok=np.isfinite(strain).all(axis=1),
    )
