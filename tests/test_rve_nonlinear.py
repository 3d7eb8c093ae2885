"""Nonlinear RVEs: Newton, consistent tangent by sensitivity, state commit/rollback.

References: VERIFICATION.md items 5-7 and 12, closed-form J2 return mapping, objectivity.
"""

import numpy as np
import pytest

from fe2.material_point import MaterialPointFailure
from fe2.materials import J2Plasticity, LinearElastic, NeoHookean
from fe2.rve.effective import effective_tensor
from fe2.rve.model import RveModel
from fe2.rve.factory import make_rve_solver
from fe2.rve.micro_solver import NewtonOptions, RveFailure
from fe2.physics import make_physics
from fe2.rve.pool import RvePool
from fe2.tensors import mandel_to_tensor

BCS = ("periodic", "affine", "traction")
TIGHT = NewtonOptions(rtol=1e-12)

SOFT_HARD_NH = {1: NeoHookean(E=1.0, nu=0.3), 2: NeoHookean(E=10.0, nu=0.25)}
PLASTIC_MATRIX = {1: J2Plasticity(E=70.0, nu=0.3, sigma_y=0.2, H=5.0), 2: LinearElastic(E=400.0, nu=0.2)}


def cell_2d(make_mesh):
    return make_mesh(type="inclusion_2d", volume_fraction=0.3, mesh_size=0.1)


def solver_for(rve, physics, phases, bc, **kwargs):
    model = RveModel(rve.mesh, rve.cell_tags, make_physics(physics, rve.dim), phases)
    return make_rve_solver(model, bc, newton=kwargs.pop("newton", TIGHT), **kwargs)


def central_difference(solver, E, state, warm, h):
    """dSigma/dE by central differences from the same committed state, (n, n)."""
    n = len(E)
    columns = []
    for e_k in np.eye(n):
        plus = solver.solve(E + h * e_k, state, warm_start=warm)[0].stress
        minus = solver.solve(E - h * e_k, state, warm_start=warm)[0].stress
        columns.append((plus - minus) / (2 * h))
    return np.array(columns).T


