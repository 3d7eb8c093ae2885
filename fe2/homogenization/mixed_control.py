r"""Mixed stress/strain control of material points: reach one target per call.

Every component k of the macro strain E (n,) is either prescribed (strain control) or left
free while its conjugate stress Sigma_k is prescribed (stress control): uniaxial stress,
pure shear stress, a biaxial stress ratio, unloading to zero stress. With s the
strain-controlled and f the stress-controlled components, the free strains solve

    r(E_f) = Sigma_f(E_s*, E_f) - Sigma_f* = 0

by Newton's method with the consistent tangent C = dSigma/dE of the material point:

    C_ff dE_f = -r            (quadratic convergence when C is consistent).

The first iterate is predicted from the committed state (E0, Sigma0, C0) of the last
converged target with the Schur complement of C0: the free strains follow the prescribed
increments as

    dE_f = C_ff^-1 (dSigma_f* - C_fs dE_s*),

which is exact for a linear response (one evaluation per target), and the tangent of the
controlled response (e.g. the uniaxial-stress modulus) is the Schur complement

    C_mixed = C_ss - C_sf C_ff^-1 C_fs = dSigma_s / dE_s at fixed Sigma_f.

Only the material-point contract is used (``evaluate(strains (m, n)) -> (stresses (m, n),
tangents (m, n, n))``, ``rollback()``): on success the trial state of the last evaluate is
the converged one and the caller commits it; on failure (a point fails, Newton does not
converge, C_ff is singular) the points are rolled back and the caller cuts the step back.
All m points are solved together (one evaluate per iteration), each with its own target.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from fe2.material_point import MaterialPointFailure, MaterialPoints

log = logging.getLogger(__name__)

#: Halvings of a Newton step that does not reduce the stress residual (then it is taken).
LINE_SEARCH_STEPS = 6


@dataclass(frozen=True)
class MixedTarget:
    """What one step prescribes, per component.

    Attributes:
        stress_controlled: (n,) bool, True where the stress is prescribed (the strain free).
        values: (m, n) or (n,): the prescribed strain where ``stress_controlled`` is False,
            the prescribed stress where it is True (in the notation of the points: Mandel
            for small strain).
    """

    stress_controlled: np.ndarray
    values: np.ndarray

    def __post_init__(self):
        mask = np.asarray(self.stress_controlled, dtype=bool)
        values = np.asarray(self.values, dtype=float)
        if values.shape[-1] != mask.shape[0] or mask.ndim != 1:
            raise ValueError(f"values {values.shape} do not match the control mask {mask.shape}")
        object.__setattr__(self, "stress_controlled", mask)
        object.__setattr__(self, "values", values)


@dataclass
class MixedState:
    """A converged (or initial) state of m points: strain, stress (m, n), tangent (m, n, n).

    ``tangent`` may be None (the virgin state before any evaluation): no predictor then.
    """

    strain: np.ndarray
    stress: np.ndarray
    tangent: np.ndarray | None = None

    @classmethod
    def initial(cls, reference_strain: np.ndarray, num_points: int = 1) -> MixedState:
        """The unloaded state: the reference strain (n,) and zero stress at every point."""
        strain = np.tile(np.asarray(reference_strain, dtype=float), (num_points, 1))
        return cls(strain=strain, stress=np.zeros_like(strain))

    def prescribed(self, stress_controlled: np.ndarray) -> np.ndarray:
        """The quantity a control mask prescribes, taken from this state, (m, n)."""
        return np.where(stress_controlled, self.stress, self.strain)


@dataclass(frozen=True)
class MixedOptions:
    """Outer Newton of the stress-controlled components.

    Converged when, at every point, |Sigma_f - Sigma_f*| <= atol + rtol * scale with
    scale = max(|Sigma|, |Sigma_start|): the stress level of the iterate or, when unloading
    to zero stress, of the committed state the step starts from.
    """

    rtol: float = 1e-9
    atol: float = 0.0
    max_iterations: int = 25


@dataclass
class MixedResult:
    """Outcome of :func:`reach_target`.

    Attributes:
        converged: the target was reached (then ``state`` is the trial state of the points).
        state: strain, stress and tangent at the last evaluation.
        iterations: evaluations of the points (outer Newton iterations incl. the predictor).
        residual_norms: max over the points of |Sigma_f - Sigma_f*| / scale at the accepted
            iterate, per evaluation (a rejected line-search trial repeats the last value).
        reason: why it failed (empty when converged).
        point_failure: it failed because a material point had no answer.
    """

    converged: bool
    state: MixedState | None
    iterations: int = 0
    residual_norms: list[float] = field(default_factory=list)
    reason: str = ""
    point_failure: bool = False


def schur_complement(tangent: np.ndarray, stress_controlled: np.ndarray) -> np.ndarray:
    """Tangent of the controlled response C_ss - C_sf C_ff^-1 C_fs, (..., k, k), k = |s|.

    ``tangent`` (..., n, n); with no stress-controlled component this is C itself.
    """
    s = ~np.asarray(stress_controlled, dtype=bool)
    f = ~s
    C = np.asarray(tangent)
    C_ss = C[..., s, :][..., :, s]
    if not f.any():
        return C_ss
    C_ff = C[..., f, :][..., :, f]
    C_fs = C[..., f, :][..., :, s]
    C_sf = C[..., s, :][..., :, f]
    return C_ss - C_sf @ np.linalg.solve(C_ff, C_fs)


def _free_increment(tangent: np.ndarray, f: np.ndarray, rhs: np.ndarray) -> np.ndarray | None:
    """Solve C_ff x = rhs per point, (m, k); None if C_ff is singular or not finite."""
    C_ff = tangent[:, f][:, :, f]
    if not np.isfinite(C_ff).all():
        return None
    scale = np.abs(C_ff).max(axis=(1, 2))
    if np.any(scale == 0) or np.any(np.linalg.cond(C_ff) > 1e12):
        return None
    return np.linalg.solve(C_ff, rhs[:, :, None])[:, :, 0]


def reach_target(
    points: MaterialPoints,
    target: MixedTarget,
    *,
    start: MixedState,
    options: MixedOptions = MixedOptions(),
    on_evaluate=None,
) -> MixedResult:
    """Evaluate ``points`` at the strains that meet ``target`` (see the module docstring).

    Each point runs its own Newton iteration with a backtracking line search on |r| (a step
    that does not reduce the residual is halved, up to ``LINE_SEARCH_STEPS`` times): a
    piecewise smooth response (elastic unloading after plastic loading) does not make Newton
    cycle between its branches. Near the solution the full step is taken (quadratic
    convergence).

    Args:
        points: m material points, their committed state is ``start``.
        target: control mask (n,) and prescribed values (m, n) or (n,).
        start: the committed state; with its tangent, the first iterate is the Schur
            complement predictor, else the free strains start at their committed values.
        options: tolerances of the outer Newton.
        on_evaluate: called with no argument after every successful evaluate (e.g. to
            count the micro Newton iterations).

    Returns:
        The result; when converged the points hold the converged trial state (the caller
        commits), otherwise they have been rolled back.
    """
    f = target.stress_controlled
    s = ~f
    m, n = start.strain.shape
    values = np.broadcast_to(target.values, (m, n))
    trial = start.strain.copy()
    trial[:, s] = values[:, s]
    if f.any() and start.tangent is not None:
        C_fs = start.tangent[:, f][:, :, s]
        increment = values[:, f] - start.stress[:, f]
        increment -= np.einsum("mij,mj->mi", C_fs, trial[:, s] - start.strain[:, s])
        step = _free_increment(start.tangent, f, increment)
        if step is not None:
            trial[:, f] += step
    start_scale = np.linalg.norm(start.stress, axis=1)
    # Per point: the accepted iterate (strain, residual norm), the Newton step from it and
    # the line-search factor of the pending trial.
    accepted = trial.copy()
    accepted_error = np.full(m, np.inf)
    relative = np.zeros(m)  # accepted residual / scale, per point
    direction = np.zeros((m, int(f.sum())))
    alpha = np.ones(m)
    norms: list[float] = []
    state = None
    for iteration in range(1, options.max_iterations + 1):
        try:
            stress, tangent = points.evaluate(trial)
        except MaterialPointFailure as exc:
            points.rollback()
            reason = f"material point failed ({exc.reason})"
            return MixedResult(False, state, iteration, norms, reason, point_failure=True)
        if on_evaluate is not None:
            on_evaluate()
        state = MixedState(trial.copy(), stress, tangent)
        residual = stress[:, f] - values[:, f]
        error = np.linalg.norm(residual, axis=1)
        if not np.isfinite(error).all():
            points.rollback()
            return MixedResult(False, state, iteration, norms, "the stress is not finite")
        scale = np.maximum(np.linalg.norm(stress, axis=1), start_scale)
        tolerance = options.atol + options.rtol * scale
        converged = error <= tolerance
        # A trial is accepted when it reduces the residual, or the line search is exhausted.
        exhausted = alpha <= 0.5**LINE_SEARCH_STEPS
        accept = converged | exhausted | (error < (1.0 - 1e-4 * alpha) * accepted_error)
        accepted[accept] = trial[accept]
        accepted_error[accept] = error[accept]
        relative[accept] = error[accept] / np.where(scale > 0, scale, 1.0)[accept]
        norms.append(float(np.max(relative)))
        if np.all(converged):
            log.debug("mixed control: converged in %d evaluations, residuals %s", iteration, norms)
            return MixedResult(True, state, iteration, norms)
        direction[converged] = 0.0  # stays where it is, re-evaluated with the others
        active = accept & ~converged  # a new Newton step from the accepted iterate
        if active.any():
            step = _free_increment(tangent[active], f, -residual[active])
            if step is None:
                points.rollback()
                return MixedResult(
                    False, state, iteration, norms,
                    "the tangent of the stress-controlled components is singular (a limit load, "
                    "or a free rigid rotation: prescribe F12 or F21 at finite strain)",
                )
            direction[active] = step
        alpha[accept] = 1.0
        alpha[~accept] *= 0.5
        trial = accepted.copy()
        trial[:, f] += alpha[:, None] * direction
    points.rollback()
    return MixedResult(
        False, state, options.max_iterations, norms,
        f"stress control did not converge in {options.max_iterations} iterations "
        f"(relative residuals {', '.join(f'{r:.1e}' for r in norms[-3:])})",
    )


@dataclass(frozen=True)
class Segment:
    """A linear ramp, in ``steps`` equal steps, from the state at its start to ``target``.

    A component ramps from its current strain (strain-controlled) or current stress
    (stress-controlled) to its value in ``target``.
    """

    target: MixedTarget
    steps: int = 1
