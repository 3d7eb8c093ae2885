"""The micro-solver contract: RVEs of one type solved for many material points at once.

    solve_batch(strains (m, n), states (m,), warm (m,)) -> BatchResult(responses, trials,
                                                                    failures, costs)

A point's answer depends only on its macro strain E, its committed :class:`PointState` and
the tolerances -- never on the other points of the batch, their order or the batch size.
Solvers hold no point state: a solve returns new trial states; the caller (a pool) decides
to commit or drop them. A failed point (no convergence, inadmissible state, inconsistent
tangent) is reported by its index and has no response; the others are answered.

Backends (same equations and tolerances, answers equal to round-off):
:class:`fe2.rve.newton.PointwiseRveSolver` (one DOLFINx/PETSc solve per point, the
reference) and :class:`fe2.rve.batched.BatchedRveSolver` (all points of a batch together).
Statistics and per-point outputs are part of the contract, implemented once here.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from fe2.convergence import ROUNDOFF_FACTOR
from fe2.errors import ComputationError
from fe2.materials.cauchy_born import reduce_stability_fields, rve_stability_fields
from fe2.rve.model import History, RveModel

#: A direct solve meets Hill-Mandel and <eps> = E to round-off (~1e-14 here); beyond this the
#: constrained system was singular or the constraints were not met, and no tangent is returned.
CONSISTENCY_TOL = 1e-8


class RveFailure(ComputationError):
    """The RVE problem has no answer for this macro strain (no convergence, NaN, det F <= 0,
    or a singular / inconsistent linear system)."""


@dataclass(frozen=True)
class NewtonOptions:
    """Newton tolerances: converged when |R|_adm <= atol + rtol |R| or at the round-off floor
    of the residual's terms (:mod:`fe2.convergence`; see :mod:`fe2.rve.newton`)."""

    atol: float = 0.0
    rtol: float = 1e-10
    max_iterations: int = 25
    line_search_steps: int = 6  # halvings of the Newton step (the last one is taken if none helps)

    def target(self, full: np.ndarray | float, terms: np.ndarray | float = 0.0) -> np.ndarray | float:
        """The residual norm to reach, given the norm of the full residual and the size of the
        residual's terms (arrays for several points)."""
        return np.maximum(self.atol + self.rtol * full, ROUNDOFF_FACTOR * np.finfo(float).eps * terms)


@dataclass
class PointState:
    """Everything one material point owns: its fluctuation and its history.

    ``virgin``: the history is still the initial one (the point never yielded).
    ``strain``: the macro strain (n,) the state is the answer to (set by
    :meth:`MicroSolver.solve_batch`; None for the initial state: the reference strain).
    """

    w: np.ndarray
    history: History
    virgin: bool = False
    strain: np.ndarray | None = None

    def copy(self) -> PointState:
        return PointState(
            w=self.w.copy(),
            history={tag: {k: v.copy() for k, v in h.items()} for tag, h in self.history.items()},
            virgin=self.virgin,
            strain=None if self.strain is None else self.strain.copy(),
        )


@dataclass
class RveResponse:
    """Homogenised answer of one RVE solve.

    Attributes:
        stress: <sigma> (n,).
        tangent: consistent tangent dSigma/dE (n, n).
        iterations: Newton iterations (0: the warm start was already converged).
        hill_mandel_residual: |<sigma.h> - Sigma.H| / |Sigma.H| of the converged state, with
            h = eps - eps_ref (for a state with Sigma.H ~ 0, the denominator is
            <|sigma||h|>); 0 for a stress-free state.
        tangent_hill_mandel_residual: the same for each sensitivity field, (n,).
        strain_average_error: max over the state and sensitivities of |<eps> - E| / |E|.
        residual_norms: Newton residual norms |R|_adm, one per evaluation.
        elastic_shortcut: answered by the elastic shortcut (no factorisation).
        averaged_tangent: <C> (n, n), the volume average of the micro tangents (not
            consistent on a heterogeneous RVE; for studies of the macro convergence).
        timings: seconds per part of the solve (per-point backend; empty in a batch).
        fields: the RVE fields of the converged state (a :class:`fe2.io.rve_fields.RveFields`
            snapshot) when the solve was asked for them, else None.
    """

    stress: np.ndarray
    tangent: np.ndarray
    iterations: int
    hill_mandel_residual: float
    tangent_hill_mandel_residual: np.ndarray
    strain_average_error: float
    residual_norms: list[float]
    elastic_shortcut: bool = False
    averaged_tangent: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)
    fields: dict[str, np.ndarray] | None = None


