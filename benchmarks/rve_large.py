"""Benchmark: the apparent tensor of large 3D RVEs, direct vs iterative, on 1 and 2 ranks.

The centred-sphere cell (unit cube; matrix E = 1, nu = 0.3; sphere E = 10, nu = 0.3, radius
0.3, i.e. volume fraction 4/3 pi 0.3^3), P2, periodic BC, at mesh sizes h (~73k dofs at
h = 0.07, dofs ~ h^-3). Each case runs in its own process (``mpiexec -n RANKS``) so that its
peak memory (VmHWM, summed over the ranks) is its own:

* ``t_C``: wall time of :func:`fe2.rve.effective.effective_tensor` (BC set-up, assembly,
  constrained matrix, factorisation or preconditioner, the six solves, averages);
* ``t_run``: wall time of the whole process (imports, mesh reading and distribution
  included), i.e. what ``fe2 homogenize`` costs;
* ``cpu``: CPU seconds of the ranks in ``t_C`` (on a loaded machine the honest measure of work);
* ``mem``: peak resident memory of the ranks, summed.

Printed: C11, C12, C44 (Mandel), CG iterations, and the ratios the targets are about:
iterative vs direct at the same size, 2 ranks vs 1 (speed-up), and the growth exponents of
time and memory with the dofs (least squares on log-log over the sizes run).

    python benchmarks/rve_large.py [--sizes 0.07 0.05 0.04 0.03] [--solvers direct iterative]
                                   [--ranks 1 2] [--direct-max-dofs 250000]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RADIUS = 0.3
FRACTION = 4.0 / 3.0 * math.pi * RADIUS**3
PHASES = {"matrix": (1, 1.0, 0.3), "sphere": (2, 10.0, 0.3)}


def peak_memory() -> float:
    """This process's peak resident memory (VmHWM), MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return float(line.split()[1]) / 1024
    return float("nan")


def worker(mesh: Path, solver: str, out: Path, start: float) -> None:
    """One case, on all ranks of COMM_WORLD (the RVE distributed over them)."""
    import fe2  # noqa: F401
    import numpy as np
    from mpi4py import MPI

    from fe2.materials import LinearElastic
    from fe2.meshing.io import read_rve_mesh
    from fe2.rve.effective import effective_tensor
    from fe2.rve.model import RveModel
    from fe2.physics import make_physics

    comm = MPI.COMM_WORLD
    rve = read_rve_mesh(mesh, comm)
    laws = {tag: LinearElastic(E=E, nu=nu) for tag, E, nu in PHASES.values()}
    model = RveModel(rve.mesh, rve.cell_tags, make_physics("elasticity", 3), laws, degree=2)
    comm.barrier()
    t0, c0 = time.perf_counter(), time.process_time()
    result = effective_tensor(model, "periodic", linear_solver=solver)
    comm.barrier()
    t_C, cpu = time.perf_counter() - t0, comm.allreduce(time.process_time() - c0)
    mem = comm.gather(peak_memory())
    if comm.rank == 0:
        C = np.asarray(result.C)
        out.write_text(json.dumps({
            "dofs": result.dofs["fluctuation"], "t_C": t_C, "cpu": cpu, "t_run": time.time() - start,
            "mem": sum(mem), "mem_max": max(mem), "C11": C[0, 0], "C12": C[0, 1], "C44": C[3, 3],
            "timings": result.timings,
        }))


def make_mesh(h: float, directory: Path) -> Path:
    path = directory / f"sphere_h{h:g}.msh"
    if not path.exists():
        import fe2  # noqa: F401
        from fe2.meshing.specs import parse_mesh_spec

        parse_mesh_spec({"type": "inclusion_3d", "volume_fraction": FRACTION, "mesh_size": h}).generate(path)
    return path


