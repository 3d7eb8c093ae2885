"""`fe2 run`: outputs, coupling modes, rank-count independence, one-line errors."""

import copy
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
from field_files import last_values, read_h5, read_meshio

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
        "macro": {"mesh": copy.deepcopy(STRIP)},  # callers may change it
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
    assert [float(r["time"]) for r in rows] == pytest.approx([1 / 3, 2 / 3, 1.0])
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
    points, cells, steps = read_meshio(out / "fields.xdmf")  # and the same files with h5py:
    assert [t for t, _, _ in steps] == pytest.approx([1 / 3, 2 / 3, 1.0])  # fields_every: 1
    assert len(cells) == 1 and cells[0].data.shape == (16, 3)
    t, point_data, cell_data = steps[-1]
    assert {"stress", "strain", "equivalent_plastic_strain"} <= set(cell_data)
    u = point_data["displacement"]
    assert np.abs(u[:, 0]).max() == pytest.approx(0.08)  # the pulled edge
    assert np.abs(u[np.isclose(points[:, 0], 2.0), 0] - 0.08).max() < 1e-14
    p = cell_data["equivalent_plastic_strain"][0]
    assert p.max() > 0.01  # 4 % strain is far beyond yield (1.7 %)
    by_step = read_h5(out / "fields.xdmf")
    assert sorted(by_step) == [1, 2, 3]
    np.testing.assert_array_equal(by_step[3]["displacement"], u)
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
    ({"steps": [0.5, 0.4]}, "steps: times must be positive and increasing"),
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


