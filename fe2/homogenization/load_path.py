"""Apply a sequence of macro strains and/or stresses to one RVE: stress, tangent and Newton
work per step.

The path is a list of :class:`~fe2.homogenization.mixed_control.Segment` ramps; per component
the strain or the stress is prescribed (mixed control). Step k of the path is at pseudo-time
t = k; a segment ramps linearly in t from the state at its start. The load-stepping driver of
`fe2 run` (:func:`fe2.macro.stepping.run_steps`) goes through t = 1, 2, ...; each sub-step
reaches the prescribed values of its time with
:func:`~fe2.homogenization.mixed_control.reach_target` (one :class:`~fe2.rve.pool.RvePool`
evaluate when only strains are prescribed, an outer Newton on the free strains otherwise) and
is committed when it converged; a failed one is rolled back and halved (at most
``max_cutbacks`` times in a row), and grows back after easy sub-steps. Only the requested
steps are reported.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from mpi4py import MPI

from fe2.errors import InputError
from fe2.homogenization.mixed_control import (
    MixedOptions,
    MixedState,
    MixedTarget,
    Segment,
    reach_target,
)
from fe2.io.rve_fields import Snapshot
from fe2.macro.stepping import StepRecord, run_steps
from fe2.rve.micro_solver import MicroSolver
from fe2.physics import Physics
from fe2.rve.pool import RvePool

log = logging.getLogger(__name__)


def macro_strain_vector(physics: Physics, value, *, key: str) -> np.ndarray:
    """User input (tensor d x d, or a vector for conduction) -> strain vector (n,)."""
    return physics.parse_strain(value, key=key)


def component_map(physics: Physics) -> dict[str, tuple[int, float]]:
    """Component label ('11', '12', ...; '1' for conduction) -> (index in the strain/stress
    vector, factor from the tensor component to the vector entry: sqrt 2 for Mandel shears).

    Small strain: '12' and '21' name the same (symmetric) component.
    """
    return physics.component_map()


def macro_stress_vector(physics: Physics, value, *, key: str) -> np.ndarray:
    """User input (stress tensor d x d, Piola P, or flux vector) -> stress vector (n,)."""
    return physics.parse_stress(value, key=key)


def _components(physics: Physics, given: dict, *, key: str) -> dict[int, float]:
    """{label: tensor component} -> {vector index: vector entry}."""
    table = component_map(physics)
    out: dict[int, float] = {}
    for label, value in given.items():
        if str(label) not in table:
            raise InputError(f"{key}.{label}: not a component of {physics.name} in {physics.dim}D "
                             f"(components: {', '.join(physics.labels)})")
        index, factor = table[str(label)]
        if index in out:
            raise InputError(f"{key}.{label}: the component is given twice")
        out[index] = factor * float(value)
    return out


def macro_target(physics: Physics, strain, stress, *, key: str) -> MixedTarget:
    """The target of one segment: a full strain tensor, a full stress tensor, or per
    component ({label: value} mappings for both; each component in exactly one)."""
    n = physics.n_comp
    if strain is None and stress is None:
        raise InputError(f"{key}: give 'strain' and/or 'stress'")
    if not isinstance(strain, dict) and not isinstance(stress, dict):
        if strain is not None and stress is not None:
            raise InputError(
                f"{key}: to prescribe some strain and some stress components give both as "
                "component mappings, e.g. strain: {11: 0.01}, stress: {22: 0, 12: 0}"
            )
        if stress is None:
            values = macro_strain_vector(physics, strain, key=f"{key}.strain")
            return MixedTarget(np.zeros(n, bool), values)
        return MixedTarget(np.ones(n, bool), macro_stress_vector(physics, stress, key=f"{key}.stress"))
    if not (isinstance(strain, dict) and isinstance(stress, dict)) and None not in (strain, stress):
        raise InputError(f"{key}: give 'strain' and 'stress' both as component mappings, e.g. "
                         "strain: {11: 0.01}, stress: {22: 0, 12: 0}")
    strains = _components(physics, strain or {}, key=f"{key}.strain")
    stresses = _components(physics, stress or {}, key=f"{key}.stress")
    labels = physics.labels
    for k in stresses:
        if labels[k] not in physics.stress_labels:
            raise InputError(f"{key}.stress.{labels[k]}: {labels[k]} has no conjugate stress (flux) to "
                             f"prescribe; give it under 'strain' (stress components: "
                             f"{', '.join(physics.stress_labels)})")
    both = sorted(set(strains) & set(stresses))
    if both:
        raise InputError(f"{key}: component {labels[both[0]]} is given in both 'strain' and 'stress' "
                         "(prescribe either the strain or the stress of a component)")
    missing = [labels[k] for k in range(n) if k not in strains and k not in stresses]
    if missing:
        raise InputError(f"{key}: component(s) {', '.join(missing)} in neither 'strain' nor 'stress' "
                         "(every component is prescribed, by its strain or by its stress)")
    mask = np.array([k in stresses for k in range(n)])
    values = np.array([stresses[k] if mask[k] else strains[k] for k in range(n)])
    if not mask.any():
        physics.check_strain_vector(values, key=f"{key}.strain")
    return MixedTarget(mask, values)


def strain_segments(strains) -> list[Segment]:
    """A strain-controlled path: one step to each strain vector (n,) of ``strains``."""
    return [Segment(MixedTarget(np.zeros(len(E), bool), np.asarray(E, dtype=float))) for E in strains]


def macro_path(physics: Physics, load_path) -> list[Segment]:
    """The segments of a config ``load_path`` (each a ramp in its number of steps)."""
    if load_path.strains is not None:
        return strain_segments(
            macro_strain_vector(physics, s, key=f"load_path.strains[{i}]") for i, s in enumerate(load_path.strains)
        )
    if load_path.segments is not None:
        return [
            Segment(
                macro_target(physics, seg.strain, seg.stress, key=f"load_path.segments[{i}]"),
                seg.steps,
            )
            for i, seg in enumerate(load_path.segments)
        ]
    target = macro_target(physics, load_path.strain, load_path.stress, key="load_path")
    return [Segment(target, load_path.steps)]


@dataclass
class LoadPathResult:
    """Per step: strain, stress, tangent, Newton iterations; fields at chosen steps.

    ``stress_controlled``: the control mask of each step (n,); ``control_iterations``: the
    evaluations of the RVE per step (1 under strain control, the outer Newton iterations of
    the stress control otherwise, over all sub-steps); ``stress_residual``: the final relative
    residual of the prescribed stresses (0 under strain control); ``out_of_plane_stress``:
    <sigma33> (<P33> at finite strain) of plane strain per step, from the micro solver's
    point outputs (``stress_33``), empty where the RVE does not have it (3D, generalised plane
    strain, where sigma33 is a component, conduction, laws without it).
    """

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
    stress_controlled: list[np.ndarray] = field(default_factory=list)
    control_iterations: list[int] = field(default_factory=list)
    stress_residual: list[float] = field(default_factory=list)
    out_of_plane_stress: list[float] = field(default_factory=list)

    def full_stress_columns(self, physics: Physics) -> dict[str, np.ndarray]:
        """Per step the out-of-plane stress and the von Mises stress of the homogenised full
        stress (<sigma> in plane with <sigma33>), column name -> (steps,), names from the
        physics (:meth:`Physics.full_stress_columns`); {} where the full stress is not known
        (plane strain without the out-of-plane stress) or has no meaning (conduction)."""
        if not self.strains:
            return {}
        out_of_plane = np.array(self.out_of_plane_stress) if self.out_of_plane_stress else None
        return physics.full_stress_columns(np.array(self.stresses), np.array(self.strains), out_of_plane)


@dataclass
class _Attempt:
    """One sub-step of the driver: a :func:`reach_target` call (the driver's Attempt)."""

    converged: bool
    iterations: int = 0  # RVE Newton iterations over the evaluations
    reason: str = ""
    point_failure: bool = False
    point_evaluations: int = 0  # RVE evaluations (stress-control iterations)
    residual_norms: list[float] = field(default_factory=list)  # relative stress residuals


class _MixedPath:
    """One RVE driven along the segments of a path in pseudo-time (the driver's Steppable)."""

    def __init__(
        self, pool: RvePool, path: list[Segment], reference: np.ndarray, options: MixedOptions
    ):
        self.pool, self.path, self.options = pool, path, options
        self.ends = np.cumsum([segment.steps for segment in path])  # t at the end of each segment
        self.committed = MixedState.initial(reference)
        self.begin: dict[int, np.ndarray] = {}  # prescribed values where each segment starts
        self.trial: MixedState | None = None
        self.mask = np.zeros(len(reference), bool)  # control of the last solve

    def target(self, t: float) -> MixedTarget:
        """The prescribed values at time t (ramping from the state at the segment's start)."""
        j = min(int(np.searchsorted(self.ends, t - 1e-12)), len(self.path) - 1)
        segment = self.path[j]
        mask = segment.target.stress_controlled
        if j not in self.begin:  # the committed state is at the segment's start time
            self.begin[j] = self.committed.prescribed(mask)
        begin, end = self.begin[j], np.broadcast_to(segment.target.values, self.begin[j].shape)
        local = t - (self.ends[j] - segment.steps)  # steps into the segment
        if local >= segment.steps:
            return MixedTarget(mask, end.copy())
        # at a step end the same fractions as np.linspace (the strains of earlier versions)
        if local == int(local):
            fraction = np.linspace(0.0, 1.0, segment.steps + 1)[int(local)]
        else:
            fraction = local / segment.steps
        return MixedTarget(mask, begin + fraction * (end - begin))

    def solve(self, t: float) -> _Attempt:
        target = self.target(t)
        self.mask = target.stress_controlled
        newton = []
        result = reach_target(
            self.pool, target, start=self.committed, options=self.options,
            on_evaluate=lambda: newton.append(self.pool.responses[0].iterations),
        )
        self.trial = result.state if result.converged else None
        return _Attempt(
            result.converged, sum(newton), result.reason, point_failure=result.point_failure,
            point_evaluations=result.iterations, residual_norms=result.residual_norms,
        )

    def commit(self) -> None:
        self.pool.commit()
        self.committed = self.trial

    def rollback(self) -> None:
        self.pool.rollback()


def run_load_path(
    solver: MicroSolver,
    path: list[Segment],
    *,
    field_steps: set[int],
    max_cutbacks: int,
    options: MixedOptions = MixedOptions(),
) -> LoadPathResult:
    """Apply ``path`` (segments of strain/stress targets) from the virgin state; see the
    module doc."""
    pool = RvePool(solver, 1)
    if field_steps:
        pool.set_probes([0])  # keep the RVE fields of every solve
    result = LoadPathResult(bc=solver.kind)
    stepper = _MixedPath(pool, path, solver.model.physics.reference_strain, options)
    num_steps = int(stepper.ends[-1])

    def record(step: StepRecord) -> None:
        state = stepper.committed
        response = pool.responses[0]
        history = pool.state(0).history
        p_max = max(
            (float(h["equivalent_plastic_strain"].max(initial=0.0))
             for h in history.values() if "equivalent_plastic_strain" in h),
            default=0.0,
        )
        if solver.model.distributed:  # the RVE's points are shared out over its ranks
            p_max = solver.model.comm.allreduce(p_max, op=MPI.MAX)
        mixed = bool(stepper.mask.any())
        result.strains.append(state.strain[0].copy())
        result.stresses.append(state.stress[0].copy())
        result.tangents.append(state.tangent[0].copy())
        result.iterations.append(step.newton_iterations)
        result.substeps.append(step.substeps)
        result.hill_mandel.append(response.hill_mandel_residual)
        result.max_plastic_strain.append(p_max)
        result.seconds.append(step.seconds)
        result.stress_controlled.append(stepper.mask.copy())
        result.control_iterations.append(step.point_evaluations)
        result.stress_residual.append(step.residual_norm if mixed else 0.0)
        outputs = pool.point_fields()  # collective on a distributed RVE
        if "stress_33" in outputs:
            result.out_of_plane_stress.append(float(outputs["stress_33"][0]))
        if step.step in field_steps:
            result.snapshots.append((float(step.step), pool.probe_fields()[0]))
        log.info(
            "%s step %d/%d: %d Newton iterations%s%s, |Sigma| %.4g, max p %.3g",
            solver.kind, step.step, num_steps, step.newton_iterations,
            f" in {step.substeps} sub-steps" if step.substeps > 1 else "",
            f", {step.point_evaluations} stress-control iterations" if mixed else "",
            np.linalg.norm(state.stress[0]), p_max,
        )

    run_steps(stepper, [float(k) for k in range(1, num_steps + 1)], comm=MPI.COMM_SELF,
              max_cutbacks=max_cutbacks, on_step=record, label="load_path step")
    return result
