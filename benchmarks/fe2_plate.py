"""Benchmark: the shipped FE² plate-with-hole study (configs/plate_fe2.yaml).

Runs the study (serially, or under mpiexec) and prints: total wall time, macro Newton
iterations per step, RVE solves, mean time per RVE solve and mean RVE Newton iterations;
and, in the same process, the RVE floor: the bare PETSc numeric factorisation and solve of the
same constrained RVE matrix, combined into the least a solve with that many Newton iterations
costs: (iterations + 1) factorisations + (iterations + n) solves (Newton + sensitivity).

``--newton-variants`` runs the study with the macro Newton's consistent predictor and line
search switched on and off (all in this process) and prints macro iterations, RVE solves,
line-search trials, cut-backs and wall time of each, with ratios to the old Newton (no
predictor, no line search).

``--batches`` runs the study with the per-point RVE solver (``batch: off``) and the batched one
(``batch: auto``), in this process, and prints wall and CPU time (the CPU time of the ranks'
processes, summed: less sensitive than wall time to a shared machine), RVE solves, the mean
CPU time per RVE solve and the speed-up; the two runs' reactions must agree.

    [mpiexec -n 2] python benchmarks/fe2_plate.py [--config configs/plate_fe2.yaml] [--newton-variants | --batches]
"""

from __future__ import annotations

import argparse
import csv
import logging
import tempfile
import time
from pathlib import Path

import fe2  # noqa: F401
import numpy as np
from mpi4py import MPI

from fe2.config import load_run_config
from fe2.rve.mesh_source import load_rve_mesh
from fe2.macro.study import run_study
from fe2.rve.model import RveModel
from fe2.rve.factory import make_rve_solver
from fe2.rve.physics import make_physics
from fe2.rve.solver import DirectSolver

REPO = Path(__file__).resolve().parents[1]


def rve_floor(config, comm, repeat: int = 5) -> tuple[float, float, int]:
    """(numeric factorisation, one solve) of the RVE's constrained matrix, seconds; n."""
    rve = config.material.rve
    rve_mesh, _ = load_rve_mesh(rve.mesh, comm)
    model = RveModel(rve_mesh.mesh, rve_mesh.cell_tags, make_physics(config.physics, rve_mesh.dim),
                     {p.tag: p.material() for p in rve.phases.values()})
    solver = make_rve_solver(model, rve.bc, batch="off")
    E = np.zeros(model.physics.n_comp)
    E[0] = 0.01
    solver.solve(E, solver.initial_state())  # assembles and factorises K
    direct = DirectSolver(MPI.COMM_SELF, prefix="bench_rve_floor_")
    direct.factorize(solver.K)
    solver.r.set(1.0)
    factor, solve = [], []
    for _ in range(repeat):
        solver.K.assemble()  # values "changed": numeric refactorisation, symbolic kept
        t0 = time.perf_counter()
        direct.factorize(solver.K)
        factor.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        direct.solve(solver.r, solver.x)
        solve.append(time.perf_counter() - t0)
    direct.destroy()
    solver.destroy()
    return min(factor), min(solve), model.physics.n_comp


VARIANTS = [  # (predictor, line search)
    (False, "off"), (True, "off"), (False, "backtracking"), (True, "backtracking"), (True, "secant"),
]


