"""Mixed stress/strain control: closed-form uniaxial-stress J2 response, unloading to zero
stress, quadratic convergence, rollback on failure, the load-path driver and its config."""

import csv
import json

import dolfinx
import numpy as np
import pytest
import yaml
from mpi4py import MPI

from fe2.cli import main
from fe2.errors import ComputationError
from fe2.homogenization.load_path import run_load_path
from fe2.homogenization.mixed_control import (
    MixedOptions,
    MixedState,
    MixedTarget,
    Segment,
    reach_target,
    schur_complement,
)
from fe2.materials import J2Plasticity, LinearElastic, NeoHookean
from fe2.materials.points import LawPoints
from fe2.rve.factory import make_rve_solver
from fe2.rve.micro_solver import NewtonOptions
from fe2.rve.model import RveModel
from fe2.physics import make_physics
from fe2.rve.pool import RvePool

comm = MPI.COMM_WORLD
BCS = ("periodic", "affine", "traction")
LAW = J2Plasticity(E=200.0, nu=0.3, sigma_y=0.4, H=20.0)
TIGHT = MixedOptions(rtol=1e-12)
#: RVE Newton: relative 1e-12 (the stress-free state left after unloading a homogeneous RVE
#: converges by the round-off floor of the convergence test).
RVE_NEWTON = NewtonOptions(rtol=1e-12)


def homogeneous_pool(law, *, dim, bc="periodic", physics="elasticity"):
    """One RVE point: a coarse unit square/cube of one material (a homogeneous RVE; 2 cells
    per edge so that the periodic fluctuation has free dofs)."""
    if dim == 2:
        mesh = dolfinx.mesh.create_unit_square(MPI.COMM_SELF, 2, 2)
    else:
        mesh = dolfinx.mesh.create_unit_cube(MPI.COMM_SELF, 2, 2, 2)
    cells = mesh.topology.index_map(dim).size_local
    tags = dolfinx.mesh.meshtags(mesh, dim, np.arange(cells, dtype=np.int32), np.ones(cells, dtype=np.int32))
    model = RveModel(mesh, tags, make_physics(physics, dim), {1: law})
    return RvePool(make_rve_solver(model, bc, newton=RVE_NEWTON), 1)


def follow(points, targets, *, n, reference=None, options=TIGHT):
    """Reach the targets in turn, committing each; the converged states and results."""
    state = MixedState.initial(np.zeros(n) if reference is None else reference, points.num_points)
    states, results = [], []
    for target in targets:
        result = reach_target(points, target, start=state, options=options)
        assert result.converged, result.reason
        points.commit()
        state = result.state
        states.append(state)
        results.append(result)
    return states, results


def uniaxial_stress(strain_11):
    """3D: E11 prescribed, the five other stresses zero."""
    return MixedTarget(np.array([False, True, True, True, True, True]), np.array([strain_11, 0, 0, 0, 0, 0.0]))


def closed_form_uniaxial(law, e):
    """Uniaxial-stress J2 with linear isotropic + kinematic hardening, monotonic loading:
    (sigma, p) at axial strain e; slope E, then E H' / (E + H') with H' = H + H_kin."""
    hardening = law.H + law.H_kin
    e_y = law.sigma_y / law.E
    if e <= e_y:
        return law.E * e, 0.0
    sigma = law.sigma_y + law.E * hardening / (law.E + hardening) * (e - e_y)
    return sigma, (sigma - law.sigma_y) / hardening


@pytest.mark.parametrize("bc", BCS)
def test_homogeneous_j2_rve_follows_closed_form_uniaxial_stress(bc):
    law = LAW if bc != "traction" else J2Plasticity(E=200.0, nu=0.3, sigma_y=0.4, H=10.0, H_kin=10.0)
    pool = homogeneous_pool(law, dim=3, bc=bc)
    e_y = law.sigma_y / law.E
    strains = e_y * np.array([0.5, 0.9, 2.0, 3.0, 5.0, 8.0])  # not at the yield point itself
    states, results = follow(pool, [uniaxial_stress(e) for e in strains], n=6)
    slope = law.E * (law.H + law.H_kin) / (law.E + law.H + law.H_kin)
    for e, state, result in zip(strains, states, results):
        sigma, p = closed_form_uniaxial(law, e)
        expected_strain = np.array([e, -law.nu * sigma / law.E - p / 2, -law.nu * sigma / law.E - p / 2, 0, 0, 0])
        np.testing.assert_allclose(state.stress[0], [sigma, 0, 0, 0, 0, 0], rtol=0, atol=1e-10 * sigma)
        np.testing.assert_allclose(state.strain[0], expected_strain, rtol=0, atol=1e-12)
        # The tangent of the controlled response (Schur complement): E, then the hardening slope.
        modulus = schur_complement(state.tangent[0], uniaxial_stress(e).stress_controlled)[0, 0]
        assert modulus == pytest.approx(law.E if e <= e_y else slope, rel=1e-10)
        assert result.iterations <= 3  # piecewise linear response: Newton is exact per branch


