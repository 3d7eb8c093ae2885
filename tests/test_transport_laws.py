"""Nonlinear transport laws: consistent tangents (finite differences) and the exact nonlinear
laminate (VERIFICATION.md fact 14) with both RVE backends.

Laminate: layers normal to x1 under a macro gradient G along x1. The flux q1 is the same in
every layer, each layer's gradient g_i solves q1 = q_i(g_i), G = sum f_i g_i, and
dq1/dG1 = (sum f_i / q_i'(g_i))^-1. A P1 mesh conforming to the interfaces holds the exact
(piecewise linear) solution, so the RVE must match to the Newton tolerance.
"""

import numpy as np
import pytest

from fe2.materials import LinearConductor
from fe2.materials.transport import ForchheimerFlow, PowerLawConductor, TemperatureDependentConductor
from fe2.rve.factory import make_rve_solver
from fe2.rve.micro_solver import NewtonOptions
from fe2.rve.model import RveModel
from fe2.physics import make_physics

TIGHT = NewtonOptions(rtol=1e-12)
LAYERS = [0.2, 0.5, 0.3]
POWER = [PowerLawConductor(k=1.0, p=1.5, delta=0.05), PowerLawConductor(k=8.0, p=3.0),
         PowerLawConductor(k=3.0, p=2.5, delta=0.1)]
FORCHHEIMER = [ForchheimerFlow(mu=1.0, kappa=2.0, beta=3.0, rho=1.5), ForchheimerFlow(mu=1.0, kappa=0.2, beta=0.5),
               ForchheimerFlow(mu=2.0, kappa=1.0, beta=0.0)]
KT = [TemperatureDependentConductor(k0=1.0, alpha=0.02, T0=20.0), TemperatureDependentConductor(k0=9.0, alpha=-0.004),
      TemperatureDependentConductor(k0=3.0, alpha=0.01, T0=-5.0)]


def fd_tangent(law, strain, dim, h=1e-6):
    """Central differences of the stress w.r.t. each strain component, (m, n, n)."""
    n = strain.shape[1]
    columns = []
    for j in range(n):
        e = np.zeros(n)
        e[j] = h * max(1.0, np.abs(strain[:, j]).max())
        columns.append((law.update(strain + e, {}, dim).stress - law.update(strain - e, {}, dim).stress) / (2 * e[j]))
    return np.stack(columns, axis=-1)


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("temperature", [False, True])
@pytest.mark.parametrize("law", [*POWER, *FORCHHEIMER, KT[0], KT[1], LinearConductor(k=2.0)], ids=repr)
def test_law_tangent_matches_finite_differences(law, dim, temperature):
    if getattr(law, "uses_temperature", False) and not temperature:
        pytest.skip("needs the temperature")
    rng = np.random.default_rng(3)
    strain = rng.standard_normal((20, dim)) * np.linspace(0.1, 3.0, 20)[:, None]
    if temperature:
        strain = np.column_stack([strain, 20.0 + 10.0 * rng.standard_normal(20)])
    update = law.update(strain, {}, dim)
    assert update.ok.all()
    fd = fd_tangent(law, strain, dim)
    scale = np.abs(update.tangent).max(axis=(1, 2))[:, None, None]
    assert (np.abs(update.tangent - fd) / scale).max() < 1e-7
    if temperature:  # the temperature has no conjugate flux
        assert np.all(update.stress[:, dim] == 0) and np.all(update.tangent[:, dim] == 0)
    assert np.allclose(update.tangent[:, :dim, :dim], np.swapaxes(update.tangent[:, :dim, :dim], 1, 2))


def test_forchheimer_flux_solves_the_quadratic_and_power_law_the_p_laplacian():
    g = np.array([[0.3, -0.4], [5.0, 12.0], [0.0, 0.0]])
    law = ForchheimerFlow(mu=2.0, kappa=0.5, beta=1.5, rho=2.0)
    q = law.update(g, {}, 2).stress
    Q, G = np.linalg.norm(q, axis=1), np.linalg.norm(g, axis=1)
    assert np.allclose(G, 2.0 / 0.5 * Q + 1.5 * 2.0 * Q**2, rtol=1e-13, atol=0)
    assert np.allclose(q[:, 0] * g[:, 1] - q[:, 1] * g[:, 0], 0)  # parallel
    power = PowerLawConductor(k=2.0, p=3.0).update(g, {}, 2)
    assert np.allclose(power.stress, 2.0 * G[:, None] * g, rtol=1e-14)
    assert power.ok.all()  # zero gradient, p > 2, delta = 0: tangent 0, finite
    assert not PowerLawConductor(k=2.0, p=1.5).update(g, {}, 2).ok[2]  # infinite tangent at 0