@dataclass
class BatchResult:
    """The answers of one batch of m points.

    Attributes:
        responses: (m,) the response of each point, None where it failed.
        trials: (m,) the trial state of each point, None where it failed.
        failures: point index -> the error (:class:`RveFailure`) of each failed point.
        costs: (m,) seconds of solver work attributed to each point (for load balancing).
    """

    responses: list[RveResponse | None]
    trials: list[PointState | None]
    failures: dict[int, RveFailure]
    costs: np.ndarray


def hill_mandel(micro, macro, scale):
    """|micro - macro| / |macro|, falling back to ``scale`` where |macro| is tiny (arrays or floats)."""
    micro, macro, scale = np.asarray(micro, float), np.asarray(macro, float), np.asarray(scale, float)
    denominator = np.where(np.abs(macro) > 1e-8 * scale, np.abs(macro), scale)
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, np.abs(micro - macro) / safe, 0.0)


def consistency_error(kind: str, tangent_hm: np.ndarray, strain_error: float) -> RveFailure | None:
    """The failure of a solution that misses Hill-Mandel or <eps> = E, else None."""
    if max(float(np.max(tangent_hm)), strain_error) <= CONSISTENCY_TOL:
        return None
    return RveFailure(
        f"{kind} RVE solution is inconsistent: Hill-Mandel residual of the tangent "
        f"{np.max(tangent_hm):.2e}, |<eps> - E| / |E| = {strain_error:.2e} "
        f"(tolerance {CONSISTENCY_TOL:g}); the constrained system is singular or "
        "ill-conditioned"
    )


def same_history(a: History, b: History) -> bool:
    return all(np.array_equal(a[tag][k], b[tag][k]) for tag in a for k in a[tag])


