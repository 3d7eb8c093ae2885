"""The batched RVE solver against the per-point reference (DOLFINx assembly + MUMPS).

Two independent code paths for the same equations: element operators, array assembly and the
batched sparse Cholesky on one side, DOLFINx forms and PETSc LU on the other. Every point's
answer must agree to round-off, whatever the batch size and the mix of points in a batch.
"""

import tracemalloc

import numpy as np
import pytest

from fe2.linalg.cholesky import BatchedCholesky
from fe2.material_point import MaterialPointFailure
from fe2.materials import J2Plasticity, LinearConductor, LinearElastic, NeoHookean
from fe2.rve.factory import make_rve_solver
from fe2.rve.micro_solver import NewtonOptions
from fe2.rve.model import RveModel
from fe2.physics import make_physics
from fe2.rve.pool import RvePool

BCS = ("periodic", "affine", "traction")
TIGHT = NewtonOptions(rtol=1e-12)
J2_MATRIX = {1: J2Plasticity(E=70.0, nu=0.3, sigma_y=0.2, H=5.0, H_kin=2.0), 2: LinearElastic(E=400.0, nu=0.2)}
NEO_HOOKE = {1: NeoHookean(E=1.0, nu=0.3), 2: NeoHookean(E=10.0, nu=0.25)}
ELASTIC = {1: LinearElastic(E=3.0, nu=0.3), 2: LinearElastic(E=60.0, nu=0.2)}


