"""`fe2 homogenize` RVE-size study: apparent tensors of random windows, farmed out over MPI.

Work units: for every size L and realisation k, the cut window (affine and traction BCs on
one mesh) and the periodic variant (periodic BC), as requested. The units are assigned to
the ranks once, by estimated cost ~ (L/h)^d (2 + number of BCs), largest first, each to the
least-loaded rank (:func:`fe2.coupling.balanced_pool.assign_by_cost`); every rank meshes
and solves its units on ``MPI.COMM_SELF``. A unit's tensors depend only on the unit (its
seed, see :mod:`fe2.meshing.windows`), so the study does not depend on the number of ranks.

Checkpoint: every finished (L, k, BC) result is written at once, atomically, by the rank that
computed it, to ``OUTPUT/rve_size_tasks/`` (a file system the ranks share, as for the
checkpoints of `fe2 run`), with ``identity.json`` naming the study; a rerun reuses the
finished results of the same study and computes only the others.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from mpi4py import MPI

import fe2
from fe2.config.rve_size import RveSizeConfig
from fe2.coupling.balanced_pool import assign_by_cost
from fe2.errors import ComputationError, InputError, ResourceError, collectively, os_error_message
from fe2.homogenization import sve_statistics as sve
from fe2.meshing.io import read_rve_mesh
from fe2.meshing.packing import PackingError
from fe2.rve.effective import effective_tensor
from fe2.rve.model import RveModel
from fe2.rve.physics import make_physics
from fe2.rve.solver import SolveError

log = logging.getLogger(__name__)

TASKS = "rve_size_tasks"
WINDOWS = "windows"
WINDOW_BCS = ("affine", "traction")


@dataclass(frozen=True)
class Unit:
    """One mesh and the BCs solved on it."""

    size: float
    realisation: int
    periodic: bool
    bcs: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"L{self.size:g}-k{self.realisation}-{'periodic' if self.periodic else 'window'}"

    def cost(self, *, mesh_size: float, dim: int) -> float:
        """Estimated seconds up to a factor: elements ~ (L/h)^d, meshing + one solve per BC."""
        return (self.size / mesh_size) ** dim * (2 + len(self.bcs))


@dataclass
class Sample:
    """The apparent tensor of one window under one BC."""

    size: float
    realisation: int
    bc: str
    tensor: np.ndarray  # (n, n)
    volume_fraction: float
    dofs: int
    hill_mandel_residual: float
    seconds: float

    @property
    def key(self) -> tuple[float, int, str]:
        return (self.size, self.realisation, self.bc)

    def record(self) -> dict:
        return {
            "size": self.size, "realisation": self.realisation, "bc": self.bc,
            "tensor": self.tensor.tolist(), "volume_fraction": self.volume_fraction,
            "dofs": self.dofs, "hill_mandel_residual": self.hill_mandel_residual,
            "seconds": self.seconds,
        }

    @classmethod
    def from_record(cls, data: dict) -> Sample:
        return cls(**{**data, "tensor": np.array(data["tensor"], dtype=float)})


@dataclass
class RveSizeResult:
    """Everything an RVE-size study reports (the same on every rank)."""

    config: RveSizeConfig
    bcs: list[str]
    samples: list[Sample]
    statistics: dict[str, list[sve.SizeStatistics]]
    gaps: list[dict]
    exponents: dict[str, dict]
    recommendation: dict
    tasks: dict = field(default_factory=dict)


def plan(config: RveSizeConfig, bcs: list[str]) -> list[Unit]:
    """All work units of the study, in (size, realisation, window before periodic) order."""
    window = tuple(bc for bc in WINDOW_BCS if bc in bcs)
    units = []
    for size in config.rve_size.sizes:
        for k in range(config.rve_size.realisations):
            if window:
                units.append(Unit(float(size), k, False, window))
            if "periodic" in bcs:
                units.append(Unit(float(size), k, True, ("periodic",)))
    return units


class TaskStore:
    """Finished (L, k, BC) results in ``directory``, one JSON file each (see module doc)."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def path(self, size: float, realisation: int, bc: str) -> Path:
        return self.directory / f"L{size:g}-k{realisation}-{bc}.json"

    def prepare(self, identity: dict, comm: MPI.Comm, *, discard_other: bool) -> dict[tuple, Sample]:
        """Check or write the identity and read the finished results (collective).

        A task directory of another study is an input error, or is emptied with
        ``discard_other``.
        """

        def on_root() -> dict[tuple, Sample]:
            if comm.rank != 0:
                return {}
            marker = self.directory / "identity.json"
            if marker.is_file():
                if json.loads(marker.read_text()) != identity:
                    if not discard_other:
                        raise InputError(
                            f"{self.directory} holds results of another study (different "
                            f"physics, phases, solver, microstructure, seed, degree or fe2 "
                            f"version); choose another --output or pass --overwrite to discard them"
                        )
                    shutil.rmtree(self.directory)
            self.directory.mkdir(parents=True, exist_ok=True)
            _atomic_json(marker, identity)
            done = {}
            for path in sorted(self.directory.glob("L*-k*-*.json")):
                try:
                    sample = Sample.from_record(json.loads(path.read_text()))
                except (ValueError, KeyError, TypeError):
                    log.warning("ignoring unreadable task result %s", path)
                    continue
                done[sample.key] = sample
            return done

        def checked() -> dict[tuple, Sample]:
            try:
                return on_root()
            except OSError as exc:
                raise ResourceError(f"cannot use the task directory {os_error_message(exc)}") from None

        return comm.bcast(collectively(comm, checked, errors=(InputError, ResourceError)))

    def save(self, sample: Sample) -> None:
        """Write one finished tensor (the rank that computed it); ResourceError on failure."""
        path = self.path(sample.size, sample.realisation, sample.bc)
        try:
            _atomic_json(path, sample.record())
        except OSError as exc:
            raise ResourceError(f"cannot write the task result {os_error_message(exc, path)}") from None


