"""Cauchy-Born laws in FE² RVEs and in `fe2 run`: tangent, small-strain limit, stability reports."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from mpi4py import MPI

from fe2.cli import main
from field_files import last_values, read_h5
from fe2.config import load_run_config
from fe2.lattice.potentials import LennardJones
from fe2.lattice.stability import lattice_stability
from fe2.macro.study import run_study
from fe2.materials import AnisotropicLinearElastic, LinearElastic, NeoHookean
from fe2.materials.cauchy_born import CauchyBornLaw, rve_stability_fields
from fe2.rve.effective import effective_tensor
from fe2.rve.model import RveModel
from fe2.rve.factory import make_rve_solver
from fe2.rve.micro_solver import NewtonOptions
from fe2.rve.physics import make_physics
from fe2.tensors import mandel_to_tensor

REPO = Path(__file__).resolve().parents[1]
comm = MPI.COMM_WORLD
LATTICE = CauchyBornLaw("triangular", LennardJones(epsilon=1.0, sigma=1.0), 1.6)
INCLUSION = NeoHookean(E=150.0, nu=0.3)
BCS = ("periodic", "affine", "traction")


def rve_solver(make_mesh, phases, bc, atol=0.0):
    rve = make_mesh(type="inclusion_2d", volume_fraction=0.3, mesh_size=0.1)
    model = RveModel(rve.mesh, rve.cell_tags, make_physics("finite_strain", 2), phases)
    return make_rve_solver(model, bc, newton=NewtonOptions(rtol=1e-12, atol=atol))


@pytest.mark.parametrize("bc", BCS)
def test_rve_with_lattice_phase_tangent_matches_central_differences(make_mesh, bc):
    solver = rve_solver(make_mesh, {1: LATTICE, 2: INCLUSION}, bc)
    state = solver.initial_state()
    F = np.array([1.04, 0.02, -0.015, 0.985])
    response, trial = solver.solve(F, state)
    h = 1e-5
    fd = np.array([
        (solver.solve(F + h * e, state, warm_start=trial.w)[0].stress
         - solver.solve(F - h * e, state, warm_start=trial.w)[0].stress) / (2 * h)
        for e in np.eye(4)
    ]).T
    assert np.abs(fd - response.tangent).max() <= 1e-6 * np.abs(response.tangent).max()
    assert response.hill_mandel_residual <= 1e-10
    # The RVE-side stability hook: the minimum over the RVE's lattice points of the trial state.
    fields = rve_stability_fields(solver.model.phases, [trial.history], 2)
    direct = LATTICE.point_fields(trial.history[1], 2)
    assert fields["acoustic_min_eigenvalue"][0] == direct["acoustic_min_eigenvalue"].min()
    assert fields["phonon_min_omega2"][0] == direct["phonon_min_omega2"].min()
    assert fields["lattice_unstable"][0] == 0.0


@pytest.mark.parametrize("bc", BCS)
def test_small_strain_limit_is_the_homogenised_lattice_constants(make_mesh, bc):
    """Tangent of the finite-strain RVE at F = I = the apparent tensor of the linear RVE whose
    phases have the lattice's elastic constants (hierarchical reduction); a homogeneous lattice
    RVE returns the lattice's constants."""
    # The equilibrium lattice is stress-free to round-off (~1e-14 of its stiffness): the
    # residual test needs an absolute floor at rest.
    solver = rve_solver(make_mesh, {1: LATTICE, 2: INCLUSION}, bc, atol=1e-11)
    at_rest, _ = solver.solve(np.eye(2).ravel(), solver.initial_state())
    assert np.abs(at_rest.stress).max() <= 1e-12 * np.abs(at_rest.tangent).max()  # stress-free reference
    linear = {1: AnisotropicLinearElastic(LATTICE.tangent(2)), 2: LinearElastic(E=INCLUSION.E, nu=INCLUSION.nu)}
    rve = make_mesh(type="inclusion_2d", volume_fraction=0.3, mesh_size=0.1)
    model = RveModel(rve.mesh, rve.cell_tags, make_physics("elasticity", 2), linear)
    C = mandel_to_tensor(effective_tensor(model, bc).C).reshape(4, 4)
    assert np.abs(at_rest.tangent - C).max() <= 1e-10 * np.abs(C).max()

    homogeneous = rve_solver(make_mesh, {1: LATTICE, 2: LATTICE}, bc, atol=1e-11)
    tangent = homogeneous.solve(np.eye(2).ravel(), homogeneous.initial_state())[0].tangent
    lattice = LATTICE.model.small_strain_stiffness().reshape(4, 4)
    assert np.abs(tangent - lattice).max() <= 1e-10 * np.abs(lattice).max()


# ----------------------------------------------------------------- fe2 run

def uniaxial_strain_study(steps, policy="warn", lattice="triangular", potential=None):
    """A rectangle of length 1 under F = diag(1 + u, 1) (x pulled, y held): homogeneous."""
    return {
        "physics": "finite_strain",
        "macro": {"mesh": {"generate": {"type": "rectangle", "length": 1.0, "height": 0.5, "cells_x": 2, "cells_y": 1}}},
        "material": {"law": {
            "law": "cauchy_born", "lattice": lattice,
            "potential": potential or {"type": "lennard_jones", "epsilon": 1.0, "sigma": 1.0},
            "cutoff": {"radius": 1.6}, "stability": {"policy": policy},
        }},
        "boundary_conditions": [
            {"boundary": "left", "component": "x"}, {"boundary": "bottom", "component": "y"},
            {"boundary": "top", "component": "y"}, {"boundary": "right", "component": "x", "value": 0.2},
        ],
        "steps": steps,
    }


