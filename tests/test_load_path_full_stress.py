"""`fe2 homogenize` load paths of plane-strain RVEs: the out-of-plane stress <sigma33> and the
von Mises stress of the homogenised full stress in the CSV, JSON and table, against closed
forms and an independent average; both RVE backends, all three BCs."""

import csv
import json
from pathlib import Path

import meshio
import numpy as np
import pytest
import yaml
from mpi4py import MPI

from fe2.cli import main

REPO = Path(__file__).resolve().parents[1]
comm = MPI.COMM_WORLD
BCS = ("affine", "periodic", "traction")
J2 = {"law": "j2", "E": 200.0, "nu": 0.3, "sigma_y": 0.4, "H": 20.0}
MESH = {"generate": {"type": "inclusion_2d", "volume_fraction": 0.2, "mesh_size": 0.3}}


def homogenize(directory: Path, data: dict, out: str, capsys=None) -> tuple[Path, str]:
    config = directory / f"{out}.yaml"
    if comm.rank == 0:
        config.write_text(yaml.safe_dump(data))
    comm.barrier()
    code = main(["homogenize", str(config), "-o", str(directory / out), "--bc", "all"])
    assert code == 0
    printed = capsys.readouterr().out if capsys is not None else ""
    return directory / out, printed


def read_columns(path: Path) -> dict[str, np.ndarray]:
    """The numeric columns of a load-path CSV (csv module, then numpy)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {name: np.array([float(r[name]) for r in rows]) for name in rows[0] if name != "stress_controlled"}


def von_mises_of_components(c: dict[str, np.ndarray]) -> np.ndarray:
    """sqrt(((s11-s22)^2 + (s22-s33)^2 + (s33-s11)^2) / 2 + 3 s12^2), tensor components."""
    s11, s22, s33, s12 = c["S11"], c["S22"], c["S33"], c["S12"]
    return np.sqrt(0.5 * ((s11 - s22) ** 2 + (s22 - s33) ** 2 + (s33 - s11) ** 2) + 3 * s12**2)


def closed_form_uniaxial_strain(e11: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """J2 with linear isotropic hardening under eps = e11 e1 (x) e1, monotonic: the deviatoric
    strain keeps its direction, so the return is exact, with q_trial = 2 mu e11,
    p = (q_trial - sigma_y) / (3 mu + H) after yield, q = sigma_y + H p (q = q_trial before);
    sigma = K e11 I + q diag(2, -1, -1) / 3. Returns (sigma11, sigma33, von Mises q)."""
    E, nu, sigma_y, H = J2["E"], J2["nu"], J2["sigma_y"], J2["H"]
    mu, K = E / (2 * (1 + nu)), E / (3 * (1 - 2 * nu))
    trial = 2 * mu * e11
    p = np.maximum(trial - sigma_y, 0.0) / (3 * mu + H)
    q = np.where(p > 0, sigma_y + H * p, trial)
    return K * e11 + 2 * q / 3, K * e11 - q / 3, q


@pytest.mark.parametrize("batch", ["auto", "off"])
def test_homogeneous_j2_uniaxial_strain_sigma33_and_von_mises(shared_tmp_path, capsys, batch):
    """A homogeneous J2 RVE (both phases the law) under e11 ramped to 4.5 yield strains (e22 =
    e12 = 0): <sigma33> and von Mises in the CSV = the closed form, also for the elastic steps
    (sigma33 = nu (s11 + s22)); von Mises also from the CSV's own components."""
    e_max = 4.5 * J2["sigma_y"] / (J2["E"] / (1 + J2["nu"]))  # first step at 0.9 e_y
    data = {
        "physics": "elasticity", "mesh": MESH,
        "phases": {"matrix": {"tag": 1, **J2}, "fibre": {"tag": 2, **J2}},
        "rve": {"batch": batch},
        "solver": {"newton": {"rtol": 1e-12}},
        "load_path": {"strain": [[e_max, 0.0], [0.0, 0.0]], "steps": 5},
    }
    out, printed = homogenize(shared_tmp_path, data, f"j2_{batch}", capsys)
    if comm.rank != 0:
        return
    e11 = e_max * np.arange(1, 6) / 5
    sigma11, sigma33, q = closed_form_uniaxial_strain(e11)
    assert q[0] < J2["sigma_y"] < q[-1]  # elastic, then plastic steps
    for bc in BCS:
        c = read_columns(out / f"load_path_{bc}.csv")
        np.testing.assert_allclose(c["E11"], e11, rtol=1e-14)
        scale = np.abs(sigma11).max()
        np.testing.assert_allclose(c["S11"], sigma11, rtol=0, atol=1e-10 * scale)
        np.testing.assert_allclose(c["S33"], sigma33, rtol=0, atol=1e-10 * scale)
        np.testing.assert_allclose(c["von_mises"], q, rtol=0, atol=1e-10 * scale)
        np.testing.assert_allclose(c["von_mises"], von_mises_of_components(c), rtol=1e-12)
        elastic = c["max_equivalent_plastic_strain"] == 0
        assert elastic.sum() == 1
        np.testing.assert_allclose(c["S33"][elastic], J2["nu"] * (c["S11"] + c["S22"])[elastic], rtol=1e-12)
        record = json.loads((out / f"load_path_{bc}.json").read_text())
        np.testing.assert_array_equal(record["full_stress_per_step"]["S33"], c["S33"])
        np.testing.assert_array_equal(record["full_stress_per_step"]["von_mises"], c["von_mises"])
    header = next(line for line in printed.splitlines() if line.lstrip().startswith("step"))
    assert "S33" in header and "von mises" in header


