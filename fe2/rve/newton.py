"""Solve one RVE under a macro strain: Newton, then the consistent tangent by sensitivity.

Newton on the constrained system, for a macro strain E (n,) from a committed history:

    K(w) dx = -R(w) (restricted),  w <- w + alpha P dx,   until
    |R(w)|_adm <= atol + rtol |R(w)|   (or at the round-off floor, see fe2.convergence),

with a backtracking line search (alpha = 1, 1/2, ..., accepted when |R|_adm decreases):
the full step costs nothing extra, and the equations -- hence the answer -- are unchanged,
while large increments of non-smooth laws (J2) no longer make Newton cycle.
where |R|_adm is the residual on the admissible space (what the boundary condition does not
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
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from dolfinx.fem.petsc import assemble_matrix, assemble_vector, create_matrix
from petsc4py import PETSc

from fe2.convergence import converged, residual_terms, tolerance
from fe2.errors import ComputationError
from fe2.rve.boundary_conditions import make_boundary_condition
from fe2.rve.model import History, RveModel
from fe2.rve.solver import DirectSolver, SolveError

log = logging.getLogger(__name__)

#: A direct solve meets Hill-Mandel and <eps> = E to round-off (~1e-14 here); beyond this the
#: constrained system was singular or the constraints were not met, and no tangent is returned.
CONSISTENCY_TOL = 1e-8


class RveFailure(ComputationError):
    """The RVE problem has no answer for this macro strain (no convergence, NaN, det F <= 0)."""


@dataclass(frozen=True)
class NewtonOptions:
    """Newton tolerances of the RVE problem (see the module docstring)."""

    atol: float = 0.0
    rtol: float = 1e-10
    max_iterations: int = 25
    line_search_steps: int = 6  # halvings of the Newton step (the last one is taken if none helps)


@dataclass
class PointState:
    """Everything one material point owns: its fluctuation and its history.

    ``virgin``: the history is still the initial one (the point never yielded).
    """

    w: np.ndarray
    history: History
    virgin: bool = False

    def copy(self) -> PointState:
        return PointState(
            w=self.w.copy(),
            history={tag: {k: v.copy() for k, v in h.items()} for tag, h in self.history.items()},
            virgin=self.virgin,
        )


def _same_history(a: History, b: History) -> bool:
    return all(np.array_equal(a[tag][k], b[tag][k]) for tag in a for k in a[tag])


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
        timings: seconds: ``newton`` (the whole Newton loop) with its parts ``residual``
            (constitutive update + residual), ``assemble`` (Jacobian + constraint),
            ``factorize`` and ``solve``; ``sensitivity`` (the tangent, including a
            factorisation at the converged state when the last one is not current).
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
    timings: dict[str, float] = field(default_factory=dict)
    fields: dict[str, np.ndarray] | None = None


def _hill_mandel(micro: float, macro: float, scale: float) -> float:
    """|micro - macro| / |macro|, falling back to ``scale`` when |macro| is tiny."""
    denominator = abs(macro) if abs(macro) > 1e-8 * scale else scale
    return abs(micro - macro) / denominator if denominator > 0 else 0.0


class RveSolver:
    """Newton and sensitivity solver for one RVE type under one boundary condition.

    Everything heavy is shared by all the material points that use it: compiled forms, the
    boundary-condition operator, the matrices and their sparsity, the KSP and the symbolic
    factorisation. A point's own data is a :class:`PointState`.

    Args:
        model: the discretised RVE.
        bc: 'periodic', 'affine' or 'traction'.
        newton: tolerances.
        petsc_options: options of the direct solver (default MUMPS LU).
        elastic_shortcut: answer never-yielded points without Newton when they stay elastic
            (small strain only; see the module docstring).
    """

    def __init__(
        self,
        model: RveModel,
        bc: str,
        *,
        newton: NewtonOptions = NewtonOptions(),
        petsc_options: Mapping[str, Any] | None = None,
        elastic_shortcut: bool = True,
    ):
        self.model, self.newton = model, newton
        self._fields = None  # RveFields of the model, built on the first request
        self.elastic_shortcut = elastic_shortcut and model.physics.name == "elasticity"
        self._virgin: tuple | None = None  # (W (n, N), tangent, HM residuals, tangent_qp)
        self.bc = make_boundary_condition(bc, model)
        self.J = create_matrix(model.jacobian)
        self.K: PETSc.Mat | None = None
        self.R = model.w.x.petsc_vec.duplicate()
        self.dw = model.w.x.petsc_vec.duplicate()
        self.r, self.x = self.bc.create_vector(), self.bc.create_vector()
        self.solver = DirectSolver(
            model.mesh.comm, prefix=f"fe2_rve_{bc}_{id(self)}_", options=petsc_options
        )
        self._factorized_tangent: np.ndarray | None = None  # tangent behind the factorisation

    @property
    def kind(self) -> str:
        return self.bc.kind

    def initial_state(self) -> PointState:
        """Zero fluctuation, virgin history."""
        return PointState(
            w=np.zeros(self.model.num_dofs), history=self.model.initial_history(), virgin=True
        )

    def _virgin_response(self) -> tuple:
        """Sensitivity fields, tangent and its HM residuals of the virgin RVE (cached)."""
        if self._virgin is None:
            model = self.model
            model.E.value = model.physics.reference_strain
            model.w.x.array[:] = 0.0
            model.constitutive_update(model.initial_history())
            fields: list[np.ndarray] = []
            tangent, hm, _ = self._sensitivity({}, fields=fields)
            self._virgin = (np.array(fields), tangent, hm, model.tangent_qp.copy())
        return self._virgin

    def _try_elastic(self, E: np.ndarray, state: PointState) -> RveResponse | None:
        """The elastic-shortcut answer, or None (then model.w is a good Newton start)."""
        W, tangent, hm, virgin_tangent = self._virgin_response()
        model, newton = self.model, self.newton
        model.E.value = E
        model.w.x.array[:] = (E - model.physics.reference_strain) @ W
        trial, admissible = model.constitutive_update(state.history)
        if not (admissible and _same_history(trial, state.history)
                and np.array_equal(model.tangent_qp, virgin_tangent)):
            return None
        self._assemble_residual()
        norm, full = self.bc.residual_norm(self.R), self.R.norm()
        if not converged(norm, atol=newton.atol, rtol=newton.rtol, scale=full, terms=self._terms()):
            return None
        averages = model.averages()
        work_macro = float(averages.stress @ (E - model.physics.reference_strain))
        E_norm = np.linalg.norm(E)
        return RveResponse(
            stress=averages.stress,
            tangent=tangent.copy(),
            iterations=0,
            hill_mandel_residual=_hill_mandel(averages.energy, work_macro, averages.scale),
            tangent_hill_mandel_residual=hm,
            strain_average_error=float(np.linalg.norm(averages.strain - E) / (E_norm if E_norm > 0 else 1.0)),
            residual_norms=[norm],
            elastic_shortcut=True,
        )

    # ------------------------------------------------------------------ building blocks

    def _terms(self) -> float:
        """Size of the terms of the residual at the last constitutive update (round-off floor)."""
        model = self.model
        return residual_terms(model.tangent_qp, model.strain_qp, model.dV, dim=model.physics.dim)

    def _assemble_residual(self) -> None:
        with self.R.localForm() as local:
            local.set(0.0)
        assemble_vector(self.R, self.model.residual)
        self.R.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)

    def _factorize_current(self, timings: dict[str, float]) -> None:
        """Factorise the Jacobian of the current tangent unless that is already done."""
        tangent = self.model.tangent_qp
        if self._factorized_tangent is not None and np.array_equal(tangent, self._factorized_tangent):
            return
        t0 = time.perf_counter()
        self.J.zeroEntries()
        assemble_matrix(self.J, self.model.jacobian)
        self.J.assemble()
        self.K = self.bc.system_matrix(self.J, self.K)
        timings["assemble"] = timings.get("assemble", 0.0) + time.perf_counter() - t0
        t0 = time.perf_counter()
        self.solver.factorize(self.K)
        timings["factorize"] = timings.get("factorize", 0.0) + time.perf_counter() - t0
        self._factorized_tangent = tangent.copy()

    # ------------------------------------------------------------------ the solve

    def solve(
        self, E: np.ndarray, state: PointState, *, warm_start: np.ndarray | None = None, fields: bool = False
    ) -> tuple[RveResponse, PointState]:
        """Equilibrate the RVE under macro strain E from the committed ``state``.

        Args:
            E: macro strain (n,) (Mandel strain, F row-major, or gradient).
            state: committed state of the point (not modified).
            warm_start: initial fluctuation (default: ``state.w``).
            fields: also return the RVE fields of the converged state (``response.fields``).

        Returns:
            The response and the trial state (new arrays).

        Raises:
            RveFailure: no convergence within ``max_iterations``, or an inadmissible state.
        """
        response, trial = self._equilibrate(E, state, warm_start)
        if fields:  # the model holds the converged state
            if self._fields is None:
                from fe2.io.rve_fields import RveFields

                self._fields = RveFields(self.model)
            response.fields = self._fields.snapshot(trial.history)
        return response, trial

    def _equilibrate(
        self, E: np.ndarray, state: PointState, warm_start: np.ndarray | None
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
                w = model.w.x.array.copy()
                return response, PointState(w=w, history=state.history, virgin=True)
            warm_start = model.w.x.array.copy()  # the elastic predictor
        model.E.value = E
        model.w.x.array[:] = state.w if warm_start is None else warm_start
        norms: list[float] = []
        start = clock()

        terms = [0.0]  # size of the residual's terms at the last evaluation

        def done(norm: float, full: float) -> bool:
            return converged(norm, atol=newton.atol, rtol=newton.rtol, scale=full, terms=terms[0])

        def evaluate() -> tuple[History, float, float]:
            """Constitutive update and residual at model.w: (trial history, |R|_adm, |R|)."""
            t0 = clock()
            trial, admissible = model.constitutive_update(state.history)
            if not admissible:
                raise RveFailure(
                    f"inadmissible micro state at Newton iteration {len(norms)} "
                    "(NaN stress or det F <= 0)"
                )
            self._assemble_residual()
            result = trial, self.bc.residual_norm(self.R), self.R.norm()
            terms[0] = self._terms()
            timings["residual"] = timings.get("residual", 0.0) + clock() - t0
            if not np.isfinite(result[1]):
                raise RveFailure(f"residual is not finite at Newton iteration {len(norms)}")
            return result

        trial, norm, full = evaluate()
        norms.append(norm)
        iteration = 0
        while not done(norm, full):
            if iteration == newton.max_iterations:
                target = tolerance(atol=newton.atol, rtol=newton.rtol, scale=full, terms=terms[0])
                raise RveFailure(
                    f"Newton did not converge in {newton.max_iterations} iterations "
                    f"(residual {norm:.3e}, target {target:.3e})"
                )
            iteration += 1
            self._factorize_current(timings)
            t0 = clock()
            self.R.scale(-1.0)
            self.bc.restrict(self.R, self.r)
            self.solver.solve(self.r, self.x)
            self.bc.prolong(self.x, self.dw)
            timings["solve"] = timings.get("solve", 0.0) + clock() - t0
            w0, step, alpha = model.w.x.array.copy(), self.dw.array_r.copy(), 1.0
            for halving in range(newton.line_search_steps + 1):
                model.w.x.array[:] = w0 + alpha * step
                trial, new_norm, full = evaluate()
                if new_norm < (1.0 - 1e-4 * alpha) * norm or done(new_norm, full):
                    break
                if halving < newton.line_search_steps:
                    alpha *= 0.5
            norm = new_norm
            norms.append(norm)
        timings["newton"] = clock() - start
        averages = model.averages()
        work_macro = float(averages.stress @ (model.E.value - model.physics.reference_strain))
        hm = _hill_mandel(averages.energy, work_macro, averages.scale)
        E_norm = np.linalg.norm(model.E.value)
        strain_error = np.linalg.norm(averages.strain - model.E.value) / (E_norm if E_norm > 0 else 1.0)

        tangent, tangent_hm, tangent_strain_error = self._sensitivity(timings)
        response = RveResponse(
            stress=averages.stress,
            tangent=tangent,
            iterations=iteration,
            hill_mandel_residual=hm,
            tangent_hill_mandel_residual=tangent_hm,
            strain_average_error=max(strain_error, tangent_strain_error),
            residual_norms=norms,
            timings=timings,
        )
        if max(tangent_hm.max(), response.strain_average_error) > CONSISTENCY_TOL:
            raise SolveError(
                f"{self.kind} RVE solution is inconsistent: Hill-Mandel residual of the tangent "
                f"{tangent_hm.max():.2e}, |<eps> - E| / |E| = {response.strain_average_error:.2e} "
                f"(tolerance {CONSISTENCY_TOL:g}); the constrained system is singular or "
                "ill-conditioned"
            )
        virgin = state.virgin and _same_history(trial, state.history)
        return response, PointState(w=model.w.x.array.copy(), history=trial, virgin=virgin)

    def _sensitivity(
        self, timings: dict[str, float], *, fields: list | None = None
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """Consistent tangent at the converged state; HM residual and <eps> error per column.

        With ``fields``, the sensitivity fluctuations dw_k are appended to it.
        """
        model = self.model
        t0 = time.perf_counter()
        self._factorize_current({})
        n = model.physics.n_comp
        tangent_qp = model.tangent_qp
        A = np.zeros((n, n))
        hm = np.zeros(n)
        strain_error = 0.0
        for k, e_k in enumerate(np.eye(n)):
            model.dE.value = e_k
            with self.R.localForm() as local:
                local.set(0.0)
            assemble_vector(self.R, model.sensitivity_rhs)
            self.R.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
            self.bc.restrict(self.R, self.r)
            self.solver.solve(self.r, self.x)
            self.bc.prolong(self.x, self.dw)
            if fields is not None:
                fields.append(self.dw.array_r.copy())
            d_strain = e_k + model.strain_of(self.dw.array_r)
            d_stress = np.einsum("cqij,cqj->cqi", tangent_qp, d_strain)
            avg_stress = model.average(d_stress)
            avg_strain = model.average(d_strain)
            A[:, k] = avg_stress
            micro = float(model.average(np.einsum("cqi,cqi->cq", d_stress, d_strain)))
            hm[k] = _hill_mandel(micro, float(avg_stress[k]), abs(micro))
            strain_error = max(strain_error, float(np.linalg.norm(avg_strain - e_k)))
        model.dE.value = np.zeros(n)
        timings["sensitivity"] = time.perf_counter() - t0
        return A, hm, strain_error

    def destroy(self) -> None:
        """Free the PETSc objects (collective on COMM_SELF: call on the owning rank)."""
        for obj in (self.solver, self.bc, self.J, self.K, self.R, self.dw, self.r, self.x):
            if obj is not None:
                obj.destroy()