def test_inadmissible_conductivity_and_bad_parameters():
    law = TemperatureDependentConductor(k0=1.0, alpha=0.1, T0=0.0)
    assert not law.update(np.array([[1.0, 0.0, -20.0]]), {}, 2).ok[0]  # k(T) < 0
    with pytest.raises(ValueError, match="temperature"):
        law.update(np.array([[1.0, 0.0]]), {}, 2)
    for bad in (dict(k=1.0, p=1.0), dict(k=-1.0, p=3.0), dict(k=1.0, p=3.0, delta=-1.0)):
        with pytest.raises(ValueError):
            PowerLawConductor(**bad)
    with pytest.raises(ValueError):
        ForchheimerFlow(mu=1.0, kappa=0.0, beta=1.0)


# ----------------------------------------------------------------- the exact laminate


def layer_gradients(laws, q1):
    """g_i with q_i(g_i) = q1 for each layer (bisection to round-off: the laws are monotone)."""
    g = []
    for law in laws:
        lo, hi = -1e3, 1e3
        for _ in range(200):
            x = 0.5 * (lo + hi)
            if x in (lo, hi):
                break
            lo, hi = (x, hi) if law.scalar(np.array(x))[0] < q1 else (lo, x)
        g.append(0.5 * (lo + hi))
    return np.array(g)


def laminate_law(laws, fractions, G):
    """Exact (q1, dq1/dG1) at macro gradient G along x1 (outer scalar Newton on q1)."""
    f = np.asarray(fractions)
    q1 = float(G)  # start; Newton on sum f g_i(q1) = G
    for _ in range(100):
        g = layer_gradients(laws, q1)
        dq = np.array([law.scalar(np.array(x))[1] for law, x in zip(laws, g)])
        residual = f @ g - G
        q1 = q1 - residual / (f @ (1.0 / dq))
        if abs(residual) <= 1e-15 * max(1.0, abs(G)):
            break
    g = layer_gradients(laws, q1)
    dq = np.array([law.scalar(np.array(x))[1] for law, x in zip(laws, g)])
    return q1, 1.0 / (f @ (1.0 / dq))


@pytest.fixture(scope="module")
def laminate_mesh(request):
    make_mesh = request.getfixturevalue("make_mesh")
    return make_mesh(type="laminate_2d", fractions=LAYERS, mesh_size=0.15)


@pytest.mark.parametrize("batch", ["off", "auto"])
@pytest.mark.parametrize("bc", ["periodic", "traction"])
@pytest.mark.parametrize("laws", [POWER, FORCHHEIMER], ids=["power_law", "forchheimer"])
def test_nonlinear_laminate_is_exact_along_the_load_path(laminate_mesh, laws, bc, batch):
    rve = laminate_mesh
    model = RveModel(rve.mesh, rve.cell_tags, make_physics("conduction", 2, laws),
                     {i + 1: law for i, law in enumerate(laws)})
    solver = make_rve_solver(model, bc, batch=batch, newton=TIGHT)
    state = solver.initial_state()
    for G in (0.5, 2.0, -1.0, 6.0):  # committed steps, also back through zero
        E = np.array([G, 0.0])
        response, state = solver.solve(E, state)
        q1, dq1 = laminate_law(laws, LAYERS, G)
        assert abs(response.stress[0] - q1) <= 1e-8 * abs(q1)
        assert abs(response.stress[1]) <= 1e-8 * abs(q1)
        assert abs(response.tangent[0, 0] - dq1) <= 1e-8 * dq1
        # and the tangent against central differences of the RVE itself
        h = 1e-5 * abs(G)
        plus = solver.solve(E + [h, 0.0], state)[0].stress
        minus = solver.solve(E - [h, 0.0], state)[0].stress
        assert np.abs((plus - minus) / (2 * h) - response.tangent[:, 0]).max() <= 1e-6 * dq1
    solver.destroy()


