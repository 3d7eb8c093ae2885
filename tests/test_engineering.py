"""Engineering constants and symmetry classes of effective tensors; the report in
`fe2 homogenize` (JSON and table) with the isotropy warning for random cells."""

import json

import numpy as np
import pytest
import yaml
from mpi4py import MPI

from fe2.cli import main
from fe2.homogenization.engineering import (
    ISOTROPY_TOLERANCE,
    conductivity_report,
    engineering_constants,
    isotropic_part,
    mandel_rotation,
    small_strain_stiffness,
    stiffness_from_constants,
    symmetry_report,
)
from fe2.tensors import isotropic_stiffness, lame_parameters, mandel_to_tensor

comm = MPI.COMM_WORLD
SQ2 = np.sqrt(2.0)


def random_spd(n, seed):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(n, n))
    return A @ A.T + n * np.eye(n)


def orthotropic_stiffness(E, nu, G):
    """Mandel stiffness of an orthotropic material from E_i, nu_ij (i < j), G_23, G_13, G_12,
    built by hand from the textbook compliance (independent of the module)."""
    (E1, E2, E3), (n12, n13, n23) = E, nu
    S = np.zeros((6, 6))
    S[:3, :3] = [[1 / E1, -n12 / E1, -n13 / E1], [-n12 / E1, 1 / E2, -n23 / E2], [-n13 / E1, -n23 / E2, 1 / E3]]
    S[3:, 3:] = np.diag([1 / (4 * g) for g in G]) * 2  # Mandel shear compliance 1/(2G)
    return np.linalg.inv(S)


def cubic_stiffness(C11, C12, C44):
    C = np.zeros((6, 6))
    C[:3, :3] = C12
    np.fill_diagonal(C[:3, :3], C11)
    C[3:, 3:] = 2 * C44 * np.eye(3)
    return C


def transversely_isotropic_stiffness(C11, C12, C13, C33, C44):
    """Axis x3 (Voigt C66 = (C11 - C12) / 2)."""
    C = np.zeros((6, 6))
    C[:3, :3] = [[C11, C12, C13], [C12, C11, C13], [C13, C13, C33]]
    C[3:, 3:] = np.diag([2 * C44, 2 * C44, C11 - C12])
    return C


@pytest.mark.parametrize("n,seed", [(3, 0), (3, 1), (6, 2), (6, 3), (6, 4)])
def test_engineering_constants_round_trip(n, seed):
    C = random_spd(n, seed)
    back = stiffness_from_constants(engineering_constants(C), {3: 2, 6: 3}[n])
    assert np.abs(back - C).max() <= 1e-12 * np.abs(C).max()


def test_isotropic_constants_3d_and_plane_strain():
    E, nu = 3.5, 0.35
    lmbda, mu = lame_parameters(E, nu)
    c3 = engineering_constants(isotropic_stiffness(lmbda, mu, 3))
    for k in ("E1", "E2", "E3"):
        assert c3[k] == pytest.approx(E, rel=1e-14)
    for k in ("G23", "G13", "G12"):
        assert c3[k] == pytest.approx(mu, rel=1e-14)
    for k in ("nu12", "nu21", "nu13", "nu31", "nu23", "nu32"):
        assert c3[k] == pytest.approx(nu, rel=1e-14)
    c2 = engineering_constants(isotropic_stiffness(lmbda, mu, 2))
    assert c2["E1"] == pytest.approx(E / (1 - nu**2), rel=1e-14)  # plane-strain modulus
    assert c2["nu12"] == pytest.approx(nu / (1 - nu), rel=1e-14)
    assert c2["G12"] == pytest.approx(mu, rel=1e-14)
    assert all(v == 0 for v in c2["coupling"].values())


def test_orthotropic_constants_are_recovered():
    E, nu, G = (140.0, 10.0, 9.0), (0.3, 0.28, 0.45), (3.2, 4.8, 5.1)
    c = engineering_constants(orthotropic_stiffness(E, nu, G))
    assert [c["E1"], c["E2"], c["E3"]] == pytest.approx(E, rel=1e-12)
    assert [c["nu12"], c["nu13"], c["nu23"]] == pytest.approx(nu, rel=1e-12)
    assert [c["G23"], c["G13"], c["G12"]] == pytest.approx(G, rel=1e-12)
    assert c["nu21"] == pytest.approx(nu[0] * E[1] / E[0], rel=1e-12)  # nu_ij / E_i = nu_ji / E_j
    assert max(abs(v) for v in c["coupling"].values()) < 1e-14


