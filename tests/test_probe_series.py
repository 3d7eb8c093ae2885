"""RVE probe series of `fe2 run` killed while writing and restarted: the finished steps stay
readable (meshio, h5py) and the restart continues the one series to the uninterrupted answer.

Each rank runs its own one-rank FE² study here (the 2 x 1 strip of the restart tests). A kill
is an exception nothing catches, raised at a file system call of the series writer.
"""

import os
from pathlib import Path

import pytest
import yaml
from mpi4py import MPI

from fe2.config import load_run_config
from fe2.io import field_series
from fe2.macro.checkpoint import latest_checkpoint
from fe2.macro.study import run_study
from field_files import assert_same_series
from test_restart import FULL, Killed, assert_one_series_per_probe, assert_same_history, fe2_study
from test_run import history


@pytest.fixture(scope="module")
def probed(tmp_path_factory):
    """(config, output of the uninterrupted run) of an FE² study with a probe."""
    tmp = tmp_path_factory.mktemp("probed")
    (tmp / "study.yaml").write_text(yaml.safe_dump(fe2_study(FULL, output={"probes": {"p": [0.5, 0.5]}})))
    config = load_run_config(tmp / "study.yaml")
    assert run_study(config, MPI.COMM_SELF, tmp / "whole")["status"] == "completed"
    return config, tmp / "whole"


def kill_at_rename(monkeypatch, target: Path, nth: int = 1) -> None:
    """The process dies at the ``nth`` os.replace onto ``target`` (the file is not renamed)."""
    real, calls = os.replace, []

    def replace(source, destination):
        if Path(destination) == target:
            calls.append(destination)
            if len(calls) == nth:
                raise Killed
        real(source, destination)

    monkeypatch.setattr(field_series.os, "replace", replace)


@pytest.mark.parametrize("moment", ["step file", "index"])
def test_killed_while_writing_a_probe_step_then_restarted(tmp_path, monkeypatch, probed, moment):
    """Killed in step 3 before the probe's step file (or its index) is renamed: the series lists
    steps 1-2, equal to the uninterrupted run's; a restart killed before its first write leaves
    both series readable; the next restart ends with one probe series equal to the
    uninterrupted run's at every step (meshio and h5py)."""
    config, whole = probed
    out = tmp_path / "out"
    if moment == "step file":
        kill_at_rename(monkeypatch, out / "rve_p" / "step-000003.h5")
    else:  # the index is renamed once per step
        kill_at_rename(monkeypatch, out / "rve_p.xdmf", nth=3)
    with pytest.raises(Killed):
        run_study(config, MPI.COMM_SELF, out)
    monkeypatch.undo()
    assert latest_checkpoint(out).name == "step-000002"
    assert_same_series(out / "fields.xdmf", whole / "fields.xdmf", first=3)  # written before the probes
    # the probe's finished steps; with the index not renamed, the complete step 3 is not listed
    assert_same_series(out / "rve_p.xdmf", whole / "rve_p.xdmf", first=2,
                       unindexed=(3,) if moment == "index" else ())

    # a restart (after step 2) killed at its first write: both series list steps 1-2 only
    kill_at_rename(monkeypatch, out / "fields" / "step-000003.h5")
    with pytest.raises(Killed):
        run_study(config, MPI.COMM_SELF, out, restart=True)
    monkeypatch.undo()
    assert_same_series(out / "fields.xdmf", whole / "fields.xdmf", first=2)
    assert_same_series(out / "rve_p.xdmf", whole / "rve_p.xdmf", first=2)

    summary = run_study(config, MPI.COMM_SELF, out, restart=True)
    assert summary["status"] == "completed" and summary["restarted_after_step"] == 2
    assert summary["probes"]["p"]["file"] == "rve_p.xdmf"
    assert_same_history(history(out), history(whole))
    assert_same_series(out / "fields.xdmf", whole / "fields.xdmf")
    assert_same_series(out / "rve_p.xdmf", whole / "rve_p.xdmf")
    assert_one_series_per_probe(out, ["p"])