def relative(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


# ----------------------------------------------------------------- Neo-Hookean (finite strain)

F_STATES = [np.array([1.1, 0.05, -0.03, 0.95]), np.array([0.9, -0.2, 0.1, 1.15])]


@pytest.mark.parametrize("bc", BCS)
def test_neo_hookean_tangent_matches_central_differences(make_mesh, bc):
    solver = solver_for(cell_2d(make_mesh), "finite_strain", SOFT_HARD_NH, bc)
    state = solver.initial_state()
    for F in F_STATES:
        response, trial = solver.solve(F, state)
        fd = central_difference(solver, F, state, trial.w, h=1e-5)
        assert relative(fd, response.tangent) <= 1e-6
        assert response.hill_mandel_residual <= 1e-10
        eigenvalues = np.linalg.eigvalsh(0.5 * (response.tangent + response.tangent.T))
        assert relative(response.tangent, response.tangent.T) < 1e-9  # hyperelastic: symmetric
        assert eigenvalues.min() > 0  # stable here (moderate strains)


def test_neo_hookean_3d_tangent_matches_central_differences(make_mesh):
    rve = make_mesh(type="inclusion_3d", volume_fraction=0.2, mesh_size=0.25)
    solver = solver_for(rve, "finite_strain", SOFT_HARD_NH, "periodic")
    F = np.eye(3).ravel() + 0.05 * np.array([1.0, 0.3, -0.2, 0.1, -0.5, 0.4, 0.2, -0.1, 0.6])
    response, trial = solver.solve(F, solver.initial_state())
    fd = central_difference(solver, F, solver.initial_state(), trial.w, h=1e-5)
    assert relative(fd, response.tangent) <= 1e-6
    assert response.hill_mandel_residual <= 1e-10


@pytest.mark.parametrize("bc", BCS)
def test_neo_hookean_unstressed_objective_and_linear_limit(make_mesh, bc):
    rve = cell_2d(make_mesh)
    solver = solver_for(rve, "finite_strain", SOFT_HARD_NH, bc)
    state = solver.initial_state()
    identity = np.eye(2).ravel()
    at_rest, _ = solver.solve(identity, state)
    assert np.abs(at_rest.stress).max() <= 1e-13

    F = F_STATES[0].reshape(2, 2)
    angle = 0.7
    Q = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    P = solver.solve(F.ravel(), state)[0].stress.reshape(2, 2)
    P_rotated = solver.solve((Q @ F).ravel(), state)[0].stress.reshape(2, 2)
    assert relative(P_rotated, Q @ P) <= 1e-9

    # Tangent at F = I: the linear apparent tensor of the same (lambda, mu), as a 4x4 in F.
    linear = {tag: LinearElastic(E=m.E, nu=m.nu) for tag, m in SOFT_HARD_NH.items()}
    model = RveModel(rve.mesh, rve.cell_tags, make_physics("elasticity", 2), linear)
    C = mandel_to_tensor(effective_tensor(model, bc).C).reshape(4, 4)
    assert relative(at_rest.tangent, C) <= 1e-10


def test_inverted_deformation_is_a_failure_not_an_answer(make_mesh):
    solver = solver_for(cell_2d(make_mesh), "finite_strain", SOFT_HARD_NH, "periodic")
    pool = RvePool(solver, 2)
    strains = np.array([np.eye(2).ravel(), [-1.0, 0.0, 0.0, 1.0]])  # det F_bar = -1
    with pytest.raises(MaterialPointFailure, match="point 1: inadmissible"):
        pool.evaluate(strains)
    lazy = solver_for(cell_2d(make_mesh), "finite_strain", SOFT_HARD_NH, "periodic",
                      newton=NewtonOptions(rtol=1e-12, max_iterations=1))
    with pytest.raises(RveFailure, match="did not converge in 1 iterations"):
        lazy.solve(F_STATES[1], lazy.initial_state())


# ----------------------------------------------------------------- J2 plasticity (small strain)

LOAD = np.array([0.006, -0.002, 0.003])


def loaded_pool(rve, bc, phases=PLASTIC_MATRIX, steps=3):
    pool = RvePool(solver_for(rve, "elasticity", phases, bc), 1)
    for t in np.linspace(0, 1, steps + 1)[1:]:
        pool.evaluate(t * LOAD[None])
        pool.commit()
    return pool


@pytest.mark.parametrize("bc", BCS)
def test_plastic_tangent_matches_directional_differences(make_mesh, bc):
    pool = loaded_pool(cell_2d(make_mesh), bc)
    state = pool.state(0)
    assert state.history[1]["equivalent_plastic_strain"].max() > 0.005  # well into plasticity
    solver = pool.solver
    E = 1.3 * LOAD
    response, trial = solver.solve(E, state)
    assert response.hill_mandel_residual <= 1e-10
    h = 1e-7
    for d in np.random.default_rng(1).normal(size=(3, 3)):
        d /= np.linalg.norm(d)
        plus = solver.solve(E + h * d, state, warm_start=trial.w)[0].stress
        minus = solver.solve(E - h * d, state, warm_start=trial.w)[0].stress
        fd = (plus - minus) / (2 * h)
        assert np.linalg.norm(fd - response.tangent @ d) <= 1e-5 * np.linalg.norm(response.tangent @ d)


def test_averaged_micro_tangent_is_not_the_consistent_tangent(make_mesh):
    rve = cell_2d(make_mesh)
    pool = loaded_pool(rve, "periodic")
    response = pool.responses[0]
    averaged = response.averaged_tangent  # <C> of the micro tangents of the converged state
    fd_error = 1e-5 * np.abs(response.tangent).max()
    assert np.abs(averaged - response.tangent).max() > 100 * fd_error  # heterogeneous: differs

    uniform = {1: PLASTIC_MATRIX[1], 2: PLASTIC_MATRIX[1]}
    pool = loaded_pool(rve, "periodic", phases=uniform)
    assert relative(pool.responses[0].averaged_tangent, pool.responses[0].tangent) <= 1e-10


@pytest.mark.parametrize("bc", BCS)
def test_homogeneous_plastic_rve_follows_closed_form_uniaxial_strain(make_mesh, bc):
    law = J2Plasticity(E=200.0, nu=0.3, sigma_y=0.4, H=20.0)
    pool = RvePool(solver_for(cell_2d(make_mesh), "elasticity", {1: law, 2: law}, bc), 1)
    lmbda, mu = LinearElastic(E=law.E, nu=law.nu).lame
    kappa = lmbda + 2 * mu / 3
    e_yield = law.sigma_y / (2 * mu)
    for e in np.linspace(0, 4 * e_yield, 9)[1:]:
        stress, _ = pool.evaluate(np.array([[e, 0.0, 0.0]]))
        pool.commit()
        p = max(0.0, (2 * mu * e - law.sigma_y) / (3 * mu + law.H))  # uniaxial strain, monotonic
        s11 = kappa * e + 2 * mu * (2 / 3) * (e - 1.5 * p)
        s22 = kappa * e - 2 * mu * (1 / 3) * (e - 1.5 * p)
        assert relative(stress[0], np.array([s11, s22, 0.0])) <= 1e-10
        p_rve = pool.state(0).history[1]["equivalent_plastic_strain"]
        assert np.allclose(p_rve, p, rtol=1e-10, atol=1e-14)


def test_closed_strain_cycle_dissipates(make_mesh):
    pool = RvePool(solver_for(cell_2d(make_mesh), "elasticity", PLASTIC_MATRIX, "periodic"), 1)
    path = np.concatenate([np.linspace(0, 1, 7), np.linspace(1, -1, 13)[1:], np.linspace(-1, 0, 7)[1:]])
    work, previous_stress, previous_strain = 0.0, np.zeros(3), np.zeros(3)
    for t in path[1:]:
        strain = t * LOAD
        stress, _ = pool.evaluate(strain[None])
        pool.commit()
        work += 0.5 * (stress[0] + previous_stress) @ (strain - previous_strain)
        previous_stress, previous_strain = stress[0], strain
    model = pool.solver.model
    law = PLASTIC_MATRIX[1]
    history = pool.state(0).history[1]
    p = history["equivalent_plastic_strain"]
    # Stored energy at the end (macro strain back to zero, residual stresses inside).
    stored = np.zeros((model.num_cells, model.num_qp))
    strain_qp = model.operators.strain(pool.state(0).w[None])[0]  # the macro strain is back to 0
    for tag, cells in model.phase_cells.items():
        eps = np.zeros((len(cells) * model.num_qp, 6))
        eps[:, [0, 1, 5]] = strain_qp[cells].reshape(-1, 3)
        if tag == 1:
            eps -= history["plastic_strain"]
        C = PLASTIC_MATRIX[tag].tangent(3)
        energy = 0.5 * np.einsum("mi,ij,mj->m", eps, C, eps)
        if tag == 1:
            energy += 0.5 * law.H * p**2
        stored[cells] = energy.reshape(len(cells), model.num_qp)
    dissipation = work - float(model.average(stored))
    assert p.max() > 0 and work > 0
    assert dissipation >= 0
    # For linear isotropic hardening the dissipation is sigma_y * <p> (trapezoid-rule error aside).
    plastic = np.zeros((model.num_cells, model.num_qp))
    plastic[model.phase_cells[1]] = (law.sigma_y * p).reshape(-1, model.num_qp)
    assert dissipation == pytest.approx(float(model.average(plastic)), rel=0.1)


# ----------------------------------------------------------------- commit / rollback


def _history_arrays(state):
    return [state.w] + [a for tag in sorted(state.history) for a in state.history[tag].values()]


def test_rollback_restores_state_bit_for_bit_and_commit_is_reproducible(make_mesh):
    rve = cell_2d(make_mesh)
    first = loaded_pool(rve, "periodic")
    saved = [a.copy() for a in _history_arrays(first.state(0))]
    stress_a, tangent_a = first.evaluate(1.5 * LOAD[None])
    first.rollback()
    for before, after in zip(saved, _history_arrays(first.state(0))):
        assert np.array_equal(before, after)
    stress_b, tangent_b = first.evaluate(1.5 * LOAD[None])
    assert np.array_equal(stress_a, stress_b) and np.array_equal(tangent_a, tangent_b)
    first.commit()
    stress_c, _ = first.evaluate(1.8 * LOAD[None])

    second = loaded_pool(rve, "periodic")  # the same history, without the rollback
    second.evaluate(1.5 * LOAD[None])
    second.commit()
    stress_d, _ = second.evaluate(1.8 * LOAD[None])
    assert np.array_equal(stress_c, stress_d)


def test_pool_points_keep_their_own_states(make_mesh):
    solver = solver_for(cell_2d(make_mesh), "elasticity", PLASTIC_MATRIX, "affine")
    pool = RvePool(solver, 3)
    strains = np.array([0.0 * LOAD, 0.5 * LOAD, 1.0 * LOAD])
    pool.evaluate(strains)
    pool.commit()
    p = [pool.state(i).history[1]["equivalent_plastic_strain"].max() for i in range(3)]
    assert p[0] == 0.0 and 0.0 <= p[1] < p[2]
    alone = RvePool(solver, 1)
    stress, _ = alone.evaluate(strains[2:])
    assert np.allclose(stress[0], pool.responses[2].stress, rtol=1e-12, atol=0)


def test_elastic_shortcut_is_exact_and_only_used_while_elastic(make_mesh):
    rve = cell_2d(make_mesh)
    fast = solver_for(rve, "elasticity", PLASTIC_MATRIX, "periodic")
    full = solver_for(rve, "elasticity", PLASTIC_MATRIX, "periodic", elastic_shortcut=False)
    virgin = fast.initial_state()
    small, large = 0.2 * LOAD, 1.5 * LOAD  # below and beyond first yield
    a, trial = fast.solve(small, virgin)
    b, _ = full.solve(small, full.initial_state())
    assert a.elastic_shortcut and a.iterations == 0 and trial.virgin
    assert relative(a.stress, b.stress) <= 1e-12 and relative(a.tangent, b.tangent) <= 1e-12
    assert a.hill_mandel_residual <= 1e-10
    c, trial = fast.solve(large, virgin)
    d, _ = full.solve(large, full.initial_state())
    assert not c.elastic_shortcut and c.iterations > 0 and not trial.virgin
    assert relative(c.stress, d.stress) <= 1e-9 and relative(c.tangent, d.tangent) <= 1e-8
    # Once yielded, even an elastic unloading goes through Newton.
    e, _ = fast.solve(0.9 * large, trial)
    assert not e.elastic_shortcut