LINEAR = {"matrix": {"tag": 1, "E": 3.5, "nu": 0.35}, "fibre": {"tag": 2, "E": 72.0, "nu": 0.22}}


def phase_of_cells(points: np.ndarray, cells: np.ndarray, msh: Path) -> np.ndarray:
    """The gmsh physical tag of each cell of a field file, matched by centroid to the cells of
    the mesh file (both read by meshio)."""
    mesh = meshio.read(msh)
    centroids, tags = [], []
    for block, physical in zip(mesh.cells, mesh.cell_data["gmsh:physical"]):
        if block.type == "triangle":
            centroids.append(mesh.points[block.data][:, :, :2].mean(axis=1))
            tags.append(physical)
    centroids, tags = np.concatenate(centroids), np.concatenate(tags)
    mine = points[cells][:, :, :2].mean(axis=1)
    distance = np.linalg.norm(mine[:, None, :] - centroids[None, :, :], axis=2)
    nearest = distance.argmin(axis=1)
    assert distance.min(axis=1).max() < 1e-12 and len(set(nearest)) == len(mine)
    return tags[nearest]


def test_linear_two_phase_sigma33_is_the_average_of_the_laws(shared_tmp_path):
    """Two isotropic linear phases (one quadrature point per P1 cell): per cell sigma33 =
    nu_phase (s11 + s22) of the cell's in-plane stress (written in rve_fields.xdmf from the
    constitutive update), so <sigma33> = sum over cells of area * nu (s11 + s22) / area of the
    RVE -- equal to the CSV's S33 at every fields step, for every BC and both backends."""
    strain = [[0.01, 0.004], [0.004, -0.003]]
    columns = {}
    for batch in ("auto", "off"):
        data = {"physics": "elasticity", "mesh": {**MESH, "generate": {**MESH["generate"], "mesh_size": 0.15}},
                "phases": LINEAR, "rve": {"batch": batch}, "load_path": {"strain": strain, "steps": 2,
                                                                          "fields_at": [1, 2]}}
        out, _ = homogenize(shared_tmp_path, data, f"linear_{batch}")
        if comm.rank != 0:
            continue
        nu = {1: LINEAR["matrix"]["nu"], 2: LINEAR["fibre"]["nu"]}
        for bc in BCS:
            c = columns[batch, bc] = read_columns(out / f"load_path_{bc}.csv")
            with meshio.xdmf.TimeSeriesReader(out / f"rve_fields_{bc}.xdmf") as reader:
                points, cell_blocks = reader.read_points_cells()
                steps = [reader.read_data(k) for k in range(reader.num_steps)]
            cells = cell_blocks[0].data
            tags = phase_of_cells(points, cells, out / "rve.msh")
            ratio = np.array([nu[t] for t in tags])
            a, b, d = (points[cells[:, i], :2] for i in range(3))
            area = 0.5 * np.abs((b - a)[:, 0] * (d - a)[:, 1] - (b - a)[:, 1] * (d - a)[:, 0])
            assert [int(t) for t, _, _ in steps] == [1, 2]
            for t, _, cell_data in steps:
                stress = cell_data["stress"][0].reshape(-1, 3, 3)
                independent = area @ (ratio * (stress[:, 0, 0] + stress[:, 1, 1])) / area.sum()
                k = int(t) - 1
                assert c["S33"][k] == pytest.approx(independent, rel=1e-12)
                assert abs(c["S33"][k]) > 0.1 * abs(c["S11"][k])
            np.testing.assert_allclose(c["von_mises"], von_mises_of_components(c), rtol=1e-12)
    if comm.rank == 0:
        for bc in BCS:  # the two backends agree
            a, b = columns["auto", bc], columns["off", bc]
            for name in ("S11", "S22", "S12", "S33", "von_mises"):
                np.testing.assert_allclose(a[name], b[name], rtol=1e-10, atol=0)


