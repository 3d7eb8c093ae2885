"""Signals, locks and file system errors around `fe2 run` (issue 12, items 3-6).

Each case runs the console script in a subprocess (serial only), on the smallest study: a
closed-form J2 strip. References are uninterrupted runs of the same study. After every
interruption the field files of every completed step are read with meshio and h5py.
"""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from mpi4py import MPI

from field_files import read_h5, read_meshio
from fe2.macro.checkpoint import latest_checkpoint, read_meta
from test_restart import assert_same_history, snapshot
from test_run import J2_LAW, history, study

pytestmark = pytest.mark.skipif(MPI.COMM_WORLD.size > 1, reason="spawns the console script; serial only")

FE2 = str(Path(sys.executable).with_name("fe2"))
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
STEPS = [k / 16 for k in range(1, 17)]


def strip(steps=STEPS, **changes) -> dict:
    data = study(**{"material": {"law": J2_LAW}, "steps": steps, **changes})
    data["solver"] = {"newton": {"rtol": 1e-12}}
    return data


def fe2(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([FE2, *map(str, args)], env=ENV, capture_output=True, text=True, timeout=600, **kwargs)


@pytest.fixture
def fe2_here(capfd, monkeypatch):
    """`fe2 ARGS` in this process (faster than a new one), its output captured at the file
    descriptors (HDF5 would print there); returns a CompletedProcess."""
    from fe2.cli import main

    def call(*args, cwd=None) -> subprocess.CompletedProcess:
        capfd.readouterr()
        with monkeypatch.context() as patch:
            if cwd is not None:
                patch.chdir(cwd)
            code = main([str(a) for a in args])
        out, err = capfd.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)

    return call


