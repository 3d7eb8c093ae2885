"""`fe2 run` outputs a user reads: the RVE of the study (saved, summarised) and derived stress
fields, checked with independent readers (meshio, h5py) and closed forms."""

import copy
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

STRIP = {"generate": {"type": "rectangle", "length": 2.0, "height": 1.0, "cells_x": 4, "cells_y": 2}}
PHASES = {"matrix": {"tag": 1, "E": 3.5, "nu": 0.35}, "fibre": {"tag": 2, "E": 72.0, "nu": 0.22}}


def study(material, **changes):
    data = {
        "physics": "elasticity",
        "macro": {"mesh": copy.deepcopy(STRIP)},
        "material": material,
        "boundary_conditions": [{"boundary": "left", "component": "all", "value": 0.0},
                                {"boundary": "right", "component": "x", "value": 0.01}],
        "steps": 1,
    }
    data.update(changes)
    return data


def run(directory, data, out="out"):
    config = directory / f"{out}.yaml"
    if comm.rank == 0:
        config.write_text(yaml.safe_dump(data))
    comm.barrier()
    return main(["run", str(config), "-o", str(directory / out)]), directory / out


def meshed_fractions(msh: Path) -> tuple[int, dict[int, float]]:
    """Cells and area fraction per physical tag of a 2D gmsh mesh, by meshio and numpy."""
    mesh = meshio.read(msh)
    areas, tags = [], []
    for block, physical in zip(mesh.cells, mesh.cell_data["gmsh:physical"]):
        if block.type != "triangle":
            continue
        x = mesh.points[block.data][:, :, :2]
        a, b = x[:, 1] - x[:, 0], x[:, 2] - x[:, 0]
        areas.append(0.5 * np.abs(a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]))
        tags.append(physical)
    areas, tags = np.concatenate(areas), np.concatenate(tags)
    return len(areas), {int(t): float(areas[tags == t].sum() / areas.sum()) for t in np.unique(tags)}


@pytest.mark.parametrize("coupling", ["hierarchical", "concurrent"])
def test_generated_rve_is_saved_and_summarised(shared_tmp_path, capsys, coupling):
    generate = {"type": "inclusion_2d", "volume_fraction": 0.2, "mesh_size": 0.15}
    rve = {"mesh": {"generate": generate}, "phases": PHASES, "coupling": coupling}
    code, out = run(shared_tmp_path, study({"rve": rve}), out=coupling)
    assert code == 0
    if comm.rank != 0:
        return
    summary = json.loads((out / "summary.json").read_text())["rve_mesh"]
    cells, fractions = meshed_fractions(out / "rve.msh")  # the saved mesh, read by meshio
    assert summary["mesh"] == "rve.msh" and summary["generator"] == "inclusion_2d"
    assert summary["cells"] == cells and summary["degree"] == 1 and summary["size"] == [1.0, 1.0]
    assert summary["dofs"] > 0 and summary["dofs"] % 2 == 0  # two displacement components per node
    for name, tag in (("matrix", 1), ("fibre", 2)):
        assert summary["phases"][name]["tag"] == tag
        assert summary["phases"][name]["volume_fraction"] == pytest.approx(fractions[tag], rel=1e-12)
    fibre = summary["phases"]["fibre"]
    assert fibre["requested_volume_fraction"] == 0.2
    # a coarse polygonal circle is smaller than the circle, measurably
    assert 0.15 < fibre["volume_fraction"] < 0.2 - 1e-3
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("RVE mesh"))
    assert f"{cells} cells" in line and f"fibre {100 * fibre['volume_fraction']:.2f} % (requested 20.00 %)" in line


def test_rve_mesh_file_is_named_not_copied(shared_tmp_path):
    mesh_file = REPO / "meshes" / "inclusion_2d.msh"
    code, out = run(shared_tmp_path, study({"rve": {"mesh": {"file": str(mesh_file)}, "phases": PHASES}}))
    assert code == 0
    if comm.rank != 0:
        return
    summary = json.loads((out / "summary.json").read_text())["rve_mesh"]
    cells, fractions = meshed_fractions(mesh_file)
    assert summary["mesh"] == str(mesh_file) and summary["generator"] is None
    assert summary["cells"] == cells and not (out / "rve.msh").exists()
    assert "requested_volume_fraction" not in summary["phases"]["fibre"]
    assert summary["phases"]["fibre"]["volume_fraction"] == pytest.approx(fractions[2], rel=1e-12)


def test_closed_form_runs_have_no_rve_summary(shared_tmp_path):
    law = {"law": {"law": "linear_elastic", "E": 3.5, "nu": 0.35}}
    code, out = run(shared_tmp_path, study(law))
    assert code == 0
    if comm.rank == 0:
        assert "rve_mesh" not in json.loads((out / "summary.json").read_text())
        assert not (out / "rve.msh").exists()


