"""`fe2 run` with physics: conduction -- closed-form laws, hierarchical and concurrent FE².

Strip [0, 2] x [0, 1] between two temperatures (left T = 0, right T = T_R), a heat source and
an inward flux on the top edge. Checks: the heat flows through the Dirichlet boundaries
balance the source and the prescribed flux; linear FE² (concurrent, forced) equals the macro
run with the precomputed K* (hierarchical) to 1e-10; with k(T) phases the macro Newton
converges quadratically (the dq/dT column of the RVE tangent enters the macro Jacobian).
Also: laws per cell tag (a resolved k(T)/linear laminate) against the 1D closed form
(Kirchhoff transform); temperature, flux and source as expressions of x and t reproducing an
exact quadratic field with P2; bad scalar-field configs exit 2 naming the key.
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


# ---------------------------------------------------------------------- laws per cell tag


def laminate_mesh(path, *, cells, per_layer, height):
    """A strip [0, 1] x [0, height] of ``cells`` cells, each a layer of tag 1 then one of tag 2
    (normal to x), ``per_layer`` quadrilaterals across each layer, as VTK (cell tags only)."""
    import meshio

    nx = 2 * cells * per_layer
    x, y = np.meshgrid(np.linspace(0.0, 1.0, nx + 1), [0.0, height], indexing="ij")
    points = np.c_[x.ravel(), y.ravel(), np.zeros(x.size)]
    quads = np.array([[2 * i, 2 * i + 2, 2 * i + 3, 2 * i + 1] for i in range(nx)])
    tags = np.array([1 + (i // per_layer) % 2 for i in range(nx)], dtype=np.int32)
    meshio.write(path, meshio.Mesh(points, [("quad", quads)], cell_data={"cell_tags": [tags]}))


def laminate_closed_form(T_right, *, cells, k0, alpha, k):
    """Heat flow Q (per unit height) through a laminate of ``cells`` cells between T = 0 (x = 0)
    and T_right (x = 1), layers of k(T) = k0 (1 + alpha T) then k, each 1 / (2 cells) thick.

    The flux is the same in every layer: Q h = Phi(T_b) - Phi(T_a) with the Kirchhoff
    transform Phi(T) = k0 (T + alpha T^2 / 2) in a k(T) layer, Q h = k (T_b - T_a) in a linear
    one; Q by bisection on the temperature reached at x = 1. Returns Q and the temperatures at
    the layer interfaces (2 cells + 1 values, from x = 0)."""
    h = 0.5 / cells

    def march(Q):
        temperatures = [0.0]
        for _ in range(cells):
            c = k0 * (temperatures[-1] + alpha * temperatures[-1] ** 2 / 2) + Q * h
            temperatures.append((np.sqrt(k0**2 + 2 * alpha * k0 * c) - k0) / (alpha * k0))
            temperatures.append(temperatures[-1] + Q * h / k)
        return temperatures

    lo, hi = 0.0, 100.0 * k * T_right
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if march(mid)[-1] < T_right else (lo, mid)
    Q = 0.5 * (lo + hi)
    return Q, np.array(march(Q))


def test_laws_per_cell_tag_reproduce_the_exact_laminate(shared_tmp_path):
    """A resolved laminate (DNS-style run: material.phases per cell tag of a VTK mesh) of a
    k(T) matrix and a linear layer 10 times more conductive, between T = 0 and T = 50: the heat
    flows through both ends and the temperatures at the layer interfaces equal the 1D closed
    form (Kirchhoff transform) to 1e-10; the history names the heat flows and mean temperatures."""
    cells, per_layer, height = 4, 2, 0.25
    if comm.rank == 0:
        laminate_mesh(shared_tmp_path / "laminate.vtu", cells=cells, per_layer=per_layer, height=height)
    comm.barrier()
    data = study(
        {"phases": {"matrix": {"tag": 1, "law": "temperature_dependent_conduction", "k0": 1.0, "alpha": 0.02},
                    "layer": {"tag": 2, "k": 10.0}}},
        macro={"mesh": {"file": str(shared_tmp_path / "laminate.vtu")}, "degree": 2},
        boundary_conditions=[{"plane": {"axis": "x", "value": 0.0}, "value": 0.0},
                             {"plane": {"axis": "x", "value": 1.0}, "value": 50.0}],
        loads={},
    )
    code, out = run(shared_tmp_path, data, "laminate")
    assert code == 0
    if comm.rank != 0:
        return
    Q, interfaces = laminate_closed_form(50.0, cells=cells, k0=1.0, alpha=0.02, k=10.0)
    last = history(out)[-1]
    assert float(last["heat_flow_x=1"]) == pytest.approx(Q * height, rel=1e-10)
    assert float(last["heat_flow_x=0"]) == pytest.approx(-Q * height, rel=1e-10)
    assert float(last["temperature_x=0"]) == 0.0 and float(last["temperature_x=1"]) == pytest.approx(50.0, rel=1e-14)
    from field_files import read_meshio

    points, _, steps = read_meshio(out / "fields.xdmf")
    T = steps[-1][1]["temperature"].ravel()
    at = np.round(points[:, 0] * 2 * cells * per_layer).astype(int)  # vertex column
    for i, expected in enumerate(interfaces):
        assert np.allclose(T[at == i * per_layer], expected, rtol=1e-10, atol=1e-10 * 50.0), i
    # Nonlinear law: several Newton iterations, and the T-column of its tangent makes them quadratic.
    norms = [float(x) for x in last["residual_norms"].split()]
    assert len(norms) >= 3 and norms[-1] < 1e-8 * norms[0]


# ---------------------------------------------------------------------- expressions


def assert_exact_temperature(out, exact):
    """The temperature at every node of every step in fields.xdmf (read with meshio) equals
    exact(t, x, y, z) to 1e-12 of its largest value."""
    from field_files import read_meshio

    points, _, steps = read_meshio(out / "fields.xdmf")
    assert steps
    for t, point_data, _ in steps:
        expected = exact(t, *points.T)
        assert np.abs(point_data["temperature"].ravel() - expected).max() <= 1e-12 * np.abs(expected).max()


def test_temperature_flux_and_source_as_expressions_give_the_exact_p2_field(shared_tmp_path):
    """T = t (x^2 + x y - 2 y^2) with k = 2 solves -div(k grad T) = s with s = 4 t: prescribed
    as an expression on the left and right edges, the inward fluxes k grad T . (-n) as
    expressions of x and t on the top (2 t (x - 4)) and the bottom (-2 t x), the source 4 t as
    an expression of t. The field is quadratic, so P2 reproduces it at every node (1e-12), and
    the heat flows through the two ends balance the source and the fluxes."""
    exact = "t * (x**2 + x * y - 2 * y**2)"
    data = study(
        {"law": {"k": 2.0}},
        macro={"mesh": copy.deepcopy(STRIP), "degree": 2},
        boundary_conditions=[{"boundary": b, "value": exact} for b in ("left", "right")],
        loads={"tractions": [{"boundary": "top", "traction": ["2 * t * (x - 4)"]},
                             {"boundary": "bottom", "traction": ["-2 * t * x"]}],
               "body_force": ["4 * t"]},
        steps=[0.5, 1.0],
    )
    code, out = run(shared_tmp_path, data, "expressions")
    assert code == 0
    if comm.rank != 0:
        return
    assert_exact_temperature(out, lambda t, x, y, z: t * (x**2 + x * y - 2 * y**2))
    for row in history(out):
        t = float(row["time"])
        flows = float(row["heat_flow_left"]) + float(row["heat_flow_right"])
        source = 4 * t * 2.0 + 2 * t * (2.0**2 / 2 - 4 * 2.0) - 2 * t * 2.0**2 / 2  # int s dA + fluxes
        assert flows == pytest.approx(-source, rel=1e-10)


@pytest.mark.parametrize("hexahedra", [False, True], ids=["tetrahedra", "hexahedra"])
def test_3d_expression_temperature_gives_the_exact_p2_field_and_heat_flows(shared_tmp_path, hexahedra):
    """3D: T = t (x^2 + x y + y z - 2 z^2) with k = 2 on the unit cube: -div(k grad T) = 4 t.
    T prescribed on x = 0 and x = 1, the inward fluxes k grad T . n on the other four faces as
    expressions, the source 4 t. P2 reproduces T at every node (1e-12); the heat flows into
    the body are the exact face integrals: -t through x = 0 and 5 t through x = 1 (1e-10)."""
    exact = "t * (x**2 + x * y + y * z - 2 * z**2)"
    fluxes = {"front": "-2 * t * (x + z)", "back": "2 * t * (x + z)", "bottom": "-2 * t * y", "top": "2 * t * (y - 4)"}
    box = {"generate": {"type": "box", "lx": 1.0, "ly": 1.0, "lz": 1.0, "cells_x": 2, "cells_y": 2, "cells_z": 2,
                        "hexahedra": hexahedra}}
    data = study(
        {"law": {"k": 2.0}},
        macro={"mesh": box, "degree": 2},
        boundary_conditions=[{"boundary": b, "value": exact} for b in ("left", "right")],
        loads={"tractions": [{"boundary": b, "traction": [f]} for b, f in fluxes.items()], "body_force": ["4 * t"]},
        steps=[0.5, 1.0],
    )
    code, out = run(shared_tmp_path, data, "cube")
    assert code == 0
    if comm.rank != 0:
        return
    assert_exact_temperature(out, lambda t, x, y, z: t * (x**2 + x * y + y * z - 2 * z**2))
    for row in history(out):
        t = float(row["time"])
        assert float(row["heat_flow_left"]) == pytest.approx(-t, rel=1e-10)
        assert float(row["heat_flow_right"]) == pytest.approx(5 * t, rel=1e-10)


BAD = [
    ({"boundary_conditions": [{"boundary": "left", "component": "x", "value": 1.0}]},
     "boundary_conditions[0].component: 'x' for the scalar temperature (use 'all')"),
    ({"boundary_conditions": [{"boundary": "left", "rotation": {"angle": 0.1, "centre": [0, 0]}}]},
     "boundary_conditions[0].rotation: a rigid rotation moves a displacement field, not the temperature"),
    ({"loads": {"tractions": [{"boundary": "top", "traction": [1.0, 0.0]}]}},
     "loads.tractions[0].traction: expected 1 components, got 2"),
    ({"loads": {"body_force": [1.0, 0.0]}}, "loads.body_force: expected 1 components, got 2"),
    ({"boundary_conditions": [{"boundary": "left", "value": "sqrt(x - 1)"}]},
     "boundary_conditions[0].value"),
]


@pytest.mark.parametrize("change,message", BAD, ids=[m[:40] for _, m in BAD])
def test_bad_conduction_config_exits_2_naming_the_key(shared_tmp_path, capsys, change, message):
    code, out = run(shared_tmp_path, study({"law": {"k": 2.0}}, **change), "bad")
    err = capsys.readouterr().err
    assert code == 2
    assert not (out / "history.csv").exists()
    if comm.rank == 0:
        assert message in err, err
        assert "Traceback" not in err
