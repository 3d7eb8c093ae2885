"""`fe2 run` with physics: conduction -- closed-form laws, hierarchical and concurrent FE².

Strip [0, 2] x [0, 1] between two temperatures (left T = 0, right T = T_R), a heat source and
an inward flux on the top edge. Checks: the heat flows through the Dirichlet boundaries
balance the source and the prescribed flux; linear FE² (concurrent, forced) equals the macro
run with the precomputed K* (hierarchical) to 1e-10; with k(T) phases the macro Newton
converges quadratically (the dq/dT column of the RVE tangent enters the macro Jacobian).
"""

import copy
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from mpi4py import MPI

from fe2.cli import main

REPO = Path(__file__).resolve().parents[1]
comm = MPI.COMM_WORLD

STRIP = {"generate": {"type": "rectangle", "length": 2.0, "height": 1.0, "cells_x": 4, "cells_y": 2}}
HEAT = [
    {"boundary": "left", "value": 0.0},
    {"boundary": "right", "value": 50.0},
]
LOADS = {"tractions": [{"boundary": "top", "traction": [3.0]}], "body_force": [2.0]}
RVE_LINEAR = {
    "mesh": {"file": str(REPO / "meshes" / "inclusion_2d.msh")},
    "phases": {"matrix": {"tag": 1, "k": 1.0}, "inclusion": {"tag": 2, "k": 10.0}},
}
RVE_KT = {
    "mesh": {"file": str(REPO / "meshes" / "inclusion_2d.msh")},
    "phases": {"matrix": {"law": "temperature_dependent_conduction", "tag": 1, "k0": 1.0, "alpha": 0.01},
               "inclusion": {"tag": 2, "law": "power_law", "k": 10.0, "p": 2.5, "delta": 1.0}},
}


def study(material, **changes):
    data = {
        "physics": "conduction",
        "macro": {"mesh": copy.deepcopy(STRIP)},
        "material": material,
        "boundary_conditions": HEAT,
        "loads": LOADS,
        "steps": 2,
        "solver": {"newton": {"rtol": 1e-12}},
    }
    data.update(changes)
    return data


def run(directory, data, out):
    config = directory / f"{out}.yaml"
    if comm.rank == 0:
        config.write_text(yaml.safe_dump(data))
    comm.barrier()
    return main(["run", str(config), "-o", str(directory / out)]), directory / out


def history(directory):
    with open(directory / "history.csv") as f:
        return list(csv.DictReader(f))


def heat_balance(row):
    """Heat flows into the body through the Dirichlet boundaries, source and top flux."""
    flows = float(row["heat_flow_left"]) + float(row["heat_flow_right"])
    load = float(row["time"]) * (2.0 * 2.0 * 1.0 + 3.0 * 2.0)  # s * area + q_top * length
    return flows, load


def test_closed_form_conduction_run_balances_heat_and_writes_temperature(shared_tmp_path):
    code, out = run(shared_tmp_path, study({"law": {"k": 2.0}}), "law")
    assert code == 0
    if comm.rank != 0:
        return
    rows = history(out)
    flows, load = heat_balance(rows[-1])
    assert flows == pytest.approx(-load, rel=1e-10)  # what enters through the sources leaves at T = T_D
    # linear problem: one Newton iteration per step
    assert all(int(r["newton_iterations"]) == 1 for r in rows)
    from field_files import read_meshio

    points, cells, steps = read_meshio(out / "fields.xdmf")
    point_data, cell_data = steps[-1][1], steps[-1][2]
    T = point_data["temperature"].ravel()
    linear = 25.0 * points[:, 0]  # the profile without source and top flux
    assert T.min() == pytest.approx(0.0, abs=1e-12) and T.max() == pytest.approx(50.0, rel=1e-12)
    assert (T - linear).min() > -1e-10 and (T - linear).max() > 0.1  # heated from inside
    flux, gradient = cell_data["flux"][0], cell_data["gradient"][0]  # vectors (padded to 3 by XDMF)
    assert np.all(flux[:, 2:] == 0) and np.all(gradient[:, 2:] == 0)
    assert np.allclose(flux[:, :2], 2.0 * gradient[:, :2], rtol=1e-12, atol=1e-12)


@pytest.mark.slow  # ~1 min: concurrent FE² on every macro point
def test_linear_conduction_fe2_concurrent_equals_hierarchical(shared_tmp_path):
    code_h, out_h = run(shared_tmp_path, study({"rve": {**RVE_LINEAR, "coupling": "auto"}}), "hier")
    code_c, out_c = run(shared_tmp_path, study({"rve": {**RVE_LINEAR, "coupling": "concurrent"}}), "conc")
    assert code_h == 0 and code_c == 0
    if comm.rank != 0:
        return
    assert json.loads((out_h / "summary.json").read_text())["coupling"]["mode"] == "hierarchical"
    assert json.loads((out_c / "summary.json").read_text())["coupling"]["mode"] == "concurrent"
    for a, b in zip(history(out_h), history(out_c)):
        for key in ("heat_flow_left", "heat_flow_right"):
            assert float(b[key]) == pytest.approx(float(a[key]), rel=1e-10)
    from field_files import read_meshio

    Th = read_meshio(out_h / "fields.xdmf")[2][-1][1]["temperature"]
    Tc = read_meshio(out_c / "fields.xdmf")[2][-1][1]["temperature"]
    assert np.abs(Th - Tc).max() <= 1e-10 * np.abs(Th).max()


@pytest.mark.slow  # ~2 min: concurrent FE² with nonlinear phases
def test_temperature_dependent_fe2_converges_quadratically(shared_tmp_path):
    code, out = run(shared_tmp_path, study({"rve": RVE_KT}, steps=1), "kt")
    assert code == 0
    if comm.rank != 0:
        return
    rows = history(out)
    norms = [float(x) for x in rows[-1]["residual_norms"].split()]
    assert len(norms) >= 4
    flows, load = heat_balance(rows[-1])
    assert flows == pytest.approx(-load, rel=1e-8)
    # quadratic: r_{k+1} / r_k^2 bounded while the residual falls by orders of magnitude
    ratios = [b / a**2 for a, b in zip(norms[:-1], norms[1:]) if b > 1e-10 * norms[0]]
    rates = [np.log(norms[k + 1] / norms[k]) / np.log(norms[k] / norms[k - 1])
             for k in range(1, len(norms) - 1) if norms[k + 1] > 1e-11 * norms[0]]
    assert rates and max(rates) > 1.8, (norms, rates, ratios)