# ---------------------------------------------------------------- derived stress fields

ROLLERS = [{"boundary": "left", "component": "x"}, {"boundary": "bottom", "component": "y"},
           {"boundary": "right", "component": "x", "value": 0.08}]
J2 = {"law": "j2", "E": 3.5, "nu": 0.35, "sigma_y": 0.06, "H": 0.3}


def last_cells(out: Path) -> dict[str, np.ndarray]:
    """Cell fields of the last step, read by meshio, checked equal to those read by h5py."""
    from field_files import read_h5, read_meshio

    _, _, steps = read_meshio(out / "fields.xdmf")
    t, _, cell_data = max(steps, key=lambda s: s[0])
    fields = {name: np.asarray(values[0]) for name, values in cell_data.items()}
    last = read_h5(out / "fields.xdmf")
    h5 = last[max(last)]
    for name, values in fields.items():
        np.testing.assert_array_equal(np.asarray(h5[name]).reshape(values.shape), values)
    return fields


def check_uniaxial_j2(fields: dict[str, np.ndarray], *, rtol: float) -> None:
    """Plastic points of a J2 law with linear isotropic hardening are on the yield surface:
    von Mises = sigma_y + H p, with the full plane-strain stress (sigma33 != 0)."""
    p = fields["equivalent_plastic_strain"].ravel()
    assert p.min() > 1e-3  # every cell is plastic
    vm = fields["von_mises"].ravel()
    np.testing.assert_allclose(vm, J2["sigma_y"] + J2["H"] * p, rtol=rtol)
    stress = fields["stress"].reshape(-1, 3, 3)
    np.testing.assert_array_equal(stress[:, 2, 2], fields["stress_33"].ravel())
    assert np.all(stress[:, 2, 2] > 0.1 * stress[:, 0, 0])  # sigma33 != 0: the state is not plane stress
    in_plane = stress.copy()
    in_plane[:, 2, 2] = 0.0
    deviator = in_plane - np.trace(in_plane, axis1=1, axis2=2)[:, None, None] * np.eye(3) / 3
    wrong = np.sqrt(1.5 * np.einsum("cij,cij->c", deviator, deviator))
    assert np.all(np.abs(wrong - vm) > 0.05 * vm)  # von Mises without sigma33 would be wrong
    principal = fields["principal_stress"].reshape(-1, 3)
    np.testing.assert_allclose(principal, np.linalg.eigvalsh(stress)[:, ::-1], atol=1e-14)


def test_plane_strain_j2_law_fields_von_mises_on_the_yield_surface(shared_tmp_path):
    code, out = run(shared_tmp_path, study({"law": J2}, boundary_conditions=ROLLERS, steps=3))
    assert code == 0
    if comm.rank == 0:
        check_uniaxial_j2(last_cells(out), rtol=1e-12)


def test_plane_strain_linear_law_fields_closed_form(shared_tmp_path):
    E, nu = 3.5, 0.35
    code, out = run(shared_tmp_path, study({"law": {"law": "linear_elastic", "E": E, "nu": nu}},
                                           boundary_conditions=ROLLERS))
    assert code == 0
    if comm.rank == 0:
        fields = last_cells(out)
        sigma11 = E / (1 - nu**2) * 0.04  # uniaxial plane strain: eps11 = 0.08 / 2, sigma22 = 0
        stress = fields["stress"].reshape(-1, 3, 3)
        np.testing.assert_allclose(stress[:, 0, 0], sigma11, rtol=1e-12)
        np.testing.assert_allclose(stress[:, 2, 2], nu * sigma11, rtol=1e-12)
        np.testing.assert_allclose(fields["von_mises"].ravel(), sigma11 * np.sqrt(1 - nu + nu**2), rtol=1e-12)
        np.testing.assert_allclose(fields["principal_stress"].reshape(-1, 3),
                                   np.tile([sigma11, nu * sigma11, 0.0], (len(stress), 1)), atol=1e-12 * sigma11)


@pytest.mark.parametrize("batch", ["auto", "off"])
def test_fe2_fields_homogeneous_j2_rve_equal_the_law(shared_tmp_path, batch):
    """Concurrent FE² with both RVE phases the J2 law: <sigma33> of the RVEs makes the macro
    von Mises stress sit on the yield surface of the law."""
    phases = {"matrix": {"tag": 1, **J2}, "fibre": {"tag": 2, **J2}}
    rve = {"mesh": {"file": str(REPO / "meshes" / "inclusion_2d.msh")}, "phases": phases, "batch": batch}
    data = study({"rve": rve}, boundary_conditions=ROLLERS, steps=2,
                 macro={"mesh": {"generate": {**STRIP["generate"], "cells_x": 2, "cells_y": 1}}})
    code, out = run(shared_tmp_path, data, out=batch)
    assert code == 0
    if comm.rank == 0:
        check_uniaxial_j2(last_cells(out), rtol=1e-8)


