"""The macro problem: closed-form laws and FE² behind the material-point contract.

Meshes are distributed over MPI.COMM_WORLD: the same tests run serially and under mpiexec.
"""

import numpy as np
import pytest
import ufl
from dolfinx import fem, mesh as dmesh
from dolfinx.fem.petsc import LinearProblem
from mpi4py import MPI

from fe2.macro.problem import Dirichlet, MacroProblem, Traction
from fe2.macro.stepping import run_load_steps
from fe2.materials import AnisotropicLinearElastic, J2Plasticity, LinearElastic
from fe2.materials.points import LawPoints
from fe2.rve.effective import effective_tensor
from fe2.rve.model import RveModel
from fe2.rve.factory import make_rve_solver
from fe2.rve.micro_solver import NewtonOptions
from fe2.rve.physics import make_physics
from fe2.rve.pool import RvePool

comm = MPI.COMM_WORLD
ELASTICITY = make_physics("elasticity", 2)
LINEAR_PHASES = {1: LinearElastic(E=3.5, nu=0.35), 2: LinearElastic(E=72.0, nu=0.22)}
PLASTIC_PHASES = {1: J2Plasticity(E=3.5, nu=0.35, sigma_y=0.06, H=0.3), 2: LinearElastic(E=72.0, nu=0.22)}


def strip(nx=4, ny=2, cell_type=dmesh.CellType.triangle):
    domain = dmesh.create_rectangle(comm, [[0, 0], [2, 1]], [nx, ny], cell_type=cell_type)
    facets = {
        name: dmesh.locate_entities_boundary(domain, 1, marker)
        for name, marker in {
            "left": lambda x: np.isclose(x[0], 0.0),
            "right": lambda x: np.isclose(x[0], 2.0),
            "top": lambda x: np.isclose(x[1], 1.0),
        }.items()
    }
    return domain, facets


def pulled(facets, ux=0.02, uy=0.01):
    return [
        Dirichlet("left", facets["left"], None, 0.0),
        Dirichlet("right", facets["right"], 0, ux),
        Dirichlet("right", facets["right"], 1, uy),
    ]


def max_relative(a, b):
    error = comm.allreduce(np.abs(a - b).max(initial=0.0), op=MPI.MAX)
    scale = comm.allreduce(np.abs(b).max(initial=0.0), op=MPI.MAX)
    return error / scale


@pytest.mark.parametrize("degree", [1, 2])
@pytest.mark.parametrize("cell_type", [dmesh.CellType.triangle, dmesh.CellType.quadrilateral])
def test_closed_form_linear_law_equals_single_scale_solve(degree, cell_type):
    domain, facets = strip(8, 4, cell_type)
    law = LinearElastic(E=10.0, nu=0.3)
    traction, body = np.array([0.0, -0.05]), np.array([0.0, -0.1])
    problem = MacroProblem(
        domain, ELASTICITY, degree, lambda m: LawPoints(law, m, dim=2, n_comp=3),
        dirichlet=[Dirichlet("left", facets["left"], None, 0.0), Dirichlet("right", facets["right"], 0, 0.01)],
        tractions=[Traction("top", facets["top"], traction)], body_force=body,
        newton=NewtonOptions(rtol=1e-12),
    )
    record = run_load_steps(problem, [1.0])[0]
    assert record.newton_iterations == 1  # linear: one Newton step
    # Independent single-scale solve, pure UFL.
    V = problem.V
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    lmbda, mu = law.lame
    eps = ufl.sym(ufl.grad(u))
    sigma = lmbda * ufl.tr(eps) * ufl.Identity(2) + 2 * mu * eps
    bcs = [
        fem.dirichletbc(np.zeros(2), fem.locate_dofs_topological(V, 1, facets["left"]), V),
        fem.dirichletbc(fem.Constant(domain, 0.01), fem.locate_dofs_topological(V.sub(0), 1, facets["right"]), V.sub(0)),
    ]
    top = np.sort(facets["top"]).astype(np.int32)
    ds = ufl.Measure("ds", domain=domain, subdomain_data=dmesh.meshtags(domain, 1, top, np.ones_like(top)))
    L = ufl.dot(fem.Constant(domain, traction), v) * ds(1) + ufl.dot(fem.Constant(domain, body), v) * ufl.dx
    reference = LinearProblem(
        ufl.inner(sigma, ufl.sym(ufl.grad(v))) * ufl.dx, L, bcs=bcs, petsc_options_prefix=f"ref_{degree}_",
        petsc_options={"ksp_type": "preonly", "pc_type": "lu", "pc_factor_mat_solver_type": "mumps"},
    ).solve()
    assert max_relative(problem.u.x.array, reference.x.array) < 1e-10
    # The supports carry the applied vertical load: 2 * 0.05 (top) + 2 * 0.1 (body).
    assert record.reactions["left"][1] + record.reactions["right"][1] == pytest.approx(0.3, rel=1e-10)
    problem.destroy()