def test_balanced_pool_moves_points_and_states_without_changing_answers(make_mesh):
    """After a rebalance, evaluate, rollback and re-evaluate: the un-balanced answers."""
    from fe2.coupling.balanced_pool import BalancedRvePool
    from fe2.materials import J2Plasticity, LinearElastic
    from fe2.rve.model import RveModel
    from fe2.rve.factory import make_rve_solver
    from fe2.rve.micro_solver import NewtonOptions
    from fe2.rve.physics import make_physics
    from fe2.rve.pool import RvePool

    rve = make_mesh(type="inclusion_2d", volume_fraction=0.3, mesh_size=0.1)
    model = RveModel(rve.mesh, rve.cell_tags, make_physics("elasticity", 2),
                     {1: J2Plasticity(E=3.5, nu=0.35, sigma_y=0.06, H=0.3), 2: LinearElastic(E=72.0, nu=0.22)})
    newton = NewtonOptions(rtol=1e-12)
    points = 3  # home points per rank; rank r's point k has its own strain path
    direction = np.array([0.006, -0.002, 0.003])
    scale = np.array([[1.0 + r + 0.5 * k for k in range(points)] for r in range(comm.size)])
    mine = scale[comm.rank]
    balanced = BalancedRvePool(make_rve_solver(model, "periodic", newton=newton), points, comm)
    plain = RvePool(make_rve_solver(model, "periodic", newton=newton), points)
    first = np.outer(mine, direction)
    for pool in (balanced, plain):
        pool.evaluate(first)
        pool.commit()
    costs = np.arange(comm.size * points, dtype=float)[::-1]  # forces a new assignment
    balanced.rebalance(costs=costs, tolerance=1.0)
    if comm.size > 1:
        assert balanced.moved > 0 and not np.array_equal(balanced.worker, balanced.home)
    second = 2.5 * first
    s_bal, t_bal = balanced.evaluate(second)
    s_plain, t_plain = plain.evaluate(second)
    np.testing.assert_allclose(s_bal, s_plain, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(t_bal, t_plain, rtol=1e-8, atol=1e-12)
    balanced.rollback()
    s_again, t_again = balanced.evaluate(second)
    assert np.array_equal(s_again, s_bal) and np.array_equal(t_again, t_bal)
    fields_bal, fields_plain = balanced.point_fields(), plain.point_fields()
    np.testing.assert_allclose(fields_bal["equivalent_plastic_strain"],
                               fields_plain["equivalent_plastic_strain"], rtol=1e-12, atol=0)
    assert fields_plain["equivalent_plastic_strain"].max() > 0
    np.testing.assert_array_equal(fields_bal["rve_newton_iterations"], fields_plain["rve_newton_iterations"])


@pytest.mark.parametrize("name", ["plate_fe2", "plate_linear_rve"])
def test_shipped_fe2_configs_give_the_one_rank_answer(shared_tmp_path, name):
    """The shipped plate studies (the FE² one coarsened and shortened) on all ranks = 1 rank."""
    config = load_run_config(REPO / "configs" / f"{name}.yaml")
    if name == "plate_fe2":
        macro = config.macro.mesh.generate.model_copy(update={"mesh_size": 0.3, "hole_mesh_size": 0.15})
        rve = config.material.rve
        rve_mesh = rve.mesh.model_copy(update={"generate": rve.mesh.generate.model_copy(update={"mesh_size": 0.15})})
        config = config.model_copy(update={
            "macro": config.macro.model_copy(update={"mesh": config.macro.mesh.model_copy(update={"generate": macro})}),
            "material": config.material.model_copy(update={"rve": rve.model_copy(update={"mesh": rve_mesh})}),
            "steps": [0.5, 1.0],
            "solver": config.solver.model_copy(update={"newton": config.solver.newton.model_copy(update={"rtol": 1e-12})}),
        })
    world = run_study(config, comm, shared_tmp_path / "world")
    alone = run_study(config, MPI.COMM_SELF, shared_tmp_path / f"self{comm.rank}")
    assert world["status"] == alone["status"] == "completed"
    scale = max(np.abs(f).max() for f in alone["final_reactions"].values())
    for boundary, force in alone["final_reactions"].items():
        np.testing.assert_allclose(world["final_reactions"][boundary], force, rtol=1e-10, atol=1e-10 * scale)


def test_rve_tolerance_follows_a_tight_macro_tolerance():
    """A macro rtol tighter than the RVE one tightens the RVE rtol to 1/100 of it (otherwise the
    RVE's error is noise the macro Newton stagnates on, and a needless cut-back changes the load
    path); a looser macro rtol leaves the user's RVE rtol alone."""
    from fe2.coupling.factory import rve_newton_options

    config = load_run_config(REPO / "configs" / "plate_fe2.yaml")
    assert config.material.rve.solver.newton.rtol == 1e-10
    assert rve_newton_options(config).rtol == 1e-10
    tight = config.model_copy(update={"solver": config.solver.model_copy(
        update={"newton": config.solver.newton.model_copy(update={"rtol": 1e-12})})})
    assert rve_newton_options(tight).rtol == pytest.approx(1e-14, rel=1e-12)


def test_plots_and_roller_reactions(shared_tmp_path):
    data = study(boundary_conditions=[
        {"boundary": "left", "component": "x"},
        {"boundary": "bottom", "component": "y"},
        {"boundary": "right", "component": "x", "value": 0.08},
    ])
    code, out = run(shared_tmp_path, data)
    assert code == 0
    if comm.rank == 0:
        last = history(out)[-1]
        assert float(last["reaction_bottom_x"]) == 0.0  # a y-roller exerts no x force
        assert float(last["reaction_left_x"]) == pytest.approx(-float(last["reaction_right_x"]), rel=1e-8)
        for name in ("reactions.png", "convergence.png"):
            png = (out / name).read_bytes()
            assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert main(["plot", str(out)]) == 0
    assert main(["plot", str(shared_tmp_path / "nothing")]) == 2


def last_cell_values(h5: Path, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cell centroids, cell areas (triangles) and the values of a DG0 field at the last time."""
    if h5.suffix == ".xdmf":  # a fe2 run field series
        points, cells, _ = read_meshio(h5)
        x, cells = points, cells[0].data
        values = last_values(h5, name)
        corners = x[cells][..., :2]
        edges = corners[:, 1:] - corners[:, :1]
        areas = 0.5 * np.abs(edges[:, 0, 0] * edges[:, 1, 1] - edges[:, 0, 1] * edges[:, 1, 0])
        return corners.mean(axis=1), areas, values
    with h5py.File(h5, "r") as f:
        x, cells = f["Mesh/mesh/geometry"][:], f["Mesh/mesh/topology"][:]
        steps = f[f"Function/{name}"]
        values = np.asarray(steps[max(steps, key=lambda t: float(t.replace("_", ".")))])
    corners = x[cells][..., :2]
    edges = corners[:, 1:] - corners[:, :1]
    areas = 0.5 * np.abs(edges[:, 0, 0] * edges[:, 1, 1] - edges[:, 0, 1] * edges[:, 1, 0])
    return corners.mean(axis=1), areas, values


def test_probes_write_the_rve_fields_whose_average_is_the_macro_stress(shared_tmp_path, capsys):
    """The RVE fields at a probe: their volume-averaged stress is the macro stress of the
    point (one quadrature point per macro triangle); plasticity shows in the matrix."""
    rve = json.loads(json.dumps(RVE))
    rve["phases"]["matrix"].update(law="j2", sigma_y=0.06, H=0.3)
    data = study(material={"rve": rve}, steps=2, output={"probes": {"corner": [0.0, 0.0], "far": [2.0, 1.0]}})
    code, out = run(shared_tmp_path, data)
    assert code == 0
    if comm.rank == 0:
        summary = json.loads((out / "summary.json").read_text())
        macro_centroids, _, macro_stress = last_cell_values(out / "fields.xdmf", "stress")
        for name, probe in summary["probes"].items():
            assert probe["file"] == f"rve_{name}.xdmf" and (out / probe["file"]).is_file()
            cell = int(np.argmin(np.linalg.norm(macro_centroids - probe["point"], axis=1)))
            assert np.linalg.norm(macro_centroids[cell] - probe["point"]) < 1e-12  # the centroid
            _, areas, rve_stress = last_cell_values(out / f"rve_{name}.xdmf", "stress")
            average = areas @ rve_stress / areas.sum()
            np.testing.assert_allclose(average, macro_stress[cell], rtol=0, atol=1e-10 * np.abs(average).max())
            _, _, p = last_cell_values(out / f"rve_{name}.xdmf", "equivalent_plastic_strain")
            assert p.max() > 0
        assert summary["probes"]["corner"]["point"] != summary["probes"]["far"]["point"]
    # closed-form points have no RVE: refused naming the key
    assert run(shared_tmp_path, study(output={"probes": {"a": [0.0, 0.0]}}), out="law")[0] == 2
    if comm.rank == 0:
        assert "output.probes: RVE fields exist only with concurrent FE² coupling" in capsys.readouterr().err


@pytest.mark.skipif(comm.size > 1, reason="spawns the console script; serial only")
def test_live_status_line_on_a_terminal_plain_lines_otherwise(tmp_path):
    import os
    import pty
    import subprocess
    import sys

    fe2 = str(Path(sys.executable).with_name("fe2"))
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump(study(steps=4)))
    master, slave = pty.openpty()
    process = subprocess.Popen([fe2, "run", str(config), "-o", str(tmp_path / "tty")],
                               stdout=slave, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the terminal closed: the run has ended
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert process.wait() == 0
    terminal = b"".join(chunks).decode()
    assert "\r\x1b[K[" in terminal and "] 2/4  t 0.75  Newton 0 |R|" in terminal
    assert "step 4/4" in terminal
    batch = subprocess.run([fe2, "run", str(config), "-o", str(tmp_path / "batch")], capture_output=True, text=True)
    assert batch.returncode == 0 and "\x1b" not in batch.stdout and "step 4/4" in batch.stdout
