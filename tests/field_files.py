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
