"""An RVE distributed over the ranks = the same RVE on one process.

Runs under `mpiexec -n 2` (skipped serially). The serial reference is computed on every rank
with MPI.COMM_SELF. Partitions: one made deliberately so that the face x = 0 lies on rank 0
and the face x = 1 on rank 1 (every x-periodic master on the other rank), and DOLFINx's own.
"""

from pathlib import Path

import dolfinx
import numpy as np
import pytest
from mpi4py import MPI

from fe2.homogenization.load_path import run_load_path
from fe2.materials.j2 import J2Plasticity
from fe2.materials.linear import LinearConductor, LinearElastic
from fe2.meshing.io import read_rve_mesh
from fe2.rve.boundary_conditions import PeriodicBC
from fe2.rve.effective import effective_tensor
from fe2.rve.factory import make_rve_solver
from fe2.rve.model import RveModel
from fe2.rve.physics import make_physics

comm = MPI.COMM_WORLD
pytestmark = pytest.mark.skipif(comm.size != 2, reason="a distributed RVE needs 2 ranks")

MESHES = Path(__file__).resolve().parents[1] / "meshes"
BCS = ("periodic", "affine", "traction")
ELASTIC = {1: LinearElastic(E=1.0, nu=0.3), 2: LinearElastic(E=10.0, nu=0.3)}
J2 = {1: J2Plasticity(E=3.5, nu=0.35, sigma_y=0.06, H=0.3), 2: LinearElastic(E=72.0, nu=0.22)}


def halves_partitioner(path: Path):
    """Cells with centroid x < 1/2 to rank 0, the others to the last rank."""
    serial = read_rve_mesh(path, MPI.COMM_SELF).mesh
    x = np.empty_like(serial.geometry.x)
    x[serial.geometry.input_global_indices] = serial.geometry.x
    nodes = serial.geometry.dofmaps[0].shape[1]

    def partition(comm, parts, cell_types, cells):
        centroid = x[np.asarray(cells[0]).reshape(-1, nodes)].mean(axis=1)
        return dolfinx.graph.adjacencylist(np.where(centroid[:, 0] < 0.5, 0, parts - 1).astype(np.int32))._cpp_object

    return partition


def models(dim, physics, laws, degree, *, halves=True):
    path = MESHES / f"inclusion_{dim}d.msh"
    partitioner = halves_partitioner(path) if halves else None
    made = []
    for c, p in ((MPI.COMM_SELF, None), (comm, partitioner)):
        rve = read_rve_mesh(path, c, partitioner=p)
        made.append(RveModel(rve.mesh, rve.cell_tags, make_physics(physics, dim), laws, degree=degree))
    return made


def relative(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def test_halves_partition_puts_opposite_faces_on_different_ranks():
    _, distributed = models(2, "elasticity", ELASTIC, 1)
    bc = PeriodicBC(distributed)
    x = bc.nodes.x[:, 0]
    lo = comm.allgather(int(np.count_nonzero(np.isclose(x, 0.0))))
    hi = comm.allgather(int(np.count_nonzero(np.isclose(x, 1.0))))
    assert lo[0] > 0 and lo[1] == 0 and hi[1] > 0 and hi[0] == 0
    # So every (non-corner) node of the face x = 1 takes the column of a master of rank 0.
    bs = bc.nodes.bs
    columns = bc.columns[::bs] // bs  # reduced node of every owned node (-1: held at zero)
    count = bc.local_size // bs
    first = comm.exscan(count) or 0
    mine = (columns >= first) & (columns < first + count)
    on_hi = np.isclose(x, 1.0) & (columns >= 0)
    remote, total = comm.allgather((int(np.count_nonzero(on_hi & ~mine)), int(np.count_nonzero(on_hi))))[1]
    assert remote == total > 0


@pytest.mark.parametrize("kind", ["direct", "iterative"])
def test_distributed_tensor_equals_serial(kind):
    serial, distributed = models(2, "elasticity", ELASTIC, 2)
    assert distributed.num_cells < serial.num_cells
    for bc in BCS:
        reference = effective_tensor(serial, bc, linear_solver="direct")
        result = effective_tensor(distributed, bc, linear_solver=kind)
        assert relative(result.C, reference.C) < (1e-12 if kind == "direct" else 1e-8), bc
        assert result.dofs["fluctuation"] == reference.dofs["fluctuation"]
        assert result.hill_mandel_residual.max() < 1e-12


def test_distributed_conduction_3d_equals_serial():
    serial, distributed = models(3, "conduction", {1: LinearConductor(1.0), 2: LinearConductor(25.0)}, 1,
                                 halves=False)
    for bc in BCS:
        for kind in ("direct", "iterative"):
            reference = effective_tensor(serial, bc, linear_solver="direct")
            result = effective_tensor(distributed, bc, linear_solver=kind)
            assert relative(result.C, reference.C) < (1e-12 if kind == "direct" else 1e-8), (bc, kind)


@pytest.mark.parametrize("bc", BCS)
def test_distributed_plastic_load_path_equals_serial(bc):
    """Newton with line search, elastic shortcut and cut-back decisions taken together by the
    ranks: the same iterations and answers as on one process."""
    serial, distributed = models(2, "elasticity", J2, 1)
    E = np.array([0.03, -0.005, 0.01 * 2**0.5])
    path = [t * E for t in (0.5, 1.0)]
    results = []
    for model in (serial, distributed):
        solver = make_rve_solver(model, bc, batch="off", linear_solver="direct", single=True)
        results.append(run_load_path(solver, path, field_steps=set(), max_cutbacks=2))
        solver.destroy()
    reference, result = results
    assert reference.max_plastic_strain[-1] > 0.01
    assert result.iterations == reference.iterations
    for a, b in zip(result.stresses, reference.stresses):
        assert relative(a, b) < 1e-12
    for a, b in zip(result.tangents, reference.tangents):
        assert relative(a, b) < 1e-12
