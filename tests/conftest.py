"""Shared fixtures. The same suite runs serially and under `mpiexec -n 2`."""

import gc
from pathlib import Path

import pytest

import fe2  # noqa: F401  (dolfinx_solver first)
from mpi4py import MPI


def pytest_configure(config):
    # One temporary-directory tree per rank: ranks run the same tests at the same time.
    comm = MPI.COMM_WORLD
    if comm.size > 1 and config.option.basetemp is None:
        import tempfile

        # A fresh directory per run (rank 0 makes it): concurrent runs, e.g. from two
        # checkouts, must not clear each other's files.
        parent = Path(tempfile.gettempdir()) / f"fe2-pytest-{MPI.Get_processor_name()}"
        parent.mkdir(parents=True, exist_ok=True)
        base = comm.bcast(tempfile.mkdtemp(prefix="run-", dir=parent) if comm.rank == 0 else None)
        config.option.basetemp = str(Path(base) / f"np{comm.size}-rank{comm.rank}")


@pytest.fixture(autouse=True)
def _collective_teardown():
    yield
    gc.collect()  # PETSc objects are destroyed in the same order on every rank
    MPI.COMM_WORLD.barrier()


@pytest.fixture(scope="session")
def mesh_dir(tmp_path_factory) -> Path:
    """A per-rank directory for meshes generated once per session."""
    return tmp_path_factory.mktemp("meshes")


@pytest.fixture(scope="session")
def make_mesh(mesh_dir):
    """Generate (once per session and rank) an RVE mesh from a spec dict; returns RveMesh."""
    from fe2.meshing.io import read_rve_mesh
    from fe2.meshing.specs import parse_mesh_spec

    cache = {}

    def make(**spec):
        key = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in spec.items()))
        if key not in cache:
            path = mesh_dir / f"mesh{len(cache)}.msh"
            parse_mesh_spec(spec).generate(path)
            cache[key] = path
        return read_rve_mesh(cache[key], MPI.COMM_SELF)

    return make


@pytest.fixture
def shared_tmp_path(tmp_path) -> Path:
    """Rank 0's tmp_path on every rank (collective outputs need one directory)."""
    return Path(MPI.COMM_WORLD.bcast(str(tmp_path)))