def start(*args) -> subprocess.Popen:
    return subprocess.Popen([FE2, *map(str, args)], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_rows(process, out: Path, rows: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        try:
            if len(history(out)) >= rows:
                return
        except (OSError, KeyError, ValueError):
            pass
        time.sleep(0.01)
    assert process.poll() is None, "the run ended first: " + process.stderr.read()


def assert_fields_of_every_step(out: Path, reference: Path, steps: int | None = None) -> None:
    """The series lists the first `steps` steps (all of the reference's by default); meshio and
    h5py read the same values, equal to the uninterrupted run's."""
    _, _, series = read_meshio(out / "fields.xdmf")
    _, _, expected = read_meshio(reference / "fields.xdmf")
    steps = len(expected) if steps is None else steps
    by_step = read_h5(out / "fields.xdmf")
    assert [t for t, _, _ in series] == [t for t, _, _ in expected[:steps]]
    assert sorted(by_step) == list(range(1, steps + 1))
    for k, ((t, u, c), (_, u_ref, c_ref)) in enumerate(zip(series, expected)):
        np.testing.assert_array_equal(by_step[k + 1]["displacement"], u["displacement"])
        np.testing.assert_allclose(u["displacement"], u_ref["displacement"], rtol=0, atol=1e-10)
        np.testing.assert_allclose(c["stress"][0], c_ref["stress"][0], rtol=0, atol=1e-10)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run of the strip (in this process)."""
    from fe2.config import load_run_config
    from fe2.macro.study import run_study

    tmp = tmp_path_factory.mktemp("reference")
    (tmp / "study.yaml").write_text(yaml.safe_dump(strip()))
    assert run_study(load_run_config(tmp / "study.yaml"), MPI.COMM_SELF, tmp / "whole")["status"] == "completed"
    return tmp / "whole"


def test_sigterm_and_sigint_at_random_moments_then_restart(tmp_path, reference):
    """SIGTERM (Slurm's time limit) or SIGINT at seeded random moments: exit code 3, one line,
    summary.json `interrupted`, readable fields of the steps done; --restart after each ends
    with the history and the fields of the uninterrupted run."""
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump(strip()))
    out = tmp_path / "out"
    rng = random.Random(20261129)
    for attempt, sig in enumerate([signal.SIGTERM, signal.SIGINT]):
        process = start("run", config, "-o", out, "-q", *(["--restart"] if attempt else []))
        rows = len(history(out)) if attempt else 0
        wait_for_rows(process, out, rows + rng.randint(1, 3))
        time.sleep(rng.uniform(0.0, 0.05))
        process.send_signal(sig)
        _, err = process.communicate(timeout=120)
        assert process.returncode == 3, err
        assert err.startswith("error:") and err.count("\n") == 1 and signal.Signals(sig).name in err, err
        assert "Traceback" not in err and "KeyboardInterrupt" not in err
        summary = json.loads((out / "summary.json").read_text())
        assert summary["status"] == "interrupted" and "--restart" in summary["resume"]
        done = read_meta(latest_checkpoint(out), MPI.COMM_SELF)["step"]
        assert done == summary["completed_steps"] or done == summary["completed_steps"] - 0
        assert_fields_of_every_step(out, reference, summary["completed_steps"])
        assert not list(out.rglob("*.tmp"))
        assert not (out / ".fe2.lock").exists()
    result = fe2("run", config, "-o", out, "--restart")
    assert result.returncode == 0, result.stderr
    assert_same_history(history(out), history(reference))
    assert_fields_of_every_step(out, reference)


def test_two_runs_on_one_directory(tmp_path, reference, fe2_here):
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump(strip()))
    out = tmp_path / "out"
    first = start("run", config, "-o", out, "-q")
    wait_for_rows(first, out, 1)
    first.send_signal(signal.SIGSTOP)  # holds the lock while the others try
    try:
        for flags in ([], ["--restart"], ["--overwrite"]):
            second = fe2_here("run", config, "-o", out, *flags)
            assert second.returncode == 2, second.stderr
            assert second.stderr.count("\n") == 1 and "Traceback" not in second.stderr
            assert ("in use by another fe2 run" in second.stderr) or (not flags and "exists" in second.stderr)
    finally:
        first.send_signal(signal.SIGCONT)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert_same_history(history(out), history(reference))
    assert not (out / ".fe2.lock").exists()


def test_a_moved_study_restarts_and_changed_inputs_are_refused_untouched(tmp_path, fe2_here):
    """Mesh paths relative to the study; the directory moved: the restart continues. A mesh
    file replaced at the same path (another content) or a changed generated macro mesh: exit 2,
    and no file of the output changes."""
    study_dir = tmp_path / "a"
    study_dir.mkdir()
    shutil.copy(Path(__file__).parents[1] / "meshes" / "inclusion_2d.msh", study_dir / "rve.msh")
    rve = {"mesh": {"file": "rve.msh"},
           "phases": {"matrix": {"tag": 1, "E": 3.5, "nu": 0.35}, "fibre": {"tag": 2, "E": 72.0, "nu": 0.22}}}
    full = strip(steps=[0.25, 0.5, 0.75, 1.0], material={"rve": rve})
    (study_dir / "part.yaml").write_text(yaml.safe_dump({**full, "steps": [0.25, 0.5]}))
    (study_dir / "full.yaml").write_text(yaml.safe_dump(full))
    assert fe2_here("run", "part.yaml", "-o", "out", cwd=study_dir).returncode == 0
    moved = tmp_path / "b"
    study_dir.rename(moved)
    result = fe2_here("run", "full.yaml", "-o", "out", "--restart", cwd=moved)
    assert result.returncode == 0, result.stderr
    assert json.loads((moved / "out" / "summary.json").read_text())["restarted_after_step"] == 2
    # the RVE mesh replaced by another one at the same path
    (moved / "more.yaml").write_text(yaml.safe_dump({**full, "steps": [0.25, 0.5, 0.75, 1.0, 1.25]}))
    from fe2.meshing.specs import parse_mesh_spec

    parse_mesh_spec({"type": "inclusion_2d", "volume_fraction": 0.3, "mesh_size": 0.2}).generate(moved / "rve.msh")
    before = snapshot(moved / "out")
    result = fe2_here("run", "more.yaml", "-o", "out", "--restart", cwd=moved)
    assert result.returncode == 2 and "material differ" in result.stderr and "Traceback" not in result.stderr
    assert snapshot(moved / "out") == before
    # a generated macro mesh changed: refused before macro.msh is rewritten
    generated = strip(steps=[0.5, 1.0])
    (tmp_path / "gen.yaml").write_text(yaml.safe_dump(generated))
    assert fe2_here("run", tmp_path / "gen.yaml", "-o", tmp_path / "gen").returncode == 0
    generated["macro"]["mesh"]["generate"]["cells_x"] = 6
    generated["steps"] = [0.5, 1.0, 1.5]
    (tmp_path / "gen.yaml").write_text(yaml.safe_dump(generated))
    before = snapshot(tmp_path / "gen")
    result = fe2_here("run", tmp_path / "gen.yaml", "-o", tmp_path / "gen", "--restart")
    assert result.returncode == 2 and "macro differ" in result.stderr
    assert snapshot(tmp_path / "gen") == before


@pytest.fixture
def tmpfs(tmp_path):
    """A small tmpfs (root only; skipped where it cannot be mounted)."""
    mount = tmp_path / "mnt"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def assert_one_line_naming(result, path, code=4):
    assert result.returncode == code, result.stderr
    assert result.stderr.startswith("error:") and result.stderr.count("\n") == 1, result.stderr
    assert str(path) in result.stderr and "Traceback" not in result.stderr and "HDF5" not in result.stderr


def test_output_path_that_is_a_file_and_read_only_output(tmp_path, tmpfs, fe2_here):
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump(strip(steps=STEPS[:2])))
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert_one_line_naming(fe2_here("run", config, "-o", a_file), a_file, code=2)
    out = tmpfs / "out"
    assert fe2_here("run", config, "-o", out).returncode == 0  # two steps, then read-only
    assert subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)]).returncode == 0
    before = snapshot(out)
    config.write_text(yaml.safe_dump(strip()))
    assert_one_line_naming(fe2_here("run", config, "-o", out, "--restart"), out)
    assert_one_line_naming(fe2_here("run", config, "-o", tmpfs / "new"), tmpfs / "new")
    assert snapshot(out) == before


def test_full_disk_mid_run(tmp_path, tmpfs, reference, fe2_here):
    """The file system fills up during a run: exit 4, one line naming the path, no temporary
    file left, the previous checkpoint valid; with space again, --restart ends as if nothing
    had happened."""
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump(strip()))
    out = tmpfs / "out"
    filler = tmpfs / "filler"
    with open(filler, "wb") as fh:  # leave about 120 kB: a few steps fit, not all 16
        fh.write(b"\0" * (2 * 1024 * 1024 - 120 * 1024))
    result = fe2_here("run", config, "-o", out)
    assert_one_line_naming(result, out)
    assert "No space left" in result.stderr
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]
    done = read_meta(latest_checkpoint(out), MPI.COMM_SELF)["step"]
    assert 1 <= done < len(STEPS)
    assert json.loads((out / "summary.json").read_text())["status"] == "failed"
    filler.unlink()
    result = fe2_here("run", config, "-o", out, "--restart")
    assert result.returncode == 0, result.stderr
    assert_same_history(history(out), history(reference))
    assert_fields_of_every_step(out, reference)


def test_homogenize_into_a_read_only_or_full_file_system(tmp_path, tmpfs, fe2_here):
    """`fe2 homogenize` (a load path: JSON, CSV and DOLFINx XDMF files): one line naming the
    output, exit 4, no HDF5 diagnostics, no temporary file."""
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump({
        "physics": "elasticity", "mesh": {"file": str(Path(__file__).parents[1] / "meshes" / "inclusion_2d.msh")},
        "phases": {"matrix": {"tag": 1, "law": "j2", "E": 3.5, "nu": 0.35, "sigma_y": 0.06},
                   "fibre": {"tag": 2, "E": 72.0, "nu": 0.22}},
        "load_path": {"strain": [[0.01, 0.0], [0.0, 0.0]], "steps": 2},
    }))
    with open(tmpfs / "filler", "wb") as fh:  # leave 8 kB: the CSV fits, the fields do not
        fh.write(b"\0" * (2 * 1024 * 1024 - 8 * 1024))
    out = tmpfs / "out"
    assert_one_line_naming(fe2_here("homogenize", config, "-o", out), out)
    assert not [p for p in tmpfs.rglob("*") if "tmp" in p.name]
    (tmpfs / "filler").unlink()
    assert subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)]).returncode == 0
    assert_one_line_naming(fe2_here("homogenize", config, "-o", tmpfs / "other"), tmpfs / "other")
