"""Checkpoint / restart of `fe2 run`: the restarted answer is the uninterrupted one.

References are uninterrupted runs of the same study (independent computations). The studies
use tight Newton tolerances so that runs on other rank counts agree to 1e-10.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from mpi4py import MPI

from fe2.config import load_run_config
from fe2.macro import checkpoint as checkpoint_module
from fe2.macro.checkpoint import latest_checkpoint
from fe2.macro.study import run_study
from fe2.meshing.macro import generate_macro_mesh
from field_files import assert_same_series, read_h5, read_meshio
from test_run import J2_LAW, RVE, STRIP, history, run, study

comm = MPI.COMM_WORLD
FULL = [0.25, 0.5, 0.75, 1.0]
#: history.csv columns that must agree (times and the balancing figures may not).
TIMING = {"seconds", "imbalance", "moved_points"}


def plastic_rve() -> dict:
    rve = json.loads(json.dumps(RVE))
    rve["phases"]["matrix"].update(law="j2", sigma_y=0.06, H=0.3)
    rve["solver"] = {"newton": {"rtol": 1e-12}}
    return rve


SOURCES = {
    "j2 law": {"law": J2_LAW},
    "phases": {"phases": {"all": {**J2_LAW, "tag": 1}}},
    "fe2": {"rve": plastic_rve()},
}


def fe2_study(steps, **changes) -> dict:
    data = study(material=SOURCES["fe2"], steps=steps, **changes)
    data["macro"]["mesh"]["generate"].update(cells_x=2, cells_y=1)
    data["solver"]["newton"]["rtol"] = 1e-12
    return data


def assert_same_history(rows, reference, *, rtol=1e-10, same_ranks=True):
    """Equal numbers in every column but the timings; across rank counts the final residual
    norms (round-off) are not compared."""
    assert len(rows) == len(reference)
    skip = TIMING | {"residual_norms"} | (set() if same_ranks else {"residual_norm"})
    scales = {
        kind: max((abs(float(v)) for r in reference for k, v in r.items() if k.startswith(kind)), default=0.0)
        for kind in ("reaction_", "displacement_")
    }
    for row, ref in zip(rows, reference):
        assert set(row) == set(ref)
        for key in set(ref) - skip:
            kind = next((k for k in scales if key.startswith(k)), None)
            if kind is not None:  # forces and displacements: relative to their largest value
                assert float(row[key]) == pytest.approx(float(ref[key]), rel=rtol, abs=rtol * scales[kind]), key
            else:
                assert float(row[key]) == pytest.approx(float(ref[key]), rel=rtol, abs=0), key


def assert_one_series_per_probe(out: Path, names: list[str]) -> None:
    """The probe files of a run (any segments): rve_<name>.xdmf and rve_<name>/ per probe,
    no file of a segment (suffixed names)."""
    assert sorted(p.name for p in out.glob("rve_*")) == sorted(f"rve_{n}{s}" for n in names for s in ("", ".xdmf"))
    assert not [p for p in out.rglob("*") if "_from_step_" in p.name or "restart" in p.name]


def snapshot(directory: Path) -> dict:
    """Every file under a directory: (content, modification time)."""
    return {str(p.relative_to(directory)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_extending_a_finished_run_equals_the_uninterrupted_run(shared_tmp_path, source):
    """Run 2 of 4 load steps, then restart with all 4: history and final fields as if run at once."""
    if source == "fe2":
        data = fe2_study(FULL, output={"probes": {"p": [0.5, 0.5]}})
    else:
        data = study(material=SOURCES[source], steps=FULL)
    assert run(shared_tmp_path, data, out="whole")[0] == 0
    assert run(shared_tmp_path, {**data, "steps": FULL[:2]}, out="part")[0] == 0
    code, out = run(shared_tmp_path, data, "--restart", out="part")
    assert code == 0
    if comm.rank == 0:
        whole = history(shared_tmp_path / "whole")
        assert_same_history(history(out), whole)
        assert [r["residual_norms"] for r in history(out)] == [r["residual_norms"] for r in whole]
        summary = json.loads((out / "summary.json").read_text())
        assert summary["restarted_after_step"] == 2 and summary["status"] == "completed"
        assert summary["field_files"] == ["fields.xdmf"]
        assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-000004"]
        # one time series across both segments, equal to the uninterrupted run's at every step
        _, _, steps = read_meshio(out / "fields.xdmf")
        _, _, whole_steps = read_meshio(shared_tmp_path / "whole" / "fields.xdmf")
        assert [t for t, _, _ in steps] == FULL
        for (_, u, c), (_, u_ref, c_ref) in zip(steps, whole_steps):
            np.testing.assert_array_equal(u["displacement"], u_ref["displacement"])
            np.testing.assert_array_equal(c["stress"][0], c_ref["stress"][0])
        if source == "fe2":  # the probe's RVE fields continue the same series too
            assert summary["probes"]["p"]["file"] == "rve_p.xdmf"
            assert_same_series(out / "rve_p.xdmf", shared_tmp_path / "whole" / "rve_p.xdmf")
            assert_one_series_per_probe(out, ["p"])


def test_restart_on_another_number_of_ranks(shared_tmp_path):
    """N -> 1 and 1 -> N ranks (N = the ranks of this run): the one-rank uninterrupted answer."""
    tmp = shared_tmp_path
    config = tmp / "study.yaml"
    if comm.rank == 0:
        probes = {"output": {"probes": {"p": [1.2, 0.3]}}}
        config.write_text(yaml.safe_dump(fe2_study(FULL, **probes)))
        (tmp / "part.yaml").write_text(yaml.safe_dump(fe2_study(FULL[:2], **probes)))
    comm.barrier()
    whole, part = load_run_config(config), load_run_config(tmp / "part.yaml")
    if comm.rank == 0:
        reference = run_study(whole, MPI.COMM_SELF, tmp / "alone")
        run_study(part, MPI.COMM_SELF, tmp / "one_to_n")
    comm.barrier()
    run_study(whole, comm, tmp / "one_to_n", restart=True)
    run_study(part, comm, tmp / "n_to_one")
    error = ""
    if comm.rank == 0:  # checked here, asserted on every rank (no rank left in a collective)
        run_study(whole, MPI.COMM_SELF, tmp / "n_to_one", restart=True)
        try:
            for name in ("one_to_n", "n_to_one"):
                assert_same_history(history(tmp / name), history(tmp / "alone"), same_ranks=comm.size == 1)
                summary = json.loads((tmp / name / "summary.json").read_text())
                assert summary["restarted_after_step"] == 2
                scale = max(np.abs(f).max() for f in reference["final_reactions"].values())
                for boundary, force in reference["final_reactions"].items():
                    np.testing.assert_allclose(summary["final_reactions"][boundary], force, rtol=1e-10, atol=1e-10 * scale)
                # the probe's RVE fields: one series across the segments, as if run at once on one rank
                assert summary["probes"]["p"]["file"] == "rve_p.xdmf"
                np.testing.assert_allclose(summary["probes"]["p"]["point"], reference["probes"]["p"]["point"], atol=1e-12)
                assert_same_series(tmp / name / "rve_p.xdmf", tmp / "alone" / "rve_p.xdmf")
                assert_one_series_per_probe(tmp / name, ["p"])
        except AssertionError as exc:
            error = f"{name}: {exc}"
    error = comm.bcast(error)
    assert not error, error


class Killed(BaseException):
    """Stands for SIGKILL inside the process (nothing catches it)."""


@pytest.mark.parametrize("moment", ["writing a part", "before the rename"])
def test_a_checkpoint_interrupted_mid_write_is_never_used(tmp_path, monkeypatch, moment):
    """A run dies while writing the checkpoint of step 3: the restart uses step 2 and ends
    with the uninterrupted answer. Each rank runs its own one-rank study here."""
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump(study(material=SOURCES["j2 law"], steps=FULL)))
    config = load_run_config(config)
    reference = tmp_path / "whole"
    run_study(config, MPI.COMM_SELF, reference)
    out = tmp_path / "out"

    if moment == "writing a part":
        real = checkpoint_module._write_bytes

        def die_in_step_3(path, data):
            if ".step-000003.tmp" in str(path):
                real(path, data[: len(data) // 2])
                raise Killed
            real(path, data)

        monkeypatch.setattr(checkpoint_module, "_write_bytes", die_in_step_3)
    else:
        real_rename, calls = os.rename, []

        def die_at_step_3(source, target):  # the third checkpoint is written but not renamed
            calls.append(target)
            if len(calls) == 3:
                raise Killed
            real_rename(source, target)

        monkeypatch.setattr(checkpoint_module.os, "rename", die_at_step_3)
    with pytest.raises(Killed):
        run_study(config, MPI.COMM_SELF, out)
    monkeypatch.undo()
    assert (out / "checkpoints" / ".step-000003.tmp").is_dir()
    assert latest_checkpoint(out).name == "step-000002"
    summary = run_study(config, MPI.COMM_SELF, out, restart=True)
    assert summary["restarted_after_step"] == 2
    assert_same_history(history(out), history(reference))


def test_restart_errors_and_edge_cases(shared_tmp_path, capsys):
    data = study(material=SOURCES["j2 law"], steps=FULL)
    assert run(shared_tmp_path, data)[0] == 0
    # outputs with a checkpoint are not replaced silently
    assert run(shared_tmp_path, data)[0] == 2
    if comm.rank == 0:
        assert "pass --restart" in capsys.readouterr().err
    # another study in the same directory
    other = study(material={"law": {**J2_LAW, "sigma_y": 0.07}}, steps=FULL)
    assert run(shared_tmp_path, other, "--restart")[0] == 2
    if comm.rank == 0:
        err = capsys.readouterr().err
        assert "belongs to another study: material differ" in err and "Traceback" not in err
    # load factors that do not continue the finished ones
    assert run(shared_tmp_path, study(material=SOURCES["j2 law"], steps=[0.3, 1.0]), "--restart")[0] == 2
    if comm.rank == 0:
        assert "steps: the checkpoint" in capsys.readouterr().err
    # nothing left to do: every file stays as it is (content and modification time)
    before = snapshot(shared_tmp_path / "out") if comm.rank == 0 else None
    assert run(shared_tmp_path, data, "--restart")[0] == 0
    if comm.rank == 0:
        assert snapshot(shared_tmp_path / "out") == before
    # another mesh in the same file: refused by its content, naming the checkpoint
    mesh = shared_tmp_path / "strip.msh"
    generate_macro_mesh(STRIP["generate"], comm, directory=shared_tmp_path, filename="strip.msh")
    on_file = {**data, "macro": {"mesh": {"file": str(mesh)}}}
    assert run(shared_tmp_path, on_file, out="file")[0] == 0
    finer = {**STRIP["generate"], "cells_x": 5}
    generate_macro_mesh(finer, comm, directory=shared_tmp_path, filename="strip.msh")
    assert run(shared_tmp_path, {**on_file, "steps": FULL + [1.25]}, "--restart", out="file")[0] == 2
    if comm.rank == 0:
        err = capsys.readouterr().err
        assert "belongs to another study: macro differ" in err and "compared by content" in err, err
    # --restart without a checkpoint starts from the beginning
    code, fresh = run(shared_tmp_path, data, "--restart", out="fresh")
    assert code == 0
    if comm.rank == 0:
        assert "restarted_after_step" not in json.loads((fresh / "summary.json").read_text())
        assert_same_history(history(fresh), history(shared_tmp_path / "out"))


@pytest.mark.skipif(comm.size > 1, reason="spawns and kills the console script; serial only")
def test_kill_9_at_random_moments_then_restart(tmp_path):
    """SIGKILL at random moments of an FE² run with a probe (several times), `--restart` after
    each: the fields and the probe's RVE fields of the finished steps stay readable; the final
    history and probe series equal the uninterrupted run's."""
    fe2 = str(Path(sys.executable).with_name("fe2"))
    steps = [k / 8 for k in range(1, 9)]
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump(fe2_study(steps, output={"probes": {"p": [0.5, 0.5]}})))
    reference = run_study(load_run_config(config), MPI.COMM_SELF, tmp_path / "whole")
    assert reference["status"] == "completed"
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    rng = random.Random(20261121)
    resumed_from = []
    for attempt in range(3):
        args = [fe2, "run", str(config), "-o", str(out), "-q"] + (["--restart"] if attempt else [])
        process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # the moment: after a random number of completed steps, plus a random fraction of a step
        rows_before = len(history(out)) if (out / "history.csv").exists() and attempt else 0
        wait_rows = rows_before + rng.randint(1, 2)
        deadline = time.monotonic() + 300
        while process.poll() is None and time.monotonic() < deadline:
            if (out / "history.csv").exists() and len(history(out)) >= wait_rows:
                break
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.4))
        assert process.poll() is None, "the run ended before the kill: " + process.stderr.read().decode()
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert process.returncode == -signal.SIGKILL
        latest = latest_checkpoint(out)
        resumed_from.append(latest.name if latest else None)
        # the fields of every step in the index survive: complete, readable (meshio, h5py)
        for name in ("fields.xdmf", "rve_p.xdmf"):  # the probe's RVE fields too
            _, _, series = read_meshio(out / name)
            assert len(read_h5(out / name)) >= len(series) >= len(history(out)) - 1
        assert (out / ".fe2.lock").exists()  # left behind, stale: the restart takes it over
    result = subprocess.run([fe2, "run", str(config), "-o", str(out), "--restart"], env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "restart: continuing after step" in result.stdout and "stale lock" in result.stdout + result.stderr
    assert any(resumed_from)
    assert_same_history(history(out), history(tmp_path / "whole"))
    _, _, series = read_meshio(out / "fields.xdmf")
    _, _, whole = read_meshio(tmp_path / "whole" / "fields.xdmf")
    assert [t for t, _, _ in series] == [t for t, _, _ in whole] == steps
    for (_, u, _), (_, u_ref, _) in zip(series, whole):
        np.testing.assert_allclose(u["displacement"], u_ref["displacement"], rtol=0, atol=1e-10)
    assert_same_series(out / "rve_p.xdmf", tmp_path / "whole" / "rve_p.xdmf")
    assert_one_series_per_probe(out, ["p"])


@pytest.mark.skipif(comm.size > 1, reason="spawns the Slurm script; serial only")
def test_slurm_script_requeues_near_the_time_limit_and_resumes(tmp_path):
    """The batch script, run by bash with a Slurm-like environment and a recording `scontrol`:
    USR1 (time limit near) stops the run cleanly (SIGTERM, exit code 3) and requeues the job;
    the requeued job (same job id, so the same output) resumes from the checkpoint and ends
    with the uninterrupted answer."""
    repo = Path(__file__).resolve().parents[1]
    submit = tmp_path / "submit"
    (submit / "bin").mkdir(parents=True)
    (submit / ".venv").symlink_to(Path(sys.executable).parents[1])
    calls = tmp_path / "scontrol.log"
    scontrol = submit / "bin" / "scontrol"
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    scontrol.chmod(0o755)
    steps = [k / 8 for k in range(1, 9)]
    (submit / "study.yaml").write_text(yaml.safe_dump(fe2_study(steps)))
    run_study(load_run_config(submit / "study.yaml"), MPI.COMM_SELF, tmp_path / "whole")
    env = {**os.environ, "PATH": f"{submit / 'bin'}:{os.environ['PATH']}", "SLURM_JOB_ID": "4242",
           "SLURM_NTASKS": "1", "SLURM_SUBMIT_DIR": str(submit)}
    script = [str(repo / "scripts" / "slurm" / "fe2_run.sbatch"), "study.yaml"]
    job = subprocess.Popen(["bash", *script], env=env, cwd=submit, start_new_session=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = submit / "results" / "study-4242"
    deadline = time.monotonic() + 300
    while job.poll() is None and time.monotonic() < deadline:
        if (out / "history.csv").exists() and len(history(out)) >= 2:
            break
        time.sleep(0.02)
    assert job.poll() is None, job.stdout.read()
    job.send_signal(signal.SIGUSR1)  # Slurm's --signal=B:USR1@300
    output, _ = job.communicate(timeout=120)  # the run stops cleanly, then the job is requeued
    assert job.returncode == 3, output
    assert calls.read_text().split() == ["requeue", "4242"]
    assert json.loads((out / "summary.json").read_text())["status"] == "interrupted"
    assert latest_checkpoint(out) is not None
    again = subprocess.run(["bash", *script], env={**env, "SLURM_RESTART_COUNT": "1"}, cwd=submit,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "start 2 on 1 task(s)" in again.stdout and "restart: continuing after step" in again.stdout
    assert_same_history(history(out), history(tmp_path / "whole"))
