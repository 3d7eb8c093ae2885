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

from fe2.homogenization.load_path import run_load_path, strain_segments
from fe2.materials.j2 import J2Plasticity
from fe2.materials.linear import LinearConductor, LinearElastic
from fe2.meshing.io import read_rve_mesh
from fe2.rve.boundary_conditions import PeriodicBC
from fe2.rve.effective import effective_tensor
from fe2.rve.factory import make_rve_solver
from fe2.rve.model import RveModel
from fe2.physics import make_physics
from fe2.rve.pool import RvePool

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


@pytest.mark.parametrize("kind", ["direct", "iterative"])
def test_distributed_section_tensor_equals_serial(kind):
    """Generalised plane strain (u3 on a 2D section): the 6 x 6 tensor on two ranks."""
    serial, distributed = models(2, "generalized_plane_strain", ELASTIC, 1)
    for bc in BCS:
        reference = effective_tensor(serial, bc, linear_solver="direct")
        result = effective_tensor(distributed, bc, linear_solver=kind)
        assert relative(result.C, reference.C) < (1e-12 if kind == "direct" else 1e-8), bc


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
        results.append(run_load_path(solver, strain_segments(path), field_steps=set(), max_cutbacks=2))
        solver.destroy()
    reference, result = results
    assert reference.max_plastic_strain[-1] > 0.01
    assert result.iterations == reference.iterations
    for a, b in zip(result.stresses, reference.stresses):
        assert relative(a, b) < 1e-12
    for a, b in zip(result.tangents, reference.tangents):
        assert relative(a, b) < 1e-12
    assert result.max_plastic_strain == pytest.approx(reference.max_plastic_strain, rel=1e-12)
    # Point outputs (the RVE average of the plastic strain) are reduced over the ranks.
    averages = []
    for model in (serial, distributed):
        solver = make_rve_solver(model, bc, batch="off", linear_solver="direct")
        pool = RvePool(solver, 1)
        pool.evaluate(E[None])
        pool.commit()
        fields = pool.point_fields()
        averages.append((fields["equivalent_plastic_strain"], fields["stress_33"]))
        solver.destroy()
    (p_serial, s33_serial), (p_distributed, s33_distributed) = averages
    assert p_serial[0] > 0 and p_distributed == pytest.approx(p_serial, rel=1e-12)
    # <sigma33> of plane strain from the element operators of the rank's own cells, summed
    assert abs(s33_serial[0]) > 0 and s33_distributed == pytest.approx(s33_serial, rel=1e-12)


def _homogenize(directory: Path, name: str, data: dict) -> Path:
    import yaml

    from fe2.cli import main

    config = directory / f"{name}.yaml"
    if comm.rank == 0:
        config.write_text(yaml.safe_dump(data))
    comm.barrier()
    assert main(["homogenize", str(config), "-o", str(directory / name)]) == 0
    return directory / name


def test_homogenize_on_groups_of_ranks(shared_tmp_path):
    """`fe2 homogenize` with all ranks on one RVE (the BCs one after the other) = one RVE per
    rank (the BCs shared out); `auto` distributes a large RVE."""
    import json

    from fe2.rve import factory

    base = {
        "physics": "elasticity",
        "mesh": {"file": str(MESHES / "inclusion_2d.msh")},
        "phases": {"matrix": {"tag": 1, "E": 1.0, "nu": 0.3}, "fibre": {"tag": 2, "E": 10.0, "nu": 0.3}},
        "rve": {"bc": "all", "degree": 2},
    }
    runs = {}
    for k in (1, 2):
        runs[k] = _homogenize(shared_tmp_path, f"k{k}", {**base, "parallel": {"ranks_per_rve": k}})
    threshold = dict(factory.ITERATIVE_MIN_DOFS)
    try:
        factory.ITERATIVE_MIN_DOFS[2] = 1000  # this RVE counts as large: auto distributes it
        runs["auto"] = _homogenize(shared_tmp_path, "auto", {**base, "rve": {**base["rve"], "linear_solver": "direct"}})
    finally:
        factory.ITERATIVE_MIN_DOFS.update(threshold)
    if comm.rank == 0:
        for bc in BCS:
            C = {k: np.array(json.loads((d / f"effective_{bc}.json").read_text())["C"]) for k, d in runs.items()}
            assert relative(C[2], C[1]) < 1e-12 and relative(C["auto"], C[1]) < 1e-12


def test_homogenize_load_path_on_two_ranks(shared_tmp_path, capfd):
    """A plastic load path solved by both ranks together: the CSV of one rank; no RVE fields
    (written only for RVEs on one rank), and the log says so."""
    import csv

    data = {
        "physics": "elasticity",
        "mesh": {"file": str(MESHES / "inclusion_2d.msh")},
        "phases": {"matrix": {"tag": 1, "law": "j2", "E": 3.5, "nu": 0.35, "sigma_y": 0.06, "H": 0.3},
                   "fibre": {"tag": 2, "E": 72.0, "nu": 0.22}},
        "load_path": {"strain": [[0.03, 0.01], [0.01, -0.005]], "steps": 2},
    }
    one = _homogenize(shared_tmp_path, "one", {**data, "parallel": {"ranks_per_rve": 1}})
    two = _homogenize(shared_tmp_path, "two", {**data, "parallel": {"ranks_per_rve": 2}})
    output = "".join(capfd.readouterr())
    if comm.rank == 0:
        assert "RVE fields of the load path are not written" in output
        assert (one / "rve_fields.xdmf").exists() and not (two / "rve_fields.xdmf").exists()
        rows = [list(csv.DictReader(open(d / "load_path.csv"))) for d in (one, two)]
        # the same columns, <sigma33> and von Mises included (reduced over the group's ranks)
        assert {"S33", "von_mises"} <= set(rows[0][0]) and set(rows[1][0]) == set(rows[0][0])
        for a, b in zip(*rows):
            for key in a:
                if key.startswith(("S", "C_", "max", "von")):
                    assert float(b[key]) == pytest.approx(float(a[key]), rel=1e-10, abs=1e-12)