def rve_model(make_mesh, phases):
    rve = make_mesh(type="inclusion_2d", volume_fraction=0.3, mesh_size=0.1)
    return RveModel(rve.mesh, rve.cell_tags, ELASTICITY, phases)


def test_fe2_with_linear_rve_equals_precomputed_effective_tensor(make_mesh):
    domain, facets = strip()
    model = rve_model(make_mesh, LINEAR_PHASES)
    C = effective_tensor(model, "periodic").C
    solutions = []
    for make_points in (
        lambda m: RvePool(make_rve_solver(model, "periodic"), m),  # concurrent: an RVE per point
        lambda m: LawPoints(AnisotropicLinearElastic(C), m, dim=2, n_comp=3),  # hierarchical
    ):
        problem = MacroProblem(domain, ELASTICITY, 1, make_points, dirichlet=pulled(facets), newton=NewtonOptions(rtol=1e-12))
        run_load_steps(problem, [1.0])
        solutions.append(problem.u.x.array.copy())
        problem.destroy()
    assert max_relative(solutions[0], solutions[1]) < 1e-10


def test_consistent_tangent_gives_quadratic_macro_convergence(make_mesh):
    domain, facets = strip()
    model = rve_model(make_mesh, PLASTIC_PHASES)
    newton = NewtonOptions(rtol=1e-10, max_iterations=30)
    problem = MacroProblem(domain, ELASTICITY, 1, lambda m: RvePool(make_rve_solver(model, "periodic"), m),
                           dirichlet=pulled(facets), newton=newton)
    records = run_load_steps(problem, [0.5, 1.0])
    assert all(r.cutbacks == 0 for r in records)
    plastic = comm.allreduce(problem.points.point_fields()["equivalent_plastic_strain"].max(), op=MPI.MAX)
    assert plastic > 1e-3  # RVE-averaged plastic strain: the step is into plasticity
    norms = records[1].residual_norms
    ratios = [b / a**2 for a, b in zip(norms[:-1], norms[1:])]
    assert len(norms) <= 7 and norms[-1] < 1e-10 * norms[0]
    # r_{k+1} <= C r_k^2 with a modest C (points switching between elastic and plastic may
    # bump one ratio); linear convergence would give ratios ~ rho / r_k > 1e5 here.
    assert max(ratios) < 200.0, ratios
    order = np.log(norms[-1] / norms[-2]) / np.log(norms[-2] / norms[-3])
    assert order > 1.8, norms
    consistent_iterations = records[0].newton_iterations

    # The averaged micro tangent on the same first step: no longer quadratic, far slower.
    averaged = MacroProblem(
        domain, ELASTICITY, 1, lambda m: RvePool(make_rve_solver(model, "periodic"), m, tangent="averaged"),
        dirichlet=pulled(facets), newton=NewtonOptions(rtol=1e-10, max_iterations=3 * consistent_iterations),
    )
    result = averaged.solve(0.5)
    assert not result.converged or result.iterations >= 2 * consistent_iterations
    n = result.residual_norms
    assert n[-1] / n[-2] > 0.1  # linear convergence: a roughly constant reduction factor
    problem.destroy()
    averaged.destroy()