class MicroSolver(ABC):
    """Solves batches of RVEs of one type (model, boundary condition, tolerances).

    Args:
        model: the discretised RVE (shared, immutable).
        bc: 'periodic', 'affine' or 'traction'.
        newton: tolerances.

    Attributes:
        statistics: totals since creation: ``solves``, ``newton_iterations``,
            ``elastic_shortcuts`` (solves answered without Newton), ``failures``,
            ``seconds`` (wall time in :meth:`solve_batch`).
        timings: seconds per part of the work since creation (a profile).
    """

    def __init__(self, model: RveModel, bc: str, newton: NewtonOptions):
        self.model, self.kind, self.newton = model, bc, newton
        self.statistics = {"solves": 0, "newton_iterations": 0, "elastic_shortcuts": 0,
                           "failures": 0, "seconds": 0.0}
        #: Seconds per part of the work (constitutive update, assembly, factorisation, ...),
        #: summed over all solves: the profile of this solver.
        self.timings: dict[str, float] = {}

    @property
    def n_comp(self) -> int:
        return self.model.physics.n_comp

    def initial_state(self) -> PointState:
        """Zero fluctuation, virgin history."""
        return PointState(
            w=np.zeros(self.model.num_dofs), history=self.model.initial_history(), virgin=True
        )

    def solve_batch(
        self,
        strains: np.ndarray,
        states: Sequence[PointState],
        *,
        warm: Sequence[np.ndarray | None] | None = None,
        fields: Sequence[bool] | None = None,
    ) -> BatchResult:
        """Equilibrate m RVEs: point i under macro strain ``strains[i]`` from ``states[i]``.

        Args:
            strains: (m, n) macro strains (Mandel strain, F row-major, or gradient).
            states: (m,) committed states (not modified).
            warm: (m,) initial fluctuations (None: the state's own).
            fields: (m,) also return the RVE fields of these points' converged states.
        """
        strains = np.asarray(strains, dtype=float).reshape(-1, self.n_comp)
        m = len(strains)
        if len(states) != m:
            raise ValueError(f"{m} strains but {len(states)} states")
        warm = [s.w if w is None else w for s, w in zip(states, warm or [None] * m)]
        fields = np.zeros(m, dtype=bool) if fields is None else np.asarray(fields, dtype=bool)
        t0 = time.perf_counter()
        result = self._solve_batch(strains, list(states), warm, fields) if m else \
            BatchResult([], [], {}, np.zeros(0))
        for trial, E in zip(result.trials, strains):
            if trial is not None:
                trial.strain = E.copy()
        stats = self.statistics
        stats["seconds"] += time.perf_counter() - t0
        answered = [r for r in result.responses if r is not None]
        stats["solves"] += len(answered)
        stats["newton_iterations"] += sum(r.iterations for r in answered)
        stats["elastic_shortcuts"] += sum(int(r.elastic_shortcut) for r in answered)
        stats["failures"] += len(result.failures)
        return result

    @abstractmethod
    def _solve_batch(self, strains: np.ndarray, states: list[PointState], warm: list[np.ndarray],
                     fields: np.ndarray) -> BatchResult:
        """The backend's batch solve (arguments checked and completed by :meth:`solve_batch`)."""

    def solve(self, E: np.ndarray, state: PointState, *, warm_start: np.ndarray | None = None,
              fields: bool = False) -> tuple[RveResponse, PointState]:
        """One point: the response and trial state; raises :class:`RveFailure` if it fails."""
        result = self.solve_batch(np.asarray(E, dtype=float)[None], [state], warm=[warm_start], fields=[fields])
        if result.failures:
            raise result.failures[0]
        return result.responses[0], result.trials[0]

    def point_outputs(self, states: Sequence[PointState],
                      responses: Sequence[RveResponse | None]) -> dict[str, np.ndarray]:
        """Scalar outputs per point, name -> (m,): ``rve_newton_iterations`` of the last solve;
        if a phase has one, the RVE average of the equivalent plastic strain; for Cauchy-Born
        phases the stability checks reduced over the RVE (the least stable point); in 2D, when
        every phase defines it, ``stress_33`` (:meth:`out_of_plane_stress`). Collective on a
        distributed RVE (reduced over its ranks)."""
        model = self.model
        outputs = {"rve_newton_iterations": np.array(
            [r.iterations if r is not None else 0 for r in responses], dtype=float)}
        plastic = [t for t, h in model.initial_history().items() if "equivalent_plastic_strain" in h]
        if plastic:
            weights = {t: model.dV[model.phase_cells[t]].ravel() / model.volume for t in plastic}
            outputs["equivalent_plastic_strain"] = model.sum(np.array([
                sum(weights[t] @ s.history[t]["equivalent_plastic_strain"] for t in plastic)
                for s in states
            ]))
        stability = rve_stability_fields(model.phases, [s.history for s in states], model.physics.tensor_dim)
        if stability and model.distributed:  # the least stable point over the ranks
            parts = model.comm.allgather(stability)
            merged = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
            m = len(states)
            stability = reduce_stability_fields(merged, np.tile(np.arange(m), len(parts)), m)
        outputs.update(stability)
        if model.has_out_of_plane_stress:  # also with no point: the same names on every rank
            outputs["stress_33"] = self.out_of_plane_stress(states)
        return outputs

    def out_of_plane_stress(self, states: Sequence[PointState]) -> np.ndarray:
        """<sigma33> (m,) (<P33> at finite strain): the RVE average of the out-of-plane stress
        of plane strain, from each state's macro strain, fluctuation and history (the phase
        laws' ``out_of_plane_stress`` at the micro strains E + strain(w)). It is the macro
        one: eps33 = 0 (F33 = 1) does no work, so Hill-Mandel holds without it."""
        model = self.model
        if not states:
            return np.zeros(0)
        E = np.array([model.physics.reference_strain if s.strain is None else s.strain for s in states])
        micro = model.operators.strain(np.array([s.w for s in states]), E)  # (m, cells, qp, n)
        return model.point_averages(model.out_of_plane_stress(micro, model.stack([s.history for s in states])))

    def destroy(self) -> None:
        """Free owned PETSc objects (on the owning rank)."""
