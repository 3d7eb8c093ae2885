"""Benchmark: the macro Newton on the J2 strip of issue 11, predictor and line search on/off.

A strip [0, 2] x [0, 1] (P1 triangles), clamped on the left, its right end moved by
(0.02, 0.02) in N equal steps; closed-form J2 (E = 1, nu = 0.3, sigma_y = 0.005, H = 0.1).
For each variant (consistent predictor on/off; line search off/backtracking/secant) it prints
the macro Newton iterations, the material-point evaluations (what an FE² run pays in RVE
solves), the line-search trials and the cut-backs, and the ratios to the old Newton
(no predictor, no line search), all in this process.

    python benchmarks/macro_newton.py [--cells 8x4 32x16] [--steps 4 1]
"""

from __future__ import annotations

import argparse
import time

import fe2  # noqa: F401
import numpy as np
from dolfinx import mesh as dmesh
from mpi4py import MPI

from fe2.macro.problem import Dirichlet, MacroProblem
from fe2.macro.stepping import run_load_steps
from fe2.errors import ComputationError
from fe2.materials import J2Plasticity
from fe2.materials.points import LawPoints
from fe2.rve.micro_solver import NewtonOptions
from fe2.rve.physics import make_physics

VARIANTS = [(False, "off"), (True, "off"), (False, "backtracking"), (False, "secant"),
            (True, "backtracking"), (True, "secant")]


def run(cells, steps, predictor, line_search, comm):
    domain = dmesh.create_rectangle(comm, [[0.0, 0.0], [2.0, 1.0]], list(cells))
    left = dmesh.locate_entities_boundary(domain, 1, lambda x: np.isclose(x[0], 0.0))
    right = dmesh.locate_entities_boundary(domain, 1, lambda x: np.isclose(x[0], 2.0))
    law = J2Plasticity(E=1.0, nu=0.3, sigma_y=0.005, H=0.1)
    problem = MacroProblem(
        domain, make_physics("elasticity", 2), 1, lambda m: LawPoints(law, m, dim=2, n_comp=3),
        dirichlet=[Dirichlet("left", left, None, 0.0), Dirichlet("right", right, None, (0.02, 0.02))],
        newton=NewtonOptions(rtol=1e-10, max_iterations=25), predictor=predictor, line_search=line_search,
    )
    t0 = time.perf_counter()
    try:
        records = run_load_steps(problem, [(k + 1) / steps for k in range(steps)], max_cutbacks=12)
        failed = ""
    except ComputationError as exc:
        records, failed = [], str(exc)
    seconds = time.perf_counter() - t0
    points = comm.allreduce(problem.num_points, op=MPI.SUM)
    problem.destroy()
    return {
        "per_step": " ".join(str(r.newton_iterations) for r in records) or "failed",
        "iterations": sum(r.newton_iterations for r in records),
        "evaluations": sum(r.point_evaluations for r in records) // max(points, 1),
        "trials": sum(r.line_search_trials for r in records),
        "cutbacks": sum(r.cutbacks for r in records),
        "seconds": seconds, "failed": failed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", nargs="+", default=["8x4", "32x16"])
    parser.add_argument("--steps", nargs="+", type=int, default=[4, 1])
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    if comm.rank == 0:
        print("| cells | steps | predictor | line search | Newton per step | iterations | evaluations | "
              "line-search trials | cut-backs | iterations / old | evaluations / old |")
        print("|---|---:|---|---|---|---:|---:|---:|---:|---:|---:|")
    for cells in args.cells:
        shape = tuple(int(n) for n in cells.split("x"))
        for steps in args.steps:
            base = None
            for predictor, line_search in VARIANTS:
                r = run(shape, steps, predictor, line_search, comm)
                base = base or r
                if comm.rank == 0:
                    print(f"| {cells} | {steps} | {'on' if predictor else 'off'} | {line_search} | {r['per_step']} | "
                          f"{r['iterations']} | {r['evaluations']} | {r['trials']} | {r['cutbacks']} | "
                          f"{r['iterations'] / base['iterations']:.2f} | {r['evaluations'] / base['evaluations']:.2f} |")


if __name__ == "__main__":
    main()
