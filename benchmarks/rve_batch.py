"""Benchmark: RVE solves per second, batched vs per point, against the linear-algebra floor.

For RVEs of several sizes (2D: J2 matrix + elastic inclusion; 3D: the same with a sphere;
periodic BC), m material points follow a plastic strain path (random directions, magnitudes
spread so that some points stay elastic and others yield), one evaluate + commit per step,
in one process:

* per point: ``batch: off`` (DOLFINx assembly + MUMPS LU per point);
* batched: ``batch: auto``;
* floor: the factorisation + solves of the same stack of matrices (the tangent systems of the
  converged states of the last step), with the batched path's own linear solver (the batched
  Cholesky, or MUMPS per point for large factors) and with MUMPS per point, scaled
  to the work the batched path did: one factorisation per Newton iteration and one at the
  converged state (sensitivity), one solve per Newton iteration and n for the sensitivity.

Times are CPU seconds of the process (``time.process_time``): on a shared machine they depend
far less on the neighbours than wall time.

    python benchmarks/rve_batch.py [--quick] [--sizes 2d-500 2d-2k ...]
    python benchmarks/rve_batch.py --crossover [--sizes 2d-10k 3d-5k ...]

``--crossover``: per size, one factorisation + n solves per matrix of a stack of virgin
tangent systems, by the batched Cholesky and by PETSc LU point by point (both forced), with
the factorisation's multiply-adds: where ``CHOLESKY_LIMIT`` of
:mod:`fe2.rve.constrained_systems` belongs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
import tempfile

import fe2  # noqa: F401
import fe2.rve.constrained_systems as systems
import numpy as np
from mpi4py import MPI

from fe2.materials import J2Plasticity, LinearElastic
from fe2.meshing.io import read_rve_mesh
from fe2.meshing.specs import parse_mesh_spec
from fe2.rve.factory import make_rve_solver
from fe2.rve.model import RveModel
from fe2.physics import make_physics
from fe2.rve.pool import RvePool
from fe2.rve.solver import DirectSolver

PHASES = {1: J2Plasticity(E=3.5, nu=0.35, sigma_y=0.06, H=0.3), 2: LinearElastic(E=72.0, nu=0.22)}
#: name -> (mesh spec, points, steps)
CASES = {
    "2d-500": ({"type": "inclusion_2d", "volume_fraction": 0.3, "mesh_size": 0.07}, 128, 4),
    "2d-2k": ({"type": "inclusion_2d", "volume_fraction": 0.3, "mesh_size": 0.035}, 64, 4),
    "2d-10k": ({"type": "inclusion_2d", "volume_fraction": 0.3, "mesh_size": 0.016}, 24, 3),
    "2d-50k": ({"type": "inclusion_2d", "volume_fraction": 0.3, "mesh_size": 0.0072}, 6, 3),
    "3d-5k": ({"type": "inclusion_3d", "volume_fraction": 0.2, "mesh_size": 0.13}, 24, 3),
    "3d-30k": ({"type": "inclusion_3d", "volume_fraction": 0.2, "mesh_size": 0.07}, 6, 3),
}


def strain_path(dim: int, points: int, steps: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    n = 3 if dim == 2 else 6
    directions = rng.standard_normal((points, n))
    directions /= np.linalg.norm(directions, axis=1)[:, None]
    final = directions * np.linspace(0.002, 0.03, points)[:, None]  # elastic ... strongly plastic
    return [final * (s + 1) / steps for s in range(steps)]


#: The clock: CPU time of this process (the numerics are single-threaded; on a shared machine
#: wall time measures the neighbours as much as fe2).
clock = time.process_time


def run(solver, path) -> tuple[float, RvePool]:
    pool = RvePool(solver, len(path[0]))
    t0 = clock()
    for E in path:
        pool.evaluate(E)
        pool.commit()
    return clock() - t0, pool


def floors(model, pool: RvePool, E: np.ndarray, n: int) -> dict[str, float]:
    """Seconds of one factorisation and of one solve per matrix: batched Cholesky on the stack
    of the tangent systems of the last step's states (macro strains E), and MUMPS on one."""
    batched = make_rve_solver(model, "periodic")
    states = [pool.state(i) for i in range(pool.num_points)]
    cells = batched.cells  # the batched solver's cell order (by phase)
    strain = E[:, None, None, :] + cells.operators.strain(np.array([s.w for s in states]))
    history = model.stack([s.history for s in states])
    tangent = cells.constitutive_update(strain, history).tangent
    system = batched.system
    best = {"factorize": np.inf, "solve": np.inf}
    for _ in range(3):
        t0 = clock()
        factor = system.linear.factorize(system.assemble_matrix(tangent, dV=cells.dV), interleaved=True)
        best["factorize"] = min(best["factorize"], (clock() - t0) / len(states))
        rhs = np.ones((len(states), n, system.linear.n))
        t0 = clock()
        factor.solve(rhs)
        best["solve"] = min(best["solve"], (clock() - t0) / (len(states) * n))
    # MUMPS on one matrix of the stack (the per-point floor).
    reference = make_rve_solver(model, "periodic", batch="off")
    reference.solve(E[-1], states[-1])
    K = reference.K
    direct = DirectSolver(MPI.COMM_SELF, prefix="bench_rve_batch_")
    direct.factorize(K)
    x, b = K.createVecRight(), K.createVecLeft()
    b.set(1.0)
    mumps_f, mumps_s = np.inf, np.inf
    for _ in range(5):
        K.assemble()
        t0 = clock()
        direct.factorize(K)
        mumps_f = min(mumps_f, clock() - t0)
        t0 = clock()
        direct.solve(b, x)
        mumps_s = min(mumps_s, clock() - t0)
    direct.destroy()
    reference.destroy()
    return {"batched_factorize": best["factorize"], "batched_solve": best["solve"],
            "mumps_factorize": mumps_f, "mumps_solve": mumps_s}


