"""The iterative RVE linear solver (CG + GAMG) against the direct one (MUMPS / batched Cholesky).

Two code paths on the same RVE: the apparent tensors agree to the solver tolerance (ksp_rtol
1e-8 gives ~1e-10 here; asserted 1e-8) for the three BCs, 2D and 3D, elasticity and
conduction, per point and batched; a J2 load path into plasticity gives the same stresses and
tangents; a solve that does not converge fails the RVE (no answer) and the load path cuts
the step back.
"""

import logging
from pathlib import Path

import numpy as np
import pytest
from mpi4py import MPI

from fe2.errors import ComputationError
from fe2.homogenization.load_path import run_load_path, strain_segments
from fe2.materials.j2 import J2Plasticity
from fe2.materials.linear import LinearConductor, LinearElastic
from fe2.meshing.io import read_rve_mesh
from fe2.rve.effective import effective_tensor
from fe2.rve.factory import make_rve_solver, resolve_linear_solver
from fe2.rve.model import RveModel
from fe2.physics import make_physics
from fe2.rve.solver import KrylovSolver

MESHES = Path(__file__).resolve().parents[1] / "meshes"
BCS = ("periodic", "affine", "traction")
LAWS = {
    "elasticity": {1: LinearElastic(E=1.0, nu=0.3), 2: LinearElastic(E=10.0, nu=0.3)},
    "conduction": {1: LinearConductor(1.0), 2: LinearConductor(25.0)},
}
J2 = {1: J2Plasticity(E=3.5, nu=0.35, sigma_y=0.06, H=0.3), 2: LinearElastic(E=72.0, nu=0.22)}


def rve_model(dim, physics, degree, laws=None):
    rve = read_rve_mesh(MESHES / f"inclusion_{dim}d.msh", MPI.COMM_SELF)
    return RveModel(rve.mesh, rve.cell_tags, make_physics(physics, dim), laws or LAWS[physics], degree=degree)


