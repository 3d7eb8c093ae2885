"""Scaling model of FE² runs, from costs measured on this machine.

One macro Newton iteration on P ranks is modelled as

    T(P) = T_rve(P) + T_macro(P) + T_comm(P)
    T_rve(P)   = max(N t_rve / P * I, t_rve)             RVE solves, dynamic balancing leaves
                                                          an imbalance I (measured: <= 1.06)
    T_macro(P) = t_asm / P + t_lu / P**a + 2 alpha log2 P  macro assembly (perfectly parallel)
                                                          and distributed LU (efficiency P**(a-1))
    T_comm(P)  = 2 (alpha log2 P + (N / P) b / B)         strains out, stresses + tangents back

with N macro points, b = 8 (2n + n^2) bytes per point and iteration (n = 6 in 3D), and the
network latency alpha and bandwidth B as assumptions (no network here: 2 us, 10 GB/s, a
typical InfiniBand cluster), a = 0.5 (3D sparse LU rarely scales better than sqrt(P)).
t_rve is measured below on a 3D plastic RVE, t_asm and t_lu on a small 3D macro problem and
scaled to the macro size of the case (P1 tetrahedra, one point each: ~0.6 N dofs) with
assembly ~ dofs and 3D sparse LU ~ dofs^2 (nested dissection). Dynamic balancing's state
moves (once per step, not per iteration) are neglected.

    python benchmarks/scaling_model.py [--rve-mesh-size 0.12] [--summaries s1.json s2.json]

--summaries: summary.json of the same study on 1 and 2 ranks (e.g. written by
`fe2 run configs/plate_fe2.yaml`): the model's prediction of the 2-rank time is compared with
the measurement.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import fe2  # noqa: F401
import numpy as np
from dolfinx import mesh as dmesh
from mpi4py import MPI

from fe2.macro.problem import Dirichlet, MacroProblem
from fe2.materials import J2Plasticity, LinearElastic
from fe2.materials.points import LawPoints
from fe2.meshing.io import read_rve_mesh
from fe2.meshing.specs import parse_mesh_spec
from fe2.rve.model import RveModel
from fe2.rve.factory import make_rve_solver
from fe2.rve.newton import PointwiseRveSolver
from fe2.physics import make_physics
from fe2.rve.pool import RvePool

ALPHA, BANDWIDTH, LU_EXPONENT, IMBALANCE = 2e-6, 10e9, 0.5, 1.06


def measure_rve(mesh_size: float) -> tuple[float, int]:
    """Mean seconds of a plastic 3D RVE solve (Newton + tangent) and its dofs."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rve.msh"
        parse_mesh_spec(dict(type="inclusion_3d", volume_fraction=0.2, mesh_size=mesh_size)).generate(path)
        rve = read_rve_mesh(path, MPI.COMM_SELF)
    model = RveModel(rve.mesh, rve.cell_tags, make_physics("elasticity", 3),
                     {1: J2Plasticity(E=3.5, nu=0.35, sigma_y=0.06, H=0.3), 2: LinearElastic(E=72.0, nu=0.22)})
    pool = RvePool(make_rve_solver(model, "periodic", batch="off"), 1)
    direction = np.array([0.03, -0.005, -0.005, 0.0, 0.0, 0.01 * np.sqrt(2)])
    pool.evaluate(0.2 * direction[None])  # JIT, factorisation structure
    pool.commit()
    times = []
    for t in (0.4, 0.6, 0.8, 1.0):
        t0 = time.perf_counter()
        pool.evaluate(t * direction[None])
        times.append(time.perf_counter() - t0)
        pool.commit()
    return float(np.mean(times)), model.num_dofs


def measure_macro(cells: int) -> tuple[float, float, int]:
    """(assembly, LU) seconds of one 3D macro Newton iteration, and the macro dofs."""
    domain = dmesh.create_box(MPI.COMM_SELF, [[0, 0, 0], [2, 1, 1]], [2 * cells, cells, cells])
    left = dmesh.locate_entities_boundary(domain, 2, lambda x: np.isclose(x[0], 0.0))
    right = dmesh.locate_entities_boundary(domain, 2, lambda x: np.isclose(x[0], 2.0))
    law = LinearElastic(E=5.0, nu=0.3)
    problem = MacroProblem(domain, make_physics("elasticity", 3), 1, lambda m: LawPoints(law, m, dim=3, n_comp=6),
                           dirichlet=[Dirichlet("left", left, None, 0.0), Dirichlet("right", right, 0, 0.01)])
    problem.solve(1.0)  # JIT
    problem.u.x.array[:] = 0.0
    result = problem.solve(1.0)
    dofs = problem.V.dofmap.index_map.size_global * 3
    problem.destroy()
    return result.seconds["assemble"] / 2, result.seconds["solve"], dofs


