"""The scale-separation indicator eps_L = l |grad E| / |E| (VERIFICATION 18) and its outputs."""

from __future__ import annotations

import csv
import json

import dolfinx
import numpy as np
import pytest
import yaml
from mpi4py import MPI

from field_files import read_h5, read_meshio
from fe2.cli import main
from fe2.fem.quadrature_forms import QuadratureForms
from fe2.macro.scale_separation import ScaleSeparation
from fe2.rve.physics import make_physics

comm = MPI.COMM_WORLD
ELL = 0.05


def forms_on_rectangle(degree: int, physics: str, cells: int = 8) -> QuadratureForms:
    mesh = dolfinx.mesh.create_rectangle(
        comm, [[0.0, 0.0], [2.0, 1.0]], [2 * cells, cells], dolfinx.mesh.CellType.triangle
    )
    return QuadratureForms(mesh, make_physics(physics, 2), degree)


def strains_of(forms: QuadratureForms, displacement) -> np.ndarray:
    u = dolfinx.fem.Function(forms.V)
    u.interpolate(displacement)
    return (forms.physics.reference_strain + forms.strain_of(u.x.array)).reshape(-1, forms.physics.n_comp)


@pytest.mark.parametrize("physics", ["elasticity", "finite_strain"])
@pytest.mark.parametrize("degree", [1, 2])
def test_uniform_strain_gives_zero(degree, physics):
    forms = forms_on_rectangle(degree, physics)
    indicator = ScaleSeparation(forms, rve_size=ELL, tolerance=0.1)
    result = indicator.evaluate(strains_of(forms, lambda x: np.array([0.01 * x[0] + 0.004 * x[1], -0.003 * x[0]])))
    assert np.abs(result.epsilon).max() < 1e-10
    assert result.fractions["strong"] == pytest.approx(1.0) and result.worst < 1e-10
    indicator.destroy()


# u = (e1 x + a x^2/2, e2 y + b x y): E11 = e1 + a x, E22 = e2 + b x, E12 = b y / 2 (tensor)
E1, E2, A, B = 0.01, 0.005, 0.003, 0.002


def quadratic(x):
    return np.array([E1 * x[0] + 0.5 * A * x[0] ** 2, E2 * x[1] + B * x[0] * x[1]])


def analytic(points: np.ndarray, physics: str) -> np.ndarray:
    """eps_L of the linear strain field of ``quadratic`` at points (m, 2) (VERIFICATION 18)."""
    x, y = points[:, 0], points[:, 1]
    if physics == "elasticity":  # Frobenius norms of E (tensor) and of grad E (third order)
        E = np.sqrt((E1 + A * x) ** 2 + (E2 + B * x) ** 2 + 2 * (0.5 * B * y) ** 2)
        G = np.sqrt(A**2 + B**2 + 2 * (0.5 * B) ** 2)
    else:  # H = F - I = grad u: (E1 + A x, 0; B y, E2 + B x); grad H: A, B (d/dy of H21), B
        E = np.sqrt((E1 + A * x) ** 2 + (B * y) ** 2 + (E2 + B * x) ** 2)
        G = np.sqrt(A**2 + B**2 + B**2)
    return ELL * G / E


@pytest.mark.parametrize("physics", ["elasticity", "finite_strain"])
def test_linear_strain_field_gives_the_analytic_value_with_p2(physics):
    forms = forms_on_rectangle(2, physics)
    indicator = ScaleSeparation(forms, rve_size=ELL, tolerance=0.1)  # |E| > floor everywhere here
    result = indicator.evaluate(strains_of(forms, quadratic))
    expected = analytic(forms.quadrature_coordinates().reshape(-1, 2), physics)
    np.testing.assert_allclose(result.epsilon, expected, rtol=1e-9)
    worst = comm.allreduce(expected.max() if len(expected) else 0.0, op=MPI.MAX)
    assert result.worst == pytest.approx(worst, rel=1e-9)
    assert np.allclose(analytic(np.array([result.point]), physics), worst, rtol=1e-9)
    indicator.destroy()


