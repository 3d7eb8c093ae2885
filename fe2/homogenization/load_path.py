"""Apply a sequence of macro strains to one RVE: stress, tangent and Newton work per step.

Each step is one :class:`~fe2.rve.pool.RvePool` evaluate + commit. A step whose RVE fails is
halved (after a rollback) up to ``max_cutbacks`` times; the sub-steps are committed in turn and
only the requested steps are reported.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
from mpi4py import MPI

from fe2.errors import ComputationError, InputError
from fe2.io.rve_fields import Snapshot
from fe2.material_point import MaterialPointFailure
from fe2.rve.micro_solver import MicroSolver
from fe2.rve.physics import Physics
from fe2.rve.pool import RvePool
from fe2.tensors import to_mandel

log = logging.getLogger(__name__)


def macro_strain_vector(physics: Physics, value, *, key: str) -> np.ndarray:
    """User input (tensor d x d, or vector for conduction) -> strain vector (n,)."""
    array = np.asarray(value, dtype=float)
    dim = physics.dim
    if physics.name == "conduction":
        if array.shape != (dim,):
            raise InputError(f"{key}: expected a temperature gradient of {dim} components, got shape {array.shape}")
        return array
    if array.shape != (dim, dim):
        raise InputError(f"{key}: expected a {dim} x {dim} tensor, got shape {array.shape}")
    if physics.name == "finite_strain":
        if np.linalg.det(array) <= 0:
            raise InputError(f"{key}: the deformation gradient must have det F > 0")
        return array.ravel()
    if not np.allclose(array, array.T, rtol=0, atol=1e-14 * max(1.0, np.abs(array).max())):
        raise InputError(f"{key}: the small-strain tensor must be symmetric")
    return to_mandel(0.5 * (array + array.T))


def macro_path(physics: Physics, load_path) -> list[np.ndarray]:
    """The strain vectors of the steps of a config ``load_path``."""
    if load_path.strains is not None:
        return [
            macro_strain_vector(physics, s, key=f"load_path.strains[{i}]")
            for i, s in enumerate(load_path.strains)
        ]
    target = macro_strain_vector(physics, load_path.strain, key="load_path.strain")
    start = physics.reference_strain
    return [start + t * (target - start) for t in np.linspace(0, 1, load_path.steps + 1)[1:]]


@dataclass
class LoadPathResult:
    """Per step: strain, stress, tangent, Newton iterations; fields at chosen steps."""

    bc: str
    strains: list[np.ndarray] = field(default_factory=list)
    stresses: list[np.ndarray] = field(default_factory=list)
    tangents: list[np.ndarray] = field(default_factory=list)
    iterations: list[int] = field(default_factory=list)  # Newton iterations incl. sub-steps
    substeps: list[int] = field(default_factory=list)
    hill_mandel: list[float] = field(default_factory=list)
    max_plastic_strain: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    snapshots: list[tuple[float, Snapshot]] = field(default_factory=list)


def run_load_path(
    solver: MicroSolver, path: list[np.ndarray], *, field_steps: set[int], max_cutbacks: int
) -> LoadPathResult:
    """Apply ``path`` (list of strain vectors) from the virgin state; see the module doc."""
    pool = RvePool(solver, 1)
    if field_steps:
        pool.set_probes([0])  # keep the RVE fields of every solve
    result = LoadPathResult(bc=solver.kind)
    previous = solver.model.physics.reference_strain
    for step, target in enumerate(path, start=1):
        t0 = time.perf_counter()
        iterations, substeps = _advance(pool, previous, target, max_cutbacks, step)
        response = pool.responses[0]
        history = pool.state(0).history
        p_max = max(
            (float(h["equivalent_plastic_strain"].max(initial=0.0)) for h in history.values()
             if "equivalent_plastic_strain" in h),
            default=0.0,
        )
        if solver.model.distributed:  # the RVE's points are shared out over its ranks
            p_max = solver.model.comm.allreduce(p_max, op=MPI.MAX)
        result.strains.append(target)
        result.stresses.append(response.stress)
        result.tangents.append(response.tangent)
        result.iterations.append(iterations)
        result.substeps.append(substeps)
        result.hill_mandel.append(response.hill_mandel_residual)
        result.max_plastic_strain.append(p_max)
        result.seconds.append(time.perf_counter() - t0)
        if step in field_steps:
            result.snapshots.append((float(step), pool.probe_fields()[0]))
        log.info(
            "%s step %d/%d: %d Newton iterations%s, |Sigma| %.4g, max p %.3g",
            solver.kind, step, len(path), iterations,
            f" in {substeps} sub-steps" if substeps > 1 else "",
            np.linalg.norm(response.stress), p_max,
        )
        previous = target
    return result


def _advance(pool: RvePool, start: np.ndarray, end: np.ndarray, cutbacks: int, step: int) -> tuple[int, int]:
    """Reach ``end`` from the committed ``start``, halving on failure; (iterations, sub-steps)."""
    try:
        pool.evaluate(end[None])
    except MaterialPointFailure as exc:
        pool.rollback()
        if cutbacks == 0:
            raise ComputationError(f"load_path step {step}: the RVE failed ({exc.reason})") from None
        log.info("load_path step %d: RVE failed (%s); halving the step", step, exc.reason)
        middle = 0.5 * (start + end)
        first = _advance(pool, start, middle, cutbacks - 1, step)
        second = _advance(pool, middle, end, cutbacks - 1, step)
        return first[0] + second[0], first[1] + second[1]
    pool.commit()
    return pool.responses[0].iterations, 1