def test_hierarchical_fields_equal_concurrent(shared_tmp_path):
    """A linear RVE: the effective law (hierarchical) carries <sigma33> = s33 . E, so its
    sigma33, von Mises and principal stresses equal those of an RVE solve per point."""
    rve = {"mesh": {"file": str(REPO / "meshes" / "inclusion_2d.msh")}, "phases": PHASES}
    fields = {}
    for coupling in ("hierarchical", "concurrent"):
        code, out = run(shared_tmp_path, study({"rve": {**rve, "coupling": coupling}}, boundary_conditions=ROLLERS),
                        out=coupling)
        assert code == 0
        fields[coupling] = last_cells(out) if comm.rank == 0 else None
    if comm.rank == 0:
        a, b = fields["hierarchical"], fields["concurrent"]
        for name in ("stress", "stress_33", "von_mises", "principal_stress"):
            np.testing.assert_allclose(a[name], b[name], rtol=0, atol=1e-9 * np.abs(b["stress"]).max())
        assert np.all(a["stress_33"] > 0.1 * a["stress"].reshape(-1, 3, 3)[:, 0, 0])


def test_finite_strain_fields_cauchy_stress_of_the_3d_law(shared_tmp_path):
    """Plane-strain Neo-Hookean strip on rollers, stretched 20 %: homogeneous F = diag(F11,
    F22, 1). The file's P (with P33) and Cauchy stress equal the law evaluated in 3D at that F
    (a second code path), von Mises and principal stresses are those of the Cauchy stress."""
    from fe2.materials import NeoHookean

    law = {"law": "neo_hookean", "E": 3.5, "nu": 0.35}
    stretch = [dict(c, value=0.4) if c.get("value") else c for c in ROLLERS]
    code, out = run(shared_tmp_path, study({"law": law}, physics="finite_strain", boundary_conditions=stretch, steps=2))
    assert code == 0
    if comm.rank != 0:
        return
    fields = last_cells(out)
    F = fields["strain"].reshape(-1, 3, 3)
    F[:, 2, 2] = 1.0  # written as 0 out of plane
    np.testing.assert_allclose(F[:, 0, 0], 1.2, rtol=1e-12)
    three_d = NeoHookean(E=3.5, nu=0.35).update(F.reshape(-1, 9), {}, 3)
    P = three_d.stress.reshape(-1, 3, 3)
    cauchy = np.einsum("mij,mkj->mik", P, F) / np.linalg.det(F)[:, None, None]
    scale = np.abs(P).max()
    np.testing.assert_allclose(fields["stress"].reshape(-1, 3, 3), P, atol=1e-10 * scale)
    np.testing.assert_allclose(fields["stress_33"].ravel(), P[:, 2, 2], atol=1e-10 * scale)
    assert np.all(np.abs(P[:, 2, 2]) > 0.05 * P[:, 0, 0])  # P33 != 0
    np.testing.assert_allclose(fields["cauchy_stress"].reshape(-1, 3, 3), cauchy, atol=1e-10 * scale)
    deviator = cauchy - np.trace(cauchy, axis1=1, axis2=2)[:, None, None] * np.eye(3) / 3
    np.testing.assert_allclose(fields["von_mises"].ravel(),
                               np.sqrt(1.5 * np.einsum("cij,cij->c", deviator, deviator)), rtol=1e-10)
    np.testing.assert_allclose(fields["principal_stress"].reshape(-1, 3), np.linalg.eigvalsh(cauchy)[:, ::-1],
                               atol=1e-10 * scale)


def test_a_rank_without_points_writes_the_same_fields(shared_tmp_path):
    """One macro cell on 2 ranks with balancing off: the rank that owns no point names the
    same derived fields (a different list would hang the collective field writing)."""
    phases = {"matrix": {"tag": 1, **J2}, "fibre": {"tag": 2, **J2}}
    rve = {"mesh": {"file": str(REPO / "meshes" / "inclusion_2d.msh")}, "phases": phases}
    one_cell = {"generate": {**STRIP["generate"], "cells_x": 1, "cells_y": 1, "quadrilaterals": True}}
    data = study({"rve": rve}, boundary_conditions=ROLLERS, parallel={"balancing": "off"},
                 macro={"mesh": one_cell})
    code, out = run(shared_tmp_path, data)
    assert code == 0
    if comm.rank == 0:
        check_uniaxial_j2(last_cells(out), rtol=1e-8)
