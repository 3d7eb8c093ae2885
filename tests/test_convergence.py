"""Newton convergence with a round-off floor, RVE and macro (issue 12, item 7).

Cases from the issue that did not converge although nothing physical was wrong: an RVE at
F̄ - I ~ 5e-18 (the first Piola stress is a difference of terms of size mu, so the residual
cannot drop below ~eps mu), and a perfectly plastic two-phase RVE at a large strain (the stress
is a trial stress C eps minus a return of the same size).
"""

import json

import numpy as np
import pytest
from mpi4py import MPI

from fe2.convergence import ROUNDOFF_FACTOR, converged, residual_terms, tolerance
from fe2.materials import J2Plasticity, LinearElastic, NeoHookean
from fe2.rve.model import RveModel
from fe2.rve.factory import make_rve_solver
from fe2.rve.micro_solver import NewtonOptions
from fe2.physics import make_physics
from test_run import run, study

comm = MPI.COMM_WORLD
SPEC = {"type": "inclusion_2d", "volume_fraction": 0.3, "mesh_size": 0.1}
EPS = np.finfo(float).eps


def test_the_criterion():
    assert converged(1e-9, atol=0.0, rtol=1e-10, scale=1e2)
    assert not converged(2e-8, atol=0.0, rtol=1e-10, scale=1e2)
    assert converged(2e-8, atol=1e-7, rtol=1e-10, scale=1e2)
    floor = ROUNDOFF_FACTOR * EPS * 3.0
    assert converged(0.9 * floor, atol=0.0, rtol=1e-10, scale=0.0, terms=3.0)
    assert not converged(1.1 * floor, atol=0.0, rtol=1e-10, scale=0.0, terms=3.0)
    assert tolerance(atol=0.0, rtol=1e-10, scale=0.0, terms=3.0) == pytest.approx(floor)
    # the terms: |C| |eps| dV / h summed in squares; one cell of volume 1 in 2D (h = 1)
    C = np.eye(3)[None, None] * 2.0
    strain = np.array([3.0, 4.0, 0.0])[None, None]
    assert residual_terms(C, strain, np.ones((1, 1)), dim=2) == pytest.approx(2 * np.sqrt(3) * 5)


@pytest.mark.parametrize("batch", ["off", "auto"])
@pytest.mark.parametrize("bc", ["periodic", "affine", "traction"])
def test_rve_at_the_identity_to_round_off_converges(make_mesh, bc, batch):
    """F̄ = I + O(5e-18): 'did not converge in 25 iterations (residual 1e-20, target 1e-28)'."""
    rve = make_mesh(**SPEC)
    model = RveModel(rve.mesh, rve.cell_tags, make_physics("finite_strain", 2),
                     {1: NeoHookean(E=3.5, nu=0.35), 2: NeoHookean(E=72.0, nu=0.22)})
    solver = make_rve_solver(model, bc, batch=batch, newton=NewtonOptions(rtol=1e-10))
    response, _ = solver.solve(np.array([1.0, 5e-18, -3e-18, 1.0 + 4e-18]), solver.initial_state())
    assert np.abs(response.stress).max() < 1e-14  # the unstressed state, to round-off
    np.testing.assert_allclose(response.tangent, response.tangent.T, atol=1e-10 * np.abs(response.tangent).max())


@pytest.mark.parametrize("bc,strains", [
    ("periodic", [[0.0, 0.0, 1.0]]),
    ("traction", [[0.0, 0.0, 1.0]]),
    ("affine", [[0.0, 0.0, k] for k in (1.0, 2.0, 3.0, 4.0, 5.0)]),
], ids=["periodic", "traction", "affine-500%"])
@pytest.mark.parametrize("batch", ["off", "auto"])
def test_perfectly_plastic_rve_at_large_strain_converges(make_mesh, bc, strains, batch):
    """J2 matrix without hardening, elastic fibres, P2, sheared to 100-500 % with rtol 1e-12:
    Newton used to stall at 40 eps t above a purely relative target."""
    rve = make_mesh(**SPEC)
    model = RveModel(rve.mesh, rve.cell_tags, make_physics("elasticity", 2),
                     {1: J2Plasticity(E=3.5, nu=0.35, sigma_y=0.06), 2: LinearElastic(E=72.0, nu=0.22)},
                     degree=2)
    solver = make_rve_solver(model, bc, batch=batch, newton=NewtonOptions(rtol=1e-12))
    state = solver.initial_state()
    for E in strains:
        committed = state
        response, state = solver.solve(np.array(E), state)
        strain = model.operators.strain(state.w[None], np.array([E]))  # the converged state
        tangent = model.constitutive_update(strain, committed.history).tangent
        terms = residual_terms(tangent[0], strain[0], model.dV, dim=2)
        assert response.residual_norms[-1] <= max(1e-12 * 10.0, ROUNDOFF_FACTOR * EPS * terms)
        # the matrix carries at most its yield stress in shear: |<sigma_12>| bounded by the mix
        assert np.isfinite(response.stress).all()


def test_macro_newton_at_round_off_loads(shared_tmp_path, capsys):
    """A finite-strain bar pulled by 1e-14: the residual cannot fall below eps mu; the run
    completes, and its reaction is the linear one scaled down (to the round-off of P)."""
    law = {"law": {"law": "neo_hookean", "E": 3.5, "nu": 0.35}}
    reactions = {}
    for pull in (1e-6, 1e-14):
        data = study(physics="finite_strain", material=law, steps=1,
                     boundary_conditions=[{"boundary": "left", "component": "all", "value": 0.0},
                                          {"boundary": "right", "component": "x", "value": pull}])
        data["checkpoint"] = {"every": 0}
        code, out = run(shared_tmp_path, data, out=f"pull{pull:g}")
        assert code == 0, capsys.readouterr().err
        if comm.rank == 0:
            summary = json.loads((out / "summary.json").read_text())
            assert summary["status"] == "completed"
            reactions[pull] = summary["final_reactions"]["right"][0]
    if comm.rank == 0:
        assert reactions[1e-14] == pytest.approx(reactions[1e-6] * 1e-8, rel=0.05)