def relative(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


def model_for(rve, physics, phases, degree=1):
    return RveModel(rve.mesh, rve.cell_tags, make_physics(physics, rve.dim), phases, degree=degree)


def mesh(make_mesh, dim):
    if dim == 2:
        return make_mesh(type="inclusion_2d", volume_fraction=0.3, mesh_size=0.1)
    return make_mesh(type="inclusion_3d", volume_fraction=0.2, mesh_size=0.3)


def strains(physics, dim, count, scale, seed=0):
    """Macro strains of ``count`` points: random directions, magnitudes from 0 to ``scale``."""
    rng = np.random.default_rng(seed)
    n = {"elasticity": 3 if dim == 2 else 6, "finite_strain": dim * dim, "conduction": dim}[physics]
    E = rng.standard_normal((count, n))
    E *= (scale * np.linspace(0.05, 1.0, count) / np.linalg.norm(E, axis=1))[:, None]
    if physics == "finite_strain":
        E += np.eye(dim).ravel()
    return E


def compare(model, bc, E, *, steps=1, batch=3):
    """Apply E_ref + s (E - E_ref) for s = 1, 1.5, 2, ... (``steps`` committed steps) to pools
    of both backends; compare."""
    pools = [RvePool(make_rve_solver(model, bc, batch=b, newton=TIGHT), len(E)) for b in ("off", batch)]
    iterations = []
    reference = model.physics.reference_strain
    for step in range(1, steps + 1):
        target = reference + (1 + 0.5 * (step - 1)) * (E - reference)
        (s0, t0), (s1, t1) = (pool.evaluate(target) for pool in pools)
        assert relative(s1, s0) <= 1e-10
        assert relative(t1, t0) <= 1e-10
        per_point, batched = ([r.iterations for r in pool.responses] for pool in pools)
        assert batched == per_point
        iterations += per_point
        for pool in pools:
            pool.commit()
    for a, b in zip(*(pool.committed_states() for pool in pools)):
        assert np.abs(a.w - b.w).max() <= 1e-10 * max(np.abs(a.w).max(), 1e-300)
        assert a.virgin == b.virgin
    return iterations, pools


@pytest.mark.parametrize("bc", BCS)
@pytest.mark.parametrize("dim", [2, 3])
def test_j2_batched_equals_per_point(make_mesh, bc, dim):
    """J2 matrix + elastic inclusion: points from elastic (shortcut) to strongly plastic, in
    batches that mix them, over two committed steps (unloading paths included)."""
    model = model_for(mesh(make_mesh, dim), "elasticity", J2_MATRIX)
    E = strains("elasticity", dim, 7, 0.02)
    iterations, pools = compare(model, bc, E, steps=2)
    shortcuts = [r.elastic_shortcut for r in pools[1].responses]
    assert any(shortcuts) or min(iterations) == 0  # some points stay elastic
    assert max(iterations) >= 3  # others yield, at different Newton iterations
    assert len(set(iterations)) >= 2


@pytest.mark.parametrize("bc", BCS)
@pytest.mark.parametrize("dim", [2, 3])
def test_neo_hookean_batched_equals_per_point(make_mesh, bc, dim):
    model = model_for(mesh(make_mesh, dim), "finite_strain", NEO_HOOKE)
    compare(model, bc, strains("finite_strain", dim, 5, 0.12), steps=2, batch=2)


@pytest.mark.parametrize("bc", BCS)
@pytest.mark.parametrize("degree", [1, 2, 3])
def test_linear_batched_equals_per_point(make_mesh, bc, degree):
    """Linear phases, P1-P3 (elasticity and conduction): one factorisation serves all points."""
    rve = mesh(make_mesh, 2)
    compare(model_for(rve, "elasticity", ELASTIC, degree), bc, strains("elasticity", 2, 4, 0.01))
    conductors = {1: LinearConductor(k=1.0), 2: LinearConductor(k=20.0)}
    compare(model_for(rve, "conduction", conductors, degree), bc, strains("conduction", 2, 4, 1.0))


def test_result_does_not_depend_on_batch_size_or_order(make_mesh):
    model = model_for(mesh(make_mesh, 2), "elasticity", J2_MATRIX)
    E = strains("elasticity", 2, 8, 0.02, seed=3)
    answers = []
    for batch, order in [(1, np.arange(8)), (3, np.arange(8)), (8, np.arange(8)[::-1])]:
        solver = make_rve_solver(model, "periodic", batch=batch, newton=TIGHT)
        result = solver.solve_batch(E[order], [solver.initial_state()] * 8)
        stress = np.empty((8, 3))
        stress[order] = [r.stress for r in result.responses]
        answers.append(stress)
    for other in answers[1:]:
        assert relative(other, answers[0]) <= 1e-12


def test_failed_point_is_named_and_rollback_restores_committed_states(make_mesh):
    """A batch in which one point cannot converge: the failure names it, nothing of the batch
    is committed, rollback leaves every committed array bit for bit."""
    model = model_for(mesh(make_mesh, 2), "finite_strain", NEO_HOOKE)
    solver = make_rve_solver(model, "periodic", batch=4, newton=NewtonOptions(rtol=1e-12, max_iterations=8))
    pool = RvePool(solver, 5)
    E = strains("finite_strain", 2, 5, 0.1)
    pool.evaluate(E)
    pool.commit()
    before = [s.copy() for s in pool.committed_states()]
    bad = E.copy()
    bad[3] = [0.05, 0.0, 0.0, 1.0]  # det F > 0 macroscopically, far beyond what 8 iterations reach
    with pytest.raises(MaterialPointFailure) as failure:
        pool.evaluate(bad)
    assert failure.value.point == 3
    pool.rollback()
    for a, b in zip(before, pool.committed_states()):
        assert np.array_equal(a.w, b.w)
        for tag in a.history:
            for name in a.history[tag]:
                assert np.array_equal(a.history[tag][name], b.history[tag][name])
    stress, _ = pool.evaluate(E)  # the committed states still answer as before
    reference = RvePool(make_rve_solver(model, "periodic", batch="off", newton=TIGHT), 5)
    reference.evaluate(E)
    reference.commit()
    assert relative(stress, reference.evaluate(E)[0]) <= 1e-10


def test_batch_cap_bounds_peak_memory(make_mesh):
    """The same 24 points solved in batches of 2 need a fraction of the memory of one batch."""
    model = model_for(mesh(make_mesh, 2), "elasticity", J2_MATRIX)
    E = strains("elasticity", 2, 24, 0.03, seed=5)
    peaks, answers = {}, {}
    for batch in (2, 24):
        solver = make_rve_solver(model, "periodic", batch=batch)
        solver.solve_batch(E[:2], [solver.initial_state()] * 2)  # set-up outside the measurement
        tracemalloc.start()
        result = solver.solve_batch(E, [solver.initial_state()] * 24)
        peaks[batch] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        answers[batch] = np.array([r.stress for r in result.responses])
    assert relative(answers[2], answers[24]) <= 1e-12
    per_point = solver.system.bytes_per_point
    assert peaks[24] > 6 * per_point  # the uncapped batch holds many points at once
    assert peaks[2] < peaks[24] / 3


def test_auto_batch_size_follows_the_memory_budget(make_mesh, monkeypatch):
    model = model_for(mesh(make_mesh, 2), "elasticity", J2_MATRIX)
    large = make_rve_solver(model, "periodic").batch_size
    monkeypatch.setenv("FE2_BATCH_MEMORY", "1")  # MiB
    small = make_rve_solver(model, "periodic").batch_size
    assert 1 <= small < large


def test_batched_cholesky_solves_spd_systems_and_flags_indefinite_ones():
    rng = np.random.default_rng(2)
    n = 60
    A = np.zeros((n, n))
    for i, j in rng.integers(0, n, (200, 2)):
        if i != j:
            w = rng.random()
            A[[i, j], [i, j]] += w
            A[i, j] -= w
            A[j, i] -= w
    A += 0.01 * np.eye(n)
    rows, cols = np.nonzero(np.tril(A))
    scales = np.array([1.0, 2.0, -1.0, 0.5])
    factor = BatchedCholesky(n, rows, cols).factorize(scales[:, None] * A[rows, cols])
    assert factor.failed.tolist() == [False, False, True, False]
    b = rng.standard_normal((4, 2, n))
    x = factor.solve(b)
    for k in (0, 1, 3):
        assert np.abs(scales[k] * A @ x[k].T - b[k].T).max() <= 1e-10 * np.abs(b).max()


@pytest.mark.parametrize("n", [1, 2, 3, 5, 12])
def test_batched_cholesky_of_small_dense_matrices(n):
    """Full patterns (one supernode: every column in a run) down to 1x1, against numpy."""
    rng = np.random.default_rng(n)
    A = rng.standard_normal((3, n, n))
    A = A @ A.transpose(0, 2, 1) + n * np.eye(n)
    rows, cols = np.tril_indices(n)
    factor = BatchedCholesky(n, rows, cols).factorize(A[:, rows, cols])
    b = rng.standard_normal((3, 2, n))
    x = factor.solve(b)
    assert not factor.failed.any()
    assert np.abs(x - np.linalg.solve(A, b.transpose(0, 2, 1)).transpose(0, 2, 1)).max() <= 1e-10 * np.abs(x).max()


@pytest.mark.parametrize("dim", [2, 3])
def test_supernode_runs_give_the_column_by_column_factors(make_mesh, dim):
    """The numeric factorisation applies the updates of a supernode's columns in one pass
    (``Rrun``), the forward substitution those of a chain of columns (``blocks``): on a real RVE
    pattern (runs of several columns occur) the factors and solutions are those of the
    column-by-column updates bit for bit, and solve the systems."""
    model = model_for(mesh(make_mesh, dim), "elasticity", ELASTIC)
    solver = make_rve_solver(model, "periodic")
    analysis = solver.system.linear
    assert analysis.Rrun.max() > 2
    rng = np.random.default_rng(3)
    base = model.phases[1].tangent(dim)
    tangent = np.broadcast_to(base, (5, model.num_cells, model.num_qp, *base.shape)).copy()
    tangent *= 1 + rng.random(tangent.shape[:3])[..., None, None]
    values = solver.system.assemble_matrix(tangent, dV=solver.dV)
    blocked = analysis.factorize(values, interleaved=True)
    runs = analysis.Rrun
    try:
        analysis.Rrun = np.ones_like(runs)
        single = analysis.factorize(values, interleaved=True)
    finally:
        analysis.Rrun = runs
    assert not blocked.failed.any()
    assert np.array_equal(blocked.Lx, single.Lx)
    n, perm = analysis.n, analysis.perm
    column = np.repeat(np.arange(n), np.diff(analysis.Ap))  # the permuted lower triangle, CSC
    b = rng.standard_normal((5, 2, n))
    x = blocked.solve(b)
    blocks = analysis.blocks
    assert np.diff(blocks).max() > 2
    try:
        analysis.blocks = np.arange(n + 1, dtype=np.int32)
        assert np.array_equal(blocked.solve(b), x)
    finally:
        analysis.blocks = blocks
    for p in range(5):
        K = np.zeros((n, n))
        K[analysis.Ai, column] = values[analysis.source, p]
        K += np.tril(K, -1).T
        residual = K @ x[p, :, perm] - b[p, :, perm]
        assert np.abs(residual).max() <= 1e-10 * np.abs(K).max() * np.abs(x[p]).max()


@pytest.mark.parametrize("bc", BCS)
def test_large_factor_path_equals_per_point(make_mesh, bc, monkeypatch):
    """Above the Cholesky limit the batched solver factorises with PETSc LU point by point:
    the same answers (forced here with a limit of 0)."""
    import fe2.rve.constrained_systems as systems

    monkeypatch.setattr(systems, "CHOLESKY_LIMIT", 0)
    model = model_for(mesh(make_mesh, 2), "elasticity", J2_MATRIX)
    solver = make_rve_solver(model, bc, batch=3, newton=TIGHT)
    assert type(solver.system.linear).__name__ == "PetscLU"
    compare(model, bc, strains("elasticity", 2, 5, 0.02), steps=2)
