"""The per-point RVE solver (reference backend): Newton, then the tangent by sensitivity.

Newton on the constrained system, for a macro strain E (n,) from a committed history:

    K(w) dx = -R(w) (restricted),  w <- w + alpha P dx,   until
    |R(w)|_adm <= atol + rtol |R(w)|,

with a backtracking line search (alpha = 1, 1/2, ..., accepted when |R|_adm decreases):
the full step costs nothing extra, and the equations -- hence the answer -- are unchanged,
while large increments of non-smooth laws (J2) no longer make Newton cycle;
|R|_adm is the residual on the admissible space (what the boundary condition does not
absorb) and |R| the full residual (the boundary reaction forces): a scale-free test that does
not depend on the warm start. The consistent tangent is

    dSigma/dE[:, k] = < C (e_k + strain(dw_k)) >,   K dw_k = -R(C e_k)  (k < n),

with one factorisation of the Jacobian at the converged state (the last Newton one is reused
when the tangent has not changed since, e.g. for linear phases) and n right-hand sides.

Elastic shortcut (small strain): a point that has never yielded responds linearly, with the
fluctuation w = sum_k W_k (E - E_ref)_k of the virgin RVE's sensitivity fields W_k (computed
once per solver). If one constitutive update at that w leaves every history variable and
tangent unchanged (no point yields) and the residual meets the tolerance, that is the
answer -- exact, not an approximation -- with the virgin tangent; otherwise Newton starts
from there.

The points of a batch are solved one after the other, each with DOLFINx assembly and a
PETSc solver: the reference the batched backend (:mod:`fe2.rve.batched`) is tested against.
The linear solver is direct (MUMPS) or iterative (CG + GAMG, :mod:`fe2.rve.solver`); with the
iterative one, a Newton correction is solved to a tenth of the Newton target (no further:
its accuracy cannot show in the residual), and each sensitivity solve is warm-started from
the same column of the previous solve.

Distributed RVEs: the mesh may be shared out over the ranks of its communicator; every
method is then collective on it (PETSc vectors and matrices in parallel, averages and the
tests that decide what to do next reduced over the ranks, so all ranks take the same path).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from dolfinx import fem
from dolfinx.fem.petsc import assemble_matrix, assemble_vector, create_matrix
from petsc4py import PETSc
import ufl

from fe2.convergence import residual_terms
from fe2.fem.quadrature_forms import QuadratureForms
from fe2.rve.boundary_conditions import make_boundary_condition
from fe2.rve.micro_solver import (
    BatchResult, MicroSolver, NewtonOptions, PointState, RveFailure, RveResponse,
    consistency_error, hill_mandel, same_history,
)
from fe2.rve.model import History, RveModel
from fe2.rve.solver import SolveError, make_linear_solver

log = logging.getLogger(__name__)


class PointwiseRveSolver(MicroSolver):
    """Newton and sensitivity solver for one RVE type, one point at a time (reference).

    Everything heavy is shared by all the points it solves: compiled forms, the
    boundary-condition operator, the matrices and their sparsity, the KSP and the symbolic
    factorisation. Its work arrays (fluctuation, stress and tangent at the quadrature
    points) belong to this solver, not to the model.

    Args:
        model: the discretised RVE.
        bc: 'periodic', 'affine' or 'traction'.
        newton: tolerances.
        petsc_options: options of the linear solver (default MUMPS LU, or CG + GAMG).
        elastic_shortcut: answer never-yielded points without Newton when they stay elastic
            (small strain only; see the module docstring).
        linear_solver: 'direct' or 'iterative' (:mod:`fe2.rve.solver`).
    """

    def __init__(
        self,
        model: RveModel,
        bc: str,
        *,
        newton: NewtonOptions = NewtonOptions(),
        petsc_options: Mapping[str, Any] | None = None,
        elastic_shortcut: bool = True,
        linear_solver: str = "direct",
    ):
        super().__init__(model, bc, newton)
        self.linear_solver = linear_solver
        iterative = linear_solver == "iterative"
        physics = model.physics
        self.forms = QuadratureForms(model.mesh, physics, model.degree, space=model.space)
        self.w = fem.Function(model.V, name="fluctuation")
        self.dE = fem.Constant(model.mesh, np.zeros(physics.n_comp))  # sensitivity direction
        v = ufl.TestFunction(model.V)
        self.sensitivity_rhs = fem.form(
            -ufl.inner(ufl.dot(self.forms.tangent_q, self.dE), self.forms.space.strain(v)) * self.forms.dx
        )
        self.E = np.zeros(physics.n_comp)  # macro strain of the current solve
        self.strain_qp = np.zeros((model.num_cells, model.num_qp, physics.n_comp))
        self._fields = None  # RveFields of the model, built on the first request
        self.elastic_shortcut = elastic_shortcut and physics.elastic_shortcut
        self._virgin: tuple | None = None  # (W (n, N), tangent, HM residuals, tangent_qp)
        self.bc = make_boundary_condition(bc, model, iterative=iterative)
        self.J = create_matrix(self.forms.jacobian)
        self.K: PETSc.Mat | None = None
        self.M: PETSc.Mat | None = None  # preconditioner matrix (iterative)
        self.R = self.w.x.petsc_vec.duplicate()
        self.dw_f = fem.Function(model.V)  # Newton step / sensitivity field, ghosts included
        self.dw = self.dw_f.x.petsc_vec
        self.r, self.x = self.bc.create_vector(), self.bc.create_vector()
        self.solver = make_linear_solver(
            linear_solver, model.comm, prefix=f"fe2_rve_{bc}_{id(self)}_", options=petsc_options,
            near_null=self.bc.near_null_space() if iterative else None,
            constraints=self.bc if self.bc.projected else None,
        )
        self._factorized_tangent: np.ndarray | None = None  # tangent behind the factorisation
        self._guesses: list[PETSc.Vec] = []  # the last sensitivity solutions (warm starts)

    # ------------------------------------------------------------------ batch = loop

    def _solve_batch(self, strains, states, warm, fields) -> BatchResult:
        m = len(strains)
        result = BatchResult([None] * m, [None] * m, {}, np.zeros(m))
        for i in range(m):
            t0 = time.perf_counter()
            try:
                response, trial = self._solve_one(strains[i], states[i], warm[i], bool(fields[i]))
            except (RveFailure, SolveError) as exc:
                result.failures[i] = exc if isinstance(exc, RveFailure) else RveFailure(str(exc))
            else:
                result.responses[i], result.trials[i] = response, trial
                for part, seconds in response.timings.items():
                    if part != "newton":  # the sum of its parts
                        self.timings[part] = self.timings.get(part, 0.0) + seconds
            result.costs[i] = time.perf_counter() - t0
        return result

    # ------------------------------------------------------------------ building blocks

    def _update(self, history: History) -> tuple[History, bool]:
        """Constitutive update at (E, w) from ``history`` into the quadrature functions."""
        self.strain_qp[:] = self.E + self.forms.strain_of(self.w.x.array)
        update = self.model.constitutive_update(self.strain_qp[None], history)
        self.forms.stress_qp[:] = update.stress[0]
        self.forms.tangent_qp[:] = update.tangent[0]
        return update.history, bool(self.model.all(bool(update.ok[0])))

    def _terms(self) -> float:
        """Size of the terms of the residual at the last update (its round-off floor)."""
        model = self.model
        s = model.physics.fluctuation_components
        t = residual_terms(self.forms.tangent_qp[..., s, s], self.strain_qp[..., s], model.dV, dim=model.physics.dim)
        return float(np.sqrt(model.sum(t * t)))

    def _prolong(self) -> np.ndarray:
        """The solution self.x as a full fluctuation in self.dw_f (ghosts updated): its array."""
        self.bc.prolong(self.x, self.dw)
        self.dw_f.x.scatter_forward()
        return self.dw_f.x.array

    def _averages(self):
        averages = self.model.averages(self.forms.stress_qp[None], self.strain_qp[None])
        return averages.stress[0], averages.strain[0], float(averages.energy[0]), float(averages.scale[0])

    def _assemble_residual(self) -> None:
        with self.R.localForm() as local:
            local.set(0.0)
        assemble_vector(self.R, self.forms.internal_force)
        self.R.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)

    def _factorize_current(self, timings: dict[str, float]) -> None:
        """Factorise the Jacobian of the current tangent unless that is already done."""
        tangent = self.forms.tangent_qp
        if self._factorized_tangent is not None and self.model.all(
                np.array_equal(tangent, self._factorized_tangent)):
            return
        t0 = time.perf_counter()
        self.J.zeroEntries()
        assemble_matrix(self.J, self.forms.jacobian)
        self.J.assemble()
        self.K = self.bc.system_matrix(self.J, self.K)
        self.M = self.bc.preconditioner_matrix(self.J, self.K, self.M)
        timings["assemble"] = timings.get("assemble", 0.0) + time.perf_counter() - t0
        t0 = time.perf_counter()
        self._factorized_tangent = None
        self.solver.factorize(self.K, self.M)
        timings["factorize"] = timings.get("factorize", 0.0) + time.perf_counter() - t0
        self._factorized_tangent = tangent.copy()

    def _virgin_response(self) -> tuple:
        """Sensitivity fields, tangent and its HM residuals of the virgin RVE (cached)."""
        if self._virgin is None:
            model = self.model
            self.E = model.physics.reference_strain.copy()
            self.w.x.array[:] = 0.0
            self._update(model.initial_history())
            fields: list[np.ndarray] = []
            # Iterative: solved tighter than the Newton tolerance, so that the shortcut's
            # residual meets it (computed once per solver).
            tangent, hm, _ = self._sensitivity({}, fields=fields, rtol=1e-2 * self.newton.rtol)
            self._virgin = (np.array(fields), tangent, hm, self.forms.tangent_qp.copy())
        return self._virgin

    def _try_elastic(self, E: np.ndarray, state: PointState) -> RveResponse | None:
        """The elastic-shortcut answer, or None (then self.w is a good Newton start)."""
        W, tangent, hm, virgin_tangent = self._virgin_response()
        model = self.model
        self.E = E
        self.w.x.array[:] = (E - model.physics.reference_strain) @ W
        trial, admissible = self._update(state.history)
        if not (admissible and self.model.all(same_history(trial, state.history)
                                             and np.array_equal(self.forms.tangent_qp, virgin_tangent))):
            return None
        self._assemble_residual()
        norm, full = self.bc.residual_norm(self.R), self.R.norm()
        if norm > self.newton.target(full, self._terms()):
            return None
        stress, strain, energy, scale = self._averages()
        work_macro = float(stress @ (E - model.physics.reference_strain))
        E_norm = np.linalg.norm(E)
        return RveResponse(
            stress=stress,
            tangent=tangent.copy(),
            iterations=0,
            hill_mandel_residual=float(hill_mandel(energy, work_macro, scale)),
            tangent_hill_mandel_residual=hm,
            strain_average_error=float(np.linalg.norm(strain - E) / (E_norm if E_norm > 0 else 1.0)),
            residual_norms=[norm],
            elastic_shortcut=True,
            averaged_tangent=model.average(self.forms.tangent_qp),
        )

    # ------------------------------------------------------------------ one solve

    def _solve_one(
        self, E: np.ndarray, state: PointState, warm_start: np.ndarray, fields: bool
    ) -> tuple[RveResponse, PointState]:
        """Equilibrate the RVE under macro strain E from the committed ``state``."""
        response, trial = self._equilibrate(E, state, warm_start)
        if fields:  # the work arrays hold the converged state
            if self._fields is None:
                from fe2.io.rve_fields import RveFields

                self._fields = RveFields(self.model)
            response.fields = self._fields.snapshot(self.E, trial.w, self.forms.stress_qp, trial.history)
        return response, trial

    def _equilibrate(
        self, E: np.ndarray, state: PointState, warm_start: np.ndarray
    ) -> tuple[RveResponse, PointState]:
        model, newton = self.model, self.newton
        timings: dict[str, float] = {}
        clock = time.perf_counter
        E = np.asarray(E, dtype=float)
        if self.elastic_shortcut and state.virgin:
            t0 = clock()
            response = self._try_elastic(E, state)
            if response is not None:
                response.timings = {"elastic_shortcut": clock() - t0}
                w = self.w.x.array.copy()
                return response, PointState(w=w, history=state.history, virgin=True)
            warm_start = self.w.x.array.copy()  # the elastic predictor
        self.E = E
        self.w.x.array[:] = warm_start
        norms: list[float] = []
        start = clock()

        def evaluate() -> tuple[History, float, float]:
            """Constitutive update and residual at w: (trial history, |R|_adm, target)."""
            t0 = clock()
            trial, admissible = self._update(state.history)
            if not admissible:
                raise RveFailure(
                    f"inadmissible micro state at Newton iteration {len(norms)} "
                    "(NaN stress or det F <= 0)"
                )
            self._assemble_residual()
            result = trial, self.bc.residual_norm(self.R), newton.target(self.R.norm(), self._terms())
            timings["residual"] = timings.get("residual", 0.0) + clock() - t0
            if not np.isfinite(result[1]):
                raise RveFailure(f"residual is not finite at Newton iteration {len(norms)}")
            return result

        trial, norm, target = evaluate()
        norms.append(norm)
        iteration = 0
        while norm > target:
            if iteration == newton.max_iterations:
                raise RveFailure(
                    f"Newton did not converge in {newton.max_iterations} iterations "
                    f"(residual {norm:.3e}, target {target:.3e})"
                )
            iteration += 1
            self._factorize_current(timings)
            t0 = clock()
            self.R.scale(-1.0)
            self.bc.restrict(self.R, self.r)
            self.solver.solve(self.r, self.x, atol=0.1 * target)
            step = self._prolong().copy()
            timings["solve"] = timings.get("solve", 0.0) + clock() - t0
            w0, alpha = self.w.x.array.copy(), 1.0
            for halving in range(newton.line_search_steps + 1):
                self.w.x.array[:] = w0 + alpha * step
                trial, new_norm, target = evaluate()
                if new_norm < (1.0 - 1e-4 * alpha) * norm or new_norm <= target:
                    break
                if halving < newton.line_search_steps:
                    alpha *= 0.5
            norm = new_norm
            norms.append(norm)
        timings["newton"] = clock() - start
        stress, strain, energy, scale = self._averages()
        work_macro = float(stress @ (E - model.physics.reference_strain))
        hm = float(hill_mandel(energy, work_macro, scale))
        E_norm = np.linalg.norm(E)
        strain_error = np.linalg.norm(strain - E) / (E_norm if E_norm > 0 else 1.0)

        tangent, tangent_hm, tangent_strain_error = self._sensitivity(timings)
        response = RveResponse(
            stress=stress,
            tangent=tangent,
            iterations=iteration,
            hill_mandel_residual=hm,
            tangent_hill_mandel_residual=tangent_hm,
            strain_average_error=float(max(strain_error, tangent_strain_error)),
            residual_norms=norms,
            averaged_tangent=model.average(self.forms.tangent_qp),
            timings=timings,
        )
        failure = consistency_error(self.kind, tangent_hm, response.strain_average_error)
        if failure is not None:
            raise failure
        virgin = state.virgin and bool(self.model.all(same_history(trial, state.history)))
        return response, PointState(w=self.w.x.array.copy(), history=trial, virgin=virgin)

    def _sensitivity(
        self, timings: dict[str, float], *, fields: list | None = None, rtol: float | None = None
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """Consistent tangent at the converged state; HM residual and <eps> error per column.

        With ``fields``, the sensitivity fluctuations dw_k are appended to it.
        """
        model = self.model
        t0 = time.perf_counter()
        self._factorize_current({})
        n = model.physics.n_comp
        tangent_qp = self.forms.tangent_qp
        A = np.zeros((n, n))
        hm = np.zeros(n)
        strain_error = 0.0
        for k, e_k in enumerate(np.eye(n)):
            self.dE.value = e_k
            with self.R.localForm() as local:
                local.set(0.0)
            assemble_vector(self.R, self.sensitivity_rhs)
            self.R.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
            self.bc.restrict(self.R, self.r)
            guess = k < len(self._guesses)
            if guess:
                self._guesses[k].copy(self.x)
            self.solver.solve(self.r, self.x, guess=guess, rtol=rtol)
            if self.solver.kind == "iterative":
                if guess:
                    self.x.copy(self._guesses[k])
                else:
                    self._guesses.append(self.x.copy())
            dw = self._prolong()
            if fields is not None:
                fields.append(dw.copy())
            d_strain = e_k + self.forms.strain_of(dw)
            d_stress = np.einsum("cqij,cqj->cqi", tangent_qp, d_strain)
            avg_stress = model.average(d_stress)
            avg_strain = model.average(d_strain)
            A[:, k] = avg_stress
            micro = float(model.average(np.einsum("cqi,cqi->cq", d_stress, d_strain)))
            scale = float(model.average(np.linalg.norm(d_stress, axis=-1) * np.linalg.norm(d_strain, axis=-1)))
            hm[k] = hill_mandel(micro, float(avg_stress[k]), scale)
            strain_error = max(strain_error, float(np.linalg.norm(avg_strain - e_k)))
        self.dE.value = np.zeros(n)
        timings["sensitivity"] = time.perf_counter() - t0
        return A, hm, strain_error

    def destroy(self) -> None:
        """Free the PETSc objects (collective on COMM_SELF: call on the owning rank)."""
        M = self.M if self.M is not self.K else None
        for obj in (self.solver, self.bc, self.J, self.K, M, self.R, self.r, self.x, *self._guesses):
            if obj is not None:
                obj.destroy()