def test_p1_recovery_converges_to_the_analytic_value():
    errors = []
    for cells in (4, 8, 16):
        forms = forms_on_rectangle(1, "elasticity", cells)
        indicator = ScaleSeparation(forms, rve_size=ELL, tolerance=0.1)
        result = indicator.evaluate(strains_of(forms, quadratic))
        expected = analytic(forms.quadrature_coordinates().reshape(-1, 2), "elasticity")
        local = np.sum(forms.dV.ravel() * ((result.epsilon - expected) / expected) ** 2)
        errors.append(np.sqrt(comm.allreduce(local, op=MPI.SUM) / 2.0))
        indicator.destroy()
    assert errors[0] > errors[1] > errors[2]
    assert errors[-1] < 0.05


def test_classes_and_the_strain_floor():
    forms = forms_on_rectangle(2, "elasticity", 4)
    # E11 = 0.01 x - 0.01: zero at x = 1; the floor (a tenth of the largest |E|) bounds eps_L
    indicator = ScaleSeparation(forms, rve_size=0.1, tolerance=0.2, strain_floor=0.1)
    result = indicator.evaluate(strains_of(forms, lambda x: np.array([0.005 * x[0] ** 2 - 0.01 * x[0], 0 * x[1]])))
    x = forms.quadrature_coordinates().reshape(-1, 2)[:, 0]
    magnitude = np.abs(0.01 * x - 0.01)
    largest = comm.allreduce(magnitude.max(), op=MPI.MAX)  # over the quadrature points
    expected = 0.1 * 0.01 / np.maximum(magnitude, 0.1 * largest)
    np.testing.assert_allclose(result.epsilon, expected, rtol=1e-8)
    classes = np.where(expected < 0.2, 0, np.where(expected**2 < 0.2, 1, 2))
    np.testing.assert_array_equal(result.classes, classes)
    assert sum(result.fractions.values()) == pytest.approx(1.0)
    assert result.worst == pytest.approx(0.01 / largest, rel=1e-8)  # on the floor, near x = 1
    indicator.destroy()


