"""Apply a sequence of macro strains and/or stresses to one RVE: stress, tangent and Newton
work per step.

The path is a list of :class:`~fe2.homogenization.mixed_control.Segment` ramps; per component
the strain or the stress is prescribed (mixed control). Each step is reached by
:func:`~fe2.homogenization.mixed_control.reach_target` (one :class:`~fe2.rve.pool.RvePool`
evaluate when only strains are prescribed, an outer Newton on the free strains otherwise),
then committed. A step that fails is halved (after a rollback) up to ``max_cutbacks`` times;
the sub-steps are committed in turn and only the requested steps are reported.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from fe2.errors import ComputationError, InputError
from fe2.homogenization.mixed_control import (
    MixedOptions,
    MixedState,
    MixedTarget,
    Segment,
    reach_target,
)
from fe2.io.rve_fields import Snapshot
from fe2.rve.micro_solver import MicroSolver
from fe2.rve.physics import Physics
from fe2.rve.pool import RvePool
from fe2.tensors import MANDEL_PAIRS, SQRT2, to_mandel

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


def component_map(physics: Physics) -> dict[str, tuple[int, float]]:
    """Component label ('11', '12', ...; '1' for conduction) -> (index in the strain/stress
    vector, factor from the tensor component to the vector entry: sqrt 2 for Mandel shears).

    Small strain: '12' and '21' name the same (symmetric) component.
    """
    dim = physics.dim
    if physics.name == "conduction":
        return {str(i + 1): (i, 1.0) for i in range(dim)}
    if physics.name == "finite_strain":
        return {f"{i + 1}{j + 1}": (i * dim + j, 1.0) for i in range(dim) for j in range(dim)}
    table = {}
    for k, (i, j) in enumerate(MANDEL_PAIRS[dim]):
        factor = 1.0 if i == j else SQRT2
        table[f"{i + 1}{j + 1}"] = table[f"{j + 1}{i + 1}"] = (k, factor)
    return table


def macro_stress_vector(physics: Physics, value, *, key: str) -> np.ndarray:
    """User input (stress tensor d x d, Piola P, or flux vector) -> stress vector (n,)."""
    array = np.asarray(value, dtype=float)
    dim = physics.dim
    shape = (dim,) if physics.name == "conduction" else (dim, dim)
    if array.shape != shape:
        what = f"a vector of {dim} components" if len(shape) == 1 else f"a {dim} x {dim} tensor"
        raise InputError(f"{key}: expected {what}, got shape {array.shape}")
    if physics.name != "elasticity":
        return array.ravel()
    if not np.allclose(array, array.T, rtol=0, atol=1e-14 * max(1.0, np.abs(array).max())):
        raise InputError(f"{key}: the stress tensor must be symmetric")
    return to_mandel(0.5 * (array + array.T))


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
    n, dim = physics.n_comp, physics.dim
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
    if physics.name == "finite_strain" and not mask.any() and np.linalg.det(values.reshape(dim, dim)) <= 0:
        raise InputError(f"{key}.strain: the deformation gradient must have det F > 0")
    return MixedTarget(mask, values)


def macro_path(physics: Physics, load_path) -> list[Segment]:
    """The segments of a config ``load_path`` (each a ramp in its number of steps)."""
    if load_path.strains is not None:
        return [
            Segment(MixedTarget(np.zeros(physics.n_comp, bool),
                                macro_strain_vector(physics, s, key=f"load_path.strains[{i}]")))
            for i, s in enumerate(load_path.strains)
        ]
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
    residual of the prescribed stresses (0 under strain control).
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
    state = MixedState.initial(solver.model.physics.reference_strain)
    num_steps = sum(segment.steps for segment in path)
    step = 0
    for segment in path:
        for target in segment.step_targets(state):  # ramps from the state at its start
            step += 1
            t0 = time.perf_counter()
            work = _Work()
            state = _advance(pool, state, target, max_cutbacks, step, options, work)
            response = pool.responses[0]
            history = pool.state(0).history
            p_max = max(
                (float(h["equivalent_plastic_strain"].max())
                 for h in history.values() if "equivalent_plastic_strain" in h),
                default=0.0,
            )
            result.strains.append(state.strain[0].copy())
            result.stresses.append(state.stress[0].copy())
            result.tangents.append(state.tangent[0].copy())
            result.iterations.append(work.newton)
            result.substeps.append(work.substeps)
            result.hill_mandel.append(response.hill_mandel_residual)
            result.max_plastic_strain.append(p_max)
            result.seconds.append(time.perf_counter() - t0)
            result.stress_controlled.append(target.stress_controlled.copy())
            result.control_iterations.append(work.evaluations)
            result.stress_residual.append(work.residual)
            if step in field_steps:
                result.snapshots.append((float(step), pool.probe_fields()[0]))
            log.info(
                "%s step %d/%d: %d Newton iterations%s%s, |Sigma| %.4g, max p %.3g",
                solver.kind, step, num_steps, work.newton,
                f" in {work.substeps} sub-steps" if work.substeps > 1 else "",
                f", {work.evaluations} stress-control iterations" if target.stress_controlled.any() else "",
                np.linalg.norm(state.stress[0]), p_max,
            )
    return result


@dataclass
class _Work:
    """Counters of one step: RVE Newton iterations, evaluations, sub-steps, final residual."""

    newton: int = 0
    evaluations: int = 0
    substeps: int = 0
    residual: float = 0.0


def _advance(
    pool: RvePool, start: MixedState, end: MixedTarget, cutbacks: int, step: int,
    options: MixedOptions, work: _Work,
) -> MixedState:
    """Reach ``end`` from the committed ``start``, halving on failure; the new state."""
    result = reach_target(
        pool, end, start=start, options=options,
        on_evaluate=lambda: setattr(work, "newton", work.newton + pool.responses[0].iterations),
    )
    work.evaluations += result.iterations
    if not result.converged:
        if cutbacks == 0:
            raise ComputationError(f"load_path step {step}: {result.reason}")
        log.info("load_path step %d: %s; halving the step", step, result.reason)
        begin = start.prescribed(end.stress_controlled)
        half = 0.5 * (begin + np.broadcast_to(end.values, begin.shape))
        middle = MixedTarget(end.stress_controlled, half)
        state = _advance(pool, start, middle, cutbacks - 1, step, options, work)
        return _advance(pool, state, end, cutbacks - 1, step, options, work)
    pool.commit()
    work.substeps += 1
    work.residual = result.residual_norms[-1] if end.stress_controlled.any() else 0.0
    return result.state
