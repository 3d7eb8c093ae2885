"""`fe2 run`: outputs, coupling modes, rank-count independence, one-line errors."""

import csv
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from mpi4py import MPI

from fe2.cli import main
from fe2.config import load_run_config
from fe2.macro.study import run_study

REPO = Path(__file__).resolve().parents[1]
comm = MPI.COMM_WORLD

STRIP = {"generate": {"type": "rectangle", "length": 2.0, "height": 1.0, "cells_x": 4, "cells_y": 2}}
PULL = [
    {"boundary": "left", "component": "all", "value": 0.0},
    {"boundary": "right", "component": "x", "value": 0.08},
]
J2_LAW = {"law": "j2", "E": 3.5, "nu": 0.35, "sigma_y": 0.06, "H": 0.3}
RVE = {
    "mesh": {"file": str(REPO / "meshes" / "inclusion_2d.msh")},
    "phases": {"matrix": {"tag": 1, "E": 3.5, "nu": 0.35}, "fibre": {"tag": 2, "E": 72.0, "nu": 0.22}},
}


def study(**changes):
    data = {
        "physics": "elasticity",
        "macro": {"mesh": STRIP},
        "material": {"law": J2_LAW},
        "boundary_conditions": PULL,
        "steps": 3,
        "solver": {"newton": {"rtol": 1e-10}},
    }
    data.update(changes)
    return data


def run(directory, data, *args, out="out"):
    config = directory / f"{out}.yaml"
    if comm.rank == 0:
        config.write_text(yaml.safe_dump(data))
    comm.barrier()
    return main(["run", str(config), "-o", str(directory / out), *args]), directory / out


def history(directory):
    with open(directory / "history.csv") as f:
        return list(csv.DictReader(f))


def test_closed_form_run_writes_history_summary_and_fields(shared_tmp_path):
    code, out = run(shared_tmp_path, study())
    assert code == 0
    if comm.rank != 0:
        return
    rows = history(out)
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    assert [float(r["load_factor"]) for r in rows] == pytest.approx([1 / 3, 2 / 3, 1.0])
    norms = [float(x) for x in rows[-1]["residual_norms"].split()]
    assert len(norms) >= 2 and norms[-1] == pytest.approx(float(rows[-1]["residual_norm"]), rel=1e-3)
    for column in ("newton_iterations", "residual_norm", "substeps", "cutbacks", "rve_solves",
                   "rve_failures", "seconds", "reaction_left_x", "reaction_left_y", "reaction_right_x"):
        assert column in rows[0], column
    left, right = float(rows[-1]["reaction_left_x"]), float(rows[-1]["reaction_right_x"])
    assert right > 0 and left == pytest.approx(-right, rel=1e-8)  # equilibrium of the strip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["completed_steps"] == 3
    assert summary["coupling"]["mode"] == "law" and summary["rve_solves"] == 0
    assert summary["final_reactions"]["right"][0] == pytest.approx(right)
    with h5py.File(out / "fields.h5", "r") as h5:
        functions = set(h5["Function"])
        assert {"displacement", "stress", "strain", "equivalent_plastic_strain"} <= functions
        assert len(h5["Function/displacement"]) == 3  # one per step (fields_every: 1)
        u = h5["Function/displacement"]
        last = max(u, key=lambda name: float(name.replace("_", ".")))  # "0_5" is t = 0.5
        assert np.abs(u[last][:, 0]).max() == pytest.approx(0.08)  # the pulled edge
        p = h5["Function/equivalent_plastic_strain"][last][:]
        assert p.max() > 0.01  # 4 % strain is far beyond yield (1.7 %)
    assert (out / "macro.msh").is_file()


def test_linear_rve_runs_hierarchically_and_equals_concurrent(shared_tmp_path):
    data = study(material={"rve": RVE}, steps=1)
    assert run(shared_tmp_path, data, out="auto")[0] == 0
    concurrent = json.loads(json.dumps(data))
    concurrent["material"]["rve"]["coupling"] = "concurrent"
    assert run(shared_tmp_path, concurrent, out="concurrent")[0] == 0
    if comm.rank == 0:
        auto = json.loads((shared_tmp_path / "auto" / "summary.json").read_text())
        conc = json.loads((shared_tmp_path / "concurrent" / "summary.json").read_text())
        assert auto["coupling"]["mode"] == "hierarchical" and "linear" in auto["coupling"]["reason"]
        assert conc["coupling"]["mode"] == "concurrent" and conc["rve_solves"] > 0
        a, c = history(shared_tmp_path / "auto")[-1], history(shared_tmp_path / "concurrent")[-1]
        for key in ("reaction_right_x", "reaction_left_x", "reaction_left_y"):
            assert float(a[key]) == pytest.approx(float(c[key]), rel=1e-10, abs=1e-14)