def test_fe2_run_writes_the_indicator_and_it_peaks_at_the_hole(shared_tmp_path, capsys):
    radius, h_hole = 0.3, 0.03
    data = {
        "physics": "elasticity",
        "macro": {"mesh": {"generate": {"type": "plate_with_hole", "radius": radius, "mesh_size": 0.1,
                                        "hole_mesh_size": h_hole}}},
        "material": {"law": {"E": 10.0, "nu": 0.3}},
        "boundary_conditions": [{"boundary": "left", "component": "x"}, {"boundary": "bottom", "component": "y"},
                                {"boundary": "right", "component": "x", "value": 0.01}],
        "steps": 2,
        "output": {"scale_separation": {"rve_size": ELL, "tolerance": 0.1}},
    }
    path = shared_tmp_path / "plate.yaml"
    if comm.rank == 0:
        path.write_text(yaml.safe_dump(data))
    comm.barrier()
    out = shared_tmp_path / "plate"
    assert main(["run", str(path), "-o", str(out), "-q"]) == 0  # -q: warnings only
    if comm.rank != 0:
        return
    warnings = [line for line in capsys.readouterr().out.splitlines() if "no scale separation" in line]
    summary = json.loads((out / "summary.json").read_text())["scale_separation"]
    with open(out / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(warnings) == (2 if summary["final"]["none"] > 0 else 0)  # once per step
    point = np.array(summary["worst"]["point"])
    assert radius - 1e-9 < np.linalg.norm(point) < radius + 2 * h_hole  # at the hole
    for row in rows:
        fractions = [float(row[f"separation_{c}"]) for c in ("strong", "weak", "none")]
        assert sum(fractions) == pytest.approx(1.0, abs=1e-5)
        assert float(row["scale_separation_max"]) == pytest.approx(summary["worst"]["epsilon"], rel=1e-5)
    assert summary["final"]["strong"] > 0.5  # far from the hole the strain is nearly uniform
    points, cells, steps = read_meshio(out / "fields.xdmf")  # and the step files with h5py:
    _, _, cell_data = max(steps, key=lambda step: step[0])
    eps, classes = cell_data["scale_separation"][0].ravel(), cell_data["separation_class"][0].ravel()
    last = read_h5(out / "fields.xdmf")
    np.testing.assert_array_equal(last[max(last)]["scale_separation"].ravel(), eps)
    centres = points[cells[0].data].mean(axis=1)[:, :2]
    assert eps.max() == pytest.approx(summary["worst"]["epsilon"], rel=1e-5)
    far = np.linalg.norm(centres, axis=1) > 0.8
    near = np.linalg.norm(centres, axis=1) < radius + 0.1
    assert eps[far].max() < eps[near].max() / 5
    assert set(np.unique(classes)) <= {0.0, 1.0, 2.0}
    assert np.all(classes[eps < 0.1] == 0) and np.all(classes[eps**2 >= 0.1] == 2)


def test_uniform_run_has_full_strong_separation(shared_tmp_path):
    data = {
        "physics": "elasticity",
        "macro": {"mesh": {"generate": {"type": "rectangle", "cells_x": 4, "cells_y": 2}}},
        "material": {"law": {"E": 10.0, "nu": 0.3}},
        "boundary_conditions": [{"boundary": "left", "component": "x"}, {"boundary": "bottom", "component": "y"},
                                {"boundary": "right", "component": "x", "value": 0.01}],
        "steps": 1,
        "output": {"scale_separation": {"rve_size": 0.5}},
    }
    path = shared_tmp_path / "strip.yaml"
    if comm.rank == 0:
        path.write_text(yaml.safe_dump(data))
    comm.barrier()
    assert main(["run", str(path), "-o", str(shared_tmp_path / "strip"), "-q"]) == 0
    if comm.rank == 0:
        summary = json.loads((shared_tmp_path / "strip" / "summary.json").read_text())["scale_separation"]
        assert summary["final"] == {"strong": 1.0, "weak": 0.0, "none": 0.0}
        assert summary["worst"]["epsilon"] < 1e-10


@pytest.mark.parametrize("value, message", [
    ({"rve_size": 0}, "output.scale_separation.rve_size"),
    ({"rve_size": float("inf")}, "output.scale_separation.rve_size"),
    ({"rve_size": 0.1, "tolerance": 1.5}, "output.scale_separation.tolerance"),
    ({"tolerance": 0.1}, "output.scale_separation.rve_size: required key is missing"),
])
def test_bad_indicator_config_exits_2(shared_tmp_path, capsys, value, message):
    data = {
        "physics": "elasticity",
        "macro": {"mesh": {"generate": {"type": "rectangle", "cells_x": 2, "cells_y": 1}}},
        "material": {"law": {"E": 10.0, "nu": 0.3}},
        "boundary_conditions": [{"boundary": "left"}],
        "output": {"scale_separation": value},
    }
    path = shared_tmp_path / "bad.yaml"
    if comm.rank == 0:
        path.write_text(yaml.safe_dump(data))
    comm.barrier()
    assert main(["run", str(path), "-o", str(shared_tmp_path / "bad")]) == 2
    if comm.rank == 0:
        assert message in capsys.readouterr().err


def test_indicator_does_not_depend_on_the_number_of_ranks(shared_tmp_path):
    from fe2.config.base import validate
    from fe2.config.run import RunConfig
    from fe2.macro.study import run_study

    data = {
        "physics": "elasticity",
        "macro": {"mesh": {"generate": {"type": "plate_with_hole", "mesh_size": 0.15, "hole_mesh_size": 0.06}}},
        "material": {"law": {"E": 10.0, "nu": 0.3}},
        "boundary_conditions": [{"boundary": "left", "component": "x"}, {"boundary": "bottom", "component": "y"},
                                {"boundary": "right", "component": "x", "value": 0.01}],
        "steps": 1,
        "output": {"scale_separation": {"rve_size": ELL}},
    }
    config = validate(RunConfig, data, base_dir=shared_tmp_path, source="test")
    world = run_study(config, comm, shared_tmp_path / "world")["scale_separation"]
    alone = run_study(config, MPI.COMM_SELF, shared_tmp_path / f"self{comm.rank}")["scale_separation"]
    assert world["final"] == pytest.approx(alone["final"], abs=1e-6)
    assert world["worst"]["epsilon"] == pytest.approx(alone["worst"]["epsilon"], rel=1e-8)
    np.testing.assert_allclose(world["worst"]["point"], alone["worst"]["point"], atol=1e-6)