@pytest.mark.parametrize("batch", ["off", "auto"])
def test_temperature_dependent_laminate_dq_dT(laminate_mesh, batch):
    """k_i(T) layers: K11(T) harmonic, dq1/dT = G1 dK11/dT = G1 K11^2 sum f_i k_i'/k_i^2;
    the RVE's last tangent column against it and against differences of the RVE in T."""
    rve = laminate_mesh
    physics = make_physics("conduction", 2, KT)
    assert physics.labels == ("1", "2", "T")
    model = RveModel(rve.mesh, rve.cell_tags, physics, {i + 1: law for i, law in enumerate(KT)})
    solver = make_rve_solver(model, "periodic", batch=batch, newton=TIGHT)
    f = np.array(LAYERS)
    for G, T in ((1.5, 40.0), (-0.7, 0.0), (3.0, 120.0)):
        E = np.array([G, 0.3, T])
        response, _ = solver.solve(E, solver.initial_state())
        k = np.array([law.conductivity(T) for law in KT])
        dk = np.array([law.k0 * law.alpha for law in KT])
        K11, K22 = 1 / np.sum(f / k), np.sum(f * k)
        expected_q = np.array([K11 * G, K22 * 0.3, 0.0])
        assert np.abs(response.stress - expected_q).max() <= 1e-9 * np.abs(expected_q).max()
        dq_dT = np.array([G * K11**2 * np.sum(f * dk / k**2), 0.3 * np.sum(f * dk)])
        assert np.abs(response.tangent[:2, 2] - dq_dT).max() <= 1e-9 * np.abs(dq_dT).max()
        assert np.abs(response.tangent[:2, :2] - np.diag([K11, K22])).max() <= 1e-9 * K22
        h = 1e-4
        fd = (solver.solve(E + [0, 0, h], solver.initial_state())[0].stress
              - solver.solve(E - [0, 0, h], solver.initial_state())[0].stress) / (2 * h)
        assert np.abs(fd - response.tangent[:, 2]).max() <= 1e-7 * np.abs(dq_dT).max()
    solver.destroy()


@pytest.mark.parametrize("bc", ["periodic", "affine", "traction"])
def test_inclusion_rve_with_nonlinear_transport_phases_backends_agree_and_tangent_is_consistent(make_mesh, bc):
    """A matrix with k(T) and a power-law inclusion: the full tangent (gradient and
    temperature columns) against central differences; batched = per point to round-off."""
    rve = make_mesh(type="inclusion_2d", volume_fraction=0.3, mesh_size=0.15)
    phases = {1: TemperatureDependentConductor(k0=1.0, alpha=0.05, T0=10.0), 2: PowerLawConductor(k=10.0, p=2.6, delta=0.2)}
    model = RveModel(rve.mesh, rve.cell_tags, make_physics("conduction", 2, phases.values()), phases)
    E = np.array([1.2, -0.5, 25.0])
    answers = []
    for batch in ("off", "auto"):
        solver = make_rve_solver(model, bc, batch=batch, newton=TIGHT)
        response, _ = solver.solve(E, solver.initial_state())
        fd = np.zeros((3, 3))
        for j in range(3):
            h = 1e-6 * max(1.0, abs(E[j]))
            e = np.eye(3)[j] * h
            fd[:, j] = (solver.solve(E + e, solver.initial_state())[0].stress
                        - solver.solve(E - e, solver.initial_state())[0].stress) / (2 * h)
        scale = np.abs(response.tangent).max()
        assert np.abs(fd - response.tangent).max() <= 1e-6 * scale
        assert response.hill_mandel_residual < 1e-10
        answers.append(response)
        solver.destroy()
    assert np.abs(answers[0].stress - answers[1].stress).max() <= 1e-10 * np.abs(answers[0].stress).max()
    assert np.abs(answers[0].tangent - answers[1].tangent).max() <= 1e-10 * np.abs(answers[0].tangent).max()


# ----------------------------------------------------------------- fe2 homogenize


