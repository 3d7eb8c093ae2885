"""Benchmark: the FE² plate (configs/plate_fe2.yaml) on 1 and N ranks, balancing off/static/dynamic.

    mpiexec -n 2 python benchmarks/fe2_parallel.py [--config ...] [--modes off static dynamic]

In one process: the 1-rank baseline (rank 0 on COMM_SELF, the others wait), then the study on
all ranks for each balancing mode. Prints wall time, speed-up and parallel efficiency against
the baseline, the RVE work per rank over the run (max/mean) and the mean of the per-step
imbalances of history.csv, and checks that every run gives the baseline's reactions.
"""

from __future__ import annotations

import argparse
import csv
import logging
import tempfile
from pathlib import Path

import fe2  # noqa: F401
import numpy as np
from mpi4py import MPI

from fe2.config import load_run_config
from fe2.macro.study import run_study

REPO = Path(__file__).resolve().parents[1]


def run(config, comm, directory: Path, balancing: str) -> tuple[dict, list[dict]]:
    config = config.model_copy(update={"parallel": config.parallel.model_copy(update={"balancing": balancing})})
    summary = run_study(config, comm, directory)
    rows = list(csv.DictReader(open(directory / "history.csv"))) if comm.rank == 0 else []
    return summary, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "configs" / "plate_fe2.yaml"))
    parser.add_argument("--modes", nargs="+", default=["off", "static", "dynamic"])
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    comm = MPI.COMM_WORLD
    config = load_run_config(args.config)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(comm.bcast(tmp if comm.rank == 0 else None))
        baseline = None
        if comm.rank == 0:
            baseline, _ = run(config, MPI.COMM_SELF, root / "serial", "off")
        baseline = comm.bcast(baseline)
        t1 = baseline["wall_time"]
        if comm.rank == 0:
            print(f"{args.config}: {baseline['macro']['quadrature_points']} macro points, "
                  f"{baseline['rve']['solves']} RVE solves; 1 rank: {t1:.1f} s")
            print(f"{'ranks':>5} {'balancing':>9} {'wall [s]':>9} {'speed-up':>9} {'efficiency':>10} "
                  f"{'work max/mean':>13} {'mean step imbalance':>19} {'reactions = 1 rank':>18}")
        for mode in args.modes:
            summary, rows = run(config, comm, root / mode, mode)
            if comm.rank == 0:
                tp = summary["wall_time"]
                step_imbalance = np.mean([float(r["imbalance"]) for r in rows])
                same = all(
                    np.allclose(summary["final_reactions"][k], v, rtol=1e-8, atol=1e-12)
                    for k, v in baseline["final_reactions"].items()
                )
                print(f"{comm.size:>5} {mode:>9} {tp:>9.1f} {t1 / tp:>9.2f} {t1 / (comm.size * tp):>10.0%} "
                      f"{summary['rve']['work_imbalance']:>13.3f} {step_imbalance:>19.3f} {str(same):>18}", flush=True)


if __name__ == "__main__":
    main()
