"""Benchmark: writing the macro fields of one step, kill-safe series vs DOLFINx's XDMFFile.

On a structured rectangle of N x N/2 quadrilaterals (or triangles), in one process: the fields
`fe2 run` writes per step (P1 displacement; DG0 stress and strain 3 x 3; two DG0 scalars),
written S times by :class:`fe2.io.field_series.FieldSeries` (gathered to rank 0, one HDF5 file
per step, index rewritten atomically) and by ``dolfinx.io.XDMFFile.write_function`` into one
file (the layout fe2 used before, which a kill leaves unreadable). Prints the seconds per step
of both and their ratio.

    [mpiexec -n 2] python benchmarks/field_files.py [--cells 200] [--steps 10]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import fe2  # noqa: F401
import numpy as np
from dolfinx import fem, mesh
from dolfinx.io import XDMFFile
from mpi4py import MPI

from fe2.io.field_series import FieldSeries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=200, help="cells along x (N)")
    parser.add_argument("--steps", type=int, default=10, help="steps written (S)")
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    domain = mesh.create_rectangle(comm, [[0.0, 0.0], [2.0, 1.0]], [args.cells, args.cells // 2],
                                   cell_type=mesh.CellType.quadrilateral)
    rng = np.random.default_rng(0)
    u = fem.Function(fem.functionspace(domain, ("Lagrange", 1, (2,))), name="displacement")
    tensor = fem.functionspace(domain, ("DG", 0, (3, 3)))
    scalar = fem.functionspace(domain, ("DG", 0))
    cells = [fem.Function(tensor, name="stress"), fem.Function(tensor, name="strain"),
             fem.Function(scalar, name="equivalent_plastic_strain"), fem.Function(scalar, name="rve_newton_iterations")]
    for f in (u, *cells):
        f.x.array[:] = rng.random(f.x.array.shape)
    directory = Path(comm.bcast(tempfile.mkdtemp(prefix="fe2-bench-") if comm.rank == 0 else None))

    comm.barrier()
    t0 = time.perf_counter()
    series = FieldSeries(domain, directory / "series")
    for step in range(1, args.steps + 1):
        series.write(step, step / args.steps, node_fields=[u], cell_fields=cells)
    comm.barrier()
    ours = (time.perf_counter() - t0) / args.steps

    t0 = time.perf_counter()
    with XDMFFile(comm, str(directory / "dolfinx.xdmf"), "w") as xdmf:
        xdmf.write_mesh(domain)
        for step in range(1, args.steps + 1):
            for f in (u, *cells):
                xdmf.write_function(f, step / args.steps)
    comm.barrier()
    theirs = (time.perf_counter() - t0) / args.steps
    if comm.rank == 0:
        n = domain.topology.index_map(2).size_global
        print(f"{n} cells, {comm.size} rank(s), {args.steps} steps")
        print(f"kill-safe series (one HDF5 file per step): {ours * 1e3:.1f} ms per step")
        print(f"DOLFINx XDMFFile (one file):               {theirs * 1e3:.1f} ms per step")
        print(f"ratio: {ours / theirs:.2f}")
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
