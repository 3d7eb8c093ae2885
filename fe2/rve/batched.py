"""The batched RVE solver: all points of a batch equilibrated together (default backend).

The same equations, tolerances and iteration as the per-point reference
(:mod:`fe2.rve.newton`): elastic shortcut for never-yielded points, Newton with the
backtracking line search, the consistent tangent by n sensitivity solves, the Hill-Mandel and
<eps> = E checks. What changes is how: for the b active points of a batch

* the micro strains E + strain(w) come from shared element strain operators in one array
  operation, the constitutive update of each phase is one vectorised call over all points
  (the quadrature arrays hold the cells ordered by phase, :mod:`fe2.rve.phase_order`, so a
  phase is one slice of them);
* residuals and element matrices are array operations, summed into the constrained systems
  of all points at once (:mod:`fe2.rve.constrained_systems`);
* one batched sparse Cholesky factorises the systems of up to :data:`FACTOR_GROUP` points
  together (shared symbolic analysis; the group size at which it runs fastest); the
  sensitivity right-hand sides are solved together;
* each point converges on its own: a converged point leaves the active set (the states of a
  batch: :mod:`fe2.rve.batch_states`), a failed point is reported by its index; the line
  search runs per point.

A point whose system is not positive definite (the Cholesky breaks down) is solved again by
the per-point reference solver (PETSc LU). Batches are capped in size so that memory stays
bounded (``batch``: a number of points, or 'auto' from a memory budget): a batch holds the
states of all its points, which converge at different Newton iterations, while the
factorisations run in groups of the active points -- so that a group stays full although
points leave the batch as they converge.

Linear RVEs: the tangent never changes, so the virgin factorisation serves every solve.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np

from fe2.rve.boundary_conditions import make_boundary_condition
from fe2.rve.constrained_systems import SystemFactor, make_constrained_system
from fe2.rve.micro_solver import (
    CONSISTENCY_TOL, BatchResult, MicroSolver, NewtonOptions, PointState, RveFailure, RveResponse,
    consistency_error, hill_mandel,
)
from fe2.rve.batch_states import ActiveStates, FinalStates, split_points, take_points
from fe2.rve.model import History, RveModel
from fe2.rve.phase_order import PhaseOrder

log = logging.getLogger(__name__)

#: Memory a batch may use by default, bytes (``FE2_BATCH_MEMORY`` overrides, in MiB).
DEFAULT_BATCH_MEMORY = 512 * 2**20
#: Most points in one batch (beyond, nothing is gained but memory use).
MAX_BATCH = 1024
#: Most points factorised together (the batched Cholesky is fastest around this size).
FACTOR_GROUP = 32


class BatchedRveSolver(MicroSolver):
    """Solves batches of RVEs of one type together (see the module docstring).

    Args:
        model: the discretised RVE.
        bc: 'periodic', 'affine' or 'traction'.
        newton: tolerances.
        batch: 'auto' (memory budget ``FE2_BATCH_MEMORY`` MiB, default 512, at most
            :data:`MAX_BATCH`) or the most points per batch.
        petsc_options: options of the PETSc solvers (large factors, iterative solves, the
            per-point fallback).
        elastic_shortcut: as for the per-point solver (small strain only).
        linear_solver: 'direct' (batched Cholesky, or MUMPS for large factors) or 'iterative'
            (CG + GAMG per point, :class:`fe2.linalg.petsc_krylov.PetscKrylov`).
    """

    def __init__(
        self,
        model: RveModel,
        bc: str,
        *,
        newton: NewtonOptions = NewtonOptions(),
        batch: int | str = "auto",
        petsc_options: Mapping[str, Any] | None = None,
        elastic_shortcut: bool = True,
        linear_solver: str = "direct",
    ):
        super().__init__(model, bc, newton)
        if model.distributed:
            raise ValueError("the batched RVE solver needs an RVE on one process")
        self.cells = PhaseOrder(model)  # quadrature arrays: cells by phase
        self.ops, self.dV = self.cells.operators, self.cells.dV
        self.bc = make_boundary_condition(bc, model)
        self.linear_solver = linear_solver
        self.system = make_constrained_system(model, self.bc, petsc_options, linear_solver=linear_solver,
                                              operators=self.ops)
        self.elastic_shortcut = elastic_shortcut and model.physics.elastic_shortcut
        self.petsc_options = petsc_options
        self.batch_size = self._batch_size(batch)
        self._virgin: dict | None = None
        self._fallback = None  # per-point solver for points whose Cholesky breaks down
        self._fields = None

    def _batch_size(self, batch: int | str) -> int:
        """Points per batch; sets ``factor_group``, the points factorised together."""
        budget = float(os.environ.get("FE2_BATCH_MEMORY", DEFAULT_BATCH_MEMORY / 2**20)) * 2**20
        factor_bytes = self.system.bytes_per_point
        self.factor_group = min(FACTOR_GROUP, max(1, int(budget / 2 // factor_bytes)))
        if batch != "auto":
            if not (isinstance(batch, int) and batch >= 1):
                raise ValueError(f"batch must be 'auto' or a positive integer, got {batch!r}")
            self.factor_group = min(self.factor_group, batch)
            return batch
        m = self.model
        n = m.physics.n_comp
        # In flight per point: strains, stresses, tangents, histories, fluctuations, residuals;
        # and, for the points of a factorisation group, the factors.
        state_bytes = 8 * (m.num_cells * m.num_qp * (n * n + 6 * n + 14) + 8 * self.ops.num_dofs)
        size = (budget - self.factor_group * factor_bytes) // state_bytes
        return int(max(1, min(MAX_BATCH, size)))

    @contextmanager
    def _timed(self, part: str):
        t0 = time.perf_counter()
        yield
        self.timings[part] = self.timings.get(part, 0.0) + time.perf_counter() - t0

    # ------------------------------------------------------------------ building blocks

    def _evaluate(self, E: np.ndarray, w: np.ndarray, history: History):
        """Constitutive update and residuals of P states: (update, strain, R (P, N), |R|_adm,
        the residual norm to reach (P,))."""
        with self._timed("constitutive"):
            strain = self.ops.strain(w, E)
            update = self.cells.constitutive_update(strain, history)
        with self._timed("residual"):
            R = self.ops.residual(update.stress, dV=self.dV)
            adm, full = self.system.residual_norms(R)
            terms = self.cells.residual_terms(update.tangent, strain)
        return update, strain, R, adm, self.newton.target(full, terms)

    def _factorize(self, tangent: np.ndarray, points: np.ndarray) -> SystemFactor:
        """The factorised systems of the tangents (P_all, num_cells, num_qp, n, n) of the
        points ``points`` (indices)."""
        if self.model.is_linear:  # the constant tangent: the virgin factorisation
            return _Repeated(self._virgin_state()["factor"], len(points))
        with self._timed("factorize"):
            return self.system.factorize(tangent, self.dV, points)

    def _solve(self, factor: SystemFactor, rhs: np.ndarray) -> np.ndarray:
        with self._timed("solve"):
            return factor.solve(rhs)

    def _grouped(self, tangent: np.ndarray, rhs_of, work: np.ndarray, points: np.ndarray, rows=None):
        """Factorise the systems of P points in groups of at most ``factor_group`` and solve
        each group's right-hand sides ``rhs_of(group indices)`` (len, R, N) at once: the
        solutions (P, R, N) and the points whose factorisation broke down (P,) bool. The
        tangents of the points are ``tangent[rows]`` (rows None: all of ``tangent``)."""
        solutions, failed = [], []
        P = len(points)
        rows = np.arange(P) if rows is None else rows
        count = -(-P // self.factor_group)  # groups of equal size: no small tail
        for group in np.array_split(np.arange(P), count):
            factor = self._factorize(tangent, rows[group])
            if not self.model.is_linear:
                work[points[group]] += 2
            solutions.append(self._solve(factor, rhs_of(group)))
            failed.append(factor.failed)
        return np.concatenate(solutions), np.concatenate(failed)

    def _sensitivity(self, tangent: np.ndarray, work: np.ndarray, points: np.ndarray):
        """Tangents (P, n, n), their HM residuals (P, n), <eps> errors (P,), the sensitivity
        fluctuations (P, n, N) and the points whose factorisation broke down, at P converged
        states (``points``: their indices in ``work``, the work units per point)."""
        model, n = self.model, self.n_comp
        P = len(tangent)
        with self._timed("sensitivity"):
            rhs = self.ops.tangent_residuals(tangent, self.dV, scale=-1.0)  # (P, n, N): -(C e_k, strain(v))
        dw, failed = self._grouped(tangent, lambda group: rhs[group], work, points)
        with self._timed("sensitivity"):
            # Column k of the tangent is <C (e_k + strain(dw_k))>: [p, i, k].
            avg_stress, avg_strain, micro, scale = self.ops.sensitivity_averages(dw, tangent, self.dV / model.volume)
            hm = hill_mandel(micro, np.einsum("pkk->pk", avg_stress), scale)
            strain_error = np.linalg.norm(avg_strain - np.eye(n), axis=1).max(axis=1)
        return avg_stress, hm, strain_error, dw, failed

    def _virgin_state(self) -> dict:
        """Factorisation, tangent and sensitivity fields of the virgin RVE (cached)."""
        if self._virgin is None:
            model = self.model
            E = model.physics.reference_strain[None]
            update, *_ = self._evaluate(E, np.zeros((1, self.ops.num_dofs)), model.initial_history())
            with self._timed("factorize"):
                factor = self.system.factorize(update.tangent, self.dV)
            if factor.failed[0]:
                raise RveFailure("the virgin RVE system is not positive definite")
            self._virgin = {"factor": factor, "tangent_qp": update.tangent[0]}
            tangent, hm, _, dw, _ = self._sensitivity(update.tangent, np.zeros(1), np.zeros(1, dtype=int))
            if not np.isfinite(dw).all():
                self._virgin = None
                raise RveFailure("the linear solve of the virgin RVE's sensitivity did not converge")
            self._virgin.update(tangent=tangent[0], hm=hm[0], W=dw[0])
        return self._virgin

    # ------------------------------------------------------------------ the batch

    def _solve_batch(self, strains, states, warm, fields) -> BatchResult:
        m = len(strains)
        result = BatchResult([None] * m, [None] * m, {}, np.zeros(m))
        for start in range(0, m, self.batch_size):
            chunk = np.arange(start, min(m, start + self.batch_size))
            t0 = time.perf_counter()
            work = self._solve_chunk(strains[chunk], [states[i] for i in chunk],
                                     [warm[i] for i in chunk], fields[chunk], result, chunk)
            seconds = time.perf_counter() - t0
            result.costs[chunk] = seconds * work / max(work.sum(), 1e-300)
        fallback = [i for i, f in result.failures.items() if isinstance(f, _Breakdown)]
        for i in fallback:  # unstable or indefinite systems: the per-point reference solver
            del result.failures[i]
            t0 = time.perf_counter()
            solver = self._pointwise()
            sub = solver.solve_batch(strains[i:i + 1], [states[i]], warm=[warm[i]], fields=fields[i:i + 1])
            result.responses[i], result.trials[i] = sub.responses[0], sub.trials[0]
            if sub.failures:
                result.failures[i] = sub.failures[0]
            result.costs[i] += time.perf_counter() - t0
        return result

    def _pointwise(self):
        if self._fallback is None:
            from fe2.rve.newton import PointwiseRveSolver

            self._fallback = PointwiseRveSolver(self.model, self.kind, newton=self.newton,
                                                petsc_options=self.petsc_options,
                                                elastic_shortcut=self.elastic_shortcut,
                                                linear_solver=self.linear_solver)
        return self._fallback

    def _state(self, points: np.ndarray, E: np.ndarray, w: np.ndarray, committed: dict) -> ActiveStates:
        """Evaluate the points (indices of the chunk) at fluctuations w (len, N)."""
        update, strain, R, adm, target = self._evaluate(E[points], w, take_points(committed, points))
        return ActiveStates(points, update, strain, R, adm, target)

    def _solve_chunk(self, E, states, warm, fields, result: BatchResult, index: np.ndarray) -> np.ndarray:
        """Solve one batch; writes responses, trials and failures at ``index``; returns the
        work units (evaluations + 2 per factorisation) of each point."""
        model, newton = self.model, self.newton
        P, n = len(E), self.n_comp
        ref = model.physics.reference_strain
        committed = split_points(model.stack([s.history for s in states]), P)
        w = np.array(warm, dtype=float).reshape(P, -1)
        work = np.zeros(P)
        virgin = np.array([s.virgin for s in states])
        shortcut = np.zeros(P, dtype=bool)
        final = FinalStates(P, model, n, committed)  # converged states
        norms: list[list[float]] = [[] for _ in range(P)]
        iterations = np.zeros(P, dtype=int)
        failed: dict[int, RveFailure] = {}

        def drop_inadmissible(state: ActiveStates) -> ActiveStates:
            bad = ~state.ok | ~np.isfinite(state.adm)
            for i in state.points[bad]:
                failed[i] = RveFailure(f"inadmissible micro state at Newton iteration {iterations[i]} "
                                       "(NaN stress or det F <= 0)")
            state = state.where(~bad)
            for i, a in zip(state.points, state.adm):
                norms[i].append(float(a))
            return state

        if self.elastic_shortcut and virgin.any():
            virgin_data = self._virgin_state()
            points = np.flatnonzero(virgin)
            w[points] = (E[points] - ref) @ virgin_data["W"]
            state = self._state(points, E, w[points], committed)
            work[points] += 1
            with self._timed("shortcut"):
                same = state.ok & state.unchanged(virgin_data["tangent_qp"], committed)
                same &= state.adm <= state.target
            accepted = state.where(same)
            shortcut[accepted.points] = True
            final.keep(accepted)
            for i, a in zip(accepted.points, accepted.adm):
                norms[i].append(float(a))

        points = np.flatnonzero(~shortcut)
        state = drop_inadmissible(self._state(points, E, w[points], committed)) if len(points) else None
        if state is not None:
            work[points] += 1
        while state is not None and len(state.points):
            done = state.adm <= state.target
            final.keep(state.where(done))
            state = state.where(~done)
            out = iterations[state.points] == newton.max_iterations
            for i, a, t in zip(state.points[out], state.adm[out], state.target[out]):
                failed[i] = RveFailure(f"Newton did not converge in {newton.max_iterations} iterations "
                                       f"(residual {a:.3e}, target {t:.3e})")
            state = state.where(~out)
            if not len(state.points):
                break
            iterations[state.points] += 1
            tangent, rows = state.tangent_rows()
            step, broke = self._grouped(tangent, lambda group: -state.residuals(group)[:, None, :],
                                        work, state.points, rows)
            for i in state.points[broke]:
                failed[i] = _Breakdown("the RVE tangent system is not positive definite")
            step = step[:, 0, :]
            unsolved = ~broke & ~np.isfinite(step).all(axis=1)  # an iterative solve failed
            for i in state.points[unsolved]:
                failed[i] = RveFailure(f"the linear solve at Newton iteration {iterations[i]} did not converge")
            solved = ~broke & ~unsolved
            step = step[solved]
            state = state.where(solved)
            if not len(state.points):
                break
            # Line search per point: alpha = 1, 1/2, ..., accepted when |R|_adm decreases.
            w0, alpha = w[state.points], np.ones(len(state.points))
            pending = np.arange(len(state.points))
            parts = []
            for halving in range(newton.line_search_steps + 1):
                points = state.points[pending]
                w[points] = w0[pending] + alpha[pending, None] * step[pending]
                trial = self._state(points, E, w[points], committed)
                work[points] += 1
                accept = (trial.adm < (1.0 - 1e-4 * alpha[pending]) * state.adm[pending]) \
                    | (trial.adm <= trial.target) | ~trial.ok | ~np.isfinite(trial.adm)
                if halving == newton.line_search_steps:
                    accept[:] = True
                parts.append(trial.where(accept))
                pending = pending[~accept]
                if not len(pending):
                    break
                alpha[pending] *= 0.5
            state = drop_inadmissible(ActiveStates.concatenate(parts))

        newton_points = np.array([i for i in range(P) if not shortcut[i] and i not in failed], dtype=int)
        tangents = np.zeros((P, n, n))
        hms = np.zeros((P, n))
        strain_errors = np.zeros(P)
        if shortcut.any():
            tangents[shortcut], hms[shortcut] = self._virgin["tangent"], self._virgin["hm"]
        if len(newton_points):
            t, h, e, dw, broke = self._sensitivity(final.tangent[newton_points], work, newton_points)
            for i in newton_points[broke]:
                failed[i] = _Breakdown("the RVE tangent system at the converged state is not positive definite")
            tangents[newton_points], hms[newton_points], strain_errors[newton_points] = t, h, e
            unsolved = ~broke & ~np.isfinite(dw).reshape(len(newton_points), -1).all(axis=1)
            for i in newton_points[unsolved]:
                failed[i] = RveFailure("the linear solve of the sensitivity did not converge")
        averages = self.cells.averages(final.stress, final.strain)
        averaged_tangents = self.cells.point_averages(final.tangent)
        E_norm = np.linalg.norm(E, axis=1)
        work_macro = np.einsum("pi,pi->p", averages.stress, E - ref)
        hm_macro = hill_mandel(averages.energy, work_macro, averages.scale)
        errors = np.linalg.norm(averages.strain - E, axis=1) / np.where(E_norm > 0, E_norm, 1.0)
        errors = np.where(shortcut | ~(strain_errors > errors), errors, strain_errors)  # max(error, e)
        suspect = ~shortcut & ~(np.maximum(hms.max(axis=1), errors) <= CONSISTENCY_TOL)
        still_virgin = virgin.copy()
        for t, h in final.history.items():  # a point stays virgin if its history did not change
            for k, v in h.items():
                still_virgin &= shortcut | (v == committed[t][k]).reshape(P, -1).all(axis=1)
        for i in range(P):
            if i in failed:
                continue
            response = RveResponse(
                stress=averages.stress[i],
                tangent=tangents[i],
                iterations=int(iterations[i]),
                hill_mandel_residual=float(hm_macro[i]),
                tangent_hill_mandel_residual=hms[i],
                strain_average_error=float(errors[i]),
                residual_norms=norms[i],
                elastic_shortcut=bool(shortcut[i]),
                averaged_tangent=averaged_tangents[i],
            )
            if suspect[i]:
                failure = consistency_error(self.kind, response.tangent_hill_mandel_residual,
                                            response.strain_average_error)
                if failure is not None:
                    failed[i] = failure
                    continue
            history = states[i].history if shortcut[i] else final.history_of(i)
            if fields[i]:
                response.fields = self._snapshot(E[i], w[i], self.cells.to_mesh(final.stress[i]), history)
            result.responses[index[i]] = response
            result.trials[index[i]] = PointState(w=w[i].copy(), history=history, virgin=bool(still_virgin[i]))
        for i, failure in failed.items():
            result.failures[int(index[i])] = failure
        return np.maximum(work, 1)

    def _snapshot(self, E, w, stress_qp, history):
        if self._fields is None:
            from fe2.io.rve_fields import RveFields

            self._fields = RveFields(self.model)
        return self._fields.snapshot(E, w, stress_qp, history)

    def destroy(self) -> None:
        if self._fallback is not None:
            self._fallback.destroy()
        self.system.destroy()


class _Breakdown(RveFailure):
    """The batched factorisation broke down for this point: solve it per point instead."""


class _Repeated:
    """One factorisation (of the constant tangent of a linear RVE) serving P points."""

    def __init__(self, factor: SystemFactor, count: int):
        self.factor, self.count = factor, count
        self.failed = np.zeros(count, dtype=bool)

    def solve(self, rhs):
        P, R, N = rhs.shape
        return self.factor.solve(rhs.reshape(1, P * R, N)).reshape(P, R, N)
