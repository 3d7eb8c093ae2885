"""Stress and tangent in quadrature spaces, and the forms assembled from them.

Shared by the RVE (fluctuation w) and the macro problem (displacement U): for a field u in a
Lagrange space V and a ``Physics`` with strain operator strain(.) (n components),

    internal force   R(v)    = sum_q sigma_q . strain(v) dV_q,
    Jacobian         J(u, v) = sum_q strain(u) . C_q strain(v) dV_q,

with sigma_q (n,) and C_q (n, n) quadrature functions filled by whoever evaluates the
constitutive law. The quadrature degree is 2(p-1) on simplices (one point for P1) and 2p on
tensor-product cells, so that sigma:eps of linear phases is integrated exactly on affine
cells. Arrays at the quadrature points of the owned cells have shape (num_cells, num_qp, ...).
"""

from __future__ import annotations

import basix
import basix.ufl
import dolfinx
import numpy as np
import ufl
from dolfinx import fem

from fe2.physics import Physics


def quadrature_degree(cell: basix.CellType, degree: int) -> int:
    """Quadrature degree for Lagrange degree ``degree`` on ``cell`` (see module doc)."""
    simplex = cell in (basix.CellType.triangle, basix.CellType.tetrahedron)
    return 2 * (degree - 1) if simplex else 2 * degree


class QuadratureSpace:
    """The Lagrange space of a field and the quadrature rule of its strain (no coefficients).

    Args:
        mesh: the mesh (any communicator; arrays cover the cells this rank owns).
        physics: strain measure and field shape.
        degree: Lagrange degree of the field.
        fluctuation: the field is an RVE fluctuation: its strain is the physics'
            ``fluctuation_strain`` (which differs from ``strain`` where a macro quantity,
            e.g. the macro temperature, enters the micro strain without fluctuating).

    Attributes:
        strain: the strain operator of the field (n components).
        V: the Lagrange space; dx: the quadrature measure; num_qp: points per cell;
        dV: quadrature volumes |det J| w_q of the owned cells, (num_cells, num_qp).
    """

    def __init__(self, mesh: dolfinx.mesh.Mesh, physics: Physics, degree: int, *, fluctuation: bool = False):
        self.mesh, self.physics, self.degree = mesh, physics, degree
        self.strain = physics.fluctuation_strain if fluctuation else physics.strain
        self.cell_type = mesh.basix_cell()
        self.quadrature_degree = quadrature_degree(self.cell_type, degree)
        self.reference_points, weights = basix.make_quadrature(self.cell_type, self.quadrature_degree)
        self.num_qp = len(weights)
        self.num_cells = mesh.topology.index_map(mesh.topology.dim).size_local
        self.V = fem.functionspace(mesh, ("Lagrange", degree, physics.value_shape))
        self.dx = ufl.Measure(
            "dx", domain=mesh,
            metadata={"quadrature_degree": self.quadrature_degree, "quadrature_scheme": "default"},
        )
        self.cells = np.arange(self.num_cells, dtype=np.int32)
        detJ = fem.Expression(abs(ufl.JacobianDeterminant(mesh)), self.reference_points)
        self.dV = detJ.eval(mesh, self.cells).reshape(self.num_cells, self.num_qp) * weights

    def quadrature_space(self, shape: tuple[int, ...]) -> fem.FunctionSpace:
        """The quadrature space of values of ``shape`` at the points of this rule."""
        element = basix.ufl.quadrature_element(
            self.cell_type, value_shape=shape, scheme="default", degree=self.quadrature_degree
        )
        return fem.functionspace(self.mesh, element)

    def quadrature_coordinates(self) -> np.ndarray:
        """Physical coordinates of the quadrature points of the owned cells, (cells, qp, gdim)."""
        x = fem.Expression(ufl.SpatialCoordinate(self.mesh), self.reference_points)
        return x.eval(self.mesh, self.cells).reshape(self.num_cells, self.num_qp, self.mesh.geometry.dim)


class QuadratureForms:
    """Stress and tangent quadrature functions and the forms compiled from them.

    Each instance owns its coefficients: two solvers never share them.

    Args:
        mesh, physics, degree: as for :class:`QuadratureSpace` (or pass ``space``).
        space: an existing space to build on (the same V and quadrature).
    """

    def __init__(self, mesh: dolfinx.mesh.Mesh, physics: Physics, degree: int, *,
                 space: QuadratureSpace | None = None):
        space = space if space is not None else QuadratureSpace(mesh, physics, degree)
        self.space, self.mesh, self.physics, self.degree = space, space.mesh, physics, degree
        self.quadrature_degree, self.num_qp, self.num_cells = space.quadrature_degree, space.num_qp, space.num_cells
        self.V, self.dx, self.dV, self.cells = space.V, space.dx, space.dV, space.cells
        n = physics.n_comp
        self.stress_q = fem.Function(space.quadrature_space((n,)), name="stress")
        self.tangent_q = fem.Function(space.quadrature_space((n, n)), name="tangent")
        qmap = self.stress_q.function_space.dofmap.list[: self.num_cells]
        if not np.array_equal(qmap.ravel(), np.arange(qmap.size)):
            raise RuntimeError("unexpected quadrature dof layout")  # cell-major is assumed

        v, u = ufl.TestFunction(self.V), ufl.TrialFunction(self.V)
        strain = space.strain
        self.internal_force = fem.form(ufl.inner(self.stress_q, strain(v)) * self.dx)
        self.jacobian = fem.form(ufl.inner(ufl.dot(self.tangent_q, strain(u)), strain(v)) * self.dx)

        self._probe = fem.Function(self.V)  # field whose strain is evaluated at the points
        self._strain_expression = fem.Expression(strain(self._probe), space.reference_points)

    def quadrature_coordinates(self) -> np.ndarray:
        """Physical coordinates of the quadrature points of the owned cells, (cells, qp, gdim)."""
        return self.space.quadrature_coordinates()

    def _owned(self, function: fem.Function, shape: tuple[int, ...]) -> np.ndarray:
        size = self.num_cells * self.num_qp * int(np.prod(shape))
        return function.x.array[:size].reshape(self.num_cells, self.num_qp, *shape)

    @property
    def stress_qp(self) -> np.ndarray:
        """Stress at the quadrature points of the owned cells, (num_cells, num_qp, n) (a view)."""
        return self._owned(self.stress_q, (self.physics.n_comp,))

    @property
    def tangent_qp(self) -> np.ndarray:
        """Tangent at the quadrature points of the owned cells, (num_cells, num_qp, n, n) (a view)."""
        n = self.physics.n_comp
        return self._owned(self.tangent_q, (n, n))

    def strain_of(self, field: np.ndarray) -> np.ndarray:
        """strain(field) at the quadrature points of the owned cells, (num_cells, num_qp, n).

        ``field`` holds the local values (owned and ghost) of a function in V.
        """
        self._probe.x.array[:] = field
        values = self._strain_expression.eval(self.mesh, self.cells)
        return values.reshape(self.num_cells, self.num_qp, self.physics.n_comp)
