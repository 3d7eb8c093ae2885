"""Benchmark: time to compute the apparent tensor C of a linear RVE vs the PETSc floor.

For each RVE (centred inclusion, periodic BC, elasticity):
  * t_C     -- `effective_tensor` after JIT: constraint set-up, constitutive update,
               residual check, assembly, P^T A P, factorisation, n solves, volume averages
               (best of --repeat runs);
  * t_floor -- in the same process, the bare PETSc work on the same assembled, constrained
               matrix K and the same right-hand sides: a fresh KSP, factorisation + n solves
               (best of --repeat runs).
Prints both and their ratio. Usage:

    python benchmarks/rve_linear.py [--repeat 3] [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import fe2  # noqa: F401
import numpy as np
from mpi4py import MPI

from fe2.materials import LinearElastic
from fe2.meshing.io import read_rve_mesh
from fe2.meshing.specs import parse_mesh_spec
from fe2.rve.effective import effective_tensor
from fe2.rve.factory import make_rve_solver
from fe2.rve.model import RveModel
from fe2.physics import make_physics
from fe2.rve.solver import DirectSolver

MATERIALS = {1: LinearElastic(E=3.5, nu=0.35), 2: LinearElastic(E=72.0, nu=0.22)}

CASES = {  # name: mesh spec (mesh sizes for ~10k, ~30k, ~100k (2D) and ~50k (3D) dofs)
    "2D small": dict(type="inclusion_2d", volume_fraction=0.3, mesh_size=0.016),
    "2D medium": dict(type="inclusion_2d", volume_fraction=0.3, mesh_size=0.009),
    "2D large": dict(type="inclusion_2d", volume_fraction=0.3, mesh_size=0.0048),
    "3D": dict(type="inclusion_3d", volume_fraction=0.2, mesh_size=0.039),
}
QUICK = {"2D small": CASES["2D small"], "3D quick": dict(CASES["3D"], mesh_size=0.1)}


def best_of(repeat: int, func) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        func()
        times.append(time.perf_counter() - t0)
    return min(times)


def floor(model: RveModel, bc: str, repeat: int) -> float:
    """Factorisation + n solves of the same constrained matrix and right-hand sides (MUMPS)."""
    reference = make_rve_solver(model, bc, batch="off", elastic_shortcut=False)
    reference.solve(model.physics.reference_strain, reference.initial_state())  # assembles K
    K, x = reference.K, reference.bc.create_vector()
    rhs = []
    for k in range(model.physics.n_comp):
        r = reference.bc.create_vector()
        r.setRandom()
        rhs.append(r)

    def run():
        solver = DirectSolver(MPI.COMM_SELF, prefix="bench_floor_")
        solver.factorize(K)
        for r in rhs:
            solver.solve(r, x)
        solver.destroy()

    elapsed = best_of(repeat, run)
    reference.destroy()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="two small cases only")
    parser.add_argument("--bc", default="periodic", choices=["periodic", "affine", "traction"])
    parser.add_argument("--batch", default="auto", help="RVE solver: auto (batched) or off (per point)")
    args = parser.parse_args()
    cases = QUICK if args.quick else CASES
    print(f"{'case':<10} {'dofs':>8} {'t_C [s]':>9} {'t_floor [s]':>12} {'ratio':>6}   breakdown of t_C [s]")
    with tempfile.TemporaryDirectory() as tmp:
        for name, spec in cases.items():
            path = Path(tmp) / "rve.msh"
            parse_mesh_spec(spec).generate(path)
            rve = read_rve_mesh(path, MPI.COMM_SELF)
            model = RveModel(rve.mesh, rve.cell_tags, make_physics("elasticity", rve.dim), MATERIALS)
            batch = args.batch if args.batch == "off" else "auto"
            effective_tensor(model, args.bc, batch=batch)  # JIT and first-touch
            results = []
            t_C = best_of(args.repeat, lambda: results.append(effective_tensor(model, args.bc, batch=batch)))
            t_floor = floor(model, args.bc, args.repeat)
            parts = ", ".join(f"{k} {v:.3f}" for k, v in results[-1].timings.items())
            print(f"{name:<10} {model.num_dofs:>8} {t_C:>9.3f} {t_floor:>12.3f} {t_C / t_floor:>6.2f}   {parts}", flush=True)


if __name__ == "__main__":
    main()