def newton_variants(config, comm) -> None:
    """The study with each (predictor, line search) variant; one table row each."""
    rows = []
    for predictor, line_search in VARIANTS:
        solver = config.solver.model_copy(update={"predictor": predictor, "line_search": line_search})
        variant = config.model_copy(update={"solver": solver})
        with tempfile.TemporaryDirectory() as tmp:
            output = Path(comm.bcast(tmp if comm.rank == 0 else None))
            summary = run_study(variant, comm, output / "run")
            history = list(csv.DictReader(open(output / "run" / "history.csv"))) if comm.rank == 0 else []
            comm.barrier()
        trials = sum(int(r["line_search_trials"]) for r in history)
        per_step = " ".join(r["newton_iterations"] for r in history)
        rows.append((predictor, line_search, summary, trials, per_step))
    if comm.rank != 0:
        return
    base = rows[0][2]
    print(f"config: {config.macro.mesh}, {comm.size} rank(s)")
    print("| predictor | line search | macro Newton per step | macro iterations | RVE solves | "
          "line-search trials | cut-backs | wall [s] | iterations / old | RVE solves / old | wall / old |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for predictor, line_search, summary, trials, per_step in rows:
        print(f"| {'on' if predictor else 'off'} | {line_search} | {per_step} | {summary['newton_iterations']} | "
              f"{summary['rve_solves']} | {trials} | {summary['cutbacks']} | {summary['wall_time']:.1f} | "
              f"{summary['newton_iterations'] / base['newton_iterations']:.2f} | "
              f"{summary['rve_solves'] / base['rve_solves']:.2f} | {summary['wall_time'] / base['wall_time']:.2f} |")


def batches(config, comm) -> None:
    """The study with batch: off and batch: auto; one table row each."""
    rows = {}
    for batch in ("off", "auto"):
        rve = config.material.rve.model_copy(update={"batch": batch})
        variant = config.model_copy(update={"material": config.material.model_copy(update={"rve": rve})})
        with tempfile.TemporaryDirectory() as tmp:
            output = Path(comm.bcast(tmp if comm.rank == 0 else None))
            cpu = time.process_time()
            summary = run_study(variant, comm, output / "run")
            cpu = comm.allreduce(time.process_time() - cpu, op=MPI.SUM)
            comm.barrier()
        rows[batch] = (summary, cpu)
    if comm.rank != 0:
        return
    off, auto = rows["off"][0], rows["auto"][0]
    for name, forces in off["final_reactions"].items():
        assert np.allclose(forces, auto["final_reactions"][name], rtol=1e-9, atol=1e-12), name
    print(f"config: {config.macro.mesh}, {comm.size} rank(s), {off['macro']['quadrature_points']} macro points")
    print("| RVE solver | wall [s] | CPU [s] | RVE solves | CPU per RVE solve [ms] | speed-up (CPU) | speed-up (wall) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for batch in ("off", "auto"):
        summary, cpu = rows[batch]
        print(f"| {batch} | {summary['wall_time']:.1f} | {cpu:.1f} | {summary['rve_solves']} | "
              f"{1e3 * cpu / summary['rve_solves']:.2f} | {rows['off'][1] / cpu:.2f} | "
              f"{off['wall_time'] / summary['wall_time']:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "configs" / "plate_fe2.yaml"))
    parser.add_argument("--newton-variants", action="store_true",
                        help="compare the macro Newton with/without predictor and line search")
    parser.add_argument("--batches", action="store_true",
                        help="compare the per-point and the batched RVE solver")
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    logging.basicConfig(level=logging.WARNING)
    config = load_run_config(args.config)
    if args.newton_variants:
        newton_variants(config, comm)
        return
    if args.batches:
        batches(config, comm)
        return
    with tempfile.TemporaryDirectory() as tmp:
        output = Path(comm.bcast(tmp if comm.rank == 0 else None))
        summary = run_study(config, comm, output / "run")
        rows = list(csv.DictReader(open(output / "run" / "history.csv"))) if comm.rank == 0 else []
        comm.barrier()
    factor, solve, n = rve_floor(config, comm)
    if comm.rank != 0:
        return
    rve = summary["rve"]
    iterations = rve["mean_newton_iterations"]
    floor = (iterations + 1) * factor + (iterations + n) * solve
    per_step = " ".join(r["newton_iterations"] for r in rows)
    print(f"config: {args.config}, {comm.size} rank(s), {summary['macro']['quadrature_points']} macro points")
    print(f"total wall time           {summary['wall_time']:.1f} s")
    print(f"macro Newton per step     {per_step}")
    print(f"RVE solves                {rve['solves']} ({rve['seconds']:.1f} s of RVE work, summed over ranks)")
    print(f"mean RVE solve            {1e3 * rve['mean_seconds_per_solve']:.2f} ms, "
          f"{iterations:.2f} RVE Newton iterations")
    print(f"RVE floor                 {1e3 * floor:.2f} ms "
          f"(factorisation {1e3 * factor:.2f} ms, solve {1e3 * solve:.3f} ms)")
    print(f"ratio to the floor        {rve['mean_seconds_per_solve'] / floor:.2f}")


if __name__ == "__main__":
    main()