def run(directory: Path, data: dict, name: str):
    config = directory / f"{name}.yaml"
    if comm.rank == 0:
        config.write_text(yaml.safe_dump(data))
    comm.barrier()
    return main(["run", str(config), "-o", str(directory / name)]), directory / name


def critical_uniaxial_stretch() -> float:
    """Bisection of the law's own check on F = diag(lambda, 1) (independent of the macro run)."""
    lo, hi = 1.0, 1.2
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        F = np.array([[[mid, 0.0], [0.0, 1.0]]])
        unstable = lattice_stability(LATTICE.model, F, grid=12)["unstable"][0]
        lo, hi = (lo, mid) if unstable else (mid, hi)
    return hi


def test_run_reports_the_first_unstable_step_of_a_homogeneous_stretch(shared_tmp_path):
    lam = critical_uniaxial_stretch()
    steps = [0.25, (lam - 1.0 - 2e-3) / 0.2, (lam - 1.0 + 2e-3) / 0.2, (lam - 1.0 + 6e-3) / 0.2]
    code, out = run(shared_tmp_path, uniaxial_strain_study(steps), "warn")
    assert code == 0
    if comm.rank == 0:
        summary = json.loads((out / "summary.json").read_text())
        assert summary["status"] == "completed"
        first = summary["lattice_stability"]["first_failure"]
        assert first["step"] == 3 and first["time"] == pytest.approx(steps[2])
        points = summary["macro"]["quadrature_points"]
        assert first["unstable_points"] == points  # homogeneous: every point at once
        assert first["phonon_min_omega2"] < 0
        with open(out / "history.csv") as f:
            rows = list(csv.DictReader(f))
        assert [int(r["unstable_points"]) for r in rows] == [0, 0, points, points]
        assert float(rows[1]["min_phonon_omega2"]) > 0 > float(rows[2]["min_phonon_omega2"])
        series = read_h5(out / "fields.xdmf")
        for name in ("phonon_min_omega2", "acoustic_min_eigenvalue", "lattice_unstable", "soft_mode_k1"):
            assert all(name in fields for fields in series.values()), name
        assert sorted(fields["time"] for fields in series.values()) == pytest.approx(steps)
        assert (last_values(out / "fields.xdmf", "lattice_unstable") == 1.0).all()


def test_fe2_run_checks_the_lattice_points_of_every_rve(shared_tmp_path):
    """FE² with a lattice RVE (both phases the same lattice: homogeneous): every macro point
    reports its least stable RVE point; the first failure is the closed-form one."""
    lam = critical_uniaxial_stretch()
    steps = [(lam - 1.0 - 2e-3) / 0.2, (lam - 1.0 + 2e-3) / 0.2]
    data = uniaxial_strain_study(steps)
    law = data["material"].pop("law")
    data["material"]["rve"] = {
        "mesh": {"generate": {"type": "inclusion_2d", "volume_fraction": 0.3, "mesh_size": 0.25}},
        "phases": {"matrix": {**law, "tag": 1}, "fibre": {**law, "tag": 2}},
        "solver": {"newton": {"atol": 1e-11}},  # stress-free to round-off at F = I
    }
    code, out = run(shared_tmp_path, data, "rve")
    assert code == 0
    if comm.rank == 0:
        summary = json.loads((out / "summary.json").read_text())
        assert summary["coupling"]["mode"] == "concurrent"
        first = summary["lattice_stability"]["first_failure"]
        assert first["step"] == 2 and first["unstable_points"] == summary["macro"]["quadrature_points"]
        with open(out / "history.csv") as f:
            rows = list(csv.DictReader(f))
        assert [int(r["unstable_points"]) for r in rows] == [0, summary["macro"]["quadrature_points"]]


def test_policy_stop_ends_the_run_at_the_first_failure(shared_tmp_path, capsys):
    lam = critical_uniaxial_stretch()
    steps = [(lam - 1.0 - 2e-3) / 0.2, (lam - 1.0 + 2e-3) / 0.2, 1.0]
    code, out = run(shared_tmp_path, {**uniaxial_strain_study(steps, policy="stop"), "output": {"fields_every": 0}}, "stop")
    assert code == 1
    if comm.rank == 0:
        assert "Cauchy-Born rule fails: step 2" in capsys.readouterr().err
        summary = json.loads((out / "summary.json").read_text())
        assert summary["status"] == "failed" and summary["completed_steps"] == 2
        assert summary["lattice_stability"]["first_failure"]["step"] == 2
        series = read_h5(out / "fields.xdmf")  # the failing step's fields are written
        assert len(series) == 1 and "lattice_unstable" in series[2]


def test_lattice_of_the_wrong_dimension_is_an_input_error(shared_tmp_path, capsys):
    code, out = run(shared_tmp_path, uniaxial_strain_study(2, lattice="fcc"), "fcc")
    assert code == 2
    if comm.rank == 0:
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "material.law.lattice: a 3D lattice (fcc) in a 2D problem" in err
    assert not (out / "history.csv").exists()


def test_shipped_example_fails_first_at_the_hole(shared_tmp_path):
    config = load_run_config(REPO / "configs" / "cauchy_born_plate.yaml")
    summary = run_study(config, comm, shared_tmp_path / "plate")
    assert summary["status"] == "completed"
    first = summary["lattice_stability"]["first_failure"]
    assert 1 < first["step"] < config_steps(config)  # stable at first, unstable before the end
    radius = config.macro.mesh.generate.radius
    assert np.hypot(*first["position"]) < radius + 0.1  # at the hole, where the stress concentrates
    assert summary["lattice_stability"]["unstable_points_last_step"] > first["unstable_points"]


def config_steps(config) -> int:
    return len(config.times)