def distances(C):
    return {k: v["distance"] for k, v in symmetry_report(C)["classes"].items()}


def test_cubic_tensor_symmetry_and_isotropic_projection():
    C11, C12, C44 = 168.0, 121.0, 75.0  # copper, GPa
    C = cubic_stiffness(C11, C12, C44)
    d = distances(C)
    assert d["cubic"] < 1e-15 and d["orthotropic"] < 1e-15
    assert min(d["isotropic"], d["transversely_isotropic_3"]) > 0.1
    assert symmetry_report(C)["class"] == "cubic"
    # Frobenius-closest isotropic tensor: bulk modulus (C11 + 2 C12)/3 and the Voigt shear
    # average (C11 - C12 + 3 C44)/5.
    K, mu = (C11 + 2 * C12) / 3, (C11 - C12 + 3 * C44) / 5
    np.testing.assert_allclose(isotropic_part(C), isotropic_stiffness(K - 2 * mu / 3, mu, 3), rtol=1e-13)
    # An isotropic tensor is cubic too (Zener ratio 1).
    assert max(distances(isotropic_stiffness(2.0, 1.0, 3)).values()) < 1e-15


def test_transversely_isotropic_tensor_and_perturbations():
    C = transversely_isotropic_stiffness(20.0, 8.0, 6.0, 140.0, 5.0)
    d = distances(C)
    assert d["transversely_isotropic_3"] < 1e-15 and d["orthotropic"] < 1e-15
    assert d["transversely_isotropic_1"] > 0.1 and d["cubic"] > 0.1 and d["isotropic"] > 0.1
    assert symmetry_report(C)["class"] == "transversely_isotropic_3"
    # invariant under any rotation about x3 (an independent check of the class)
    R = mandel_rotation(np.array([[np.cos(0.3), -np.sin(0.3), 0], [np.sin(0.3), np.cos(0.3), 0], [0, 0, 1]]))
    np.testing.assert_allclose(R @ C @ R.T, C, atol=1e-12 * np.abs(C).max())
    # A coupling entry is orthogonal to the orthotropic subspace: its distance is exact.
    delta = np.zeros((6, 6))
    delta[0, 3] = delta[3, 0] = 0.7
    d = distances(C + delta)
    assert d["orthotropic"] == pytest.approx(np.linalg.norm(delta) / np.linalg.norm(C + delta), rel=1e-12)
    assert d["transversely_isotropic_3"] >= d["orthotropic"] > 0
    # Any small random perturbation moves it off every class.
    noisy = C + 1e-3 * random_spd(6, 7)
    assert min(distances(noisy).values()) > 1e-6


def test_projection_is_orthogonal_and_idempotent():
    C = random_spd(6, 11)
    report = symmetry_report(C)["classes"]
    B = random_spd(6, 12)
    for name, entry in report.items():
        P = entry["closest"]
        P_of_B = symmetry_report(B)["classes"][name]["closest"]
        # <C - P(C), P(B)> = 0 and P(P(C)) = P(C)
        assert abs(np.sum((C - P) * P_of_B)) <= 1e-12 * np.linalg.norm(C) * np.linalg.norm(B), name
        assert symmetry_report(P)["classes"][name]["distance"] < 1e-13, name


def test_plane_strain_classes():
    lmbda, mu = lame_parameters(3.5, 0.35)
    iso = isotropic_stiffness(lmbda, mu, 2)
    assert max(distances(iso).values()) < 1e-15
    square = iso.copy()
    square[2, 2] *= 1.3  # shear stiffness not (C11 - C12): square symmetric only
    d = distances(square)
    assert d["square"] < 1e-15 and d["orthotropic"] < 1e-15 and d["isotropic"] > 0.01
    ortho = square.copy()
    ortho[1, 1] *= 1.2
    d = distances(ortho)
    assert d["orthotropic"] < 1e-15 and d["square"] > 0.01
    assert symmetry_report(ortho)["class"] == "orthotropic"
    C = ortho.copy()
    C[0, 2] = C[2, 0] = 0.5
    assert symmetry_report(C)["class"] == "anisotropic"


