"""`fe2 run` with `parallel.ranks_per_rve: 2` under `mpiexec -n 2` = the 1-rank FE² answer.

The RVE mesh is then distributed over the two ranks and every RVE is solved by both; the
one-rank reference runs on MPI.COMM_SELF on each rank. Skipped serially (the 1-rank run is
the reference itself); the refusal of a ranks_per_rve that does not divide the ranks runs
both ways.
"""

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from mpi4py import MPI

from fe2.cli import main
from fe2.config import load_run_config
from fe2.macro.study import run_study

REPO = Path(__file__).resolve().parents[1]
comm = MPI.COMM_WORLD

PLASTIC_RVE = {
    "mesh": {"file": str(REPO / "meshes" / "inclusion_2d.msh")},
    "phases": {
        "matrix": {"tag": 1, "law": "j2", "E": 3.5, "nu": 0.35, "sigma_y": 0.06, "H": 0.3},
        "fibre": {"tag": 2, "E": 72.0, "nu": 0.22},
    },
    "solver": {"newton": {"rtol": 1e-12}},
}


def study(rve, ranks_per_rve, balancing="dynamic"):
    return {
        "physics": "elasticity",
        "macro": {"mesh": {"generate": {"type": "rectangle", "length": 2.0, "height": 1.0, "cells_x": 2,
                                        "cells_y": 1}}},
        "material": {"rve": rve},
        "boundary_conditions": [
            {"boundary": "left", "component": "all", "value": 0.0},
            {"boundary": "right", "component": "x", "value": 0.08},
        ],
        "steps": 2,
        "solver": {"newton": {"rtol": 1e-12}},
        "parallel": {"ranks_per_rve": ranks_per_rve, "balancing": balancing},
    }


def write(directory: Path, data, name: str) -> Path:
    path = directory / f"{name}.yaml"
    if comm.rank == 0:
        path.write_text(yaml.safe_dump(data))
    comm.barrier()
    return path


@pytest.mark.skipif(comm.size != 2, reason="groups of 2 ranks need 2 ranks")
@pytest.mark.parametrize("linear_solver, balancing", [
    ("direct", "dynamic"), ("direct", "off"),
    pytest.param("iterative", "static", marks=pytest.mark.slow),  # CG on 2 ranks: latency-bound on tiny RVEs
])
def test_two_ranks_per_rve_equal_the_one_rank_answer(shared_tmp_path, linear_solver, balancing):
    rve = copy.deepcopy(PLASTIC_RVE)
    rve["linear_solver"] = linear_solver
    path = write(shared_tmp_path, study(rve, 2, balancing), f"grouped-{linear_solver}")
    config = load_run_config(path)
    grouped = run_study(config, comm, shared_tmp_path / f"grouped-{linear_solver}")
    alone = run_study(config.model_copy(update={"parallel": config.parallel.model_copy(update={"ranks_per_rve": 1})}),
                      MPI.COMM_SELF, shared_tmp_path / f"alone-{linear_solver}-{comm.rank}")
    assert grouped["status"] == alone["status"] == "completed"
    assert "2 ranks per RVE" in grouped["coupling"]["reason"]
    assert grouped["rve_solves"] > 0
    scale = max(np.abs(f).max() for f in alone["final_reactions"].values())
    for name, force in alone["final_reactions"].items():
        np.testing.assert_allclose(grouped["final_reactions"][name], force, rtol=1e-8, atol=1e-8 * scale)


@pytest.mark.skipif(comm.size != 2, reason="groups of 2 ranks need 2 ranks")
def test_grouped_checkpoint_restart(shared_tmp_path):
    """A run with 2 ranks per RVE stopped after step 1 and restarted ends with the answer of an
    uninterrupted run; a restart with another ranks_per_rve is refused (exit 2)."""
    data = study(copy.deepcopy(PLASTIC_RVE), 2)
    full = write(shared_tmp_path, data, "full")
    assert main(["run", str(full), "-o", str(shared_tmp_path / "full")]) == 0
    first = copy.deepcopy(data)
    first["steps"] = [0.5]
    part = write(shared_tmp_path, first, "part")
    out = shared_tmp_path / "part"
    assert main(["run", str(part), "-o", str(out)]) == 0
    other = copy.deepcopy(data)
    other["parallel"]["ranks_per_rve"] = 1
    assert main(["run", str(write(shared_tmp_path, other, "other")), "-o", str(out), "--restart"]) == 2
    assert main(["run", str(write(shared_tmp_path, data, "rest")), "-o", str(out), "--restart"]) == 0
    if comm.rank == 0:
        a = json.loads((shared_tmp_path / "full" / "summary.json").read_text())["final_reactions"]
        b = json.loads((out / "summary.json").read_text())["final_reactions"]
        scale = max(np.abs(f).max() for f in a.values())
        for name in a:
            np.testing.assert_allclose(b[name], a[name], rtol=1e-10, atol=1e-10 * scale)


def test_ranks_per_rve_must_divide_the_ranks(shared_tmp_path, capsys):
    data = study(copy.deepcopy(PLASTIC_RVE), comm.size + 1)
    code = main(["run", str(write(shared_tmp_path, data, "bad")), "-o", str(shared_tmp_path / "bad")])
    assert code == 2
    err = capsys.readouterr().err
    assert "parallel.ranks_per_rve" in err or comm.rank != 0  # rank 0 prints the one line
    assert not (shared_tmp_path / "bad").exists()
