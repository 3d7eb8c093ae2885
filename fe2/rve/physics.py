"""The field problems an RVE can carry, behind one small interface.

All are written as "strain" (n,) -> "stress" (n,) with a tangent matrix (n x n):

* elasticity (small strain): field u (vector), strain = Mandel(sym grad u),
  stress = Mandel(sigma);
* finite_strain: field u (vector), strain = F = I + grad u flattened row-major
  (F11, F12, F21, F22 in 2D), stress = first Piola-Kirchhoff P flattened alike;
* conduction: field T (scalar), strain = grad T, stress = k grad T (heat flux, sign dropped).

The macro strain E (n,) enters the RVE as the affine part of the field; the RVE unknown is the
fluctuation w, so the micro strain is E + strain(w) (for finite strain: F = F_bar + grad w).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import ufl

from fe2.tensors import MANDEL_LABELS, ufl_mandel


class Physics(ABC):
    """Field problem on an RVE of dimension ``dim``."""

    name: str

    def __init__(self, dim: int):
        if dim not in (2, 3):
            raise ValueError(f"dimension must be 2 or 3, got {dim}")
        self.dim = dim

    @property
    @abstractmethod
    def value_shape(self) -> tuple[int, ...]:
        """Shape of the field: () for a scalar, (dim,) for a vector."""

    @property
    @abstractmethod
    def labels(self) -> tuple[str, ...]:
        """Names of the n strain/stress components, e.g. ('11', '22', '12')."""

    @property
    def n_comp(self) -> int:
        """Number of macro strain components n."""
        return len(self.labels)

    @property
    def reference_strain(self) -> np.ndarray:
        """The strain of the undeformed state (zero; the identity for finite strain), (n,)."""
        return np.zeros(self.n_comp)

    @abstractmethod
    def strain(self, w: ufl.core.expr.Expr) -> ufl.core.expr.Expr:
        """Strain vector of a field, shape (n,)."""

    @abstractmethod
    def macro_field(self, E: ufl.core.expr.Expr, x: ufl.core.expr.Expr) -> ufl.core.expr.Expr:
        """Affine field with uniform strain E (n,) at position x (relative to the centre)."""


class Elasticity(Physics):
    """Small-strain elasticity (plane strain in 2D), Mandel components."""

    name = "elasticity"

    @property
    def value_shape(self) -> tuple[int, ...]:
        return (self.dim,)

    @property
    def labels(self) -> tuple[str, ...]:
        return MANDEL_LABELS[self.dim]

    def strain(self, w):
        return ufl_mandel(ufl.sym(ufl.grad(w)))

    def macro_field(self, E, x):
        s2 = 2.0**0.5
        if self.dim == 2:
            Et = ufl.as_matrix([[E[0], E[2] / s2], [E[2] / s2, E[1]]])
        else:
            Et = ufl.as_matrix(
                [
                    [E[0], E[5] / s2, E[4] / s2],
                    [E[5] / s2, E[1], E[3] / s2],
                    [E[4] / s2, E[3] / s2, E[2]],
                ]
            )
        return Et * x


class FiniteStrain(Physics):
    """Finite-strain mechanics: F and P flattened row-major (plane strain in 2D)."""

    name = "finite_strain"

    @property
    def value_shape(self) -> tuple[int, ...]:
        return (self.dim,)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(f"{i + 1}{j + 1}" for i in range(self.dim) for j in range(self.dim))

    @property
    def reference_strain(self) -> np.ndarray:
        return np.eye(self.dim).ravel()

    def strain(self, w):
        g = ufl.grad(w)
        return ufl.as_vector([g[i, j] for i in range(self.dim) for j in range(self.dim)])

    def macro_field(self, E, x):
        d = self.dim
        H = ufl.as_matrix([[E[i * d + j] - (1.0 if i == j else 0.0) for j in range(d)] for i in range(d)])
        return H * x


class Conduction(Physics):
    """Stationary heat conduction; the strain is the temperature gradient."""

    name = "conduction"

    @property
    def value_shape(self) -> tuple[int, ...]:
        return ()

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple("123"[: self.dim])

    def strain(self, w):
        return ufl.grad(w)

    def macro_field(self, E, x):
        return ufl.dot(E, x)


PHYSICS: dict[str, type[Physics]] = {
    cls.name: cls for cls in (Elasticity, FiniteStrain, Conduction)
}


def make_physics(name: str, dim: int) -> Physics:
    """Physics by name ('elasticity', 'finite_strain' or 'conduction')."""
    try:
        return PHYSICS[name](dim)
    except KeyError:
        raise ValueError(f"unknown physics {name!r}; expected one of {sorted(PHYSICS)}") from None