def test_no_out_of_plane_columns_where_the_rve_has_none(shared_tmp_path):
    """Conduction: neither S33 nor von Mises columns (nor the JSON entry)."""
    data = {"physics": "conduction", "mesh": MESH,
            "phases": {"matrix": {"tag": 1, "k": 1.0}, "fibre": {"tag": 2, "k": 10.0}},
            "load_path": {"strain": [1.0, 0.0], "steps": 1}}
    out, _ = homogenize(shared_tmp_path, data, "conduction")
    if comm.rank == 0:
        with open(out / "load_path_periodic.csv", newline="") as f:
            header = next(csv.reader(f))
        assert not {"S33", "Q33", "von_mises"} & set(header)
        assert "full_stress_per_step" not in json.loads((out / "load_path_periodic.json").read_text())


def test_finite_strain_p33_and_cauchy_von_mises(shared_tmp_path):
    """A homogeneous Neo-Hookean RVE under F = [[1.2, 0.1], [0, 0.9]] (F33 = 1): the CSV's P33
    and von Mises equal the law evaluated in 3D at that F (P33; von Mises of J^-1 P F^T)."""
    from fe2.materials import NeoHookean

    law = {"law": "neo_hookean", "E": 3.5, "nu": 0.35}
    F = np.array([[1.2, 0.1], [0.0, 0.9]])
    data = {"physics": "finite_strain", "mesh": MESH,
            "phases": {"matrix": {"tag": 1, **law}, "fibre": {"tag": 2, **law}},
            "load_path": {"strain": F.tolist(), "steps": 2}}
    out, _ = homogenize(shared_tmp_path, data, "rubber")
    if comm.rank != 0:
        return
    F3 = np.eye(3)
    F3[:2, :2] = F
    P = NeoHookean(E=3.5, nu=0.35).update(F3.reshape(1, 9), {}, 3).stress.reshape(3, 3)
    cauchy = P @ F3.T / np.linalg.det(F3)
    deviator = cauchy - np.trace(cauchy) * np.eye(3) / 3
    for bc in BCS:
        c = read_columns(out / f"load_path_{bc}.csv")
        assert "S33" not in c and abs(P[2, 2]) > 0.05 * abs(P[0, 0])
        np.testing.assert_allclose([c[f"P{i}{j}"][-1] for i in (1, 2) for j in (1, 2)], P[:2, :2].ravel(),
                                   rtol=0, atol=1e-10 * np.abs(P).max())
        assert c["P33"][-1] == pytest.approx(P[2, 2], rel=1e-10)
        assert c["von_mises"][-1] == pytest.approx(np.sqrt(1.5 * np.sum(deviator**2)), rel=1e-10)
