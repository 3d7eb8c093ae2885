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
from dolfinx.fem.petsc import assemble_matrix, assemble_vector
from mpi4py import MPI
from petsc4py import PETSc

from fe2.materials import LinearElastic
from fe2.meshing.io import read_rve_mesh
from fe2.meshing.specs import parse_mesh_spec
from fe2.rve.boundary_conditions import make_boundary_condition
from fe2.rve.effective import effective_tensor
from fe2.rve.model import RveModel
from fe2.rve.physics import make_physics
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
    """Factorisation + n solves of the same constrained matrix and right-hand sides."""
    condition = make_boundary_condition(bc, model)
    model.E.value = model.physics.reference_strain
    model.w.x.array[:] = 0.0
    model.constitutive_update(model.initial_history())  # the tangent at the quadrature points
    A = assemble_matrix(model.jacobian)
    A.assemble()
    K = condition.system_matrix(A)
    rhs = []
    for e_k in np.eye(model.physics.n_comp):
        model.dE.value = e_k
        b = assemble_vector(model.sensitivity_rhs)
        b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        r = condition.create_vector()
        condition.restrict(b, r)
        rhs.append(r)
    x = condition.create_vector()

    def run():
        solver = DirectSolver(MPI.COMM_SELF, prefix="bench_floor_")
        solver.factorize(K)
        for r in rhs:
            solver.solve(r, x)
        solver.destroy()

    return best_of(repeat, run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="two small cases only")
    parser.add_argument("--bc", default="periodic", choices=["periodic", "affine", "traction"])
    args = parser.parse_args()
    cases = QUICK if args.quick else CASES
    print(f"{'case':<10} {'dofs':>8} {'t_C [s]':>9} {'t_floor [s]':>12} {'ratio':>6}   breakdown of t_C [s]")
    with tempfile.TemporaryDirectory() as tmp:
        for name, spec in cases.items():
            path = Path(tmp) / "rve.msh"
            parse_mesh_spec(spec).generate(path)
            rve = read_rve_mesh(path, MPI.COMM_SELF)
            model = RveModel(rve.mesh, rve.cell_tags, make_physics("elasticity", rve.dim), MATERIALS)
            effective_tensor(model, args.bc)  # JIT and first-touch
            results = []
            t_C = best_of(args.repeat, lambda: results.append(effective_tensor(model, args.bc)))
            t_floor = floor(model, args.bc, args.repeat)
            parts = ", ".join(f"{k} {v:.3f}" for k, v in results[-1].timings.items())
            print(f"{name:<10} {model.num_dofs:>8} {t_C:>9.3f} {t_floor:>12.3f} {t_C / t_floor:>6.2f}   {parts}", flush=True)


if __name__ == "__main__":
    main()