def test_too_large_step_is_cut_back_and_equals_small_steps():
    domain, facets = strip(6, 3)
    law = J2Plasticity(E=3.5, nu=0.35, sigma_y=0.02, H=0.05)
    newton = NewtonOptions(rtol=1e-12, max_iterations=5)

    def run(targets):
        problem = MacroProblem(domain, ELASTICITY, 1, lambda m: LawPoints(law, m, dim=2, n_comp=3),
                               dirichlet=pulled(facets, ux=0.05, uy=0.03), newton=newton)
        return problem, run_load_steps(problem, targets, max_cutbacks=8)

    cut, records = run([1.0])
    assert records[0].cutbacks >= 1 and records[0].substeps >= 2
    loads = records[0].substep_times
    assert loads[-1] == 1.0 and loads == sorted(loads)
    small, small_records = run(loads)
    assert all(r.cutbacks == 0 for r in small_records)
    assert max_relative(cut.u.x.array, small.u.x.array) < 1e-12
    p_cut = cut.points.point_fields()["equivalent_plastic_strain"]
    p_small = small.points.point_fields()["equivalent_plastic_strain"]
    assert np.array_equal(p_cut, p_small) or np.allclose(p_cut, p_small, rtol=1e-12, atol=1e-15)
    cut.destroy()
    small.destroy()


def test_failed_point_on_one_rank_cuts_back_everywhere():
    """An inadmissible strain at one point fails the Newton solve on every rank."""
    domain, facets = strip()
    law = J2Plasticity(E=3.5, nu=0.35, sigma_y=0.06, H=0.3)

    class Fragile(LawPoints):
        """Fails at its first point whenever the strain is large (only on rank 0)."""

        def evaluate(self, strains):
            if comm.rank == 0 and self.num_points and np.abs(strains).max() > 0.005:
                from fe2.material_point import MaterialPointFailure

                raise MaterialPointFailure(0, "injected failure")
            return super().evaluate(strains)

    problem = MacroProblem(domain, ELASTICITY, 1, lambda m: Fragile(law, m, dim=2, n_comp=3),
                           dirichlet=pulled(facets), newton=NewtonOptions(rtol=1e-10))
    result = problem.solve(1.0)
    assert not result.converged and "injected failure" in result.reason  # on every rank
    problem.destroy()


@pytest.mark.parametrize("cell_type", [dmesh.CellType.tetrahedron, dmesh.CellType.hexahedron])
def test_closed_form_linear_law_3d_equals_single_scale_solve(cell_type):
    domain = dmesh.create_box(comm, [[0, 0, 0], [2, 1, 1]], [4, 2, 2], cell_type=cell_type)
    left = dmesh.locate_entities_boundary(domain, 2, lambda x: np.isclose(x[0], 0.0))
    right = dmesh.locate_entities_boundary(domain, 2, lambda x: np.isclose(x[0], 2.0))
    law = LinearElastic(E=5.0, nu=0.25)
    problem = MacroProblem(
        domain, make_physics("elasticity", 3), 1, lambda m: LawPoints(law, m, dim=3, n_comp=6),
        dirichlet=[Dirichlet("left", left, None, 0.0), Dirichlet("right", right, 0, 0.02),
                   Dirichlet("right", right, 2, -0.01)],
        newton=NewtonOptions(rtol=1e-12),
    )
    run_load_steps(problem, [1.0])
    V = problem.V
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    lmbda, mu = law.lame
    eps = ufl.sym(ufl.grad(u))
    sigma = lmbda * ufl.tr(eps) * ufl.Identity(3) + 2 * mu * eps
    bcs = [
        fem.dirichletbc(np.zeros(3), fem.locate_dofs_topological(V, 2, left), V),
        fem.dirichletbc(fem.Constant(domain, 0.02), fem.locate_dofs_topological(V.sub(0), 2, right), V.sub(0)),
        fem.dirichletbc(fem.Constant(domain, -0.01), fem.locate_dofs_topological(V.sub(2), 2, right), V.sub(2)),
    ]
    zero = fem.Constant(domain, np.zeros(3))
    reference = LinearProblem(
        ufl.inner(sigma, ufl.sym(ufl.grad(v))) * ufl.dx, ufl.dot(zero, v) * ufl.dx, bcs=bcs,
        petsc_options_prefix=f"ref3d_{cell_type.name}_",
        petsc_options={"ksp_type": "preonly", "pc_type": "lu", "pc_factor_mat_solver_type": "mumps"},
    ).solve()
    assert max_relative(problem.u.x.array, reference.x.array) < 1e-10
    problem.destroy()