def _atomic_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(json.dumps(data, indent=1) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def solve_unit(config: RveSizeConfig, unit: Unit, *, keep_mesh: Path | None = None) -> list[Sample]:
    """Mesh the unit's window and compute its apparent tensors (on ``MPI.COMM_SELF``)."""
    options = config.rve_size
    spec = options.microstructure.window(
        size=unit.size, realisation=unit.realisation, seed=options.seed, periodic=unit.periodic
    )
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fe2-window-") as tmp:
        try:
            path = spec.generate(Path(tmp) / "window.msh")
        except PackingError as exc:
            raise InputError(f"rve_size.microstructure: window {unit.name}: {exc}") from None
        except Exception as exc:  # gmsh raises bare Exceptions
            raise ComputationError(f"window {unit.name}: mesh generation failed: {exc}") from None
        rve = read_rve_mesh(path, MPI.COMM_SELF)
        if keep_mesh is not None:
            try:
                keep_mesh.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, keep_mesh)
            except OSError as exc:
                raise ResourceError(f"cannot keep the window mesh {os_error_message(exc, keep_mesh)}") from None
    physics = make_physics(config.physics, rve.dim)
    present = set(np.unique(rve.cell_tags.values).tolist())
    materials = {p.tag: p.material() for p in config.phases.values() if p.tag in present}
    try:
        model = RveModel(rve.mesh, rve.cell_tags, physics, materials, degree=options.degree)
    except InputError as exc:  # e.g. a mesh that does not fill its box: a meshing failure
        raise ComputationError(f"window {unit.name}: {exc}") from None
    fraction = model.volume_fractions().get(2, 0.0)
    mesh_seconds = time.perf_counter() - t0
    samples = []
    for bc in unit.bcs:
        t1 = time.perf_counter()
        eff = effective_tensor(model, bc, solver_options=config.solver.petsc_options)
        seconds = time.perf_counter() - t1 + mesh_seconds / len(unit.bcs)
        samples.append(Sample(
            size=unit.size, realisation=unit.realisation, bc=bc, tensor=eff.C,
            volume_fraction=fraction, dofs=int(eff.dofs["fluctuation"]),
            hill_mandel_residual=float(eff.hill_mandel_residual.max()), seconds=seconds,
        ))
    return samples


