"""The macro Jacobian of conduction FE² with k(T) phases against finite differences.

With a temperature-dependent conductivity the macro strain at a point is (grad T, T) and the
homogenised flux depends on both, so the consistent Jacobian of the macro residual
R(T)_i = int q(grad T, T) . grad v_i dx is int (dq/dgradT grad dT + dq/dT dT) . grad v_i dx.
Checked for a non-uniform macro temperature T and a non-uniform direction dT:
J dT = (R(T + h dT) - R(T - h dT)) / 2h, for the closed-form k(T) law and for RVEs (k(T) matrix,
power-law inclusion; periodic, affine and traction BCs). The same check with the dq/dT column
dropped fails by orders of magnitude: the temperature coupling is what makes J consistent.
"""

import numpy as np
import pytest
from dolfinx import fem, mesh as dmesh
from dolfinx.fem.petsc import assemble_matrix, assemble_vector, create_matrix
from mpi4py import MPI
from petsc4py import PETSc

from fe2.fem.quadrature_forms import QuadratureForms
from fe2.materials.points import LawPoints
from fe2.materials.transport import PowerLawConductor, TemperatureDependentConductor
from fe2.physics import make_physics
from fe2.rve.factory import make_rve_solver
from fe2.rve.micro_solver import NewtonOptions
from fe2.rve.model import RveModel
from fe2.rve.pool import RvePool

comm = MPI.COMM_WORLD
MATRIX = TemperatureDependentConductor(k0=1.0, alpha=0.05, T0=10.0)
INCLUSION = PowerLawConductor(k=10.0, p=2.6, delta=0.2)
PHYSICS = make_physics("conduction", 2, [MATRIX, INCLUSION])


def temperature(x):
    return 20.0 + 5.0 * x[0] - 3.0 * x[0] * x[1] + 2.0 * x[1] ** 2


def direction(x):
    return 1.0 + np.sin(2.0 * x[0]) + x[0] * x[1]


class MacroResidual:
    """R(T) and J(T) of the macro conduction form with material points ``make_points``."""

    def __init__(self, make_points):
        domain = dmesh.create_rectangle(comm, [[0, 0], [2, 1]], [3, 2], cell_type=dmesh.CellType.quadrilateral)
        self.forms = QuadratureForms(domain, PHYSICS, 1)
        self.points = make_points(self.forms.num_cells * self.forms.num_qp)
        self.T = fem.Function(self.forms.V)

    def _evaluate(self, values: np.ndarray) -> None:
        forms = self.forms
        self.T.x.array[:] = values
        strains = PHYSICS.reference_strain + forms.strain_of(self.T.x.array)
        stresses, tangents = self.points.evaluate(strains.reshape(-1, PHYSICS.n_comp))
        forms.stress_qp[:] = stresses.reshape(forms.stress_qp.shape)
        forms.tangent_qp[:] = tangents.reshape(forms.tangent_qp.shape)

    def residual(self, values: np.ndarray) -> PETSc.Vec:
        self._evaluate(values)
        R = self.T.x.petsc_vec.duplicate()
        R.set(0.0)
        assemble_vector(R, self.forms.internal_force)
        R.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        return R

    def jacobian(self, values: np.ndarray, *, temperature_column: bool = True) -> PETSc.Mat:
        self._evaluate(values)
        if not temperature_column:
            self.forms.tangent_qp[..., :, -1] = 0.0
        J = create_matrix(self.forms.jacobian)
        assemble_matrix(J, self.forms.jacobian)
        J.assemble()
        return J


def check(make_points, h=1e-5):
    """(|J dT - FD|, same without the dq/dT column, |J dT|), all ranks."""
    macro = MacroResidual(make_points)
    V = macro.forms.V
    T, dT = fem.Function(V), fem.Function(V)
    T.interpolate(temperature)
    dT.interpolate(direction)
    T0, d = T.x.array.copy(), dT.x.array.copy()
    fd = macro.residual(T0 + h * d)
    fd.axpy(-1.0, macro.residual(T0 - h * d))
    fd.scale(1.0 / (2 * h))
    errors = []
    for column in (True, False):
        J = macro.jacobian(T0, temperature_column=column)
        JdT = fd.duplicate()
        J.mult(dT.x.petsc_vec, JdT)
        scale = JdT.norm() if column else scale
        JdT.axpy(-1.0, fd)
        errors.append(JdT.norm())
        J.destroy()
    return errors[0], errors[1], scale


def test_macro_jacobian_of_the_closed_form_k_of_T_law_matches_finite_differences():
    error, without, scale = check(lambda m: LawPoints(MATRIX, m, dim=2, n_comp=PHYSICS.n_comp))
    assert error <= 1e-8 * scale, (error, scale)
    assert without > 1e-3 * scale, (without, scale)


@pytest.mark.parametrize("bc", ["periodic", "affine", "traction"])
def test_macro_jacobian_of_k_of_T_rve_points_matches_finite_differences(make_mesh, bc):
    rve = make_mesh(type="inclusion_2d", volume_fraction=0.3, mesh_size=0.2)
    model = RveModel(rve.mesh, rve.cell_tags, PHYSICS, {1: MATRIX, 2: INCLUSION})
    newton = NewtonOptions(rtol=1e-13, max_iterations=30)
    error, without, scale = check(lambda m: RvePool(make_rve_solver(model, bc, newton=newton), m))
    assert error <= 1e-8 * scale, (error, scale)
    assert without > 1e-3 * scale, (without, scale)