def relative(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("dim, physics, degree", [
    (2, "elasticity", 2), (3, "elasticity", 1), (2, "conduction", 2), (3, "conduction", 1),
])
def test_iterative_tensor_equals_direct(dim, physics, degree):
    model = rve_model(dim, physics, degree)
    for bc in BCS:
        direct = effective_tensor(model, bc, linear_solver="direct", batch="off")
        iterative = effective_tensor(model, bc, linear_solver="iterative", batch="off")
        assert relative(iterative.C, direct.C) < 1e-8, bc
        assert relative(iterative.C, direct.C) > 0.0, bc  # really a second code path
        # CG from zero keeps the Hill-Mandel identity of each sensitivity to round-off.
        assert iterative.hill_mandel_residual.max() < 1e-12
        assert iterative.strain_average_error < 1e-12


def test_iterative_batched_equals_direct():
    """The batched engine with the iterative solver behind its linear-solver interface."""
    model = rve_model(2, "elasticity", 1)
    for bc in BCS:
        direct = effective_tensor(model, bc, linear_solver="direct", batch="off")
        batched = effective_tensor(model, bc, linear_solver="iterative", batch=2)
        assert relative(batched.C, direct.C) < 1e-8, bc


@pytest.mark.parametrize("bc", BCS)
def test_plastic_load_path_iterative_equals_direct(bc):
    """J2 matrix, elastic fibre: the path goes plastic (Newton with changing tangents, the
    preconditioner reused across iterations and steps, warm-started sensitivities)."""
    model = rve_model(2, "elasticity", 1, laws=J2)
    E = np.array([0.03, -0.005, 0.01 * 2**0.5])
    path = [t * E for t in (0.25, 0.5, 0.75, 1.0)]
    results = {}
    for kind in ("direct", "iterative"):
        solver = make_rve_solver(model, bc, batch="off", linear_solver=kind, single=True)
        results[kind] = run_load_path(solver, strain_segments(path), field_steps=set(), max_cutbacks=0)
        if kind == "iterative":
            assert solver.solver.statistics["setups"] < sum(results[kind].iterations)  # reused
        solver.destroy()
    direct, iterative = results["direct"], results["iterative"]
    assert direct.max_plastic_strain[-1] > 0.01  # really plastic
    assert iterative.iterations == direct.iterations
    for a, b in zip(iterative.stresses, direct.stresses):
        assert relative(a, b) < 1e-8
    for a, b in zip(iterative.tangents, direct.tangents):
        assert relative(a, b) < 1e-8


def test_plastic_batched_iterative_equals_direct():
    model = rve_model(2, "elasticity", 1, laws=J2)
    E = np.array([[0.02, -0.004, 0.01], [0.01, 0.0, -0.02], [0.0, 0.003, 0.001]])
    states = [None] * 3
    answers = {}
    for kind in ("direct", "iterative"):
        solver = make_rve_solver(model, "periodic", batch=3, linear_solver=kind)
        result = solver.solve_batch(E, [solver.initial_state()] * 3)
        assert not result.failures
        answers[kind] = result.responses
        states = result.trials
        solver.destroy()
    assert states[0] is not None
    for a, b in zip(answers["iterative"], answers["direct"]):
        assert relative(a.stress, b.stress) < 1e-8
        assert relative(a.tangent, b.tangent) < 1e-8


@pytest.mark.parametrize("batch", ["off", 2])
def test_unconverged_solve_fails_the_rve(batch):
    """CG stopped after 2 iterations: the RVE fails, no response is returned."""
    model = rve_model(2, "elasticity", 1, laws=J2)
    solver = make_rve_solver(model, "periodic", batch=batch, linear_solver="iterative",
                             petsc_options={"ksp_max_it": 2}, elastic_shortcut=False)
    E = np.array([[0.02, -0.004, 0.01], [0.01, 0.0, -0.02]])
    result = solver.solve_batch(E, [solver.initial_state()] * 2)
    assert sorted(result.failures) == [0, 1]
    assert result.responses == [None, None] and result.trials == [None, None]
    assert "converge" in str(result.failures[0])
    solver.destroy()


def test_unconverged_solve_cuts_the_step_back(caplog):
    model = rve_model(2, "elasticity", 1, laws=J2)
    solver = make_rve_solver(model, "periodic", batch="off", linear_solver="iterative",
                             petsc_options={"ksp_max_it": 2}, single=True)
    path = [np.array([0.03, -0.005, 0.01])]
    with caplog.at_level(logging.INFO, logger="fe2.macro.stepping"):
        with pytest.raises(ComputationError, match=r"\(time 1\) failed after 2 cut-backs: .*did not converge"):
            run_load_path(solver, strain_segments(path), field_steps=set(), max_cutbacks=2)
    # The whole step and its half were cut back; its quarter (two cut-backs allowed) failed too.
    tried = [r.getMessage() for r in caplog.records if "cutting back" in r.getMessage()]
    assert [m.split("t = ")[1].split(" ")[0] for m in tried] == ["1", "0.5"], tried
    assert all("converge" in m for m in tried)
    solver.destroy()


def test_auto_choice_and_refused_options():
    small = rve_model(2, "elasticity", 1)
    assert resolve_linear_solver(small, "auto") == "direct"
    assert resolve_linear_solver(small, "iterative") == "iterative"
    from fe2.rve import factory

    threshold = dict(factory.ITERATIVE_MIN_DOFS)
    try:
        factory.ITERATIVE_MIN_DOFS[2] = small.global_dofs
        assert resolve_linear_solver(small, "auto") == "iterative"
        assert resolve_linear_solver(small, "auto", {"pc_type": "lu"}) == "direct"
        assert resolve_linear_solver(small, "auto", {"ksp_type": "preonly"}) == "direct"
    finally:
        factory.ITERATIVE_MIN_DOFS.update(threshold)
    from fe2.errors import InputError

    with pytest.raises(InputError, match="preonly"):
        KrylovSolver(MPI.COMM_SELF, prefix="fe2_test_refused_", options={"ksp_type": "preonly"})