def iteration_time(P: np.ndarray, N: float, t_rve: float, macro: tuple[float, float, int], n: int = 6) -> np.ndarray:
    """Model time of one macro Newton iteration on P ranks for N points (see module doc)."""
    t_asm_measured, t_lu_measured, dofs_measured = macro
    dofs = 0.6 * N
    t_asm = t_asm_measured * dofs / dofs_measured
    t_lu = t_lu_measured * (dofs / dofs_measured) ** 2
    log_p = np.log2(np.maximum(P, 1))
    t_rve_part = np.maximum(N * t_rve / P * np.where(P > 1, IMBALANCE, 1.0), t_rve)
    t_macro = t_asm / P + t_lu / P**LU_EXPONENT + 2 * ALPHA * log_p
    t_comm = np.where(P > 1, 2 * (ALPHA * log_p + (N / P) * 8 * (2 * n + n * n) / BANDWIDTH), 0.0)
    return t_rve_part + t_macro + t_comm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rve-mesh-size", type=float, default=0.12)
    parser.add_argument("--macro-cells", type=int, default=8, help="box of 2c x c x c hexahedra split into tets")
    parser.add_argument("--summaries", nargs=2, metavar=("ONE_RANK", "TWO_RANKS"))
    args = parser.parse_args()
    t_rve, rve_dofs = measure_rve(args.rve_mesh_size)
    t_asm, t_lu, macro_dofs = measure_macro(args.macro_cells)
    print(f"measured here: 3D plastic RVE solve {t_rve:.3f} s ({rve_dofs} dofs); 3D macro iteration "
          f"({macro_dofs} dofs): assembly {t_asm:.3f} s, LU {t_lu:.3f} s")
    print(f"assumed: latency {ALPHA * 1e6:.0f} us, bandwidth {BANDWIDTH / 1e9:.0f} GB/s, "
          f"LU efficiency P^{LU_EXPONENT - 1:.1f}, balanced imbalance {IMBALANCE}")

    ranks = np.array([1, 2, 4, 16, 64, 256, 1024, 4096, 10_000])
    N = 100_000  # reference: 100k macro points (e.g. 100k P1 tetrahedra)
    macro = (t_asm, t_lu, macro_dofs)
    strong = iteration_time(ranks, N, t_rve, macro)
    print(f"\nstrong scaling: {N} macro points, one macro Newton iteration")
    print(f"{'ranks':>7} {'time [s]':>12} {'speed-up':>10} {'efficiency':>10}")
    for p, t in zip(ranks, strong):
        print(f"{p:>7} {t:>12.2f} {strong[0] / t:>10.1f} {strong[0] / (p * t):>10.1%}")
    per_rank = 1000
    weak = np.array([iteration_time(np.array([p]), per_rank * p, t_rve, macro)[0] for p in ranks])
    print(f"\nweak scaling: {per_rank} macro points per rank (macro problem growing with P)")
    print(f"{'ranks':>7} {'time [s]':>12} {'efficiency':>10}")
    for p, t in zip(ranks, weak):
        print(f"{p:>7} {t:>12.2f} {weak[0] / t:>10.1%}")

    if args.summaries:
        one, two = (json.loads(Path(f).read_text()) for f in args.summaries)
        rve1 = one["rve"]["seconds"]
        other = one["wall_time"] - rve1  # macro assembly + solve + output, 1 rank
        # 2 ranks: RVE work halved times the measured imbalance; macro part by the model.
        predicted = rve1 / 2 * two["rve"]["work_imbalance"] + other / 2 + other / 2**LU_EXPONENT / 2
        print(f"\nmeasured study: 1 rank {one['wall_time']:.1f} s (RVE {rve1:.1f} s), "
              f"2 ranks {two['wall_time']:.1f} s; model for 2 ranks: {predicted:.1f} s")


if __name__ == "__main__":
    main()
