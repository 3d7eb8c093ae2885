"""Apply a sequence of macro strains to one RVE: stress, tangent and Newton work per step.

The path is piecewise linear in a pseudo-time t: strain k at t = k (t = 0: the reference
strain). The load-stepping driver of `fe2 run` (:func:`fe2.macro.stepping.run_steps`) goes
through t = 1, 2, ...; each sub-step is one :class:`~fe2.rve.pool.RvePool` evaluate at the
strain of its time, committed when the RVE converged; a failed one is rolled back and halved
(at most ``max_cutbacks`` times in a row), and grows back after easy sub-steps. Only the
requested steps are reported.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from mpi4py import MPI

from fe2.errors import InputError
from fe2.io.rve_fields import Snapshot
from fe2.macro.stepping import StepRecord, run_steps
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


@dataclass
class _Attempt:
    """One RVE evaluation as a sub-step of the driver."""

    converged: bool
    iterations: int = 0
    reason: str = ""
    point_failure: bool = False
    point_evaluations: int = 1
    residual_norms: list[float] = field(default_factory=list)


class _StrainPath:
    """One RVE driven along a piecewise-linear strain path in t (the driver's Steppable)."""

    def __init__(self, pool: RvePool, path: list[np.ndarray], start: np.ndarray):
        self.pool = pool
        self.strains = np.array([start, *path])  # strain k at t = k

    def strain(self, t: float) -> np.ndarray:
        k = min(int(np.floor(t)), len(self.strains) - 2)
        return self.strains[k] + (t - k) * (self.strains[k + 1] - self.strains[k])

    def solve(self, t: float) -> _Attempt:
        target = self.strain(t) if t != round(t) else self.strains[int(round(t))]
        try:
            self.pool.evaluate(target[None])
        except MaterialPointFailure as exc:
            return _Attempt(False, reason=f"the RVE failed ({exc.reason})", point_failure=True)
        response = self.pool.responses[0]
        return _Attempt(True, response.iterations, residual_norms=list(response.residual_norms))

    def commit(self) -> None:
        self.pool.commit()

    def rollback(self) -> None:
        self.pool.rollback()


def run_load_path(
    solver: MicroSolver, path: list[np.ndarray], *, field_steps: set[int], max_cutbacks: int
) -> LoadPathResult:
    """Apply ``path`` (list of strain vectors) from the virgin state; see the module doc."""
    pool = RvePool(solver, 1)
    if field_steps:
        pool.set_probes([0])  # keep the RVE fields of every solve
    result = LoadPathResult(bc=solver.kind)
    target = _StrainPath(pool, path, solver.model.physics.reference_strain)

    def record(step: StepRecord) -> None:
        response = pool.responses[0]
        history = pool.state(0).history
        p_max = max(
            (float(h["equivalent_plastic_strain"].max(initial=0.0)) for h in history.values()
             if "equivalent_plastic_strain" in h),
            default=0.0,
        )
        if solver.model.distributed:  # the RVE's points are shared out over its ranks
            p_max = solver.model.comm.allreduce(p_max, op=MPI.MAX)
        result.strains.append(path[step.step - 1])
        result.stresses.append(response.stress)
        result.tangents.append(response.tangent)
        result.iterations.append(step.newton_iterations)
        result.substeps.append(step.substeps)
        result.hill_mandel.append(response.hill_mandel_residual)
        result.max_plastic_strain.append(p_max)
        result.seconds.append(step.seconds)
        if step.step in field_steps:
            result.snapshots.append((float(step.step), pool.probe_fields()[0]))
        log.info(
            "%s step %d/%d: %d Newton iterations%s, |Sigma| %.4g, max p %.3g",
            solver.kind, step.step, len(path), step.newton_iterations,
            f" in {step.substeps} sub-steps" if step.substeps > 1 else "",
            np.linalg.norm(response.stress), p_max,
        )

    run_steps(target, [float(k) for k in range(1, len(path) + 1)], comm=MPI.COMM_SELF,
              max_cutbacks=max_cutbacks, on_step=record, label="load_path step")
    return result
