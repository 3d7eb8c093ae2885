"""Hierarchical `fe2 run` (linear RVE, effective tensor computed once) for the whole family of
inclusion RVEs: P1-P3, all three BCs (issue 12, item 8: effective tensors whose entries that
are zero by symmetry are round-off were refused as "not symmetric").

Reference: the macro problem is a bar in uniaxial stress (rollers on the left and bottom, the
right edge pulled), homogeneous for an orthotropic C, so the reaction is the closed form
H (C11 - C12^2 / C22) delta / L from the effective tensor computed independently here.
"""

import json

import numpy as np
import pytest
from mpi4py import MPI

from fe2.materials import AnisotropicLinearElastic, LinearElastic
from fe2.rve.effective import effective_tensor
from fe2.rve.model import RveModel
from fe2.physics import make_physics
from test_run import run

comm = MPI.COMM_WORLD
SPEC = {"type": "inclusion_2d", "volume_fraction": 0.3, "mesh_size": 0.12}
PHASES = {"matrix": {"tag": 1, "E": 3.5, "nu": 0.35}, "fibre": {"tag": 2, "E": 72.0, "nu": 0.22}}
LENGTH, HEIGHT, PULL = 2.0, 1.0, 0.01


def bar(degree: int, bc: str) -> dict:
    return {
        "physics": "elasticity",
        "macro": {"mesh": {"generate": {"type": "rectangle", "length": LENGTH, "height": HEIGHT,
                                        "cells_x": 2, "cells_y": 1}}},
        "material": {"rve": {"mesh": {"generate": SPEC}, "phases": PHASES, "bc": bc, "degree": degree}},
        "boundary_conditions": [
            {"boundary": "left", "component": "x", "value": 0.0},
            {"boundary": "bottom", "component": "y", "value": 0.0},
            {"boundary": "right", "component": "x", "value": PULL},
        ],
        "steps": 1,
        "solver": {"newton": {"rtol": 1e-12}},
        "checkpoint": {"every": 0},
    }


@pytest.mark.parametrize("bc", ["periodic", "affine", "traction"])
@pytest.mark.parametrize("degree", [1, 2, 3])
def test_hierarchical_run_with_inclusion_rves(shared_tmp_path, make_mesh, capsys, degree, bc):
    code, out = run(shared_tmp_path, bar(degree, bc))
    err = capsys.readouterr().err
    assert code == 0, err
    rve = make_mesh(**SPEC)
    model = RveModel(rve.mesh, rve.cell_tags, make_physics("elasticity", 2),
                     {1: LinearElastic(E=3.5, nu=0.35), 2: LinearElastic(E=72.0, nu=0.22)}, degree=degree)
    C = effective_tensor(model, bc).C
    AnisotropicLinearElastic(C)  # accepted (symmetric relative to its norm)
    expected = HEIGHT * (C[0, 0] - C[0, 1] ** 2 / C[1, 1]) * PULL / LENGTH
    if comm.rank == 0:
        summary = json.loads((out / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["coupling"]["mode"] == "hierarchical"
        assert summary["final_reactions"]["right"][0] == pytest.approx(expected, rel=1e-6)


def test_symmetry_is_judged_relative_to_the_norm():
    C = np.array([[10.0, 3.0, 1e-15], [3.0, 10.0, -2e-16], [3e-16, 1e-16, 4.0]])
    law = AnisotropicLinearElastic(C)
    np.testing.assert_array_equal(law.C, law.C.T)
    with pytest.raises(ValueError, match="symmetric"):
        AnisotropicLinearElastic(C + np.array([[0, 1e-6, 0], [0, 0, 0], [0, 0, 0]]))


def test_an_unexpected_error_is_one_line_exit_1_and_a_traceback_file(shared_tmp_path, capsys, monkeypatch):
    """A bug escaping to the command line (here: a ValueError from the study) prints one line
    naming a log file that holds the traceback; exit code 1."""
    import fe2.macro.study

    def broken(*args, **kwargs):
        raise ValueError("C must be symmetric\nsecond line")

    monkeypatch.setattr(fe2.macro.study, "run_study", broken)
    monkeypatch.chdir(shared_tmp_path)
    if comm.size > 1:
        pytest.skip("an internal error aborts every rank under MPI")
    code, out = run(shared_tmp_path, bar(1, "periodic"))
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "internal error: ValueError: C must be symmetric; traceback in " in err
    log = err.strip().split("traceback in ")[1]
    assert "Traceback (most recent call last)" in open(log).read()