def test_finite_strain_tangent_and_conductivity():
    C = random_spd(6, 3)
    A = mandel_to_tensor(C).reshape(9, 9)
    np.testing.assert_allclose(small_strain_stiffness(A), C, rtol=1e-13)
    constants, symmetry = conductivity_report(np.array([[2.0, 0.0], [0.0, 1.0]]))
    assert constants["principal_conductivities"] == pytest.approx([2.0, 1.0])
    assert symmetry["class"] == "orthotropic" and symmetry["classes"]["isotropic"]["distance"] > 0.1


RANDOM = {
    "physics": "elasticity",
    "mesh": {"generate": {"type": "random_inclusions_2d", "n": 3, "volume_fraction": 0.3,
                          "seed": 2, "mesh_size": 0.08}},
    "phases": {"matrix": {"tag": 1, "E": 3.5, "nu": 0.35}, "fibre": {"tag": 2, "E": 72.0, "nu": 0.22}},
}


def test_homogenize_writes_constants_symmetry_and_isotropy_warning(tmp_path, capsys):
    config = tmp_path / "random.yaml"
    config.write_text(yaml.safe_dump(RANDOM))
    assert main(["homogenize", str(config), "-o", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    if comm.rank != 0:
        return
    record = json.loads((tmp_path / "out" / "effective.json").read_text())
    C = np.array(record["C"])
    constants = record["engineering_constants"]
    np.testing.assert_allclose(stiffness_from_constants(constants, 2), 0.5 * (C + C.T), rtol=1e-12)
    symmetry = record["symmetry"]
    assert symmetry["expected_isotropic"] is True
    distance = symmetry["classes"]["isotropic"]["distance"]
    closest = np.array(symmetry["classes"]["isotropic"]["closest"])
    assert distance == pytest.approx(np.linalg.norm(C - closest) / np.linalg.norm(C), rel=1e-10)
    # three fibres are far from an isotropic sample: warned in the JSON and on the terminal
    assert distance > ISOTROPY_TOLERANCE
    assert "use more inclusions (n)" in symmetry["warning"]
    assert "WARNING: the random cell is meant to be statistically in-plane isotropic" in out
    assert "plane-strain constants: E1" in out


def test_no_isotropy_warning_for_a_regular_cell(tmp_path, capsys):
    data = dict(RANDOM, mesh={"generate": {"type": "inclusion_2d", "volume_fraction": 0.3, "mesh_size": 0.1}})
    config = tmp_path / "square.yaml"
    config.write_text(yaml.safe_dump(data))
    assert main(["homogenize", str(config), "-o", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    if comm.rank == 0:
        record = json.loads((tmp_path / "out" / "effective.json").read_text())
        assert record["symmetry"]["expected_isotropic"] is False and "warning" not in record["symmetry"]
        assert record["symmetry"]["classes"]["square"]["distance"] < 1e-3  # a square array
        assert "WARNING" not in out


def test_zero_tensor_has_every_symmetry():
    for n in (3, 6):
        report = symmetry_report(np.zeros((n, n)))
        assert all(c["distance"] == 0.0 for c in report["classes"].values())
    assert conductivity_report(np.zeros((2, 2)))[1]["class"] == "isotropic"


def test_report_of_a_singular_tensor_has_no_constants():
    from fe2.homogenization.engineering import format_tensor_report, tensor_report

    report = tensor_report("elasticity", np.diag([1.0, 1.0, 0.0]), 2)
    assert "not positive definite" in report["engineering_constants"]["note"]
    assert "not positive definite" in "\n".join(format_tensor_report(report, 2))
    json.dumps(report, allow_nan=False)


def test_distances_do_not_depend_on_the_unit():
    C = transversely_isotropic_stiffness(20.0, 8.0, 6.0, 140.0, 5.0) + 0.3 * random_spd(6, 5)
    for factor in (1e-200, 1e200, 1e306):
        for name, entry in symmetry_report(factor * C)["classes"].items():
            assert entry["distance"] == pytest.approx(symmetry_report(C)["classes"][name]["distance"], rel=1e-12)