def run_rve_size_study(
    config: RveSizeConfig, *, bcs: list[str], comm: MPI.Comm, output: Path,
    discard_other: bool = False,
) -> RveSizeResult:
    """Run (or finish) the study; every rank returns the same result (collective).

    ``discard_other``: empty a task directory of another study instead of refusing it.
    """
    start = time.perf_counter()
    options = config.rve_size
    store = TaskStore(Path(output) / TASKS)
    identity = {**config.study_identity(), "fe2_version": fe2.__version__}
    done = store.prepare(identity, comm, discard_other=discard_other)
    units = plan(config, bcs)
    todo = []
    for unit in units:
        missing = tuple(bc for bc in unit.bcs if (unit.size, unit.realisation, bc) not in done)
        if missing:
            todo.append(Unit(unit.size, unit.realisation, unit.periodic, missing))
    medium = options.microstructure
    costs = np.array([u.cost(mesh_size=medium.mesh_size, dim=medium.dim) for u in todo])
    worker = assign_by_cost(costs, comm.size) if todo else np.empty(0, dtype=int)
    mine = sorted((i for i in range(len(todo)) if worker[i] == comm.rank), key=lambda i: (-costs[i], i))
    total = sum(len(u.bcs) for u in units)
    if comm.rank == 0:
        log.info("RVE-size study: %d sizes x %d realisations, BCs %s: %d tensors, %d finished "
                 "before, %d work units on %d rank(s)", len(options.sizes), options.realisations,
                 ", ".join(bcs), total, total - sum(len(u.bcs) for u in todo), len(todo), comm.size)

    def work() -> tuple[list[Sample], float]:
        computed, busy = [], 0.0
        for count, i in enumerate(mine, 1):
            unit = todo[i]
            t0 = time.perf_counter()
            keep = None
            if unit.realisation < options.save_meshes:
                keep = Path(output) / WINDOWS / f"{unit.name}.msh"
            for sample in solve_unit(config, unit, keep_mesh=keep):
                store.save(sample)
                computed.append(sample)
            busy += time.perf_counter() - t0
            log.debug("rank %d: %s done (%d/%d, %.2f s)", comm.rank, unit.name, count, len(mine),
                      time.perf_counter() - t0)
            if comm.rank == 0 and (10 * count) // len(mine) > (10 * (count - 1)) // len(mine):
                elapsed = time.perf_counter() - start
                log.info("rank 0: %d/%d work units done, elapsed %.0f s, ETA %.0f s", count,
                         len(mine), elapsed, elapsed / count * (len(mine) - count))
        return computed, busy

    computed, busy = collectively(
        comm, work, errors=(InputError, SolveError, ComputationError, ResourceError)
    )
    samples = dict(done)
    for part in comm.allgather(computed):
        samples.update((s.key, s) for s in part)
    busy_per_rank = comm.allgather(busy)
    result = summarize(config, bcs, samples)
    result.tasks = {
        "tensors": total, "reused": total - sum(len(u.bcs) for u in todo),
        "computed": sum(len(u.bcs) for u in todo), "units_computed": len(todo),
        "ranks": comm.size, "seconds_per_rank": busy_per_rank,
        "wall_time": comm.allreduce(time.perf_counter() - start, op=MPI.MAX),
    }
    return result


def summarize(config: RveSizeConfig, bcs: list[str], samples: dict[tuple, Sample]) -> RveSizeResult:
    """Statistics of the samples of the study's sizes and realisations (deterministic)."""
    options = config.rve_size
    sizes = [float(s) for s in options.sizes]
    ordered = [samples[(L, k, bc)] for L in sizes for k in range(options.realisations) for bc in bcs]
    statistics: dict[str, list[sve.SizeStatistics]] = {}
    groups: dict[str, list[np.ndarray]] = {}
    for bc in bcs:
        statistics[bc], groups[bc] = [], []
        for L in sizes:
            group = [samples[(L, k, bc)] for k in range(options.realisations)]
            tensors = np.array([s.tensor for s in group])
            groups[bc].append(tensors)
            statistics[bc].append(sve.size_statistics(
                L, bc, tensors, np.array([s.volume_fraction for s in group])
            ))
    gaps = [
        {"size": L, **sve.bound_gaps({bc: groups[bc][i] for bc in bcs})} for i, L in enumerate(sizes)
    ]
    exponents = {
        bc: sve.variance_exponent(
            sizes, groups[bc], rng=np.random.default_rng(np.random.SeedSequence(options.seed, spawn_key=(i,)))
        )
        for i, bc in enumerate(bcs)
    }
    recommendation = sve.recommended_size(
        statistics, gaps, tolerance=options.tolerance, exponents=exponents
    )
    return RveSizeResult(
        config=config, bcs=list(bcs), samples=ordered, statistics=statistics, gaps=gaps,
        exponents=exponents, recommendation=recommendation,
    )
