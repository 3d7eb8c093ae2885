"""Benchmark: the RVE-size study (configs/rve_size_2d.yaml) on 1 and N ranks.

    mpiexec -n 2 python benchmarks/rve_size.py [--config ...] [--realisations R] [--repeat 2]

In one process: the study on rank 0 alone (``MPI.COMM_SELF``; the other ranks wait), then on
all ranks, each from scratch in a fresh directory (no finished task reused), best of
``--repeat``. Prints the wall times, the speed-up and parallel efficiency against the 1-rank
run, tensors (apparent tensors) per second, the RVE work per rank (max/mean: the quality of
the static cost-based assignment), and checks that both runs give the same tensors.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import fe2  # noqa: F401
import numpy as np
from mpi4py import MPI

from fe2.config.rve_size import load_rve_size_config
from fe2.homogenization.rve_size import run_rve_size_study

REPO = Path(__file__).resolve().parents[1]


def timed(config, comm, root: Path, repeat: int):
    best = None
    for i in range(repeat):
        result = run_rve_size_study(config, bcs=config.rve_size.bcs, comm=comm, output=root / f"run{i}")
        if best is None or result.tasks["wall_time"] < best.tasks["wall_time"]:
            best = result
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "configs" / "rve_size_2d.yaml"))
    parser.add_argument("--realisations", type=int, help="override rve_size.realisations")
    parser.add_argument("--repeat", type=int, default=1, help="best of this many runs per rank count")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    comm = MPI.COMM_WORLD
    config = load_rve_size_config(args.config)
    if args.realisations:
        options = config.rve_size.model_copy(update={"realisations": args.realisations})
        config = config.model_copy(update={"rve_size": options})
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(comm.bcast(tmp if comm.rank == 0 else None))
        serial = timed(config, MPI.COMM_SELF, root / "serial", args.repeat) if comm.rank == 0 else None
        serial = comm.bcast(serial)
        parallel = timed(config, comm, root / "parallel", args.repeat)
    if comm.rank != 0:
        return
    t1, tp = serial.tasks["wall_time"], parallel.tasks["wall_time"]
    tensors = serial.tasks["tensors"]
    same = all(np.array_equal(a.tensor, b.tensor) for a, b in zip(serial.samples, parallel.samples, strict=True))
    work = np.array(parallel.tasks["seconds_per_rank"])
    options = config.rve_size
    print(f"{args.config}: sizes {options.sizes}, {options.realisations} realisations, BCs "
          f"{', '.join(options.bcs)}: {tensors} tensors")
    print(f"{'ranks':>5} {'wall [s]':>9} {'tensors/s':>10} {'speed-up':>9} {'efficiency':>10} "
          f"{'work max/mean':>13} {'same tensors':>12}")
    print(f"{1:>5} {t1:>9.1f} {tensors / t1:>10.2f} {1.0:>9.2f} {1.0:>10.0%} {1.0:>13.3f} {'-':>12}")
    print(f"{comm.size:>5} {tp:>9.1f} {tensors / tp:>10.2f} {t1 / tp:>9.2f} {t1 / (comm.size * tp):>10.0%} "
          f"{work.max() / work.mean():>13.3f} {str(same):>12}", flush=True)


if __name__ == "__main__":
    main()