def test_homogenize_load_path_of_temperature_dependent_and_power_law_phases(shared_tmp_path):
    """`fe2 homogenize` with nonlinear transport phases: the load path CSV carries the
    temperature column and dq/dT; the effective tensor (--bc all) has no bounds for a
    power law without regularisation, and RVE fields are written (meshio reads them)."""
    import csv
    import json
    from pathlib import Path

    import yaml
    from mpi4py import MPI

    from fe2.cli import main
    from field_files import read_meshio

    repo = Path(__file__).resolve().parents[1]
    study = {
        "physics": "conduction",
        "mesh": {"file": str(repo / "meshes" / "inclusion_2d.msh")},
        "phases": {
            "matrix": {"law": "temperature_dependent_conduction", "tag": 1, "k0": 1.0, "alpha": 0.01, "T0": 20.0},
            "inclusion": {"law": "power_law", "tag": 2, "k": 5.0, "p": 2.5, "delta": 0.1},
        },
        "load_path": {"strains": [[0.5, 0.0, 20.0], [1.0, 0.2, 60.0], [2.0, 0.0, 100.0]]},
    }
    path = shared_tmp_path / "kt.yaml"
    if MPI.COMM_WORLD.rank == 0:
        path.write_text(yaml.safe_dump(study))
    MPI.COMM_WORLD.barrier()
    assert main(["homogenize", str(path), "-o", str(shared_tmp_path / "kt")]) == 0
    if MPI.COMM_WORLD.rank == 0:
        rows = list(csv.DictReader(open(shared_tmp_path / "kt" / "load_path.csv")))
        assert [float(r["GT"]) for r in rows] == [20.0, 60.0, 100.0]
        assert all(float(r["QT"]) == 0.0 for r in rows)
        # k(T) grows with T: q1 grows faster than G1; dq1/dT > 0 where G1 > 0
        assert all(float(r["K_1_T"]) > 0 for r in rows)
        points, cells, steps = read_meshio(shared_tmp_path / "kt" / "rve_fields.xdmf")
        assert len(steps) == 1 and "temperature" in steps[0][1]
    # Effective tensors with a temperature column: (d+1) x (d+1), no Voigt/Reuss bounds.
    study["phases"]["inclusion"] = {"law": "forchheimer", "tag": 2, "mu": 1.0, "kappa": 4.0, "beta": 2.0}
    del study["load_path"]
    path = shared_tmp_path / "eff.yaml"
    if MPI.COMM_WORLD.rank == 0:
        path.write_text(yaml.safe_dump(study))
    MPI.COMM_WORLD.barrier()
    assert main(["homogenize", str(path), "-o", str(shared_tmp_path / "eff"), "--bc", "all"]) == 0
    if MPI.COMM_WORLD.rank == 0:
        out = shared_tmp_path / "eff"
        assert not (out / "bounds.json").exists()
        for bc in ("affine", "periodic", "traction"):
            record = json.loads((out / f"effective_{bc}.json").read_text())
            K = np.array(record["K"])
            assert record["components"] == ["1", "2", "T"] and K.shape == (3, 3)
            assert np.all(K[2] == 0) and np.abs(K[:2, 2]).max() == 0  # no flux at zero gradient
            assert np.linalg.eigvalsh(K[:2, :2]).min() > 0
            # the engineering report is of the conductivity block (not of the T column)
            principal = record["engineering_constants"]["principal_conductivities"]
            np.testing.assert_allclose(sorted(principal), np.linalg.eigvalsh(0.5 * (K[:2, :2] + K[:2, :2].T)), rtol=1e-12)


def test_mixed_targets_with_a_temperature_column():
    """With a k(T) phase the labels are 1, 2, T: fluxes can be prescribed per component with
    the temperature as a strain component; a full flux target (no temperature) is refused."""
    from fe2.errors import InputError
    from fe2.homogenization.load_path import macro_target

    physics = make_physics("conduction", 2, [TemperatureDependentConductor(k0=1.0, alpha=0.01)])
    target = macro_target(physics, {"T": 20.0}, {"1": 0.5, "2": 0.0}, key="load_path.segments[0]")
    assert target.stress_controlled.tolist() == [True, True, False]
    assert target.values.tolist() == [0.5, 0.0, 20.0]
    with pytest.raises(InputError, match=r"load_path.segments\[0\].stress: with a temperature-dependent phase"):
        macro_target(physics, None, [0.5, 0.0], key="load_path.segments[0]")
    plain = make_physics("conduction", 2, [LinearConductor(k=1.0)])
    assert macro_target(plain, None, [0.5, 0.0], key="s").values.tolist() == [0.5, 0.0]
