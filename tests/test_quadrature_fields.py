"""`fe2 run` with ``output.quadrature_fields``: the fields at the macro quadrature points as a
point cloud series, re-read with meshio and checked against an independent computation of
the points, the cell fields, closed forms, and the one-rank run."""

import copy
import json

import basix
import numpy as np
import pytest
import yaml
from mpi4py import MPI

from field_files import read_h5, read_meshio
from fe2.cli import main
from fe2.config import load_run_config
from fe2.macro.study import run_study
from test_run_outputs import J2, ROLLERS, check_uniaxial_j2

comm = MPI.COMM_WORLD
E, NU = 3.5, 0.35
STRIP = {"generate": {"type": "rectangle", "length": 2.0, "height": 1.0, "cells_x": 4, "cells_y": 2}}
CLAMPED = [{"boundary": "left", "component": "all", "value": 0.0},
           {"boundary": "right", "component": "x", "value": 0.01}]


def study(law, *, degree=2, boundary_conditions=CLAMPED, steps=1):
    return {
        "physics": "elasticity",
        "macro": {"mesh": copy.deepcopy(STRIP), "degree": degree},
        "material": {"law": law},
        "boundary_conditions": boundary_conditions,
        "steps": steps,
        "output": {"quadrature_fields": True},
    }


def run(directory, data, out):
    config = directory / f"{out}.yaml"
    if comm.rank == 0:
        config.write_text(yaml.safe_dump(data))
    comm.barrier()
    assert main(["run", str(config), "-o", str(directory / out)]) == 0
    return config, directory / out


def last_points(out):
    """(points (N, 3), fields of the last step) of quadrature_fields.xdmf by meshio; checked
    equal to the step files read by h5py."""
    points, cells, steps = read_meshio(out / "quadrature_fields.xdmf")
    assert len(cells) == 1 and cells[0].type == "vertex"
    np.testing.assert_array_equal(cells[0].data.ravel(), np.arange(len(points)))
    _, point_data, _ = max(steps, key=lambda s: s[0])
    h5 = read_h5(out / "quadrature_fields.xdmf")
    for name, values in point_data.items():
        np.testing.assert_array_equal(h5[max(h5)][name].reshape(values.shape), values)
    return points, {name: np.asarray(v) for name, v in point_data.items()}


def by_position(x: np.ndarray) -> np.ndarray:
    """The order of points sorted by their coordinates (rounded: round-off does not reorder)."""
    return np.lexsort(np.round(x, 9).T[::-1])


def cell_fields(out):
    """(mesh points, triangles, cell fields of the last step) of fields.xdmf by meshio."""
    points, cells, steps = read_meshio(out / "fields.xdmf")
    _, _, cell_data = max(steps, key=lambda s: s[0])
    return points, cells[0].data, {name: np.asarray(v[0]) for name, v in cell_data.items()}


def test_points_weights_and_cell_means(shared_tmp_path):
    """P2 strip clamped on the left (a non-uniform stress): (i) the points are the degree-2
    quadrature points of the mesh's triangles (basix rule mapped affinely from the vertices
    of fields.xdmf), (ii) the weights of a cell sum to its area and the weighted mean of the
    point stress and strain over each cell is the cell field of fields.xdmf."""
    _, out = run(shared_tmp_path, study({"law": "linear_elastic", "E": E, "nu": NU}), "clamped")
    if comm.rank != 0:
        return
    x, fields = last_points(out)
    nodes, triangles, cells = cell_fields(out)
    reference, weights = basix.make_quadrature(basix.CellType.triangle, 2)
    nq = len(weights)
    assert len(x) == nq * len(triangles) == 3 * 16
    a, b, c = (nodes[triangles[:, i], :2] for i in range(3))
    expected = a[:, None] + reference[None, :, :1] * (b - a)[:, None] + reference[None, :, 1:] * (c - a)[:, None]
    mine = x[:, :2].reshape(len(triangles), nq, 2)
    for k in range(len(triangles)):  # the same set of points per cell (any order in the cell)
        np.testing.assert_allclose(mine[k][by_position(mine[k])], expected[k][by_position(expected[k])],
                                   rtol=0, atol=1e-13)
    np.testing.assert_array_equal(fields["cell"].ravel(), np.repeat(np.arange(len(triangles)), nq))
    area = 0.5 * np.abs((b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0])
    w = fields["weight"].reshape(len(triangles), nq)
    np.testing.assert_allclose(w.sum(axis=1), area, rtol=1e-13)
    stress = fields["stress"].reshape(len(triangles), nq, 9)
    spread = np.ptp(stress[:, :, 0], axis=1)
    assert spread.max() > 1e-2 * np.abs(stress[:, :, 0]).max()  # the stress varies within cells
    for name in ("stress", "strain", "stress_33"):  # (von Mises is of the cell-mean stress: not a mean)
        values = fields[name].reshape(len(triangles), nq, -1)
        mean = np.einsum("cq,cqk->ck", w, values) / area[:, None]
        scale = np.abs(values).max()
        np.testing.assert_allclose(mean, cells[name].reshape(mean.shape), rtol=0, atol=1e-12 * scale)