def run_case(mesh: Path, solver: str, ranks: int) -> dict | None:
    out = Path(tempfile.mkstemp(suffix=".json")[1])
    mpiexec = Path(sys.executable).parent / "mpiexec"
    cmd = [str(mpiexec), "-n", str(ranks), sys.executable, __file__, "--worker", str(mesh), "--solver", solver,
           "--out", str(out), "--start", repr(time.time())]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    try:
        return json.loads(out.read_text()) if done.returncode == 0 else None
    except json.JSONDecodeError:
        return None
    finally:
        out.unlink(missing_ok=True)
        if done.returncode != 0:
            print(f"  {solver} on {ranks} rank(s) failed (exit {done.returncode}): "
                  f"{(done.stderr.strip().splitlines() or [''])[-1][:200]}", flush=True)


def exponent(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of log(y) over log(x)."""
    if len(points) < 2:
        return float("nan")
    xs = [math.log(x) for x, _ in points]
    ys = [math.log(y) for _, y in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[0.07, 0.05, 0.04, 0.03])
    parser.add_argument("--solvers", nargs="+", default=["direct", "iterative"])
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--direct-max-dofs", type=int, default=250_000,
                        help="skip the direct solver above this many dofs (its memory grows too fast)")
    parser.add_argument("--mesh-dir", type=Path, default=Path(tempfile.gettempdir()) / "fe2-rve-large")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--solver", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--start", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.solver, args.out, args.start)
        return
    args.mesh_dir.mkdir(parents=True, exist_ok=True)
    print(f"load average at start: {os.getloadavg()[0]:.1f} (2 cores)", flush=True)
    header = f"{'h':>6} {'dofs':>9} {'solver':>9} {'ranks':>5} {'t_C [s]':>8} {'cpu [s]':>8} {'t_run [s]':>9} " \
             f"{'mem [MB]':>9} {'C11':>8} {'C12':>8} {'C44':>8} {'load':>5}"
    print(header, flush=True)
    results: dict[tuple, dict] = {}
    for h in args.sizes:
        mesh = make_mesh(h, args.mesh_dir)
        dofs_estimate = 72_516 * (0.07 / h) ** 3
        for solver in args.solvers:
            if solver == "direct" and dofs_estimate > args.direct_max_dofs:
                continue
            for ranks in args.ranks:
                r = run_case(mesh, solver, ranks)
                if r is None:
                    continue
                results[(h, solver, ranks)] = r
                print(f"{h:6g} {r['dofs']:9d} {solver:>9} {ranks:5d} {r['t_C']:8.2f} {r['cpu']:8.2f} {r['t_run']:9.2f} "
                      f"{r['mem']:9.0f} {r['C11']:8.4f} {r['C12']:8.4f} {r['C44']:8.4f} {os.getloadavg()[0]:5.1f}",
                      flush=True)
    print()
    for (h, solver, ranks), r in results.items():
        if solver == "iterative" and (h, "direct", ranks) in results:
            d = results[(h, "direct", ranks)]
            print(f"h {h:g}, {ranks} rank(s): direct / iterative time {d['t_C'] / r['t_C']:.2f}, "
                  f"memory {d['mem'] / r['mem']:.2f}, |dC11| {abs(d['C11'] - r['C11']) / d['C11']:.1e}")
        if ranks == 2 and (h, solver, 1) in results:
            one = results[(h, solver, 1)]
            print(f"h {h:g}, {solver}: speed-up 2 ranks / 1 rank: t_C {one['t_C'] / r['t_C']:.2f}, "
                  f"t_run {one['t_run'] / r['t_run']:.2f}")
    for solver in args.solvers:
        for ranks in args.ranks:
            series = [r for (h, s, k), r in results.items() if s == solver and k == ranks]
            if len(series) > 1:
                print(f"{solver}, {ranks} rank(s), {len(series)} sizes: time ~ dofs^"
                      f"{exponent([(r['dofs'], r['t_C']) for r in series]):.2f}, cpu ~ dofs^"
                      f"{exponent([(r['dofs'], r['cpu']) for r in series]):.2f}, memory ~ dofs^"
                      f"{exponent([(r['dofs'], r['mem']) for r in series]):.2f}")
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
