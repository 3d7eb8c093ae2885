"""`fe2 homogenize` with a load path: CSV per step, RVE fields in XDMF, cut-back, errors."""

import csv
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from mpi4py import MPI

from fe2.cli import main
from fe2.config import load_homogenize_config
from fe2.homogenization.study import run_homogenization
from field_files import read_meshio

REPO = Path(__file__).resolve().parents[1]
comm = MPI.COMM_WORLD

PLASTIC = {
    "physics": "elasticity",
    "mesh": {"file": str(REPO / "meshes" / "inclusion_2d.msh")},
    "phases": {
        "matrix": {"law": "j2", "tag": 1, "E": 3.5, "nu": 0.35, "sigma_y": 0.06, "H": 0.3},
        "fibre": {"tag": 2, "E": 72.0, "nu": 0.22},
    },
    "load_path": {"strain": [[0.03, 0.01], [0.01, -0.005]], "steps": 6, "fields_at": [3, 6]},
}
RUBBER = {
    "physics": "finite_strain",
    "mesh": {"file": str(REPO / "meshes" / "inclusion_2d.msh")},
    "phases": {"rubber": {"tag": 1, "E": 0.01, "nu": 0.45}, "particle": {"tag": 2, "E": 1.0, "nu": 0.3}},
    "load_path": {"strain": [[2.0, 0.5], [0.0, 0.6]], "steps": 1},
}


def run(tmp_path, data, *args, name="study.yaml", out="out"):
    config = tmp_path / name
    config.write_text(yaml.safe_dump(data))
    return main(["homogenize", str(config), "-o", str(tmp_path / out), *args]), config


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_plastic_load_path_csv_and_fields(tmp_path):
    code, config = run(tmp_path, PLASTIC)
    assert code == 0
    if comm.rank != 0:
        return
    out = tmp_path / "out"
    rows = read_csv(out / "load_path.csv")
    assert [int(r["step"]) for r in rows] == list(range(1, 7))
    labels = ["11", "22", "12"]
    expected_columns = (
        ["step"] + [f"E{c}" for c in labels] + [f"S{c}" for c in labels] + ["S33", "von_mises"]
        + [f"C_{a}_{b}" for a in labels for b in labels]
        + ["newton_iterations", "substeps", "stress_controlled", "control_iterations", "stress_residual",
           "hill_mandel_residual", "max_equivalent_plastic_strain", "seconds"]
    )
    assert list(rows[0]) == expected_columns
    # The strain ramp in plain tensor components.
    assert float(rows[-1]["E11"]) == pytest.approx(0.03) and float(rows[-1]["E12"]) == pytest.approx(0.01)
    assert float(rows[2]["E22"]) == pytest.approx(-0.0025)
    assert all(float(r["hill_mandel_residual"]) <= 1e-10 for r in rows)
    p = [float(r["max_equivalent_plastic_strain"]) for r in rows]
    assert p[0] == 0.0 and p[-1] > 0.01 and p == sorted(p)
    iterations = [int(r["newton_iterations"]) for r in rows]
    assert iterations[0] == 0 and max(iterations) >= 2  # elastic: the shortcut; plastic: Newton
    # Strain control: one RVE evaluation per step, nothing stress-controlled.
    assert all(r["stress_controlled"] == "" and r["control_iterations"] == "1" for r in rows)
    assert all(float(r["stress_residual"]) == 0 for r in rows)
    summary = json.loads((out / "load_path.json").read_text())
    assert summary["steps"] == 6 and summary["fields_at_steps"] == [3, 6]
    assert summary["newton_iterations"] == sum(iterations)

    # The fields re-read with meshio (and h5py): the cell-volume average of the stress is Sigma.
    x, cell_blocks, snapshots = read_meshio(out / "rve_fields.xdmf")
    cells = cell_blocks[0].data
    a, b, c = (x[cells[:, i]] for i in range(3))
    area = 0.5 * np.abs((b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0])
    assert [t for t, _, _ in snapshots] == [3, 6]
    with h5py.File(out / "rve_fields.h5", "r") as h5:
        for k, (step, point_data, cell_data) in enumerate(snapshots):
            step = int(step)
            stress = cell_data["stress"][0].reshape(-1, 3, 3)  # row-major 3 x 3
            np.testing.assert_array_equal(h5[f"step-{k}/stress"][:].reshape(-1, 3, 3), stress)
            average = np.einsum("c,cij->ij", area, stress) / area.sum()
            row = rows[step - 1]
            expected = [[float(row["S11"]), float(row["S12"])], [float(row["S12"]), float(row["S22"])]]
            np.testing.assert_allclose(average[:2, :2], expected, rtol=1e-9)
            assert np.all(average[2, :2] == 0) and np.all(average[:2, 2] == 0)
            # sigma33 of plane strain: in the elastic fibre (one quadrature point per P1
            # triangle) it is nu_f (s11 + s22) of the same cell -- cells that meet this make
            # up exactly the fibre's volume; in the plastic matrix it is not (eps_p33 != 0)
            sigma33 = stress[:, 2, 2]
            fibre = np.isclose(sigma33, 0.22 * (stress[:, 0, 0] + stress[:, 1, 1]), rtol=1e-10, atol=0)
            fibre_fraction = area[fibre].sum() / area.sum()
            assert abs(fibre_fraction - 0.2987) < 1e-4, fibre_fraction  # the meshed fibre fraction
            assert average[2, 2] > 0.1 * average[0, 0]
            assert point_data["displacement"].shape == (x.shape[0], 3)
            assert cell_data["equivalent_plastic_strain"][0].max() > 0
    xdmf = (out / "rve_fields.xdmf").read_text()
    assert "rve_fields.h5:" in xdmf and ".tmp" not in xdmf