def test_uniform_linear_state_closed_form_at_every_point(shared_tmp_path):
    """(iii) Rollers, x pulled: uniform uniaxial plane strain; at every point sigma11 = E /
    (1 - nu^2) eps11, sigma22 = sigma12 = 0, sigma33 = nu sigma11, von Mises closed form."""
    _, out = run(shared_tmp_path, study({"law": "linear_elastic", "E": E, "nu": NU}, boundary_conditions=ROLLERS),
                 "uniform")
    if comm.rank != 0:
        return
    x, fields = last_points(out)
    eps11 = 0.08 / 2.0
    sigma11 = E / (1 - NU**2) * eps11
    expected = np.zeros((3, 3))
    expected[0, 0], expected[2, 2] = sigma11, NU * sigma11
    stress = fields["stress"].reshape(-1, 3, 3)
    np.testing.assert_allclose(stress, np.broadcast_to(expected, stress.shape), rtol=0, atol=1e-12 * sigma11)
    np.testing.assert_allclose(fields["strain"].reshape(-1, 3, 3)[:, 0, 0], eps11, rtol=1e-12)
    np.testing.assert_allclose(fields["von_mises"].ravel(), sigma11 * np.sqrt(1 - NU + NU**2), rtol=1e-12)


def test_uniaxial_plane_strain_j2_von_mises_at_every_point(shared_tmp_path):
    """(iv) P1 J2 strip on rollers, 3 steps: at every quadrature point the full stress has
    sigma33 != 0 and von Mises = sigma_y + H p (on the yield surface, linear hardening)."""
    data = study(J2, degree=1, boundary_conditions=ROLLERS, steps=3)
    _, out = run(shared_tmp_path, data, "j2")
    if comm.rank == 0:
        _, fields = last_points(out)
        assert len(fields["von_mises"]) == 16
        check_uniaxial_j2(fields, rtol=1e-12)


def test_same_points_and_values_on_any_number_of_ranks(shared_tmp_path):
    """The run on all ranks writes the points and values of the run on one rank (sorted by
    coordinates): a plastic, non-uniform P2 problem, two steps."""
    law = dict(J2, sigma_y=0.02)
    config, out = run(shared_tmp_path, study(law, steps=2, boundary_conditions=[
        dict(CLAMPED[0]), dict(CLAMPED[1], value=0.03)]), "world")
    run_study(load_run_config(config), MPI.COMM_SELF, shared_tmp_path / f"self{comm.rank}")
    x, fields = last_points(out)
    x1, fields1 = last_points(shared_tmp_path / f"self{comm.rank}")
    order, order1 = by_position(x), by_position(x1)
    np.testing.assert_allclose(x[order], x1[order1], rtol=0, atol=1e-14)
    assert set(fields) == set(fields1) and fields["equivalent_plastic_strain"].max() > 0
    for name, values in fields.items():
        scale = max(np.abs(values).max(), 1e-300)
        np.testing.assert_allclose(values[order], fields1[name][order1], rtol=0, atol=1e-10 * scale)
    summary = json.loads((out / "summary.json").read_text()) if comm.rank == 0 else None
    if comm.rank == 0:
        assert summary["field_files"] == ["fields.xdmf", "quadrature_fields.xdmf"]


def test_off_by_default_and_stale_files_removed(shared_tmp_path):
    data = study({"law": "linear_elastic", "E": E, "nu": NU}, degree=1)
    _, out = run(shared_tmp_path, data, "on")
    data["output"] = {}
    config = shared_tmp_path / "on.yaml"
    if comm.rank == 0:
        config.write_text(yaml.safe_dump(data))
    comm.barrier()
    assert main(["run", str(config), "-o", str(out), "--overwrite"]) == 0
    if comm.rank == 0:
        assert not (out / "quadrature_fields.xdmf").exists() and not (out / "quadrature_fields").exists()
        assert (out / "fields.xdmf").is_file()