#: --crossover: name -> (mesh spec, matrices in the stack)
CROSSOVER = {
    "2d-2k": (CASES["2d-2k"][0], 16),
    "2d-5k": ({"type": "inclusion_2d", "volume_fraction": 0.3, "mesh_size": 0.023}, 12),
    "2d-10k": (CASES["2d-10k"][0], 8),
    "2d-20k": ({"type": "inclusion_2d", "volume_fraction": 0.3, "mesh_size": 0.0113}, 4),
    "3d-1k": ({"type": "inclusion_3d", "volume_fraction": 0.2, "mesh_size": 0.2}, 16),
    "3d-5k": (CASES["3d-5k"][0], 8),
    "3d-10k": ({"type": "inclusion_3d", "volume_fraction": 0.2, "mesh_size": 0.09}, 3),
}


def crossover(model, P: int) -> tuple[float, dict[str, float]]:
    """(multiply-adds of one Cholesky factorisation, {solver: seconds of one factorisation +
    n solves per matrix}) for P virgin tangent systems, both solvers forced."""
    n, limit, out, flops = model.physics.n_comp, systems.CHOLESKY_LIMIT, {}, 0.0
    try:
        for name, forced in (("cholesky", float("inf")), ("lu", -1)):
            systems.CHOLESKY_LIMIT = forced
            solver = make_rve_solver(model, "periodic")
            cells, system = solver.cells, solver.system
            flops = getattr(system.linear, "flops", flops)
            strain = np.zeros((P, *cells.dV.shape, n))
            tangent = cells.constitutive_update(strain, model.stack([model.initial_history()] * P)).tangent
            best = np.inf
            for _ in range(3):
                t0 = clock()
                factor = system.linear.factorize(system.assemble_matrix(tangent, dV=cells.dV), interleaved=True)
                factor.solve(np.ones((P, n, system.linear.n)))
                best = min(best, (clock() - t0) / P)
            out[name] = best
    finally:
        systems.CHOLESKY_LIMIT = limit
    return flops, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="*", choices=sorted(set(CASES) | set(CROSSOVER)),
                        help="default: all of the mode's sizes")
    parser.add_argument("--quick", action="store_true", help="fewer points (a smoke test)")
    parser.add_argument("--crossover", action="store_true",
                        help="batched Cholesky vs PETSc LU per factorisation + solves (sizes of CROSSOVER)")
    args = parser.parse_args()
    if args.crossover:
        sizes = [s for s in args.sizes or CROSSOVER if s in CROSSOVER]
        print(f"{'case':8} {'dofs':>7} {'multiply-adds':>14} {'Cholesky [ms]':>14} {'LU [ms]':>9} {'Cholesky/LU':>12}")
        with tempfile.TemporaryDirectory() as tmp:
            for name in sizes:
                spec, P = CROSSOVER[name]
                path = Path(tmp) / f"{name}.msh"
                parse_mesh_spec(spec).generate(path)
                rve = read_rve_mesh(path, MPI.COMM_SELF)
                model = RveModel(rve.mesh, rve.cell_tags, make_physics("elasticity", rve.dim), PHASES)
                flops, t = crossover(model, P)
                print(f"{name:8} {model.num_dofs:7d} {flops:14.3g} {1e3 * t['cholesky']:14.3f} {1e3 * t['lu']:9.3f} "
                      f"{t['cholesky'] / t['lu']:12.2f}", flush=True)
        return
    print(f"{'case':8} {'dofs':>7} {'pts':>4} {'Newton/solve':>12} {'per point [ms]':>15} {'batched [ms]':>13} "
          f"{'speed-up':>9} {'floor [ms]':>11} {'batched/floor':>14} {'floor MUMPS [ms]':>17}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in [s for s in args.sizes or CASES if s in CASES]:
            spec, points, steps = CASES[name]
            if args.quick:
                points = max(2, points // 8)
            path = Path(tmp) / f"{name}.msh"
            parse_mesh_spec(spec).generate(path)
            rve = read_rve_mesh(path, MPI.COMM_SELF)
            model = RveModel(rve.mesh, rve.cell_tags, make_physics("elasticity", rve.dim), PHASES)
            n = model.physics.n_comp
            E = strain_path(rve.dim, points, steps)
            run(make_rve_solver(model, "periodic"), [e[:2] for e in E[:1]])  # compile, warm up
            t_batched, pool = run(batched := make_rve_solver(model, "periodic"), E)
            t_point, _ = run(make_rve_solver(model, "periodic", batch="off"), E)
            solves = points * steps
            stats = batched.statistics
            newton = stats["newton_iterations"] / stats["solves"]
            shortcuts = stats["elastic_shortcuts"]
            f = floors(model, pool, E[-1], n)
            # The linear algebra the batched path did: Newton factorisations + solves, and
            # per non-shortcut solve one factorisation + n solves for the tangent.
            factorizations = stats["newton_iterations"] + (stats["solves"] - shortcuts)
            rhs = stats["newton_iterations"] + n * (stats["solves"] - shortcuts)
            floor = (factorizations * f["batched_factorize"] + rhs * f["batched_solve"]) / solves
            floor_mumps = (factorizations * f["mumps_factorize"] + rhs * f["mumps_solve"]) / solves
            print(f"{name:8} {model.num_dofs:7d} {points:4d} {newton:12.2f} {1e3 * t_point / solves:15.3f} "
                  f"{1e3 * t_batched / solves:13.3f} {t_point / t_batched:9.2f} {1e3 * floor:11.3f} "
                  f"{t_batched / solves / floor:14.2f} {1e3 * floor_mumps:17.3f}", flush=True)
            total = sum(batched.timings.values())
            parts = {k: 100 * v / total for k, v in batched.timings.items()}
            print("         batched, share of the solver's time: "
                  + ", ".join(f"{k} {v:.0f} %" for k, v in sorted(parts.items(), key=lambda kv: -kv[1])), flush=True)


if __name__ == "__main__":
    main()