@pytest.mark.parametrize("cells", [(2, 1), (1, 1)], ids=["2x1", "one cell"])
def test_fe2_run_does_not_depend_on_the_number_of_ranks(shared_tmp_path, cells):
    """1 rank = N ranks; with one macro cell, a rank that owns no point takes part too."""
    plastic = json.loads(json.dumps(RVE))
    plastic["phases"]["matrix"].update(law="j2", sigma_y=0.06, H=0.3)
    plastic["solver"] = {"newton": {"rtol": 1e-12}}
    data = study(material={"rve": plastic}, steps=2)
    data["macro"]["mesh"]["generate"].update(cells_x=cells[0], cells_y=cells[1], quadrilaterals=cells == (1, 1))
    data["solver"]["newton"]["rtol"] = 1e-12
    assert run(shared_tmp_path, data, out="world")[0] == 0
    config = load_run_config(shared_tmp_path / "world.yaml")
    alone = run_study(config, MPI.COMM_SELF, shared_tmp_path / f"self{comm.rank}")  # the 1-rank answer
    world = json.loads((shared_tmp_path / "world" / "summary.json").read_text()) if comm.rank == 0 else None
    world = comm.bcast(world)
    assert world["coupling"]["mode"] == "concurrent"
    scale = max(np.abs(f).max() for f in alone["final_reactions"].values())
    for name, force in alone["final_reactions"].items():
        np.testing.assert_allclose(world["final_reactions"][name], force, rtol=1e-10, atol=1e-10 * scale)


BAD = [
    ({"boundary_conditions": [{"boundary": "west", "component": "x"}]},
     "boundary_conditions[0].boundary: the mesh has no boundary 'west'"),
    ({"boundary_conditions": [{"boundary": "left", "component": "z"}]},
     "boundary_conditions[0].component: 'z' in a 2D mesh"),
    ({"boundary_conditions": [{"boundary": "left", "plane": {"axis": "x", "value": 0.0}}]},
     "give exactly one of 'boundary' and 'plane'"),
    ({"boundary_conditions": [{"plane": {"axis": "x", "value": 0.5}}]},
     "boundary_conditions[0]: selects no boundary facet"),
    ({"loads": {"tractions": [{"boundary": "top", "traction": [0.0, 1.0, 0.0]}]}},
     "loads.tractions[0].traction: expected 2 components, got 3"),
    ({"material": {"law": J2_LAW, "rve": RVE}}, "material: give exactly one of 'law', 'phases' and 'rve'"),
    ({"material": {"law": {"law": "neo_hookean", "E": 1.0, "nu": 0.3}}},
     "material.law.law: 'neo_hookean' is a law for physics 'finite_strain'"),
    ({"material": {"rve": {**RVE, "coupling": "hierarchical", "phases": {
        "matrix": {"tag": 1, **J2_LAW}, "fibre": {"tag": 2, "E": 72.0, "nu": 0.22}}}}},
     "material.rve.coupling: 'hierarchical' needs linear RVE phases"),
    ({"steps": [0.5, 0.4]}, "steps: load factors must be positive and increasing"),
    ({"macro": {"mesh": {"generate": {"type": "rectangle", "cells_x": 0, "cells_y": 2}}}}, "macro.mesh.generate"),
    ({"solver": {"newton": {"rtool": 1e-8}}}, "solver.newton.rtool: unknown key (did you mean 'rtol'?)"),
]


@pytest.mark.parametrize("change,message", BAD, ids=[m[:40] for _, m in BAD])
def test_bad_run_config_exits_2_naming_the_key(shared_tmp_path, capsys, change, message):
    code, out = run(shared_tmp_path, study(**change))
    err = capsys.readouterr().err
    assert code == 2
    assert not (out / "history.csv").exists() and not (out / "summary.json").exists()
    if comm.rank == 0:
        assert message in err, err
        assert "Traceback" not in err


def test_failed_step_exits_1_with_a_failed_summary(shared_tmp_path, capsys):
    data = study(steps=1)
    data["solver"] = {"newton": {"rtol": 1e-12, "max_iterations": 2}, "max_cutbacks": 0}
    code, out = run(shared_tmp_path, data)
    assert code == 1
    if comm.rank == 0:
        assert "load step 1" in capsys.readouterr().err
        summary = json.loads((out / "summary.json").read_text())
        assert summary["status"] == "failed" and summary["completed_steps"] == 0
