"""The two linear field problems an RVE can carry, behind one small interface.

Both are written as "strain" -> "stress" with a tangent matrix C (n x n):

* elasticity: field u (vector), strain = Mandel(sym grad u), stress = Mandel(sigma);
* conduction: field T (scalar), strain = grad T, stress = k grad T (heat flux, sign dropped).

The macro "strain" E (n,) enters the RVE as the affine part of the field, E . (x - x_c); the
RVE unknown is the fluctuation w, so the micro strain is E + strain(w).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

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


PHYSICS: dict[str, type[Physics]] = {"elasticity": Elasticity, "conduction": Conduction}


def make_physics(name: str, dim: int) -> Physics:
    """Physics by name ('elasticity' or 'conduction')."""
    try:
        return PHYSICS[name](dim)
    except KeyError:
        raise ValueError(f"unknown physics {name!r}; expected one of {sorted(PHYSICS)}") from None

