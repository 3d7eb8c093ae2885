"""The shipped FE² studies give the same answers with batched and per-point RVE solves.

Both runs of a pair happen in the same process, on the same number of ranks (the suite runs
serially and under ``mpiexec -n 2``, with the configs' dynamic load balancing). Compared:
load factors, macro Newton iterations, RVE solves and the reactions (to 1e-10 relative).
The residual norms of history.csv are not compared: at round-off their digits differ.
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


def history(directory):
    with open(directory / "history.csv") as f:
        return list(csv.DictReader(f))


def run_both(directory: Path, config: Path, steps=None):
    data = yaml.safe_load(config.read_text())
    mesh = data["material"]["rve"]["mesh"]
    if "file" in mesh:  # relative to the shipped config
        mesh["file"] = str((config.parent / mesh["file"]).resolve())
    if steps is not None:
        data["steps"] = steps
    rows = {}
    for batch in ("off", "auto"):
        changed = copy.deepcopy(data)
        changed["material"]["rve"]["batch"] = batch
        path = directory / f"{config.stem}-{batch}.yaml"
        if comm.rank == 0:
            path.write_text(yaml.safe_dump(changed))
        comm.barrier()
        assert main(["run", str(path), "-o", str(directory / batch), "-q"]) == 0
        rows[batch] = history(directory / batch) if comm.rank == 0 else []
    return rows


def assert_same_history(rows):
    off, auto = rows["off"], rows["auto"]
    assert len(off) == len(auto)
    for a, b in zip(off, auto):
        for key in ("step", "time", "newton_iterations", "substeps", "cutbacks", "rve_solves", "rve_failures"):
            assert a[key] == b[key], key
        reactions = [k for k in a if k.startswith("reaction_")]
        assert reactions
        values = np.array([[float(a[k]), float(b[k])] for k in reactions])
        scale = np.abs(values).max()
        assert np.abs(values[:, 0] - values[:, 1]).max() <= 1e-10 * scale


def test_plate_demo_first_steps_batched_equals_per_point(shared_tmp_path):
    """configs/plate_fe2.yaml, its first three load steps (elastic, then yielding points)."""
    rows = run_both(shared_tmp_path, REPO / "configs" / "plate_fe2.yaml", steps=[0.125, 0.25, 0.375])
    if comm.rank == 0:
        assert_same_history(rows)
        # the profile of the RVE work in summary.json: the parts of each backend, none larger
        # than all the RVE seconds, the ones every Newton solve has present
        parts = {"off": {"newton", "residual", "assemble", "factorize", "solve", "sensitivity",
                         "elastic_shortcut"},
                 "auto": {"factorize", "constitutive", "residual", "solve", "sensitivity", "shortcut"}}
        for batch, known in parts.items():
            rve = json.loads((shared_tmp_path / batch / "summary.json").read_text())["rve"]
            by_part = rve["seconds_by_part"]
            assert set(by_part) <= known and {"factorize", "residual", "sensitivity"} <= set(by_part)
            assert all(0 < s <= rve["seconds"] * (1 + 1e-9) for s in by_part.values())


@pytest.mark.slow
def test_plate_demo_batched_equals_per_point(shared_tmp_path):
    """configs/plate_fe2.yaml as shipped (8 steps)."""
    rows = run_both(shared_tmp_path, REPO / "configs" / "plate_fe2.yaml")
    if comm.rank == 0:
        assert_same_history(rows)
        assert len(rows["auto"]) == 8


def test_linear_rve_demo_batched_equals_per_point(shared_tmp_path):
    """configs/plate_linear_rve.yaml (hierarchical: the effective tensor by either path)."""
    rows = run_both(shared_tmp_path, REPO / "configs" / "plate_linear_rve.yaml")
    if comm.rank == 0:
        assert_same_history(rows)