def test_load_unload_to_zero_stress_leaves_closed_form_residual_strain():
    pool = homogeneous_pool(LAW, dim=3)
    stress_all = np.ones(6, bool)
    peak = 2.5 * LAW.sigma_y
    path = [MixedTarget(stress_all, [s, 0, 0, 0, 0, 0]) for s in (0.5 * peak, peak, 0.5 * peak, 0.0)]
    states, results = follow(pool, path, n=6)
    p = (peak - LAW.sigma_y) / LAW.H
    np.testing.assert_allclose(states[1].strain[0][0], peak / LAW.E + p, rtol=1e-12)
    # Unloaded: no stress, the plastic strain remains (isochoric: -p/2 laterally).
    np.testing.assert_allclose(states[-1].stress[0], 0.0, atol=1e-12 * peak)
    np.testing.assert_allclose(states[-1].strain[0], [p, -p / 2, -p / 2, 0, 0, 0], rtol=0, atol=1e-12)
    # Unloading is elastic: the half-way state lies on the elastic line from the peak.
    np.testing.assert_allclose(states[2].strain[0][0], p + 0.5 * peak / LAW.E, rtol=1e-12)
    assert all(r.converged for r in results)


def test_plane_strain_rve_equals_closed_form_law_under_mixed_control():
    """2D (plane strain) uniaxial stress and a biaxial stress ratio: the homogeneous RVE and
    the closed-form law driven by the same solver agree; elastic slope E / (1 - nu^2)."""
    pool = homogeneous_pool(LAW, dim=2)
    law_points = LawPoints(LAW, 1, dim=2, n_comp=3)
    mask = np.array([False, True, True])
    targets = [MixedTarget(mask, [e, 0.0, 0.0]) for e in np.linspace(0, 0.012, 7)[1:]]
    # then a biaxial stress ratio S22 = S11 / 2 (pure stress control), beyond yield
    targets += [MixedTarget(np.ones(3, bool), [s, 0.5 * s, 0.0]) for s in (1.2, 1.4)]
    rve_states, _ = follow(pool, targets, n=3)
    law_states, _ = follow(law_points, targets, n=3)
    for a, b in zip(rve_states, law_states):
        np.testing.assert_allclose(a.strain, b.strain, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(a.stress, b.stress, rtol=1e-10, atol=1e-12)
    assert rve_states[-1].stress[0][1] == pytest.approx(0.5 * rve_states[-1].stress[0][0], rel=1e-10)
    first = rve_states[0]
    assert first.stress[0][0] / first.strain[0][0] == pytest.approx(LAW.E / (1 - LAW.nu**2), rel=1e-10)


def test_batched_points_each_reach_their_target():
    """m closed-form points with different targets in one call = one call per point."""
    mask = np.array([False, True, True, False, True, True])
    values = np.array([[0.004, 0, 0, 0, 0, 0], [0.01, 0.1, 0, 0.001, 0, 0], [-0.008, 0, -0.2, 0, 0, 0.05]])
    batch = LawPoints(LAW, 3, dim=3, n_comp=6)
    (together,), _ = follow(batch, [MixedTarget(mask, values)], n=6)
    for i in range(3):
        (alone,), _ = follow(LawPoints(LAW, 1, dim=3, n_comp=6), [MixedTarget(mask, values[i])], n=6)
        np.testing.assert_allclose(together.strain[i], alone.strain[0], rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(together.stress[:, mask], values[:, mask], atol=1e-9)
    np.testing.assert_allclose(together.strain[:, ~mask], values[:, ~mask], rtol=0, atol=0)


def test_consistent_tangent_gives_quadratic_convergence(make_mesh):
    """Heterogeneous plastic RVE under uniaxial stress: with the consistent tangent the stress
    residuals fall quadratically; with the volume-averaged micro tangent they do not."""
    rve = make_mesh(type="inclusion_2d", volume_fraction=0.3, mesh_size=0.1)
    phases = {1: J2Plasticity(E=70.0, nu=0.3, sigma_y=0.2, H=5.0), 2: LinearElastic(E=400.0, nu=0.2)}
    rates = {}
    for tangent in ("consistent", "averaged"):
        model = RveModel(rve.mesh, rve.cell_tags, make_physics("elasticity", 2), phases)
        pool = RvePool(make_rve_solver(model, "periodic", newton=NewtonOptions(rtol=1e-12)), 1, tangent=tangent)
        mask = np.array([False, True, True])
        targets = [MixedTarget(mask, [e, 0.0, 0.0]) for e in (0.004, 0.008)]
        _, results = follow(pool, targets, n=3, options=MixedOptions(rtol=1e-10, max_iterations=60))
        norms = results[-1].residual_norms
        pairs = [(a, b) for a, b in zip(norms, norms[1:]) if 1e-11 < a < 1e-1]
        rates[tangent] = [np.log(b) / np.log(a) for a, b in pairs]
    assert rates["consistent"] and min(rates["consistent"]) > 1.7, rates
    assert max(rates["averaged"]) < 1.5, rates


def test_failure_rolls_back_and_reports():
    """Perfect plasticity: a stress above sigma_y has no answer; the points are rolled back."""
    law = J2Plasticity(E=200.0, nu=0.3, sigma_y=0.4)
    points = LawPoints(law, 1, dim=3, n_comp=6)
    (state,), _ = follow(points, [MixedTarget(np.ones(6, bool), [0.3, 0, 0, 0, 0, 0])], n=6)
    committed = points.committed_states()
    result = reach_target(points, MixedTarget(np.ones(6, bool), [0.5, 0, 0, 0, 0, 0]), start=state)
    assert not result.converged and result.reason
    after = points.committed_states()
    assert all(np.array_equal(after[0][k], committed[0][k]) for k in committed[0])
    stress, _ = points.evaluate(state.strain)  # the committed state answers as before
    np.testing.assert_allclose(stress, state.stress, rtol=0, atol=0)


def test_finite_strain_free_rotation_is_refused_and_fixed_rotation_works():
    law = NeoHookean(E=1.0, nu=0.3)
    points = LawPoints(law, 1, dim=2, n_comp=4)
    start = MixedState.initial(np.eye(2).ravel())
    # F11 = F22 = 1, shear stresses P12 = P21 prescribed: from the stress-free F = I the
    # rotation is free (dP/dF singular on F12, F21): refused with a hint, not a wrong answer.
    free = MixedTarget(np.array([False, True, True, False]), [1.0, 0.01, 0.01, 1.0])
    result = reach_target(points, free, start=start)
    assert not result.converged and "prescribe F12 or F21" in result.reason
    # F12 = 0 fixes it: uniaxial stress P22 = P21 = 0 at finite stretch, = the RVE.
    fixed = MixedTarget(np.array([False, False, True, True]), [1.1, 0.0, 0.0, 0.0])
    (law_state,), _ = follow(points, [fixed], n=4, reference=np.eye(2).ravel())
    pool = homogeneous_pool(law, dim=2, physics="finite_strain")
    (rve_state,), _ = follow(pool, [fixed], n=4, reference=np.eye(2).ravel())
    np.testing.assert_allclose(rve_state.strain, law_state.strain, rtol=1e-10)
    assert abs(law_state.stress[0][3]) < 1e-12 and law_state.strain[0][3] < 1.0  # lateral contraction
    assert law_state.stress[0][0] > 0


def test_load_path_driver_segments_and_cutback():
    """run_load_path: a strain-controlled uniaxial-stress ramp, then unloading under stress
    control; with at most 2 stress-control evaluations per sub-step the unloading step is cut
    back and still reaches the closed-form residual strain; without cut-backs it fails."""
    pool = homogeneous_pool(LAW, dim=3)
    solver = pool.solver
    mask = np.array([False, True, True, True, True, True])
    e_max = 5 * LAW.sigma_y / LAW.E
    path = [
        Segment(MixedTarget(mask, [e_max, 0, 0, 0, 0, 0]), steps=4),
        Segment(MixedTarget(np.ones(6, bool), np.zeros(6)), steps=2),
    ]
    result = run_load_path(solver, path, field_steps=set(), max_cutbacks=2, options=TIGHT)
    assert len(result.strains) == 6
    sigma, p = closed_form_uniaxial(LAW, e_max)
    assert result.stresses[3][0] == pytest.approx(sigma, rel=1e-10)
    np.testing.assert_allclose(result.strains[-1], [p, -p / 2, -p / 2, 0, 0, 0], atol=1e-12)
    np.testing.assert_allclose(result.stresses[-1], 0.0, atol=1e-12)
    assert result.stress_controlled[0].tolist() == mask.tolist()
    assert result.stress_controlled[-1].tolist() == [True] * 6
    assert all(k >= 1 for k in result.control_iterations) and result.substeps == [1] * 6

    one_step_each = [Segment(path[0].target, steps=1), Segment(path[1].target, steps=1)]
    short = MixedOptions(rtol=1e-12, max_iterations=2)
    cut = run_load_path(solver, one_step_each, field_steps=set(), max_cutbacks=4, options=short)
    assert cut.substeps[-1] > 1  # the unloading step needed more evaluations than allowed
    np.testing.assert_allclose(cut.strains[-1], [p, -p / 2, -p / 2, 0, 0, 0], atol=1e-12)
    with pytest.raises(ComputationError, match="load_path step 2 .* stress control did not converge"):
        run_load_path(solver, one_step_each, field_steps=set(), max_cutbacks=0, options=short)


def _run(tmp_path, load_path, *args, out="out"):
    data = {
        "physics": "elasticity",
        "mesh": {"generate": {"type": "inclusion_2d", "volume_fraction": 0.3, "mesh_size": 0.1}},
        "phases": {
            "matrix": {"law": "j2", "tag": 1, "E": 3.5, "nu": 0.35, "sigma_y": 0.06, "H": 0.3},
            "fibre": {"tag": 2, "E": 72.0, "nu": 0.22},
        },
        "load_path": load_path,
    }
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump(data))
    return main(["homogenize", str(config), "-o", str(tmp_path / out), *args])


def test_cli_uniaxial_stress_load_unload_csv(tmp_path):
    load_path = {
        "segments": [
            {"strain": {11: 0.02}, "stress": {22: 0, 12: 0}, "steps": 4},
            {"stress": {11: 0, 22: 0, 21: 0}, "steps": 2},
        ],
    }
    assert _run(tmp_path, load_path) == 0
    if comm.rank != 0:
        return
    with open(tmp_path / "out" / "load_path.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6
    for row in rows[:4]:
        assert row["stress_controlled"] == "22 12"
        assert abs(float(row["S22"])) <= 1e-8 * float(row["S11"]) and abs(float(row["S12"])) <= 1e-8 * float(row["S11"])
    assert [float(r["E11"]) for r in rows[:4]] == pytest.approx([0.005, 0.01, 0.015, 0.02])
    assert rows[-1]["stress_controlled"] == "11 22 12"
    assert abs(float(rows[-1]["S11"])) <= 1e-10 and float(rows[-1]["E11"]) > 0.005  # residual strain
    assert float(rows[4]["S11"]) == pytest.approx(0.5 * float(rows[3]["S11"]), rel=1e-8)
    summary = json.loads((tmp_path / "out" / "load_path.json").read_text())
    assert summary["control_iterations"] == sum(int(r["control_iterations"]) for r in rows)
    assert (tmp_path / "out" / "load_path.png").is_file()


BAD = [
    ({"strain": {11: 0.01}, "stress": {11: 0.0, 22: 0, 12: 0}},
     "load_path: component 11 is given in both 'strain' and 'stress'"),
    ({"strain": {11: 0.01}, "stress": {22: 0}}, "load_path: component(s) 12 in neither 'strain' nor 'stress'"),
    ({"strain": {11: 0.01}, "stress": {22: 0, 33: 0, 12: 0}}, "load_path.stress.33: not a component of elasticity in 2D"),
    ({"strain": {11: 0.01}, "stress": {22: 0, 12: 0, 21: 0}}, "load_path.stress.21: the component is given twice"),
    ({"strain": [[0.01, 0], [0, 0]], "stress": {22: 0, 12: 0}}, "load_path: give 'strain' and 'stress' both as component mappings"),
    ({"stress": [[0.01, 0.02], [0.0, 0.0]]}, "load_path.stress: the stress tensor must be symmetric"),
    ({"segments": [{"steps": 2}]}, "load_path.segments[0]: give 'strain' and/or 'stress'"),
    ({"strain": [[0.01, 0], [0, 0]], "segments": [{"stress": {11: 0, 22: 0, 12: 0}}]},
     "load_path: give exactly one of 'strain' and/or 'stress' (with 'steps'), 'strains' and 'segments'"),
    ({"stress": [[0.01, 0], [0, 0]], "mixed_newton": {"rtol": 0}}, "load_path.mixed_newton.rtol: Input should be greater than 0"),
]


@pytest.mark.parametrize("load_path,message", BAD)
def test_bad_mixed_control_exits_2_naming_the_key(tmp_path, capsys, load_path, message):
    code = _run(tmp_path, load_path)
    err = capsys.readouterr().err
    assert code == 2 and not (tmp_path / "out").exists()
    if comm.rank == 0:
        assert message in err and len(err.strip().splitlines()) <= 2, err


def test_stress_control_of_a_linear_rve_gives_its_engineering_constants(make_mesh):
    """Uniaxial and shear stress tests of a heterogeneous linear RVE = the plane-strain
    constants from the inverse of its effective tensor (two code paths)."""
    from fe2.homogenization.engineering import engineering_constants
    from fe2.rve.effective import effective_tensor

    rve = make_mesh(type="random_inclusions_2d", n=5, volume_fraction=0.3, min_gap=0.03, seed=3, mesh_size=0.06)
    phases = {1: LinearElastic(E=3.5, nu=0.35), 2: LinearElastic(E=72.0, nu=0.22)}
    model = RveModel(rve.mesh, rve.cell_tags, make_physics("elasticity", 2), phases)
    constants = engineering_constants(effective_tensor(model, "periodic").C)
    pool = RvePool(make_rve_solver(model, "periodic"), 1)
    everything = np.ones(3, bool)
    (pull,), (result,) = follow(pool, [MixedTarget(everything, [1.0, 0.0, 0.0])], n=3)
    assert result.iterations <= 2  # linear: exact after one Newton step
    e11, e22, e12 = pull.strain[0] / [1, 1, np.sqrt(2)]  # tensor components
    assert 1 / e11 == pytest.approx(constants["E1"], rel=1e-9)
    assert -e22 / e11 == pytest.approx(constants["nu12"], rel=1e-9)
    assert 2 * e12 / e11 == pytest.approx(constants["coupling"]["12/11"], rel=1e-6, abs=1e-12)
    (shear,), _ = follow(RvePool(make_rve_solver(model, "periodic"), 1), [MixedTarget(everything, [0.0, 0.0, np.sqrt(2)])], n=3)
    gamma = 2 * shear.strain[0][2] / np.sqrt(2)  # engineering shear under sigma12 = 1
    assert 1 / gamma == pytest.approx(constants["G12"], rel=1e-9)


@pytest.mark.parametrize("name", ["uniaxial_stress_2d", "ud_composite_2d"])
def test_shipped_virtual_test_configs_are_valid(name, capsys):
    from pathlib import Path

    config = Path(__file__).resolve().parents[1] / "configs" / f"{name}.yaml"
    assert main(["validate", str(config)]) == 0
    if comm.rank == 0:
        assert "valid `fe2 homogenize` study" in capsys.readouterr().out


def test_temperature_cannot_be_stress_controlled():
    """k(T) conduction: the macro temperature T is a strain-like input with no conjugate flux;
    prescribing its 'stress' is refused up front, naming the key (it could never be met)."""
    from fe2.errors import InputError
    from fe2.homogenization.load_path import macro_target
    from fe2.physics import Conduction

    physics = Conduction(2, temperature=True)
    assert physics.stress_labels == ("1", "2")
    with pytest.raises(InputError, match=r"load_path\.stress\.T: T has no conjugate stress"):
        macro_target(physics, {"1": 0.1}, {"2": 0.0, "T": 1.0}, key="load_path")
    target = macro_target(physics, {"1": 0.1, "T": 20.0}, {"2": 0.0}, key="load_path")
    assert target.stress_controlled.tolist() == [False, True, False]
