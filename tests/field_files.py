"""Reading `fe2 run` field series with two independent readers: meshio and h5py."""

from pathlib import Path

import h5py
import meshio
import numpy as np


def read_meshio(xdmf: Path):
    """(points, cells, [(time, point_data, cell_data) per step]) by meshio's XDMF time series."""
    with meshio.xdmf.TimeSeriesReader(xdmf) as reader:
        points, cells = reader.read_points_cells()
        steps = [reader.read_data(k) for k in range(reader.num_steps)]
    return points, cells, steps


def read_h5(xdmf: Path) -> dict[int, dict]:
    """Step -> {"time": t, field name: array} from the per-step HDF5 files, with h5py."""
    steps = {}
    for path in sorted((xdmf.parent / xdmf.stem).glob("step-*.h5")):
        with h5py.File(path, "r") as f:
            steps[int(f.attrs["step"])] = {"time": float(f.attrs["time"]), **{k: f[k][()] for k in f}}
    return steps


def last_values(xdmf: Path, name: str) -> np.ndarray:
    """The values of a field at the last time of a series (meshio)."""
    _, _, steps = read_meshio(xdmf)
    t, point_data, cell_data = max(steps, key=lambda s: s[0])
    return point_data[name] if name in point_data else cell_data[name][0]


def assert_same_series(xdmf: Path, reference: Path, *, atol: float = 1e-10, first: int | None = None,
                       unindexed: tuple[int, ...] = ()) -> None:
    """Two field series (fields written at every step) have the same mesh, times and fields,
    with values equal to ``atol`` times the reference field's largest magnitude (at least 1)
    at every step, read with meshio's TimeSeriesReader; h5py reads the step files of ``xdmf``
    (steps 1, 2, ...) with the same times and values as meshio. ``first``: ``xdmf`` holds the
    first that many steps of the reference only; ``unindexed``: step files h5py finds besides
    the listed steps (complete, not yet in the index)."""
    points, cells, steps = read_meshio(xdmf)
    ref_points, ref_cells, ref_steps = read_meshio(reference)
    ref_steps = ref_steps[:first] if first is not None else ref_steps
    np.testing.assert_array_equal(points, ref_points)
    assert [c.type for c in cells] == [c.type for c in ref_cells]
    for block, ref_block in zip(cells, ref_cells):
        np.testing.assert_array_equal(block.data, ref_block.data)
    assert [t for t, _, _ in steps] == [t for t, _, _ in ref_steps]
    by_step = read_h5(xdmf)
    assert sorted(by_step) == list(range(1, len(steps) + 1)) + list(unindexed)
    for k, ((t, point_data, cell_data), (_, ref_point, ref_cell)) in enumerate(zip(steps, ref_steps), start=1):
        assert by_step[k]["time"] == t
        assert set(point_data) == set(ref_point) and set(cell_data) == set(ref_cell)
        values = {**point_data, **{name: blocks[0] for name, blocks in cell_data.items()}}
        expected = {**ref_point, **{name: blocks[0] for name, blocks in ref_cell.items()}}
        for name, value in values.items():
            np.testing.assert_array_equal(by_step[k][name], value)
            scale = max(1.0, float(np.abs(expected[name]).max()))
            np.testing.assert_allclose(value, expected[name], rtol=0, atol=atol * scale, err_msg=f"{name} at step {k}")
