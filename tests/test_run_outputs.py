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