def test_finite_strain_macro_equals_hyperelastic_single_scale_solve():
    """Neo-Hookean points with F = I + grad U and P vs the same energy in pure UFL (SNES)."""
    from dolfinx.fem.petsc import NonlinearProblem

    from fe2.materials import NeoHookean

    domain, facets = strip(8, 4)
    law = NeoHookean(E=1.0, nu=0.3)
    dirichlet = [
        Dirichlet("left", facets["left"], None, 0.0),
        Dirichlet("right", facets["right"], 0, 0.4),  # 20 % stretch
        Dirichlet("right", facets["right"], 1, 0.1),
    ]
    problem = MacroProblem(
        domain, make_physics("finite_strain", 2), 1, lambda m: LawPoints(law, m, dim=2, n_comp=4),
        dirichlet=dirichlet, newton=NewtonOptions(rtol=1e-12),
    )
    record = run_load_steps(problem, [0.5, 1.0])[-1]
    assert record.newton_iterations <= 8
    V = problem.V
    u, v = fem.Function(V), ufl.TestFunction(V)
    lmbda, mu = LinearElastic(E=law.E, nu=law.nu).lame
    F = ufl.Identity(2) + ufl.grad(u)
    J = ufl.det(F)
    energy = mu / 2 * (ufl.tr(F.T * F) - 3 + 1) - mu * ufl.ln(J) + lmbda / 2 * ufl.ln(J) ** 2
    residual = ufl.derivative(energy * ufl.dx, u, v)
    values = {(0, None): 0.0, (1, 0): 0.4, (2, 1): 0.1}
    bcs = [
        fem.dirichletbc(np.zeros(2), fem.locate_dofs_topological(V, 1, facets["left"]), V),
        fem.dirichletbc(fem.Constant(domain, values[(1, 0)]), fem.locate_dofs_topological(V.sub(0), 1, facets["right"]), V.sub(0)),
        fem.dirichletbc(fem.Constant(domain, values[(2, 1)]), fem.locate_dofs_topological(V.sub(1), 1, facets["right"]), V.sub(1)),
    ]
    u.x.array[:] = problem.u.x.array * 0.5  # a start within the basin of SNES's plain Newton
    reference = NonlinearProblem(
        residual, u, bcs=bcs, petsc_options_prefix="ref_hyper_",
        petsc_options={"snes_type": "newtonls", "snes_rtol": 1e-14, "snes_atol": 1e-14,
                       "snes_error_if_not_converged": True, "ksp_type": "preonly", "pc_type": "lu",
                       "pc_factor_mat_solver_type": "mumps"},
    )
    reference.solve()
    assert max_relative(problem.u.x.array, u.x.array) < 1e-9
    problem.destroy()


def test_failure_on_one_rank_cuts_back_on_all_and_completes():
    domain, facets = strip()
    law = J2Plasticity(E=3.5, nu=0.35, sigma_y=0.06, H=0.3)

    class FailsOnce(LawPoints):
        """Rank 0's points fail on their first large strain, then behave."""

        failed = False

        def evaluate(self, strains):
            if comm.rank == 0 and not self.failed and self.num_points and np.abs(strains).max() > 0.005:
                from fe2.material_point import MaterialPointFailure

                self.failed = True
                raise MaterialPointFailure(0, "injected failure")
            return super().evaluate(strains)

    problem = MacroProblem(domain, ELASTICITY, 1, lambda m: FailsOnce(law, m, dim=2, n_comp=3),
                           dirichlet=pulled(facets), newton=NewtonOptions(rtol=1e-10))
    records = run_load_steps(problem, [1.0])
    cutbacks = comm.allgather(records[0].cutbacks)
    assert min(cutbacks) >= 1 and len(set(cutbacks)) == 1  # the same cut-back on every rank
    assert records[0].rve_failures >= 1  # the failed attempt is counted (on every rank)
    assert records[0].substeps >= 2
    problem.destroy()