def test_load_path_all_bcs_matches_single_rank(tmp_path):
    data = json.loads(json.dumps(PLASTIC))
    data["load_path"]["fields_at"] = None
    code, config = run(tmp_path, data, "--bc", "all")
    assert code == 0
    reference = run_homogenization(
        load_homogenize_config(config), bcs=["affine", "periodic", "traction"], comm=MPI.COMM_SELF
    )
    if comm.rank == 0:
        final = {}
        for bc in ("affine", "periodic", "traction"):
            rows = read_csv(tmp_path / "out" / f"load_path_{bc}.csv")
            final[bc] = np.array([float(rows[-1][k]) for k in ("S11", "S22", "S12")])
            assert (tmp_path / "out" / f"rve_fields_{bc}.xdmf").is_file()
            stress = reference.load_paths[bc].stresses[-1]
            np.testing.assert_allclose(final[bc][:2], stress[:2], rtol=1e-10)
        # Same nesting as for the effective tensors: affine is the stiffest response.
        assert final["affine"][0] > final["periodic"][0] > final["traction"][0]


def test_failed_step_is_cut_back(tmp_path):
    data = json.loads(json.dumps(RUBBER))  # one step to F = [[2, 0.5], [0, 0.6]]
    data["load_path"]["max_cutbacks"] = 0
    code, _ = run(tmp_path, data)
    assert code == 1  # the RVE fails: an error, no answer, nothing written
    assert not (tmp_path / "out").exists()
    data["load_path"]["max_cutbacks"] = 5
    assert run(tmp_path, data, out="cut")[0] == 0
    data["load_path"]["steps"] = 16
    assert run(tmp_path, data, out="fine")[0] == 0
    if comm.rank == 0:
        cut = read_csv(tmp_path / "cut" / "load_path.csv")
        fine = read_csv(tmp_path / "fine" / "load_path.csv")
        assert len(cut) == 1 and int(cut[0]["substeps"]) > 1
        # Hyperelastic: the cut-back step reaches the state of the fine ramp.
        for key in ("P11", "P12", "P21", "P22"):
            assert float(cut[0][key]) == pytest.approx(float(fine[-1][key]), rel=1e-8, abs=1e-12)


BAD = [
    ({"strain": [[0.01, 0.0], [0.0, 0.0]], "strains": [[[0.01, 0], [0, 0]]]}, "load_path: give exactly one"),
    ({"strain": [0.01, 0.0, 0.0]}, "load_path.strain: expected a 2 x 2 tensor"),
    ({"strain": [[0.01, 0.02], [0.0, 0.0]]}, "load_path.strain: the small-strain tensor must be symmetric"),
    ({"strain": [[0.01, 0.0], [0.0, 0.0]], "fields_at": [0, 11]}, "load_path.fields_at: steps [0, 11]"),
    ({"strain": [[0.01, 0.0], [0.0, 0.0]], "stepz": 3}, "load_path.stepz: unknown key (did you mean 'steps'?)"),
]


@pytest.mark.parametrize("load_path,message", BAD)
def test_bad_load_path_exits_2(tmp_path, capsys, load_path, message):
    data = json.loads(json.dumps(PLASTIC))
    data["load_path"] = load_path
    code, _ = run(tmp_path, data)
    err = capsys.readouterr().err
    assert code == 2 and not (tmp_path / "out").exists()
    if comm.rank == 0:
        assert message in err, err


def test_bad_nonlinear_phases_exit_2(tmp_path, capsys):
    data = json.loads(json.dumps(PLASTIC))
    data["phases"]["matrix"]["sigma_y"] = 0.0
    code, _ = run(tmp_path, data)
    assert code == 2
    if comm.rank == 0:
        assert "phases.matrix.sigma_y: Input should be greater than 0" in capsys.readouterr().err
    data = json.loads(json.dumps(RUBBER))
    data["phases"]["rubber"]["law"] = "j2"
    data["phases"]["rubber"]["sigma_y"] = 1.0
    code, _ = run(tmp_path, data)
    assert code == 2
    if comm.rank == 0:
        assert "phases.rubber.law: 'j2' is a law for physics 'elasticity', but physics is 'finite_strain'" in capsys.readouterr().err
