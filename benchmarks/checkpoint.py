"""Benchmark: the cost of checkpoints on the shipped FE² plate study (configs/plate_fe2.yaml).

In one process: the study without checkpoints, then with a checkpoint after every step, then
a restart from the checkpoint of the half-way step. Prints the time and size of one checkpoint
write (mean over the steps) against the mean time of a load step, the overhead of the whole
run, and the time to restore a checkpoint against the set-up of a fresh run.

    [mpiexec -n 2] python benchmarks/checkpoint.py [--config configs/plate_fe2.yaml]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import fe2  # noqa: F401
from mpi4py import MPI

from fe2.config import load_run_config
from fe2.macro import checkpoint, resume, study

REPO = Path(__file__).resolve().parents[1]


def timed(module, name: str, log: list[float]):
    """Wrap module.name so that every call's wall time is appended to ``log``."""
    function = getattr(module, name)

    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        result = function(*args, **kwargs)
        log.append(time.perf_counter() - t0)
        return result

    setattr(module, name, wrapper)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "plate_fe2.yaml"))
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    logging.basicConfig(level=logging.WARNING)
    config = load_run_config(args.config)
    targets = config.times
    half = config.model_copy(update={"steps": targets[: len(targets) // 2]})
    writes, restores = [], []
    timed(study, "write_checkpoint", writes)
    timed(resume, "restore_checkpoint", restores)
    with tempfile.TemporaryDirectory(prefix="fe2-bench-") as tmp:
        tmp = Path(comm.bcast(tmp))
        off = config.model_copy(update={"checkpoint": config.checkpoint.model_copy(update={"every": 0})})
        comm.barrier()
        t0 = time.perf_counter()
        plain = study.run_study(off, comm, tmp / "off")
        t_off = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
        t0 = time.perf_counter()
        study.run_study(config, comm, tmp / "on")
        t_on = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
        size = sum(f.stat().st_size for f in checkpoint.latest_checkpoint(tmp / "on").iterdir()) if comm.rank == 0 else 0
        study.run_study(half, comm, tmp / "restart")
        writes.clear()
        t0 = time.perf_counter()
        study.run_study(config, comm, tmp / "restart", restart=True)
        t_restart = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    if comm.rank == 0:
        step = t_off / len(targets)
        write = sum(writes) / len(writes)
        print(f"plate FE² study, {comm.size} rank(s), {plain['macro']['quadrature_points']} RVE points, "
              f"{len(targets)} steps")
        print(f"run without checkpoints     {t_off:8.2f} s   (mean load step {step:.3f} s)")
        print(f"run, checkpoint every step  {t_on:8.2f} s   overhead {100 * (t_on - t_off) / t_off:+.1f} %")
        print(f"one checkpoint write        {write:8.3f} s   = {write / step:.3f} load steps; "
              f"{size / 2**20:.1f} MiB")
        print(f"restore of a checkpoint     {restores[-1]:8.3f} s   (the restarted half took {t_restart:.2f} s)")


if __name__ == "__main__":
    main()
